"""Make docs/screenshots/*.png from a live stack: `python -m tests.browser.screenshots`.

With `SCREENSHOT_MODEL_DIR=models` it serves trained models instead of tiny random ones, and
with `SCREENSHOT_DATA=../shared/data` each direction gets a held-out photo of its source domain
(the first of the pair's test split) instead of the drawn landscape.

Real pages, real jobs (tiny untrained models, so results are patterns and the pages say so).
Each PNG is palette-quantised to stay well under 150 KB.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import urllib.request
import uuid
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.browser.stack import ROOT, LiveStack

OUT = ROOT / "docs" / "screenshots"
LIMIT = 150_000


def landscape(width: int = 1200, height: int = 800) -> bytes:
    """A drawn lake-and-mountains 'photo': something pleasant to crop and transform."""
    img = Image.new("RGB", (width, height))
    d = ImageDraw.Draw(img)
    for y in range(height):  # sky
        t = y / (height * 0.6)
        d.line([(0, y), (width, y)], fill=(int(120 + 110 * t), int(170 + 60 * t), int(235 - 20 * t)))
    d.ellipse([width * 0.68, height * 0.12, width * 0.78, height * 0.12 + width * 0.1], fill=(255, 236, 180))
    d.polygon([(0, height * .55), (width * .18, height * .28), (width * .34, height * .5), (width * .52, height * .22),
               (width * .74, height * .52), (width * .9, height * .34), (width, height * .48), (width, height * .62),
               (0, height * .62)], fill=(92, 110, 140))
    snow = [(width * .46, height * .3), (width * .52, height * .22), (width * .58, height * .3)]
    d.polygon(snow, fill=(240, 244, 250))
    d.rectangle([0, height * .6, width, height], fill=(70, 130, 80))
    d.rectangle([0, height * .72, width, height], fill=(80, 140, 190))
    for i in range(14):  # trees
        x = 40 + i * width / 14
        d.polygon([(x, height * .72), (x + 22, height * .58 - (i % 3) * 12), (x + 44, height * .72)], fill=(36, 84, 52))
    img = img.filter(ImageFilter.GaussianBlur(1.2))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=92)
    return out.getvalue()


def held_out_photo(data_root: str, direction: str) -> bytes:
    """The first test-split photo of the direction's source domain in `data_root/<pair>`."""
    from pipeline.directions import Direction
    from training.data import scan_pair

    d = Direction.parse(direction)
    photos = sorted((p for p in scan_pair(Path(data_root) / d.pair.name)
                     if p.split == "test" and p.domain == d.source), key=lambda p: p.sha256)
    return Path(photos[0].path).read_bytes()


