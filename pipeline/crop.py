"""The square crop box a person draws, and crop + resize to the model's input size.

Coordinates are pixels of the EXIF-rotated image, as the browser's preview shows it.
Imports no TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from pipeline.errors import InputError, InputErrorCode

MODEL_INPUT_SIZE = 256
MIN_CROP_SIZE = 16


def _bad_crop(message: str) -> InputError:
    return InputError(InputErrorCode.BAD_CROP, message)


def _as_int(name: str, value: object) -> int:
    if isinstance(value, bool):
        raise _bad_crop(f"crop {name} must be an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise _bad_crop(f"crop {name} must be an integer, got {value!r}")


@dataclass(frozen=True)
class CropBox:
    """A square: top-left corner (x, y) and side `size`, in pixels."""

    x: int
    y: int
    size: int

    def __post_init__(self) -> None:
        for name in ("x", "y", "size"):
            object.__setattr__(self, name, _as_int(name, getattr(self, name)))

    @classmethod
    def parse(cls, text: str) -> CropBox:
        """'x,y,size' → CropBox (the CLI and form field syntax)."""
        parts = str(text).split(",")
        if len(parts) != 3:
            raise _bad_crop(f"crop box must be 'x,y,size', got {text!r}")
        return cls(*parts)

    @classmethod
    def centered(cls, width: int, height: int) -> CropBox:
        """The largest square in the middle of a width×height image."""
        size = min(width, height)
        return cls((width - size) // 2, (height - size) // 2, size)

    def validate(self, width: int, height: int) -> CropBox:
        """Return self if the box lies inside a width×height image, else raise `InputError`."""
        if self.size < MIN_CROP_SIZE:
            raise _bad_crop(f"crop size is {self.size} px; it must be at least {MIN_CROP_SIZE} px")
        if self.x < 0 or self.y < 0:
            raise _bad_crop(f"crop box starts outside the image at ({self.x}, {self.y})")
        if self.x + self.size > width or self.y + self.size > height:
            raise _bad_crop(
                f"crop box {self.x},{self.y},{self.size} reaches past the {width}×{height} image"
            )
        return self

    def as_tuple(self) -> tuple[int, int, int]:
        return (self.x, self.y, self.size)

    def __str__(self) -> str:
        return f"{self.x},{self.y},{self.size}"


def crop_and_resize(
    image: Image.Image, box: CropBox | None = None, size: int = MODEL_INPUT_SIZE
) -> Image.Image:
    """Cut the (validated) square out of `image` and resize it to size×size with Lanczos."""
    box = (box or CropBox.centered(*image.size)).validate(*image.size)
    region = (box.x, box.y, box.x + box.size, box.y + box.size)
    if box.size == size:
        return image.crop(region)
    return image.resize((size, size), Image.Resampling.LANCZOS, box=region, reducing_gap=3.0)
