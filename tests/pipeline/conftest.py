"""Fixtures for the pipeline tests: generated photos and tiny untrained models."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image


def photo_bytes(width: int = 320, height: int = 240, fmt: str = "JPEG", mode: str = "RGB", **save) -> bytes:
    """A smooth gradient photo (not noise, so JPEG keeps it recognisable) in any mode/format."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1),
                    (x + y) * 255 // max(width + height - 2, 1)], axis=-1).astype(np.uint8)
    image = Image.fromarray(rgb, "RGB")
    if mode != "RGB":
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """Untrained tiny models for all three pairs and an RDN, written once per session."""
    from pipeline.registry import write_random_models

    model_dir = tmp_path_factory.mktemp("models")
    write_random_models(model_dir)
    return model_dir
