"""Bytes from a stranger → one RGB photo, or an `InputError` a person can read.

Limits are checked before any pixel is decoded: the byte size first, then the pixel count
that the header declares, so a decompression bomb is refused without being expanded.
Imports no TensorFlow (the web process validates uploads with it).
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
from dataclasses import dataclass

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError
from pillow_heif import register_heif_opener

from pipeline.errors import InputError, InputErrorCode

# Phones save HEIC/HEIF; pillow-heif reads it as Pillow format "HEIF" (Pillow reads AVIF itself).
# Its opener applies the file's own rotation and resets the EXIF orientation to match.
register_heif_opener()

#: Pillow format names accepted as photos. Everything else Pillow can open (EPS, ICO, PSD,
#: PCX, …) is refused, and so is everything it cannot (SVG, PDF, HTML, …).
PHOTO_FORMATS: dict[str, str] = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "TIFF": "image/tiff",
    "BMP": "image/bmp",
    "HEIF": "image/heic",
    "AVIF": "image/avif",
}
MIN_SIDE = 16

_KNOWN_NON_PHOTOS: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "a PDF document"),
    (b"<svg", "an SVG drawing"),
    (b"<?xml", "an XML/SVG document"),
    (b"<!doctype html", "an HTML page"),
    (b"<html", "an HTML page"),
    (b"%!PS", "a PostScript file"),
    (b"PK\x03\x04", "a ZIP archive"),
)


@dataclass(frozen=True)
class IntakeLimits:
    """What an upload may weigh. Decimal units, as the messages say them."""

    max_bytes: int = 25_000_000
    max_pixels: int = 40_000_000


@dataclass(frozen=True)
class Photo:
    """A decoded upload: RGB pixels with EXIF orientation applied, and facts about the file."""

    image: Image.Image
    format: str
    mime_type: str
    byte_size: int
    sha256: str

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height


def _megabytes(n: int) -> str:
    """A byte count as people say it: 30.2 MB, 25 MB, 12 kB."""
    if n < 1_000_000:
        return f"{max(n // 1000, 1)} kB"
    return f"{n / 1_000_000:.1f} MB".replace(".0 MB", " MB")


def _megapixels(n: int) -> str:
    mp = n / 1_000_000
    return f"{mp:.0f} MP" if mp >= 10 else f"{mp:.1f} MP".replace(".0 MP", " MP")


_PHOTO_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF8", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
)


#: ISO base media file brands of the phone formats: 'ftyp' at byte 4, then the brand.
_HEIF_BRANDS = {b"heic": "HEIC", b"heix": "HEIC", b"hevc": "HEIC", b"heif": "HEIF", b"mif1": "HEIF",
                b"msf1": "HEIF", b"avif": "AVIF", b"avis": "AVIF"}


def _sniff_photo(data: bytes) -> str | None:
    """The photo format whose signature `data` starts with, if any."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return _HEIF_BRANDS[data[8:12]]
    return next((name for magic, name in _PHOTO_MAGIC if data.startswith(magic)), None)


def _sniff_non_photo(data: bytes) -> str | None:
    head = data[:512].lstrip().lower()
    for magic, what in _KNOWN_NON_PHOTOS:
        if head.startswith(magic.lower()):
            return what
    if b"<svg" in head:
        return "an SVG drawing"
    return None


