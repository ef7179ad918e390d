"""Browser-test fixtures: one live stack (gunicorn + Celery worker) and one Chromium per session.

Chromium is Debian's (/usr/bin/chromium, installed by ./seasons test), driven by Playwright
for Python; `playwright install` is never needed. Every page records console errors and
uncaught exceptions, and a test fails if any appear (unless it expects them).
"""

from __future__ import annotations

import io
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.browser.stack import REDIS_URL, LiveStack

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.browser)


def _redis_answers() -> bool:
    from config import redis_answers

    return redis_answers(REDIS_URL)


@pytest.fixture(scope="session")
def live():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (./seasons test installs Debian's chromium)")
    if not _redis_answers():
        pytest.skip(f"no Redis answers at {REDIS_URL}")
    stack = LiveStack().start()
    yield stack
    stack.cleanup()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Console:
    """Console errors and uncaught exceptions seen by one page."""

    def __init__(self, page) -> None:
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))


@pytest.fixture
def make_page(browser, live):
    """`make_page(width=1280, height=900)` → (page, console); errors are checked at teardown."""
    contexts = []

    # Tall enough that a result page's whole stage is in view without scrolling.
    def make(width: int = 1280, height: int = 1200, expect_errors: bool = False, **kwargs):
        context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True,
                                      base_url=live.url, **kwargs)
        context.set_default_timeout(20_000)
        page = context.new_page()
        console = Console(page)
        contexts.append((context, console, expect_errors))
        return page, console

    yield make
    problems = []
    for context, console, expect_errors in contexts:
        if console.errors and not expect_errors:
            problems.extend(console.errors)
        context.close()
    assert not problems, f"console errors: {problems}"


@pytest.fixture
def page(make_page):
    return make_page()[0]


def photo_bytes(width: int = 900, height: int = 600, orientation: int | None = None, seed: int = 0) -> bytes:
    """A JPEG with strong detail everywhere (gradients, a checkerboard and noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    a = np.zeros((height, width, 3), np.int32)
    a[..., 0] = xx * 255 // width
    a[..., 1] = yy * 255 // height
    a[..., 2] = ((xx // 24 + yy // 24) % 2) * 200
    a = np.clip(a + rng.integers(-40, 40, a.shape), 0, 255).astype(np.uint8)
    image = Image.fromarray(a)
    out = io.BytesIO()
    if orientation:
        exif = Image.Exif()
        exif[0x0112] = orientation
        image.save(out, "JPEG", quality=90, exif=exif)
    else:
        image.save(out, "JPEG", quality=90)
    return out.getvalue()


def submit(page, direction: str, *, photo: bytes | None = None, size: int = 512, enhance: bool = True,
           move_crop: bool = True) -> dict:
    """Upload a photo, move the crop box, pick `direction`, submit, wait for the result page.

    Returns {"job_id", "crop"} with the crop the page showed when it was submitted.
    """
    page.goto("/")
    page.wait_for_selector("#directions input[name=direction]")
    page.set_input_files("#file", {"name": "photo.jpg", "mimeType": "image/jpeg", "buffer": photo or photo_bytes()})
    page.wait_for_selector(".cropper-crop-box")
    page.wait_for_function("() => document.querySelector('#crop-frame').dataset.crop")
    crop_before = page.get_attribute("#crop-frame", "data-crop")
    if move_crop:
        box = page.locator(".cropper-face").bounding_box()
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(cx, cy)
        page.mouse.down()
        page.mouse.move(cx + 60, cy, steps=6)
        page.mouse.up()
        page.wait_for_function(f"() => document.querySelector('#crop-frame').dataset.crop !== {crop_before!r}")
    crop = page.get_attribute("#crop-frame", "data-crop")
    page.check(f"#dir-{direction}")
    if not enhance:
        page.locator("label.switch").click()  # the checkbox itself is visually hidden
    page.check(f"input[name=size][value='{size}']", force=True)
    page.click("#submit")
    page.wait_for_url("**/jobs/*/result", timeout=90_000)
    page.wait_for_selector("#result[data-ready=true]")
    job_id = page.url.rstrip("/").split("/")[-2]
    return {"job_id": job_id, "crop": crop, "crop_before": crop_before}


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
