"""What a person can ask of a translation; validated without TensorFlow (the web does it)."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import InputError, InputErrorCode

#: The stages of `translate()`, in order (names the API and the job history use).
STAGES = ("decode", "crop_resize", "generator", "rdn", "encode")
OUTPUT_SIZES = (256, 512)
FORMATS = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


@dataclass(frozen=True)
class TranslateOptions:
    """What the person asked for: RDN enhancement, output side, file format."""

    enhance: bool = True
    size: int = 512
    format: str = "png"

    def __post_init__(self) -> None:
        if self.size not in OUTPUT_SIZES:
            raise InputError(InputErrorCode.BAD_OPTION, f"output size must be 256 or 512, got {self.size}")
        if self.format not in FORMATS:
            raise InputError(
                InputErrorCode.BAD_OPTION,
                f"format must be one of {', '.join(FORMATS)}, got {self.format!r}",
            )
