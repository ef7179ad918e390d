"""The JSON API without a worker: validation, refusals, history, files, CSRF rule, OpenAPI.

The schema comes from `flask db upgrade` (the checked-in migration); the broker is kombu's
in-memory transport, so submitted jobs simply stay queued.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap

import pytest
from flask import session
from flask_wtf.csrf import generate_csrf
from sqlalchemy import func, select

from tests.service.conftest import MISSING, ROOT, app_config, flask_cli, jpeg_bytes, submit
from webapp import create_app
from webapp.extensions import db
from webapp.jobs import intake_limits
from webapp.models import Upload
from webapp.openapi import openapi_document
from webapp.storage import LocalStorage, check_key


@pytest.fixture
def settings(model_dir, tmp_path) -> dict[str, str]:
    settings = {
        "MODEL_DIR": str(model_dir),
        "STORAGE_URL": str(tmp_path / "storage"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'seasons.sqlite'}",
        "CELERY_BROKER_URL": "memory://",
        "CELERY_QUEUE": "seasons-test",
    }
    upgrade = flask_cli(settings, tmp_path / "instance", "db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    return settings


@pytest.fixture
def app(settings):
    return create_app({**app_config(settings), "MAX_UPLOAD_BYTES": 2_000_000})


@pytest.fixture
def client(app):
    return app.test_client()


def error_of(response, status: int, code: str) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == code
    return error["message"]


def test_directions_say_which_models_are_installed(client, check_openapi):
    body = check_openapi(client.get("/api/directions")).get_json()
    by_name = {d["name"]: d for d in body["directions"]}
    assert len(by_name) == 6
    assert by_name["day2night"] == {
        "name": "day2night", "label": "day → night", "pair": "day2night", "source": "day", "target": "night",
        "interaction": "scratch", "installed": True, "trained": False, "reason": None,
    }
    assert by_name[MISSING]["installed"] is False and "not installed" in by_name[MISSING]["reason"]
    assert body["limits"] == {"max_bytes": 2_000_000, "max_pixels": 40_000_000, "min_side": 16,
                              "formats": ["image/avif", "image/bmp", "image/gif", "image/heic", "image/jpeg",
                                          "image/png", "image/tiff", "image/webp"]}


def test_submit_queues_a_job(app, client, check_openapi):
    response = check_openapi(submit(client, jpeg_bytes(), filename="../../etc/My Photo.jpg"))
    assert response.status_code == 202
    job = response.get_json()
    assert response.headers["Location"] == job["urls"]["self"] == f"/api/jobs/{job['id']}"
    assert len(job["id"]) >= 22
    assert job["status"] == "queued" and job["queue_position"] == 1 and job["stage"] is None
    assert job["crop"] == [80, 0, 480]  # the centred largest square of 640×480
    assert job["options"] == {"enhance": True, "size": 512}
    assert job["upload"] == {"filename": "My Photo.jpg", "width": 640, "height": 480, "format": "JPEG",
                             "byte_size": len(jpeg_bytes())}
    assert job["urls"]["page"] == f"/jobs/{job['id']}" and job["urls"]["result"] is None

    second = check_openapi(submit(client, jpeg_bytes(), direction="night2day", crop="0,0,100", size="256"))
    assert second.get_json()["queue_position"] == 2
    with app.app_context():  # the same file twice is stored once
        assert db.session.scalar(select(func.count()).select_from(Upload)) == 1

    again = check_openapi(client.get(job["urls"]["self"])).get_json()
    assert again["id"] == job["id"] and again["status"] == "queued"


def test_history_pages_and_filters(client, check_openapi):
    for seed in range(3):
        submit(client, jpeg_bytes(seed=seed), direction="day2night" if seed else "night2day")
    page = check_openapi(client.get("/api/jobs?per_page=2")).get_json()
    assert (page["page"], page["per_page"], page["total"], page["pages"]) == (1, 2, 3, 2)
    assert len(page["jobs"]) == 2
    filtered = check_openapi(client.get("/api/jobs?direction=night2day&status=queued")).get_json()
    assert filtered["total"] == 1 and filtered["jobs"][0]["direction"] == "night2day"
    assert check_openapi(client.get("/api/jobs?status=succeeded")).get_json()["jobs"] == []
    error_of(check_openapi(client.get("/api/jobs?status=done")), 400, "bad_option")
    error_of(check_openapi(client.get("/api/jobs?direction=sideways")), 400, "unknown_direction")


@pytest.mark.parametrize("query", [
    "per_page=null&per_page=null", "per_page=5&per_page=6", "per_page=0", "per_page=101", "per_page=1.5",
    "per_page=+5", "page=0", "page=36893488147419103233", "status=", "direction=DAY2NIGHT",
])
def test_history_queries_are_validated_strictly(client, check_openapi, query):
    """Every query parameter is checked against its schema in the OpenAPI document."""
    error_of(check_openapi(client.get(f"/api/jobs?{query}")), 400,
             "unknown_direction" if query.startswith("direction") else "bad_option")


def test_405_says_which_methods_are_allowed(client):
    response = client.delete("/api/jobs")
    error_of(response, 405, "method_not_allowed")
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS", "POST"}


@pytest.mark.parametrize(("fields", "status", "code"), [
    ({"direction": "sideways"}, 400, "unknown_direction"),
    ({"direction": ""}, 400, "unknown_direction"),
    ({"crop": "600,0,200"}, 400, "bad_crop"),
    ({"crop": "1,2"}, 400, "bad_crop"),
    ({"crop": "0,0,8"}, 400, "bad_crop"),
    ({"size": "300"}, 400, "bad_option"),
    ({"enhance": "maybe"}, 400, "bad_option"),
    ({"enhance": "yes"}, 400, "bad_option"),
    ({"crop": " 0,0,100"}, 400, "bad_crop"),
    ({"size": ["256", "256"]}, 400, "bad_option"),
    ({"direction": MISSING}, 409, "model_not_installed"),
])
def test_bad_submissions_are_refused_before_anything_is_stored(client, settings, check_openapi, fields, status,
                                                               code):
    form = {"direction": "day2night", **fields}
    message = error_of(check_openapi(submit(client, jpeg_bytes(), **form)), status, code)
    assert message
    assert not (ROOT / settings["STORAGE_URL"]).exists()
    assert client.get("/api/jobs").get_json()["total"] == 0


def test_bad_files_are_refused(client, check_openapi):
    assert "not a photo" in error_of(check_openapi(submit(client, b"<svg xmlns='x'></svg>")), 400, "not_an_image")
    error_of(check_openapi(submit(client, jpeg_bytes()[:2000])), 400, "truncated")
    error_of(check_openapi(submit(client, b"")), 400, "empty")
    no_file = client.post("/api/jobs", data={"direction": "day2night"}, content_type="multipart/form-data")
    error_of(check_openapi(no_file), 400, "empty")


def test_oversize_bodies_get_413(client, check_openapi):
    error_of(check_openapi(submit(client, b"\xff" * 2_100_000)), 413, "file_too_large")
    error_of(check_openapi(submit(client, b"\xff" * 3_500_000)), 413, "file_too_large")


def test_files_are_served_by_job_id_with_fixed_types(client, check_openapi):
    job = submit(client, jpeg_bytes()).get_json()
    original = check_openapi(client.get(job["urls"]["original"]))
    assert original.mimetype == "image/jpeg" and original.data == jpeg_bytes()
    assert original.headers["X-Content-Type-Options"] == "nosniff"
    thumbnail = check_openapi(client.get(job["urls"]["thumbnail"]))
    assert thumbnail.mimetype == "image/jpeg" and thumbnail.data[:2] == b"\xff\xd8"
    error_of(check_openapi(client.get(f"/api/jobs/{job['id']}/result")), 404, "not_found")
    error_of(check_openapi(client.get("/api/jobs/nope")), 404, "not_found")
    assert client.get(f"/api/jobs/{job['id']}/..%2f..%2fconfig.py").status_code == 404


def test_csrf_rule_browsers_need_the_token_scripts_do_not(app, client):
    app.config["WTF_CSRF_ENABLED"] = True
    browser = {"Origin": "http://localhost", "Referer": "http://localhost/"}
    refused = submit_with_headers(client, browser)
    assert "X-CSRFToken" in error_of(refused, 403, "csrf_failed")
    error_of(submit_with_headers(client, {"Origin": "https://evil.example"}), 403, "csrf_failed")

    with app.test_request_context():
        token = generate_csrf()
        raw = session["csrf_token"]
    with client.session_transaction() as browser_session:
        browser_session["csrf_token"] = raw
    assert submit_with_headers(client, {**browser, "X-CSRFToken": token}).status_code == 202

    client.delete_cookie("session")  # a script: no Cookie, Origin or Referer
    assert submit_with_headers(client, {}).status_code == 202


def submit_with_headers(client, headers: dict[str, str]):
    form = {"file": (io.BytesIO(jpeg_bytes()), "p.jpg"), "direction": "day2night"}
    return client.post("/api/jobs", data=form, content_type="multipart/form-data", headers=headers)


def test_openapi_document_is_served_and_valid(app, client, check_openapi):
    from openapi_spec_validator import validate

    served = check_openapi(client.get("/api/openapi.json")).get_json()
    with app.app_context():
        assert served == json.loads(json.dumps(openapi_document(intake_limits())))
    validate(served)
    photo = served["paths"]["/api/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert photo["properties"]["file"]["maxLength"] == 2_000_000  # this deployment's limit


def test_storage_keys_cannot_traverse(tmp_path):
    for bad in ("../x", "uploads/../../etc/passwd", "/etc/passwd", "uploads/", "uploads//x", "Uploads/x"):
        with pytest.raises(ValueError):
            check_key(bad)
    store = LocalStorage(tmp_path)
    store.put("results/abc-1.png", b"data", "image/png")
    assert store.get("results/abc-1.png") == b"data"
    with pytest.raises(KeyError):
        store.get("results/abc-2.png")
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()] == ["results/abc-1.png"]


def test_web_never_imports_tensorflow(settings, tmp_path):
    """create_app and a submission, in a fresh interpreter: TensorFlow stays out."""
    script = textwrap.dedent(f"""
        import io, sys
        from webapp import create_app
        from tests.service.conftest import app_config, jpeg_bytes
        app = create_app(app_config({settings!r}))
        client = app.test_client()
        assert client.get("/api/directions").status_code == 200
        form = {{"file": (io.BytesIO(jpeg_bytes()), "p.jpg"), "direction": "day2night"}}
        response = client.post("/api/jobs", data=form, content_type="multipart/form-data")
        assert response.status_code == 202, response.get_data(as_text=True)
        assert client.get(response.headers["Location"] + "/thumbnail").status_code == 200
        assert "tensorflow" not in sys.modules and "keras" not in sys.modules, "TensorFlow was imported"
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_migrations_match_the_models_on_sqlite_and_postgresql(settings, postgres_url, tmp_path):
    for database in (settings["DATABASE_URL"], postgres_url):
        target = {**settings, "DATABASE_URL": database}
        for command in (["db", "upgrade"], ["db", "check"], ["db", "downgrade", "base"], ["db", "upgrade"]):
            done = flask_cli(target, tmp_path / "instance", *command)
            assert done.returncode == 0, f"{command} on {database}: {done.stderr}"


def test_broker_default_is_redis_when_it_answers_else_sqlite(monkeypatch, tmp_path):
    import config

    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    monkeypatch.setattr(config, "instance_dir", tmp_path)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    assert config.resolve_broker_url() == "redis://127.0.0.1:6379/0"
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port_nobody_listens()}/0")
    assert config.resolve_broker_url() == f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}"
    monkeypatch.setenv("CELERY_BROKER_URL", "amqp://elsewhere//")
    assert config.resolve_broker_url() == "amqp://elsewhere//"


def free_port_nobody_listens() -> int:
    from tests.service.conftest import free_port

    return free_port()


def test_database_urls_use_psycopg_3():
    from config import database_url

    assert database_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    assert database_url("postgresql://u@h/d") == "postgresql+psycopg://u@h/d"
    assert database_url("sqlite:////x.db") == "sqlite:////x.db"


def test_secret_key_is_generated_once_into_instance(tmp_path):
    from webapp import _instance_secret_key

    first = _instance_secret_key(str(tmp_path))
    assert len(first) == 64 and _instance_secret_key(str(tmp_path)) == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
