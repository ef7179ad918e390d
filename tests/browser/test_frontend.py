"""The front end in real Chromium against a live web process and a real Celery worker.

Each interaction is proven with pixels: canvas pixels read in the page, or element
screenshots compared before and after.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.browser.conftest import photo_bytes, submit, wait_for

pytestmark = pytest.mark.browser


def shot(locator) -> np.ndarray:
    """An element's rendered pixels as a float RGB array.

    A clip of the page, not `locator.screenshot()`: that scrolls the element into view, which
    on the scroll-reveal page would change what is being measured.
    """
    png = locator.page.screenshot(clip=locator.bounding_box(), animations="disabled")
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), np.float64)


def check_download(page, selector: str, size: tuple[int, int]) -> None:
    with page.expect_download() as info:
        page.click(selector)
    path = info.value.path()
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == size
        image.load()  # decodes fully: a valid image, not just a valid header


def job_json(page, job_id: str) -> dict:
    response = page.request.get(f"/api/jobs/{job_id}")
    assert response.ok
    return response.json()


SCRATCH_ALPHA = """(pts) => {
  const c = document.getElementById('scratch');
  const ctx = c.getContext('2d');
  return pts.map(([fx, fy]) => ctx.getImageData(Math.round(fx * c.width), Math.round(fy * c.height), 1, 1).data[3]);
}"""


def test_upload_crop_and_scratch(page):
    """Day → night: crop moved and sent; dragging erases the cover under the path only."""
    sent = submit(page, "day2night")
    assert sent["crop"] != sent["crop_before"]
    job = job_json(page, sent["job_id"])
    assert job["status"] == "succeeded" and job["interaction"] == "scratch"
    assert job["crop"] == [int(v) for v in sent["crop"].split(",")]

    stage = page.locator("#stage")
    canvas = page.locator("#scratch")
    on_path = [[0.3, 0.5], [0.5, 0.5], [0.7, 0.5]]
    off_path = [[0.5, 0.15], [0.1, 0.9], [0.9, 0.1], [0.5, 0.8]]
    assert page.evaluate(SCRATCH_ALPHA, on_path + off_path) == [255] * 7
    before = shot(stage)

    box = canvas.bounding_box()
    y = box["y"] + box["height"] * 0.5
    page.mouse.move(box["x"] + box["width"] * 0.2, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.8, y, steps=12)
    page.mouse.up()
    page.mouse.move(box["x"] + box["width"] * 0.95, box["y"] + 2)  # brush ring out of the way

    assert page.evaluate(SCRATCH_ALPHA, on_path) == [0, 0, 0]
    assert page.evaluate(SCRATCH_ALPHA, off_path) == [255] * 4
    changed = diff(shot(stage), before)
    h, w = changed.shape[:2]
    band = changed[int(h * 0.47):int(h * 0.53), int(w * 0.3):int(w * 0.7)].mean()
    elsewhere = changed[int(h * 0.1):int(h * 0.35), int(w * 0.1):int(w * 0.6)].mean()
    assert band > 10, f"the scratched band hardly changed ({band:.1f})"
    assert elsewhere < 1, f"pixels away from the drag changed ({elsewhere:.1f})"
    revealed = float(stage.get_attribute("data-revealed"))
    assert 0.01 < revealed < 0.3

    # Keyboard alternative: arrow keys scratch from the centre.
    canvas.focus()
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")
    assert page.evaluate(SCRATCH_ALPHA, [[0.5, 0.44]]) == [0]

    page.click("#reveal-all")
    assert page.evaluate(SCRATCH_ALPHA, off_path) == [0] * 4
    page.click("#reset")
    assert page.evaluate(SCRATCH_ALPHA, on_path + off_path) == [255] * 7

    # Before/after toggle shows the untouched images above the interaction.
    page.locator("input[name=view][value=after]").check(force=True)
    assert page.locator("#img-compare").is_visible()
    page.locator("input[name=view][value=interact]").check(force=True)
    assert page.locator("#img-compare").is_hidden()

    check_download(page, "#dl-result", (512, 512))
    check_download(page, "#dl-sbs", (1024, 512))
    assert "day2night" in page.text_content("#models")


SHARPNESS = """([fx, fy, r]) => {
  const c = document.getElementById('focus');
  const ctx = c.getContext('2d');
  const x = Math.round(fx * c.width - r), y = Math.round(fy * c.height - r), n = 2 * r;
  const d = ctx.getImageData(x, y, n, n).data;
  let sum = 0;
  for (let row = 0; row < n; row++) for (let col = 0; col < n - 1; col++) {
    const i = (row * n + col) * 4;
    sum += Math.abs(d[i] - d[i + 4]) + Math.abs(d[i + 1] - d[i + 5]) + Math.abs(d[i + 2] - d[i + 6]);
  }
  return sum / (n * (n - 1) * 3);
}"""


def test_hover_focus(page):
    """Spring → autumn at 256 px without RDN: the result sharpens around the pointer only."""
    sent = submit(page, "spring2autumn", size=256, enhance=False)
    job = job_json(page, sent["job_id"])
    assert job["options"] == {"enhance": False, "size": 256}
    assert job["interaction"] == "hover-focus"
    stage = page.locator("#stage")
    r = 10  # canvas pixels around the probe points

    near_before = page.evaluate(SHARPNESS, [0.3, 0.3, r])
    far_before = page.evaluate(SHARPNESS, [0.75, 0.75, r])
    box = page.locator("#focus").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3)
    assert wait_for(lambda: stage.get_attribute("data-focus"))
    near_after = page.evaluate(SHARPNESS, [0.3, 0.3, r])
    far_after = page.evaluate(SHARPNESS, [0.75, 0.75, r])
    assert near_after > 1.5 * near_before, (near_before, near_after)
    assert far_after == pytest.approx(far_before, rel=0.02)

    # Leaving with the mouse blurs it again; the keyboard brings focus to the centre.
    page.mouse.move(box["x"] + box["width"] + 40, box["y"])
    assert wait_for(lambda: stage.get_attribute("data-focus") == "")
    centre_blurred = page.evaluate(SHARPNESS, [0.5, 0.5, r])
    page.locator("#focus").focus()
    assert wait_for(lambda: stage.get_attribute("data-focus") == "128,128")
    assert page.evaluate(SHARPNESS, [0.5, 0.5, r]) > 1.5 * centre_blurred
    page.locator("label.switch").click()  # "All in focus"
    assert wait_for(lambda: stage.get_attribute("data-focus") == "all")
    assert page.evaluate(SHARPNESS, [0.75, 0.75, r]) > 1.5 * far_before

    check_download(page, "#dl-result", (256, 256))
    check_download(page, "#dl-sbs", (512, 256))


def diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a − b| over their common area (element screenshots may differ by a subpixel row)."""
    h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    return np.abs(a[:h, :w] - b[:h, :w])


