"""A corpus of malformed and adversarial uploads, generated on the fly (nothing checked in).

Each entry: (name, filename, bytes, expected) where expected is "accept" (a photo the service
must take: 202) or the set of error codes one of which it must answer with (4xx JSON).
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable

from PIL import Image

REFUSE_BROKEN = {"truncated", "corrupt"}
Entry = tuple[str, str, bytes, object]


def _save(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def photo(width: int = 96, height: int = 64, mode: str = "RGB") -> Image.Image:
    gradient = Image.linear_gradient("L").resize((width, height))
    rgb = Image.merge("RGB", (gradient, gradient.transpose(Image.Transpose.FLIP_LEFT_RIGHT), gradient))
    return rgb.convert(mode) if mode != "RGB" else rgb


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_raw(width: int, height: int, idat: bytes, bit_depth: int = 8, colour: int = 0, extra: bytes = b"") -> bytes:
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + extra + _png_chunk(b"IDAT", idat)
            + _png_chunk(b"IEND", b""))


def png_bomb(side: int = 7000) -> bytes:
    """A real decompression bomb: side² grey pixels (49 MP at 7000) in a few tens of kB."""
    rows = b"".join(b"\x00" + bytes(side) for _ in range(1))  # one row, repeated by zlib below
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(rows) for _ in range(side)) + compressor.flush()
    return png_raw(side, side, body)


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small JPEG whose SOF0 marker is rewritten to declare width×height."""
    data = bytearray(_save(photo(), "JPEG"))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def gif_declaring(width: int, height: int) -> bytes:
    data = bytearray(_save(photo().convert("P"), "GIF"))
    struct.pack_into("<HH", data, 6, width, height)
    return bytes(data)


def jpeg_with_comment(total: int) -> bytes:
    """A valid JPEG carrying `total` bytes of COM segments (each at most 65533 bytes)."""
    data = _save(photo(), "JPEG")
    segment = b"\xff\xfe" + struct.pack(">H", 65535) + b"C" * 65533
    count = total // 65533 + 1
    return data[:2] + segment * count + data[2:]


def exif_broken() -> bytes:
    data = _save(photo(), "JPEG")
    garbage = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff" + b"\x00\x01" * 40
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(garbage) + 2) + garbage + data[2:]


def exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return _save(photo(), "JPEG", exif=exif.tobytes())


def multi_frame(fmt: str) -> bytes:
    frames = [photo().rotate(angle) for angle in (0, 90, 180)]
    if fmt == "GIF":
        frames = [f.convert("P") for f in frames]
    return _save(frames[0], fmt, save_all=True, append_images=frames[1:])


def sixteen_bit_png() -> bytes:
    grey = Image.linear_gradient("L").resize((64, 64)).convert("I")
    return _save(grey.point(lambda v: v * 257).convert("I;16"), "PNG")


def polyglot_png_html() -> bytes:
    """A valid PNG whose text chunk is an HTML page with a script (served as image/png + nosniff)."""
    data = _save(photo(), "PNG")
    chunk = _png_chunk(b"tEXt", b"Comment\x00<html><script>alert(document.cookie)</script></html>")
    return data[:33] + chunk + data[33:]


def gifar() -> bytes:
    """A GIF with a ZIP archive appended (the old GIFAR trick)."""
    return _save(photo().convert("P"), "GIF") + b"PK\x03\x04" + b"\x00" * 60


