"""Schemathesis hooks: the client that the conformance test plays, also for replaying it by hand
(`SCHEMATHESIS_HOOKS=tests.service.schemathesis_hooks st run … --seed N`).

It does what the OpenAPI document asks of a client where no JSON Schema can say it: it uploads
real photos of each accepted format with both sides at least the document's `x-min-side`, keeps
its crop box inside the photo, and, after a submission in the stateful phase, polls the job (as
the 202 says) until it has finished before following the links to its files.
"""

from __future__ import annotations

import io
import re
import time

import requests
import schemathesis
from hypothesis import strategies as st
from PIL import Image, UnidentifiedImageError

from pipeline import Direction
from pipeline.intake import MIN_SIDE, PHOTO_FORMATS

#: Photos stay small: the worker translates each accepted one.
MAX_SIDE = 48
POLL_TIMEOUT = 60
_CROP = re.compile(r"([0-9]+),([0-9]+),([0-9]+)")


def photos(pil_format: str) -> st.SearchStrategy[bytes]:
    """Encoded photos in `pil_format`: a random colour, each side from MIN_SIDE to MAX_SIDE."""
    side = st.integers(MIN_SIDE, MAX_SIDE)
    channel = st.integers(0, 255)

    def encode(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
        buffer = io.BytesIO()
        Image.new("RGB", size, colour).save(buffer, pil_format)
        return buffer.getvalue()

    return st.builds(encode, st.tuples(side, side), st.tuples(channel, channel, channel))


for _format, _media_type in PHOTO_FORMATS.items():
    if _format != "MPO":  # MPO is a JPEG to the client
        schemathesis.openapi.media_type(_media_type, photos(_format))


def _fit_crop(crop: str, photo: bytes) -> str:
    """The crop box moved and shrunk into the photo (it stays one the document's pattern allows)."""
    x, y, size = (int(n) for n in _CROP.fullmatch(crop).groups())
    width, height = Image.open(io.BytesIO(photo)).size
    size = max(MIN_SIDE, size % (min(width, height) + 1))
    return f"{x % (width - size + 1)},{y % (height - size + 1)},{size}"


@schemathesis.hook
def map_case(context: schemathesis.HookContext, case: schemathesis.Case) -> schemathesis.Case:
    """A submission's crop box, where it is one, fitted into its photo, where that is one.

    Beside a registered file strategy, schemathesis's coverage phase fills the other required
    fields with "" and calls the case positive; a positive case gets a valid direction instead.
    """
    body = case.body
    if case.operation.label != "POST /api/jobs" or not isinstance(body, dict):
        return case
    if case.meta is not None and case.meta.generation.mode.is_positive and body.get("direction") == "":
        body["direction"] = next(iter(Direction)).value
    crop, photo = body.get("crop"), body.get("file")
    if isinstance(crop, str) and _CROP.fullmatch(crop) and isinstance(photo, bytes):
        try:
            body["crop"] = _fit_crop(crop, photo)
        except (UnidentifiedImageError, OSError):
            pass  # not a photo: the case is about something else
    return case


@schemathesis.hook
def after_call(context: schemathesis.HookContext, case: schemathesis.Case, response: requests.Response) -> None:
    """In the stateful phase, wait for a submitted job to finish, as a client following it would."""
    if case.meta is None or case.meta.phase.name != "stateful" or case.operation.label != "POST /api/jobs":
        return
    if response.status_code != 202:
        return
    url = requests.compat.urljoin(response.request.url, response.headers["location"][0])
    deadline = time.monotonic() + POLL_TIMEOUT
    while requests.get(url, timeout=10).json()["status"] not in ("succeeded", "failed"):
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not finish in {POLL_TIMEOUT} s")
        time.sleep(0.1)