def revealed_rows(now: np.ndarray, start: np.ndarray) -> float:
    """The share of the stage's rows that no longer look like the start (the revealed part)."""
    per_row = diff(now, start).mean(axis=(1, 2))
    return float((per_row > 4).mean())


def test_scroll_reveal(make_page):
    """Summer → winter: scrolling down reveals the result from the top; scrolling up hides it."""
    page, _ = make_page()
    submit(page, "summer2winter")
    stage = page.locator("#stage")
    assert float(stage.get_attribute("data-revealed")) == 0
    start = shot(stage)

    page.mouse.move(200, 400)
    page.mouse.wheel(0, 1200)
    assert wait_for(lambda: 0.2 < float(stage.get_attribute("data-revealed")) < 0.8)
    wait_for(lambda: page.evaluate("window.scrollY") > 0)
    mid = float(stage.get_attribute("data-revealed"))
    rows = revealed_rows(shot(stage), start)
    assert rows == pytest.approx(mid, abs=0.06), (rows, mid)
    top_rows_changed = diff(shot(stage), start)[: int(start.shape[0] * mid * 0.8)].mean()
    assert top_rows_changed > 5  # revealed from the top down

    page.mouse.wheel(0, 5000)
    assert wait_for(lambda: float(stage.get_attribute("data-revealed")) == 1)
    assert revealed_rows(shot(stage), start) > 0.95

    page.mouse.wheel(0, -400)
    assert wait_for(lambda: float(stage.get_attribute("data-revealed")) < 1)
    back = float(stage.get_attribute("data-revealed"))
    assert revealed_rows(shot(stage), start) == pytest.approx(back, abs=0.06)

    # Keyboard: the slider scrolls the page to match.
    page.locator("#reveal").focus()
    page.keyboard.press("Home")
    assert wait_for(lambda: float(stage.get_attribute("data-revealed")) == 0)
    assert revealed_rows(shot(stage), start) < 0.03

    check_download(page, "#dl-result", (512, 512))
    check_download(page, "#dl-sbs", (1024, 512))


