"""Seasons' image pipeline: photo bytes → CycleGAN translation → RDN enhancement.

Importing the package stays light (no TensorFlow): it exports the types and the intake.
The networks live in their own modules, imported by name where they are needed:
`from pipeline.translate import translate`, `from pipeline.registry import ModelRegistry`.
"""

from __future__ import annotations

import os

# TensorFlow reads this at import: keep its C++ start-up chatter out of logs and CLI output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pipeline.crop import CropBox
from pipeline.directions import PAIRS, Direction, Pair
from pipeline.errors import InputError, InputErrorCode, ModelError
from pipeline.intake import IntakeLimits, Photo, open_photo
from pipeline.manifests import Manifest, direction_status, read_manifests
from pipeline.options import FORMATS, FULL_SIZE, MAX_OUTPUT_SIDE, OUTPUT_SIZES, STAGES, TranslateOptions

__all__ = [
    "FORMATS", "FULL_SIZE", "MAX_OUTPUT_SIDE", "OUTPUT_SIZES", "STAGES",
    "PAIRS", "CropBox", "Direction", "InputError", "InputErrorCode", "IntakeLimits", "Manifest",
    "ModelError", "Pair", "Photo", "TranslateOptions",
    "direction_status", "open_photo", "read_manifests",
]

