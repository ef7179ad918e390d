"""What a person can ask of a translation; validated without TensorFlow (the web does it)."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import InputError, InputErrorCode

#: The stages of `translate()`, in order (names the API and the job history use).
STAGES = ("decode", "crop_resize", "generator", "rdn", "transfer", "encode")
#: The output size that means "the crop's own side" (up to the deployment's cap).
FULL_SIZE = "full"
OUTPUT_SIZES: tuple[int | str, ...] = (256, 512, 1024, 2048, FULL_SIZE)
#: Default cap on a result's side in px (config: MAX_OUTPUT_SIDE): a larger crop asked `full`
#: is served at the cap.
MAX_OUTPUT_SIDE = 4096
FORMATS = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


def _bad_option(message: str) -> InputError:
    return InputError(InputErrorCode.BAD_OPTION, message)


def parse_size(value: object) -> int | str:
    """An output size from a form field or the command line: a number of px, or `full`."""
    text = str(value).strip().lower()
    size = int(text) if text.isdecimal() else text
    if size not in OUTPUT_SIZES:
        raise _bad_option(f"output size must be one of {', '.join(map(str, OUTPUT_SIZES))}, got {value!r}")
    return size


@dataclass(frozen=True)
class TranslateOptions:
    """What the person asked for: RDN enhancement, output side, transfer onto the photo, format."""

    enhance: bool = True
    size: int | str = 512
    format: str = "png"
    transfer: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.size, bool):
            raise _bad_option(f"output size must be a number of px or {FULL_SIZE!r}, got {self.size!r}")
        object.__setattr__(self, "size", parse_size(self.size))
        if self.format not in FORMATS:
            raise _bad_option(f"format must be one of {', '.join(FORMATS)}, got {self.format!r}")

    def output_side(self, crop_side: int, max_side: int = MAX_OUTPUT_SIDE) -> int:
        """The result's side for a crop of `crop_side` px: `full` is the crop's side, at most
        `max_side`; a fixed size above `max_side` is refused (this deployment cannot serve it)."""
        if self.size == FULL_SIZE:
            return min(crop_side, max_side)
        if self.size > max_side:
            raise _bad_option(f"output size {self.size} px is above this server's limit of {max_side} px")
        return self.size