def test_exif_rotated_photo_crops_in_rotated_pixels(page):
    """A JPEG stored landscape with orientation 6 shows portrait; the crop is in those pixels."""
    page.goto("/")
    page.wait_for_selector("#directions input[name=direction]")
    photo = photo_bytes(900, 600, orientation=6)
    page.set_input_files("#file", {"name": "rotated.jpg", "mimeType": "image/jpeg", "buffer": photo})
    page.wait_for_function(
        "() => document.querySelector('#crop-frame').dataset.crop")
    assert page.get_attribute("#crop-frame", "data-crop") == "0,150,600"  # centred largest square
    assert "of 600 × 900" in page.text_content("#crop-readout")
    page.check("#dir-night2day")
    page.click("#submit")
    page.wait_for_url("**/jobs/*/result", timeout=90_000)
    job_id = page.url.split("/")[-2]
    job = job_json(page, job_id)
    assert job["crop"] == [0, 150, 600]
    assert (job["upload"]["width"], job["upload"]["height"]) == (600, 900)


def test_client_side_checks(page):
    page.goto("/")
    page.wait_for_selector("#directions input[name=direction]")
    # Made in the page: pushing 25 MB through Playwright's protocol takes seconds.
    page.evaluate("""() => {
      const input = document.getElementById('file');
      const dt = new DataTransfer();
      dt.items.add(new File([new Uint8Array(25_400_000)], 'big.jpg', { type: 'image/jpeg' }));
      input.files = dt.files;
      input.dispatchEvent(new Event('change', { bubbles: true }));
    }""")
    page.wait_for_function("() => !document.getElementById('file-error').hidden")
    assert page.text_content("#file-error") == "the file is 25.4 MB, the limit is 25 MB"
    page.set_input_files("#file", {"name": "notes.png", "mimeType": "image/png", "buffer": b"hello, not a picture"})
    page.wait_for_function(
        "() => document.querySelector('#file-error').textContent === 'not an image'")
    assert page.is_disabled("#submit")


def test_job_page_history_and_404(make_page, live):
    page, _ = make_page()
    sent = submit(page, "autumn2spring", size=256, move_crop=False)
    job_id = sent["job_id"]

    # The job page works from the server's state alone: a finished job moves on to its result.
    page.goto(f"/jobs/{job_id}")
    page.wait_for_url(f"**/jobs/{job_id}/result")

    page.goto("/history")
    page.wait_for_selector("#jobs tbody tr[data-job-id]")
    page.select_option("#f-direction", "autumn2spring")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#jobs tbody tr')]"
        ".every(r => r.textContent.includes('Autumn → spring'))")
    assert "direction=autumn2spring" in page.url
    row = page.locator(f"#jobs tbody tr[data-job-id='{job_id}']")
    assert row.locator("img.thumb").evaluate("img => img.complete && img.naturalWidth > 0")
    row.get_by_role("link", name="Autumn → spring").click()
    page.wait_for_url(f"**/jobs/{job_id}/result")

    page.goto("/history?per_page=1")
    page.wait_for_selector("#jobs tbody tr[data-job-id]")
    assert page.locator("#jobs tbody tr").count() == 1
    first = page.locator("#jobs tbody tr").get_attribute("data-job-id")
    page.click("#next")
    page.wait_for_function(f"() => document.querySelector('#jobs tbody tr').dataset.jobId !== {first!r}")
    assert "page=2" in page.url

    missing, _ = make_page(expect_errors=True)  # the 404 itself is logged by Chromium
    response = missing.goto("/jobs/no-such-job")
    assert response.status == 404
    assert "No such job" in missing.text_content("h1")


def test_phone_width_and_touch_scratch(make_page):
    """360 px wide with touch: nothing overflows sideways, and a finger scratches."""
    page, _ = make_page(width=360, height=740, has_touch=True, is_mobile=True, device_scale_factor=2)
    page.goto("/")
    page.wait_for_selector("#directions input[name=direction]")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    submit(page, "night2day", size=256, move_crop=False)
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    canvas = page.locator("#scratch")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    y = box["y"] + box["height"] / 2
    cdp = page.context.new_cdp_session(page)
    xs = [box["x"] + box["width"] * f for f in (0.2, 0.35, 0.5, 0.65, 0.8)]
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": xs[0], "y": y}]})
    for x in xs[1:]:
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    assert page.evaluate(SCRATCH_ALPHA, [[0.5, 0.5], [0.5, 0.1]]) == [0, 255]
