"""Hostile uploads through the API (Flask test client, no worker): every file of the corpus gets
a 202 or a clear 4xx JSON error, nothing answers 500, and a refused file leaves nothing behind
in storage or the database. Plus a bounded hypothesis fuzz of the intake itself.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from sqlalchemy import func, select

from pipeline import InputError, IntakeLimits, open_photo
from tests.reliability.corpus import _save, corpus, photo
from tests.service.conftest import app_config, flask_cli, jpeg_bytes, poll, submit
from webapp import create_app
from webapp.extensions import db
from webapp.models import Job, Upload

CORPUS = corpus()
MAX_BYTES = 12_000_000  # the 10 MB-comment JPEG fits; the oversize bodies below don't


@pytest.fixture(scope="module")
def hostile_app(model_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    settings = {
        "MODEL_DIR": str(model_dir), "STORAGE_URL": str(tmp / "storage"),
        "DATABASE_URL": f"sqlite:///{tmp / 'seasons.sqlite'}", "CELERY_BROKER_URL": "memory://",
        "CELERY_QUEUE": "seasons-hostile",
    }
    upgrade = flask_cli(settings, tmp / "instance", "db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    return create_app({**app_config(settings), "MAX_UPLOAD_BYTES": MAX_BYTES})


def state(app) -> tuple[int, int, list[str]]:
    storage = Path(app.config["STORAGE_URL"])
    files = sorted(str(p.relative_to(storage)) for p in storage.rglob("*") if p.is_file()) if storage.exists() else []
    with app.app_context():
        return db.session.scalar(select(func.count(Upload.id))), db.session.scalar(select(func.count(Job.id))), files


def test_corpus_is_big_enough():
    assert len(CORPUS) >= 30
    assert sum(expected != "accept" for *_, expected in CORPUS) >= 20


@pytest.mark.parametrize(("name", "filename", "data", "expected"), CORPUS, ids=[entry[0] for entry in CORPUS])
def test_hostile_upload(hostile_app, check_openapi, name, filename, data, expected):
    client = hostile_app.test_client()
    uploads, jobs, files = state(hostile_app)
    response = check_openapi(submit(client, data, filename=filename, enhance="false", size="256"))
    assert response.status_code != 500 and response.is_json, response.get_data(as_text=True)[:500]
    body = response.get_json()
    if expected == "accept":
        assert response.status_code == 202, body
        new_uploads, new_jobs, new_files = state(hostile_app)
        assert new_jobs == jobs + 1 and new_uploads <= uploads + 1 and len(new_files) <= len(files) + 1
        name = body["upload"]["filename"]
        assert body["status"] == "queued" and "/" not in name and "\x00" not in name and ".." != name[:2]
        original = client.get(f"/api/jobs/{body['id']}/original")
        assert original.status_code == 200 and original.data == data
        assert original.mimetype.startswith("image/") and original.headers["X-Content-Type-Options"] == "nosniff"
    else:
        assert 400 <= response.status_code < 500, body
        assert body["error"]["code"] in expected, body
        message = body["error"]["message"]
        assert message and len(message) < 300 and "Traceback" not in message and "/work" not in message
        assert state(hostile_app) == (uploads, jobs, files)  # nothing half-written


def test_oversize_bodies_and_bad_fields(hostile_app, check_openapi):
    client = hostile_app.test_client()
    before = state(hostile_app)
    for size in (MAX_BYTES + 1, MAX_BYTES + 5_000_000):
        response = check_openapi(submit(client, b"\xff\xd8\xff" + b"\x00" * size))
        assert response.status_code == 413 and response.get_json()["error"]["code"] == "file_too_large"
    photo_bytes = jpeg_bytes(200, 100)
    bad_fields = [
        ({"crop": "0,0,101"}, "bad_crop"), ({"crop": "-1,0,50"}, "bad_crop"), ({"crop": "a,b,c"}, "bad_crop"),
        ({"crop": "0,0,50,9"}, "bad_crop"), ({"crop": "150,0,60"}, "bad_crop"), ({"crop": "0,0,0"}, "bad_crop"),
        ({"crop": "9" * 400}, "bad_crop"), ({"direction": "summer2summer"}, "unknown_direction"),
        ({"direction": "../../etc"}, "unknown_direction"), ({"direction": "x" * 10_000}, "unknown_direction"),
        ({"size": "-256"}, "bad_option"), ({"enhance": "\x00"}, "bad_option"),
    ]
    for fields, code in bad_fields:
        form = {"direction": "day2night", "enhance": "false", **fields}
        response = check_openapi(submit(client, photo_bytes, **form))
        assert response.status_code == 400, (fields, response.get_data(as_text=True))
        assert response.get_json()["error"]["code"] == code, fields
    assert state(hostile_app) == before


# -- fuzzing the intake -----------------------------------------------------------------------------

SEEDS = [_save(photo(48, 32), fmt) for fmt in ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")]
LIMITS = IntakeLimits(max_bytes=2_000_000, max_pixels=4_000_000)


@st.composite
def mutated(draw) -> bytes:
    """A valid small photo with bytes flipped, cut, inserted or a header field overwritten."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "overwrite"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del data[at:at + draw(st.integers(1, 64))]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
        elif data:
            data[at:at + 4] = draw(st.sampled_from([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff\x00\x01"]))
    return bytes(data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(mutated(), st.binary(max_size=2048)))
def test_fuzz_intake_only_refuses_cleanly(data):
    try:
        result = open_photo(data, LIMITS)
    except InputError as exc:
        assert exc.code.value and exc.message
        return
    assert result.image.mode == "RGB" and result.width >= 16 and result.height >= 16
    assert isinstance(result.image, Image.Image) and result.width * result.height <= LIMITS.max_pixels
    io.BytesIO(result.image.tobytes())  # the pixels are really there


@pytest.mark.slow
def test_accepted_corpus_translates_in_a_real_worker(model_dir, own_redis, tmp_path, fault_worker):
    """Every file the API took (odd modes, frames, EXIF, polyglots, a 10 MB comment) ends as a
    correct result: succeeded, with a 256×256 PNG."""
    settings = {
        "MODEL_DIR": str(model_dir), "STORAGE_URL": str(tmp_path / "storage"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'seasons.sqlite'}", "CELERY_BROKER_URL": own_redis,
        "CELERY_QUEUE": "seasons-hostile-run", "MAX_UPLOAD_BYTES": str(MAX_BYTES), "RECONCILE_INTERVAL": "0",
    }
    upgrade = flask_cli(settings, tmp_path / "instance", "db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    client = create_app({**app_config(settings), "MAX_UPLOAD_BYTES": MAX_BYTES}).test_client()
    accepted = {name: data for name, _, data, expected in CORPUS if expected == "accept"}
    urls = {}
    for name, data in accepted.items():
        response = submit(client, data, enhance="false", size="256")
        assert response.status_code == 202, (name, response.get_data(as_text=True))
        urls[name] = response.headers["Location"]
    fault_worker(settings)
    for name, url in urls.items():
        job = poll(client, url, timeout=120)
        assert job["status"] == "succeeded", (name, job)
        result = client.get(job["urls"]["result"])
        assert result.mimetype == "image/png" and Image.open(io.BytesIO(result.data)).size == (256, 256), name
