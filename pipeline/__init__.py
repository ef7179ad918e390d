"""Seasons' image pipeline: photo bytes → CycleGAN translation → RDN enhancement.

The public API. `Direction`, `CropBox`, `InputError` and the intake import without
TensorFlow; `translate`, `TranslateOptions` and `ModelRegistry` load it on first access.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

# TensorFlow reads this at import: keep its C++ start-up chatter out of logs and CLI output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pipeline.crop import CropBox
from pipeline.directions import PAIRS, Direction, Pair
from pipeline.errors import InputError, InputErrorCode, ModelError
from pipeline.intake import IntakeLimits, Photo, open_photo
from pipeline.manifests import Manifest, direction_status, read_manifests
from pipeline.options import FORMATS, OUTPUT_SIZES, STAGES, TranslateOptions

if TYPE_CHECKING:
    from pipeline.registry import ModelRegistry
    from pipeline.translate import TranslateResult, translate

_LAZY = {
    "translate": "pipeline.translate",
    "TranslateResult": "pipeline.translate",
    "ModelRegistry": "pipeline.registry",
}

__all__ = [
    "FORMATS", "OUTPUT_SIZES", "STAGES",
    "PAIRS", "CropBox", "Direction", "InputError", "InputErrorCode", "IntakeLimits", "Manifest",
    "ModelError", "ModelRegistry", "Pair", "Photo", "TranslateOptions", "TranslateResult",
    "direction_status", "open_photo", "read_manifests", "translate",
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
