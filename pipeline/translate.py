"""`translate()`: one uploaded photo → the translated, enhanced result, with stage timings.

Stages: decode → crop_resize → generator → rdn → transfer → encode. The transfer stage
(`pipeline.transfer`) carries the network's colours onto the crop at the requested size, up
to the crop's own side. Pure: no web, queue or database;
callers learn of stage changes through `on_stage`. Thread-safe: the only shared state is
the registry's model cache.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from pipeline.crop import MODEL_INPUT_SIZE, CropBox, crop_and_resize
from pipeline.directions import Direction
from pipeline.intake import IntakeLimits, open_photo
from pipeline.options import FORMATS, FULL_SIZE, MAX_OUTPUT_SIDE, TranslateOptions
from pipeline.registry import ModelRegistry
from pipeline.transfer import resized, transfer


@dataclass
class TranslateResult:
    """The encoded result and what made it."""

    data: bytes
    mime_type: str
    width: int
    height: int
    metadata: dict = field(default_factory=dict)
    before: bytes | None = None


class _StageClock:
    """Times consecutive stages in milliseconds and reports each start."""

    def __init__(self, on_stage: Callable[[str], None] | None) -> None:
        self.on_stage = on_stage
        self.timings_ms: dict[str, float] = {}
        self._stage: str | None = None
        self._start = 0.0

    def start(self, stage: str) -> None:
        self.stop()
        if self.on_stage:
            self.on_stage(stage)
        self._stage, self._start = stage, time.perf_counter()

    def stop(self) -> None:
        if self._stage:
            self.timings_ms[self._stage] = round((time.perf_counter() - self._start) * 1000, 2)
            self._stage = None


def _to_batch(image: Image.Image) -> np.ndarray:
    return (np.asarray(image, np.float32) / 127.5 - 1.0)[None]


def _encode(pixels: np.ndarray, file_format: str) -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(pixels)
    if file_format == "png":
        image.save(buffer, "PNG", compress_level=3)
    elif file_format == "jpeg":
        image.save(buffer, "JPEG", quality=92, subsampling=0)
    else:
        image.save(buffer, "WEBP", quality=90, method=4)
    return buffer.getvalue()


def translate(
    data: bytes,
    direction: Direction | str,
    crop: CropBox | None = None,
    options: TranslateOptions | None = None,
    *,
    registry: ModelRegistry,
    limits: IntakeLimits | None = None,
    on_stage: Callable[[str], None] | None = None,
    include_before: bool = False,
    max_side: int = MAX_OUTPUT_SIDE,
) -> TranslateResult:
    """Translate the photo in `data` into `direction`'s target domain.

    Raises `InputError` for bad input (before any model runs) and `ModelError` when a model
    is missing or damaged. With `include_before`, the result also carries the cropped input
    at the output size in the same format, for before/after views. `max_side` caps the
    result's side: a `full` result of a larger crop is made at the cap, and the metadata's
    `output.capped_from` says so.
    """
    direction = Direction.parse(direction)
    options = options or TranslateOptions()
    generator = registry.generator(direction)
    enhancer = registry.rdn() if options.enhance else None
    clock = _StageClock(on_stage)

    clock.start("decode")
    photo = open_photo(data, limits)
    box = (crop or CropBox.centered(photo.width, photo.height)).validate(photo.width, photo.height)
    side = options.output_side(box.size, max_side)

    clock.start("crop_resize")
    model_input = crop_and_resize(photo.image, box, MODEL_INPUT_SIZE)

    clock.start("generator")
    translated = generator(_to_batch(model_input))  # [-1, 1]

    if enhancer is not None:
        clock.start("rdn")
        enhanced = enhancer((translated + 1.0) / 2.0)[0]  # ISR works in [0, 1]
        pixels = np.clip(np.rint(enhanced * 255.0), 0, 255).astype(np.uint8)
    else:
        pixels = np.clip(np.rint((translated[0] + 1.0) * 127.5), 0, 255).astype(np.uint8)

    photo_at_side = None
    if options.transfer:
        clock.start("transfer")
        photo_at_side = np.asarray(crop_and_resize(photo.image, box, side))
        pixels = transfer(pixels, photo_at_side)

    clock.start("encode")
    encoded = _encode(resized(pixels, side), options.format)
    before = None
    if include_before:
        if photo_at_side is None:
            photo_at_side = np.asarray(crop_and_resize(photo.image, box, side))
        before = _encode(photo_at_side, options.format)
    clock.stop()

    models = [registry.facts(generator)] + ([registry.facts(enhancer)] if enhancer else [])
    untrained = [m["name"] for m in models if not m["trained"]]
    metadata = {
        "direction": direction.value,
        "crop": box.as_tuple(),
        "source": {"width": photo.width, "height": photo.height, "format": photo.format},
        "options": {"enhance": options.enhance, "size": options.size, "format": options.format,
                    "transfer": options.transfer},
        "output": {"width": side, "height": side},
        "models": models,
        "untrained": bool(untrained),
        "timings_ms": clock.timings_ms,
    }
    if options.size == FULL_SIZE and side < box.size:
        metadata["output"]["capped_from"] = box.size  # the crop's side, above this server's cap
    if untrained:
        metadata["warning"] = f"made with untrained weights ({', '.join(untrained)}): not a real translation"
    return TranslateResult(encoded, FORMATS[options.format], side, side, metadata, before)
