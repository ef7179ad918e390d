"""Query and form fields checked against the very schemas /api/openapi.json publishes.

The document and the service cannot then disagree about what a field accepts: jsonschema
judges each value by its schema, and a refusal names the field with the error `code` that the
schema gives it (`x-error-code`).
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from werkzeug.datastructures import MultiDict

from pipeline import InputError, InputErrorCode

_INTEGER = re.compile(r"-?[0-9]+")


def _typed(text: str, schema: dict) -> object:
    """The text as its schema's type: only integers arrive as text of another type."""
    if schema.get("type") == "integer" and _INTEGER.fullmatch(text):
        with contextlib.suppress(ValueError):  # past Python's digit limit: left as text, refused as such
            return int(text)
    return text


def checked_fields(sent: MultiDict[str, str], schema: dict) -> dict[str, Any]:
    """The fields of the object `schema` found in `sent`, each sent at most once, typed and valid,
    with the schema's defaults for those not sent; else an `InputError` naming the field.

    Binary properties are files, which arrive apart (`request.files`) and are the intake's to judge.
    """
    values: dict[str, Any] = {}
    for name, field in schema["properties"].items():
        if field.get("format") == "binary":
            continue
        code = InputErrorCode(field["x-error-code"])
        texts = sent.getlist(name)
        if not texts:
            if name in schema.get("required", ()):
                raise InputError(code, f"{name} is required")
            if "default" in field:
                values[name] = field["default"]
            continue
        if len(texts) > 1:
            raise InputError(code, f"send {name} once, not {len(texts)} times")
        value = _typed(texts[0], field)
        error = best_match(Draft202012Validator(field).iter_errors(value))
        if error is not None:
            raise InputError(code, f"{name}: {error.message}")
        values[name] = value
    return values