def corpus() -> list[Entry]:
    jpeg = _save(photo(), "JPEG")
    png = _save(photo(), "PNG")
    webp = _save(photo(), "WEBP")
    accept = "accept"
    entries: list[tuple[str, str, Callable[[], bytes], object]] = [
        # not images at all
        ("zero-bytes", "empty.jpg", lambda: b"", {"empty"}),
        ("random-bytes", "noise.jpg", lambda: bytes((i * 7919 + 13) % 256 for i in range(4096)), {"not_an_image"}),
        ("plain-text", "notes.png", lambda: b"hello, this is not a photo\n" * 10, {"not_an_image"}),
        ("html-page", "page.jpg", lambda: b"<!DOCTYPE html><html><script>alert(1)</script></html>", {"not_an_image"}),
        ("svg", "drawing.svg", lambda: b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
         {"not_an_image"}),
        ("svg-as-jpg", "photo.jpg", lambda: b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>',
         {"not_an_image"}),
        ("gif-magic-html", "x.gif", lambda: b"GIF89a<html><script>alert(1)</script></html>", REFUSE_BROKEN),
        ("pdf", "doc.jpg", lambda: b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF", {"not_an_image"}),
        ("zip", "archive.png", lambda: b"PK\x03\x04" + b"\x00" * 200, {"not_an_image"}),
        ("eps", "print.jpg", lambda: b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\nshowpage\n",
         {"not_an_image", "unsupported_format"}),
        ("ico", "favicon.jpg", lambda: _save(photo(32, 32), "ICO"), {"unsupported_format"}),
        ("tga", "x.jpg", lambda: _save(photo(), "TGA"), {"not_an_image", "unsupported_format"}),
        ("pcx", "x.jpg", lambda: _save(photo(), "PCX"), {"unsupported_format"}),
        # truncated and damaged
        ("jpeg-truncated-half", "half.jpg", lambda: jpeg[: len(jpeg) // 2], REFUSE_BROKEN),
        ("jpeg-header-only", "head.jpg", lambda: jpeg[:200], REFUSE_BROKEN),
        ("jpeg-magic-only", "magic.jpg", lambda: b"\xff\xd8\xff", REFUSE_BROKEN),
        ("png-truncated", "cut.png", lambda: png[: len(png) - 40], REFUSE_BROKEN),
        ("png-empty-idat", "empty-idat.png", lambda: png_raw(64, 64, b""), REFUSE_BROKEN),
        ("png-garbage-idat", "garbage.png", lambda: png_raw(64, 64, b"\x78\x9c" + b"\xff" * 100), REFUSE_BROKEN),
        ("webp-truncated", "cut.webp", lambda: webp[: len(webp) // 2], REFUSE_BROKEN),
        ("gif-truncated", "cut.gif", lambda: _save(photo().convert("P"), "GIF")[:60], REFUSE_BROKEN),
        # bombs and huge declared dimensions
        ("png-bomb-49mp", "bomb.png", png_bomb, {"too_many_pixels"}),
        ("png-declares-4gp", "huge.png", lambda: png_raw(65535, 65535, zlib.compress(b"\x00" * 100)),
         {"too_many_pixels"}),
        ("jpeg-declares-65500x65500", "huge.jpg", lambda: jpeg_declaring(65500, 65500), {"too_many_pixels"}),
        ("gif-declares-65535x65535", "huge.gif", lambda: gif_declaring(65535, 65535), {"too_many_pixels"}),
        # odd sizes
        ("png-1x1", "dot.png", lambda: _save(photo(1, 1), "PNG"), {"too_small"}),
        ("png-100000x1", "line.png", lambda: _save(Image.new("L", (100_000, 1), 128), "PNG"), {"too_small"}),
        ("png-16x16", "tiny.png", lambda: _save(photo(16, 16), "PNG"), accept),
        # valid, but unusual
        ("png-named-jpg", "really-png.jpg", lambda: png, accept),
        ("jpeg-named-exe", "photo.exe", lambda: jpeg, accept),
        ("traversal-filename", "../../../etc/passwd\x00.jpg", lambda: _save(photo(80, 80), "JPEG"), accept),
        ("gif-multi-frame", "anim.gif", lambda: multi_frame("GIF"), accept),
        ("tiff-multi-page", "pages.tiff", lambda: multi_frame("TIFF"), accept),
        ("webp-animated", "anim.webp", lambda: multi_frame("WEBP"), accept),
        ("jpeg-cmyk", "cmyk.jpg", lambda: _save(photo(mode="CMYK"), "JPEG"), accept),
        ("png-16-bit-grey", "deep.png", sixteen_bit_png, accept),
        ("tiff-float", "float.tiff", lambda: _save(Image.linear_gradient("L").convert("F"), "TIFF"), accept),
        ("png-rgba", "alpha.png", lambda: _save(photo(mode="RGBA"), "PNG"), accept),
        ("png-palette-transparent", "pal.png", lambda: _save(photo().convert("P"), "PNG", transparency=0), accept),
        ("bmp", "old.bmp", lambda: _save(photo(), "BMP"), accept),
        ("webp", "photo.webp", lambda: webp, accept),
        ("jpeg-exif-broken", "exif.jpg", exif_broken, accept),
        ("jpeg-exif-rotated", "rotated.jpg", exif_rotated, accept),
        ("jpeg-trailing-garbage", "tail.jpg", lambda: jpeg + b"\x00garbage" * 100, accept),
        ("jpeg-10mb-comment", "comment.jpg", lambda: jpeg_with_comment(10_000_000), accept),
        ("png-html-polyglot", "poly.png", polyglot_png_html, accept),
        ("gifar", "gifar.gif", gifar, accept),
    ]
    return [(name, filename, make(), expected) for name, filename, make, expected in entries]
