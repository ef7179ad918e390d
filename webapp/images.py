"""Small derived images the web makes with Pillow from stored files: thumbnails, side by side.

Cheap next to a translation, so the web makes them on first request and keeps them in storage.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps

from pipeline.intake import to_rgb

THUMBNAIL_SIDE = 256


def thumbnail_jpeg(data: bytes, side: int = THUMBNAIL_SIDE) -> bytes:
    """A JPEG at most side×side px of an image the intake accepted (EXIF rotation applied)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image = Image.open(io.BytesIO(data))
        image.draft("RGB", (side, side))  # JPEG: decode at a reduced scale
        image = to_rgb(ImageOps.exif_transpose(image))
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def side_by_side_png(before: bytes, after: bytes) -> bytes:
    """before | after, left to right, at the result's size."""
    left = Image.open(io.BytesIO(before)).convert("RGB")
    right = Image.open(io.BytesIO(after)).convert("RGB")
    if left.size != right.size:
        left = left.resize(right.size, Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (right.width * 2, right.height))
    canvas.paste(left, (0, 0))
    canvas.paste(right, (right.width, 0))
    buffer = io.BytesIO()
    canvas.save(buffer, "PNG", compress_level=3)
    return buffer.getvalue()
