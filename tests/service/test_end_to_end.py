"""The service end to end with real parts: a Celery worker process, Redis or the server-less
SQLite broker, PostgreSQL or SQLite, local or S3 (moto server) storage.

Each test posts a generated JPEG through the HTTP API, polls until the job has finished and
checks the files and the recorded stage timings.
"""

from __future__ import annotations

import io
import secrets

import boto3
import pytest
from PIL import Image
from sqlalchemy import select

from tests.service.conftest import DAMAGED, REDIS_URL, app_config, flask_cli, free_port, jpeg_bytes, poll, submit
from webapp import create_app
from webapp.extensions import db
from webapp.models import STAGES, Job, JobStatus

pytestmark = pytest.mark.slow


def settings_for(model_dir, tmp_path, **extra: str) -> dict[str, str]:
    return {
        "MODEL_DIR": str(model_dir),
        "STORAGE_URL": str(tmp_path / "storage"),
        "CELERY_QUEUE": f"seasons-test-{secrets.token_hex(4)}",  # never steal another run's jobs
        **extra,
    }


def migrate(settings: dict[str, str], tmp_path) -> None:
    upgrade = flask_cli(settings, tmp_path / "instance", "db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr


def image(response, mime_type: str) -> Image.Image:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == mime_type
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    picture = Image.open(io.BytesIO(response.data))
    picture.load()
    return picture


def run_one_job(client, check, **fields: str) -> dict:
    """Submit a 640×480 JPEG, wait for success, check every file and every stage timing."""
    photo = jpeg_bytes(seed=len(fields))
    response = check(submit(client, photo, **fields))
    assert response.status_code == 202, response.get_data(as_text=True)
    assert response.headers["Location"] == f"/api/jobs/{response.get_json()['id']}"
    job = poll(client, response.headers["Location"], check=check)
    assert job["status"] == "succeeded", job
    size = job["options"]["size"]
    stages = [s for s in STAGES if s != "rdn" or job["options"]["enhance"]]
    assert sorted(job["timings_ms"]) == sorted(stages)
    assert all(ms >= 0 for ms in job["timings_ms"].values())
    assert sorted(job["stage_started_at"]) == sorted(stages)
    assert job["attempts"] == 1 and job["worker"].startswith("test-") and job["error"] is None
    assert job["started_at"] and job["finished_at"] and job["untrained"] is True

    assert image(client.get(job["urls"]["result"]), "image/png").size == (size, size)
    assert image(client.get(job["urls"]["before"]), "image/png").size == (size, size)
    assert image(client.get(job["urls"]["side_by_side"]), "image/png").size == (2 * size, size)
    assert max(image(client.get(job["urls"]["thumbnail"]), "image/jpeg").size) <= 256
    original = client.get(job["urls"]["original"])
    assert original.data == photo and original.mimetype == "image/jpeg"
    return job


def test_redis_postgres_local_storage(model_dir, postgres_url, tmp_path, start_worker, check_openapi):
    settings = settings_for(model_dir, tmp_path, DATABASE_URL=postgres_url, CELERY_BROKER_URL=REDIS_URL)
    migrate(settings, tmp_path)
    worker = start_worker(settings)
    app = create_app(app_config(settings))
    client = app.test_client()

    job = run_one_job(client, check_openapi, crop="100,50,380")
    assert job["crop"] == [100, 50, 380] and job["stage"] == "store"
    assert [m["name"] for m in job["models"]] == ["day2night", "rdn"]
    small = run_one_job(client, check_openapi, enhance="false", size="256")
    assert [m["name"] for m in small["models"]] == ["day2night"]

    # A pipeline error in the worker (weights that don't match their manifest): failed, readable.
    response = submit(client, jpeg_bytes(seed=7), direction=DAMAGED)
    assert response.status_code == 202
    failed = poll(client, response.headers["Location"], check=check_openapi)
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "model_error"
    assert "summer → winter" in failed["error"]["message"] and "/" not in failed["error"]["message"]
    with app.app_context():
        row = db.session.scalar(select(Job).where(Job.public_id == failed["id"]))
        assert row.status == JobStatus.FAILED and row.error_code == "model_error" and row.finished_at
        assert row.error_message == failed["error"]["message"]

    listing = check_openapi(client.get("/api/jobs?status=succeeded&direction=day2night")).get_json()
    assert listing["total"] == 2 and {j["id"] for j in listing["jobs"]} == {job["id"], small["id"]}

    # Models were loaded and warmed once in the pool process, not per job.
    assert worker.log().count("models warmed") == 1

    report = flask_cli(settings, tmp_path / "instance", "jobs")
    assert report.returncode == 0, report.stderr
    assert job["id"] in report.stdout and failed["id"] in report.stdout
    day2night = next(line for line in report.stdout.splitlines() if line.strip().startswith("day2night"))
    assert day2night.split()[1:5] == ["0", "0", "2", "0"]  # queued running succeeded failed


def test_sqlite_and_serverless_broker(model_dir, tmp_path, start_worker, check_openapi):
    settings = settings_for(
        model_dir, tmp_path,
        DATABASE_URL=f"sqlite:///{tmp_path / 'seasons.sqlite'}",
        CELERY_BROKER_URL=f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}",
    )
    migrate(settings, tmp_path)
    start_worker(settings)
    client = create_app(app_config(settings)).test_client()
    run_one_job(client, check_openapi)


def test_s3_storage(model_dir, tmp_path, start_worker, check_openapi, moto_s3, monkeypatch):
    credentials = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    for name, value in credentials.items():
        monkeypatch.setenv(name, value)
    s3 = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1")
    s3.create_bucket(Bucket="seasons-test")
    settings = settings_for(
        model_dir, tmp_path, **credentials,
        DATABASE_URL=f"sqlite:///{tmp_path / 'seasons.sqlite'}", CELERY_BROKER_URL=REDIS_URL,
        STORAGE_URL="s3://seasons-test/site", S3_ENDPOINT_URL=moto_s3,
    )
    migrate(settings, tmp_path)
    start_worker(settings)
    client = create_app(app_config(settings)).test_client()
    job = run_one_job(client, check_openapi)

    keys = {obj["Key"] for obj in s3.list_objects_v2(Bucket="seasons-test")["Contents"]}
    assert {f"site/results/{job['id']}.png", f"site/results/{job['id']}-before.png"} <= keys
    assert any(k.startswith("site/uploads/") for k in keys)
    assert not (tmp_path / "storage").exists()  # nothing went to the local default


def test_transient_errors_are_retried_then_fail_readably(model_dir, tmp_path, start_worker, check_openapi):
    """The worker's storage is down: the job is retried with backoff, then fails as `unavailable`."""
    shared = settings_for(model_dir, tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'seasons.sqlite'}",
                          CELERY_BROKER_URL=REDIS_URL)
    migrate(shared, tmp_path)
    start_worker({**shared, "STORAGE_URL": "s3://nowhere", "S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
                  "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "WORKER_MAX_RETRIES": "1"})
    client = create_app(app_config(shared)).test_client()
    response = submit(client, jpeg_bytes(seed=5))
    job = poll(client, response.headers["Location"], check=check_openapi)
    assert job["status"] == "failed" and job["attempts"] == 2, job
    assert job["error"]["code"] == "unavailable" and "try again" in job["error"]["message"]
