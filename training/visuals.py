"""Sample grids: rows of images side by side, written as PNG or JPEG for people and TensorBoard."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def to_uint8(images: np.ndarray) -> np.ndarray:
    """[-1, 1] floats → uint8 pixels (rounded and clipped)."""
    return np.clip(np.rint((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def grid(rows: list[list[np.ndarray]], gap: int = 4) -> np.ndarray:
    """Tile rows of equally sized uint8 images with a white gap between them."""
    h, w = rows[0][0].shape[:2]
    cols = max(len(r) for r in rows)
    out = np.full((len(rows) * (h + gap) - gap, cols * (w + gap) - gap, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, image in enumerate(row):
            out[i * (h + gap):i * (h + gap) + h, j * (w + gap):j * (w + gap) + w] = image
    return out


def save_image(pixels: np.ndarray, path: Path) -> Path:
    """PNG or JPEG by suffix; JPEG (quality 90) keeps the grids committed under docs/ small."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = {"quality": 90} if path.suffix.lower() in (".jpg", ".jpeg") else {}
    Image.fromarray(pixels).save(path, optimize=True, **extra)
    return path