def _open_header(data: bytes, limits: IntakeLimits) -> Image.Image:
    """Parse the header only: format and declared size, no pixels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        declared = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = int(declared.group(1)) if declared else limits.max_pixels + 1
        raise InputError(
            InputErrorCode.TOO_MANY_PIXELS,
            f"image is {_megapixels(pixels)}, the limit is {_megapixels(limits.max_pixels)}",
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        signature = _sniff_photo(data)
        if signature:
            raise InputError(
                InputErrorCode.CORRUPT, f"the {signature} file is damaged or truncated"
            ) from None
        what = _sniff_non_photo(data)
        detail = f"this is {what}, not a photo" if what else "not an image"
        raise InputError(InputErrorCode.NOT_AN_IMAGE, detail) from None
    if image.format not in PHOTO_FORMATS:
        accepted = ", ".join(sorted({f for f in PHOTO_FORMATS if f != "MPO"}))
        raise InputError(
            InputErrorCode.UNSUPPORTED_FORMAT,
            f"{image.format} files are not supported; upload a photo ({accepted})",
        )
    return image


def _check_size(image: Image.Image, limits: IntakeLimits) -> None:
    width, height = image.size
    if width * height > limits.max_pixels:
        raise InputError(
            InputErrorCode.TOO_MANY_PIXELS,
            f"image is {_megapixels(width * height)}, the limit is {_megapixels(limits.max_pixels)}",
        )
    if min(width, height) < MIN_SIDE:
        raise InputError(
            InputErrorCode.TOO_SMALL,
            f"image is {width}×{height} px; both sides must be at least {MIN_SIDE} px",
        )


def _decode_first_frame(image: Image.Image) -> Image.Image:
    try:
        image.seek(0)
        image.load()
    except OSError as exc:
        if "truncated" in str(exc).lower():
            raise InputError(InputErrorCode.TRUNCATED, "the file is truncated") from None
        raise InputError(InputErrorCode.CORRUPT, "the image data is damaged") from None
    except (SyntaxError, ValueError, EOFError, IndexError, TypeError, MemoryError):
        raise InputError(InputErrorCode.CORRUPT, "the image data is damaged") from None
    return image


def _apply_orientation(image: Image.Image) -> Image.Image:
    """Rotate as the EXIF orientation says; a broken EXIF block is ignored, not fatal."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - any EXIF parser failure means "no usable orientation"
        return image


def _high_bit_depth_to_8bit(image: Image.Image) -> Image.Image:
    """I;16*, I and F modes hold more than 8 bits: scale, don't clip, to 0..255."""
    import numpy as np

    values = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        scale = 255.0 if values.size and np.nanmax(values) <= 1.0 else 1.0
    elif image.mode.startswith("I;16") or (values.size and values.max() > 255):
        scale = 255.0 / 65535.0
    else:
        scale = 1.0
    eight_bit = np.clip(np.nan_to_num(values * scale), 0, 255).round().astype(np.uint8)
    return Image.fromarray(eight_bit, mode="L")


def _to_srgb(image: Image.Image) -> Image.Image | None:
    """Convert through the embedded ICC profile to sRGB, or None when there is none usable."""
    icc = image.info.get("icc_profile")
    if not icc or image.mode not in ("RGB", "CMYK", "L"):
        return None
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.profileToProfile(
            image, source, ImageCms.createProfile("sRGB"), outputMode="RGB"
        )
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode → RGB: alpha flattened on white, high bit depths scaled, ICC → sRGB."""
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        image = _high_bit_depth_to_8bit(image)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    converted = _to_srgb(image)
    if converted is not None:
        return converted
    return image if image.mode == "RGB" else image.convert("RGB")


def open_photo(data: bytes, limits: IntakeLimits | None = None) -> Photo:
    """Decode an upload into an RGB `Photo`, refusing bad input with an `InputError`.

    Order matters: byte size, then the header (format, declared pixels), then decoding.
    """
    limits = limits or IntakeLimits()
    if not data:
        raise InputError(InputErrorCode.EMPTY, "the file is empty")
    if len(data) > limits.max_bytes:
        raise InputError(
            InputErrorCode.FILE_TOO_LARGE,
            f"the file is {_megabytes(len(data))}, the limit is {_megabytes(limits.max_bytes)}",
        )
    image = _open_header(data, limits)
    _check_size(image, limits)
    file_format = image.format
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image = _decode_first_frame(image)
        try:
            rgb = to_rgb(_apply_orientation(image))
        except InputError:
            raise
        except (OSError, ValueError, SyntaxError, MemoryError):
            raise InputError(InputErrorCode.CORRUPT, "the image data is damaged") from None
    return Photo(
        image=rgb,
        format=file_format,
        mime_type=PHOTO_FORMATS[file_format],
        byte_size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