def save(png: bytes, name: str, max_width: int | None = None) -> None:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    if max_width and image.width > max_width:
        image = image.resize((max_width, round(image.height * max_width / image.width)), Image.Resampling.LANCZOS)
    for colours in (256, 128, 64):
        out = io.BytesIO()
        palette = image.quantize(colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        palette.save(out, "PNG", optimize=True)
        if out.tell() < LIMIT:
            break
    (OUT / name).write_bytes(out.getvalue())
    print(f"{name}: {image.width}×{image.height}, {out.tell() / 1000:.0f} KB")


def api_submit(url: str, photo: bytes, direction: str) -> dict:
    """POST /api/jobs without cookies (no browser, so no CSRF token needed)."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="direction"\r\n\r\n{direction}\r\n'.encode(),
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
        f"Content-Type: image/jpeg\r\n\r\n".encode() + photo + b"\r\n",
        f"--{boundary}--\r\n".encode(),
    ]
    req = urllib.request.Request(f"{url}/api/jobs", data=b"".join(parts), method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def upload(page, photo: bytes, direction: str, *, crop_dx: int = 0, wait: bool = True) -> None:
    page.goto("/")
    page.wait_for_selector("#directions input[name=direction]")
    page.set_input_files("#file", {"name": "lake.jpg", "mimeType": "image/jpeg", "buffer": photo})
    page.wait_for_selector(".cropper-crop-box")
    page.wait_for_function("() => document.querySelector('#crop-frame').dataset.crop")
    if crop_dx:
        box = page.locator(".cropper-point.point-se").bounding_box()
        page.mouse.move(box["x"] + 4, box["y"] + 4)
        page.mouse.down()
        page.mouse.move(box["x"] - 120, box["y"] - 120, steps=6)
        page.mouse.up()
        face = page.locator(".cropper-face").bounding_box()
        page.mouse.move(face["x"] + face["width"] / 2, face["y"] + face["height"] / 2)
        page.mouse.down()
        page.mouse.move(face["x"] + face["width"] / 2 + crop_dx, face["y"] + face["height"] / 2 + 40, steps=6)
        page.mouse.up()
    page.check(f"#dir-{direction}")
    if wait:
        page.click("#submit")
        page.wait_for_url("**/result", timeout=90_000)
        page.wait_for_selector("#result[data-ready=true]")


def main() -> None:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    data_root = os.environ.get("SCREENSHOT_DATA")
    drawn = landscape()

    def photo_for(direction: str) -> bytes:
        return held_out_photo(data_root, direction) if data_root else drawn

    # SCREENSHOT_MODEL_DIR=models shows trained models; by default tiny random ones.
    stack = LiveStack(model_dir=os.environ.get("SCREENSHOT_MODEL_DIR")).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            ctx = browser.new_context(viewport={"width": 1280, "height": 960}, base_url=stack.url)
            page = ctx.new_page()

            upload(page, photo_for("day2night"), "day2night", crop_dx=140 if not data_root else 0, wait=False)
            page.locator("#crop-area").scroll_into_view_if_needed()
            page.evaluate("() => window.scrollTo(0, 150)")
            save(page.screenshot(), "upload.png", 1100)

            # A job waiting in line: pause the worker, queue one ahead, submit from the page.
            worker = stack.procs[1]
            os.kill(worker.pid, signal.SIGSTOP)
            try:
                api_submit(stack.url, photo_for("spring2autumn"), "spring2autumn")
                page.click("#submit")
                page.wait_for_url("**/jobs/*")
                page.wait_for_function("() => document.getElementById('job').dataset.status === 'queued'")
                page.wait_for_timeout(1500)
                save(page.screenshot(), "job.png", 1100)
            finally:
                os.kill(worker.pid, signal.SIGCONT)
            page.wait_for_url("**/result", timeout=90_000)

            # Scratch, mid-interaction: a wavy stroke across the middle.
            page.wait_for_selector("#result[data-ready=true]")
            box = page.locator("#scratch").bounding_box()
            page.mouse.move(box["x"] + box["width"] * .15, box["y"] + box["height"] * .55)
            page.mouse.down()
            for i in range(1, 40):
                f = i / 40
                page.mouse.move(box["x"] + box["width"] * (.15 + .7 * f),
                                box["y"] + box["height"] * (.55 - .18 * (1 - abs(2 * f - 1))))
            page.mouse.up()
            save(page.screenshot(), "result-scratch.png", 1100)

            upload(page, photo_for("spring2autumn"), "spring2autumn")
            box = page.locator("#focus").bounding_box()
            page.mouse.move(box["x"] + box["width"] * .62, box["y"] + box["height"] * .45)
            page.wait_for_timeout(300)
            save(page.screenshot(), "result-focus.png", 1100)

            upload(page, photo_for("summer2winter"), "summer2winter")
            page.mouse.move(200, 500)
            page.mouse.wheel(0, 1300)
            page.wait_for_timeout(600)
            save(page.screenshot(), "result-reveal.png", 1100)

            page.goto("/history")
            page.wait_for_selector("#jobs tbody tr[data-job-id]")
            page.wait_for_timeout(500)
            save(page.screenshot(), "history.png", 1100)

            phone = browser.new_context(viewport={"width": 360, "height": 740}, device_scale_factor=2,
                                        is_mobile=True, has_touch=True, base_url=stack.url).new_page()
            upload(phone, photo_for("night2day"), "night2day")
            phone.locator("#stage").scroll_into_view_if_needed()
            box = phone.locator("#scratch").bounding_box()
            cdp = phone.context.new_cdp_session(phone)
            y = box["y"] + box["height"] * .5
            cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": box["x"] + 40, "y": y}]})
            for i in range(1, 12):
                cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [
                    {"x": box["x"] + 40 + i * (box["width"] - 80) / 11, "y": y - 30 * (i % 2)}]})
            cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
            phone.evaluate("() => window.scrollBy(0, -60)")
            save(phone.screenshot(), "phone.png", 540)
            browser.close()
    finally:
        stack.cleanup()


if __name__ == "__main__":
    sys.exit(main())
