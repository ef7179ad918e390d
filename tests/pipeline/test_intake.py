import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from pipeline import InputError, InputErrorCode, IntakeLimits, open_photo
from tests.pipeline.conftest import photo_bytes


def refused(data: bytes, limits: IntakeLimits | None = None) -> InputError:
    with pytest.raises(InputError) as err:
        open_photo(data, limits)
    return err.value


def png_declaring(width: int, height: int) -> bytes:
    """A ~100-byte PNG whose header claims width×height: a decompression bomb's calling card."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_plain_jpeg():
    photo = open_photo(photo_bytes(320, 240))
    assert (photo.width, photo.height, photo.format, photo.mime_type) == (320, 240, "JPEG", "image/jpeg")
    assert photo.image.mode == "RGB" and len(photo.sha256) == 64


@pytest.mark.parametrize(("data", "code", "message"), [
    (b"", InputErrorCode.EMPTY, "the file is empty"),
    (b"hello, world", InputErrorCode.NOT_AN_IMAGE, "not an image"),
    (b"%PDF-1.7\n1 0 obj", InputErrorCode.NOT_AN_IMAGE, "this is a PDF document, not a photo"),
    (b'<svg xmlns="http://www.w3.org/2000/svg"></svg>', InputErrorCode.NOT_AN_IMAGE, "SVG"),
    (b"<!DOCTYPE html><html><img src=x onerror=alert(1)>", InputErrorCode.NOT_AN_IMAGE, "HTML"),
])
def test_non_images_are_refused_with_a_readable_message(data, code, message):
    err = refused(data)
    assert err.code is code and message in err.message


def test_decompression_bomb_refused_before_decoding():
    bomb = png_declaring(50000, 50000)
    assert len(bomb) < 1024
    err = refused(bomb)
    assert err.code is InputErrorCode.TOO_MANY_PIXELS
    assert err.message == "image is 2500 MP, the limit is 40 MP"


def test_declared_pixels_over_our_limit_but_under_pillows():
    err = refused(png_declaring(8000, 8000))
    assert err.message == "image is 64 MP, the limit is 40 MP"


def test_limits_are_configurable():
    data = photo_bytes(400, 300)
    assert refused(data, IntakeLimits(max_pixels=100_000)).code is InputErrorCode.TOO_MANY_PIXELS
    err = refused(data, IntakeLimits(max_bytes=1000))
    assert err.code is InputErrorCode.FILE_TOO_LARGE and err.message.endswith("the limit is 1 kB")


def test_file_size_message():
    err = refused(b"\xff" * 30_200_000)
    assert err.message == "the file is 30.2 MB, the limit is 25 MB"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_truncated_files(fmt):
    data = photo_bytes(640, 480, fmt)
    err = refused(data[: len(data) // 2])
    assert err.code in (InputErrorCode.TRUNCATED, InputErrorCode.CORRUPT)
    if fmt == "JPEG":
        assert err.message == "the file is truncated"


def test_formats_that_are_not_photos():
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buffer, "ICO")
    err = refused(buffer.getvalue())
    assert err.code is InputErrorCode.UNSUPPORTED_FORMAT and "ICO files are not supported" in err.message


@pytest.mark.parametrize("size", [(1, 1), (100000, 1), (15, 400)])
def test_too_small(size):
    err = refused(photo_bytes(*size, fmt="PNG"))
    assert err.code is InputErrorCode.TOO_SMALL and "at least 16 px" in err.message


@pytest.mark.parametrize("mode", ["1", "L", "P", "RGBA", "LA", "I;16", "RGB"])
def test_png_modes_become_rgb(mode):
    photo = open_photo(photo_bytes(64, 48, "PNG", mode))
    assert photo.image.mode == "RGB" and photo.image.size == (64, 48)


@pytest.mark.parametrize(("mode", "fmt"), [
    ("CMYK", "JPEG"), ("CMYK", "TIFF"), ("F", "TIFF"), ("I", "TIFF"), ("YCbCr", "JPEG"),
])
def test_other_modes_become_rgb(mode, fmt):
    photo = open_photo(photo_bytes(64, 48, fmt, mode))
    assert photo.image.mode == "RGB"
    corner = np.asarray(photo.image)[-1, -1].astype(int)
    assert corner.mean() > 150  # the gradient's bright corner stays bright: no clipping to black


def test_sixteen_bit_is_scaled_not_clipped():
    array = np.full((32, 32), 32768, np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    value = open_photo(buffer.getvalue()).image.getpixel((0, 0))
    assert value == (128, 128, 128)


def test_float_image_in_unit_range():
    buffer = io.BytesIO()
    Image.fromarray(np.full((32, 32), 0.5, np.float32), "F").save(buffer, "TIFF")
    assert open_photo(buffer.getvalue()).image.getpixel((0, 0)) == (128, 128, 128)


def test_alpha_is_flattened_on_white():
    image = Image.new("RGBA", (32, 32), (255, 0, 0, 0))
    image.putpixel((0, 0), (255, 0, 0, 255))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    rgb = open_photo(buffer.getvalue()).image
    assert rgb.getpixel((5, 5)) == (255, 255, 255) and rgb.getpixel((0, 0)) == (255, 0, 0)


def test_palette_transparency_is_flattened_on_white():
    image = Image.new("P", (32, 32), 1)
    image.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", transparency=1)
    assert open_photo(buffer.getvalue()).image.getpixel((3, 3)) == (255, 255, 255)


@pytest.mark.parametrize("fmt", ["GIF", "TIFF", "WEBP", "PNG"])
def test_animated_or_multipage_takes_the_first_frame(fmt):
    frames = [Image.new("RGB", (40, 30), color) for color in ("red", "lime", "blue")]
    buffer = io.BytesIO()
    extra = {"lossless": True} if fmt == "WEBP" else {}
    frames[0].save(buffer, fmt, save_all=True, append_images=frames[1:], **extra)
    r, g, b = open_photo(buffer.getvalue()).image.getpixel((20, 15))
    assert r > 200 and g < 60 and b < 60


TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(orientation):
    stored = Image.new("RGB", (60, 40), "black")
    stored.paste((255, 0, 0), (0, 0, 20, 10))  # a red mark in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    stored.save(buffer, "PNG", exif=exif)
    photo = open_photo(buffer.getvalue())
    expected = stored if orientation == 1 else stored.transpose(TRANSPOSE[orientation])
    assert photo.image.size == expected.size
    assert np.array_equal(np.asarray(photo.image), np.asarray(expected))


def test_broken_exif_is_ignored_not_fatal():
    data = photo_bytes(64, 64)
    junk = b"Exif\0\0" + b"MM\0*\0\0\0\x08\xff\xff" + b"\x13" * 40
    broken = data[:2] + b"\xff\xe1" + struct.pack(">H", len(junk) + 2) + junk + data[2:]
    assert open_photo(broken).image.size == (64, 64)


def test_photo_with_huge_comment_decodes():
    data = photo_bytes(64, 64, comment=b"x" * 60_000)
    assert open_photo(data).image.size == (64, 64)


PHONE_FORMATS = ["HEIF", "AVIF"]  # HEIF written by pillow-heif, AVIF by Pillow itself


def _phone_photo(fmt: str, image: Image.Image | None = None, **save) -> bytes:
    buffer = io.BytesIO()
    (image or Image.open(io.BytesIO(photo_bytes()))).save(buffer, fmt, quality=90, **save)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", PHONE_FORMATS)
def test_phone_formats_decode_like_jpeg(fmt):
    photo = open_photo(_phone_photo(fmt))
    assert (photo.format, photo.image.mode, photo.image.size) == (fmt, "RGB", (320, 240))
    assert photo.mime_type == {"HEIF": "image/heic", "AVIF": "image/avif"}[fmt]
    expected = np.asarray(Image.open(io.BytesIO(photo_bytes())).convert("RGB"), np.float32)
    assert np.abs(np.asarray(photo.image, np.float32) - expected).mean() < 8


@pytest.mark.parametrize("fmt", PHONE_FORMATS)
def test_phone_formats_size_is_checked_before_decoding(fmt, monkeypatch):
    data = _phone_photo(fmt)
    monkeypatch.setattr(Image.Image, "load", lambda self: pytest.fail("decoded before the size check"))
    err = refused(data, IntakeLimits(max_pixels=320 * 240 - 1))
    assert err.code is InputErrorCode.TOO_MANY_PIXELS


@pytest.mark.parametrize("fmt", PHONE_FORMATS)
def test_phone_formats_exif_orientation_is_applied(fmt):
    stored = Image.new("RGB", (64, 48), "black")
    stored.paste((255, 0, 0), (0, 0, 32, 16))
    exif = Image.Exif()
    exif[0x0112] = 6
    image = open_photo(_phone_photo(fmt, stored, exif=exif.tobytes())).image
    assert image.size == (48, 64)
    red = np.asarray(image, np.int32)[..., 0] > 128
    assert red[:32, 32:].mean() > 0.8 and red[:, :16].mean() < 0.2  # the mark is now top-right


@pytest.mark.parametrize("fmt", PHONE_FORMATS)
def test_phone_formats_colour_profile_is_converted_to_srgb(fmt, monkeypatch):
    """The embedded ICC profile reaches the sRGB conversion, as a JPEG's does."""
    from PIL import ImageCms

    from pipeline import intake

    embedded = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    seen = []
    convert = ImageCms.profileToProfile

    def spy(image, source, target, **kwargs):
        seen.append(source.tobytes())
        return convert(image, source, target, **kwargs)

    monkeypatch.setattr(intake.ImageCms, "profileToProfile", spy)
    data = _phone_photo(fmt, Image.new("RGB", (64, 64), (200, 80, 40)), icc_profile=embedded)
    image = open_photo(data).image
    assert seen == [embedded] and image.mode == "RGB"


@pytest.mark.parametrize("fmt", PHONE_FORMATS)
def test_phone_formats_take_the_first_image(fmt):
    frames = [Image.new("RGB", (64, 64), colour) for colour in ((250, 0, 0), (0, 0, 250))]
    buffer = io.BytesIO()
    frames[0].save(buffer, fmt, save_all=True, append_images=frames[1:], quality=90)
    pixel = np.asarray(open_photo(buffer.getvalue()).image)[32, 32]
    assert pixel[0] > 200 and pixel[2] < 60


@pytest.mark.parametrize("fmt", PHONE_FORMATS)
def test_damaged_phone_formats_are_named(fmt):
    data = _phone_photo(fmt)
    err = refused(data[:200])
    assert err.code in (InputErrorCode.CORRUPT, InputErrorCode.TRUNCATED)
    assert fmt[:3] in err.message or "truncated" in err.message
