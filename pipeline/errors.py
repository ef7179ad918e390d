"""The one exception type for bad input, and the model registry's own error.

`InputError.code` is a stable machine code the API returns as is; `InputError.message`
is written for the person who sent the file.
"""

from __future__ import annotations

import enum


class InputErrorCode(enum.StrEnum):
    """Stable machine codes for every refusal of user input."""

    EMPTY = "empty"
    FILE_TOO_LARGE = "file_too_large"
    TOO_MANY_PIXELS = "too_many_pixels"
    TOO_SMALL = "too_small"
    NOT_AN_IMAGE = "not_an_image"
    UNSUPPORTED_FORMAT = "unsupported_format"
    TRUNCATED = "truncated"
    CORRUPT = "corrupt"
    BAD_CROP = "bad_crop"
    UNKNOWN_DIRECTION = "unknown_direction"
    BAD_OPTION = "bad_option"


class InputError(ValueError):
    """User input that Seasons refuses; `message` is safe to show to the person."""

    def __init__(self, code: InputErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = InputErrorCode(code)
        self.message = message


class ModelError(RuntimeError):
    """A model is missing, damaged or does not match its manifest (an operator's problem)."""
