"""Real parts for the service tests: tiny models, a fresh PostgreSQL database, migrations run
with `flask db upgrade`, Celery worker subprocesses, a moto S3 server on loopback.

The test process itself never imports TensorFlow: models are written and run by subprocesses.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from PIL import Image
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PG_ADMIN = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

# The broken parts of the test model directory (see `model_dir`).
MISSING = "spring2autumn"  # no manifest at all: refused at submit
DAMAGED = "summer2winter"  # weights differ from the manifest's sha256: the job fails in the worker


def jpeg_bytes(width: int = 640, height: int = 480, seed: int = 0) -> bytes:
    """A photo-like JPEG: a colour gradient (different per seed, so uploads don't dedupe)."""
    image = Image.linear_gradient("L").resize((width, height))
    rgb = Image.merge("RGB", (image, image.rotate(90 + seed).resize((width, height)), image.point(lambda v: 255 - v)))
    buffer = io.BytesIO()
    rgb.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """Tiny untrained models: day2night works, spring2autumn is missing, summer2winter is damaged."""
    path = tmp_path_factory.mktemp("models")
    subprocess.run([sys.executable, "-m", "pipeline", "init-random", "--out", str(path)],
                   cwd=ROOT, check=True, capture_output=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    for file in path.glob(f"{MISSING}.*"):
        file.unlink()
    with open(path / f"{DAMAGED}.h5", "ab") as f:
        f.write(b"damage")
    return path


@contextlib.contextmanager
def scratch_postgres(prefix: str = "seasons_test") -> Iterator[str]:
    """A PostgreSQL database of its own on the local server, dropped afterwards."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database of its own for this test session."""
    with scratch_postgres() as url:
        yield url


def service_env(settings: dict[str, str], instance_dir: Path) -> dict[str, str]:
    """The environment a web or worker process of these settings gets (gentle on 2 cores)."""
    return {
        **os.environ,
        **settings,
        "INSTANCE_DIR": str(instance_dir),
        "SECRET_KEY": "test-secret",
        "FLASK_APP": "webapp",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "TF_NUM_INTRAOP_THREADS": "1",
        "TF_NUM_INTEROP_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }


def flask_cli(settings: dict[str, str], instance_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """Run `flask …` as an operator would, with these settings."""
    return subprocess.run([str(BIN / "flask"), *args], cwd=ROOT, env=service_env(settings, instance_dir),
                          capture_output=True, text=True, timeout=120)


def app_config(settings: dict[str, str]) -> dict:
    """create_app overrides equal to what config.py makes of `settings` in a subprocess."""
    from config import database_url

    return {
        "SECRET_KEY": "test-secret",
        "SQLALCHEMY_DATABASE_URI": database_url(settings["DATABASE_URL"]),
        "CELERY_BROKER_URL": settings["CELERY_BROKER_URL"],
        "CELERY_QUEUE": settings["CELERY_QUEUE"],
        "STORAGE_URL": settings["STORAGE_URL"],
        "S3_ENDPOINT_URL": settings.get("S3_ENDPOINT_URL"),
        "MODEL_DIR": settings["MODEL_DIR"],
        "JOB_RATE_LIMIT": "1000 per minute",
    }


class Worker:
    """A real `celery worker` subprocess (prefork, one child: what production runs)."""

    def __init__(self, settings: dict[str, str], instance_dir: Path, log_path: Path, *extra: str) -> None:
        self.log_path = log_path
        self.name = f"test-{secrets.token_hex(3)}@%h"
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(
            [str(BIN / "celery"), "-A", "worker:celery_app", "worker", "--loglevel", "INFO",
             "--pool", "prefork", "--concurrency", "1", "--hostname", self.name,
             "--without-gossip", "--without-mingle", "--without-heartbeat", *extra],
            cwd=ROOT, env=service_env(settings, instance_dir), stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 90) -> None:
        """Until the worker has consumed its queue and its pool process has warmed the models."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log()
            if " ready." in text and "models warmed" in text:
                return
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited with {self.process.returncode}:\n{text[-4000:]}")
            time.sleep(0.2)
        raise AssertionError(f"worker not ready after {timeout}s:\n{self.log()[-4000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self._log.close()


@pytest.fixture
def start_worker(tmp_path) -> Iterator:
    workers: list[Worker] = []

    def start(settings: dict[str, str]) -> Worker:
        worker = Worker(settings, tmp_path / "instance", tmp_path / f"worker{len(workers)}.log")
        workers.append(worker)
        worker.wait_ready()
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def moto_s3() -> Iterator[str]:
    """moto's standalone S3 server as its own process on loopback; yields its endpoint URL."""
    port = free_port()
    process = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise AssertionError("moto_server did not start") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)


@pytest.fixture(scope="session")
def check_openapi():
    """Validate a test-client response against the app's own OpenAPI document; return it."""
    from openapi_core import OpenAPI
    from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse

    from pipeline import IntakeLimits
    from webapp.openapi import openapi_document

    spec = OpenAPI.from_dict(openapi_document(IntakeLimits()))

    def check(response):
        # The request's body was consumed by the app; response validation needs only its route.
        sent = response.request
        route = EnvironBuilder(path=sent.path, method=sent.method, query_string=sent.query_string.decode())
        bare = Request(route.get_environ())
        spec.validate_response(WerkzeugOpenAPIRequest(bare), WerkzeugOpenAPIResponse(response))
        return response

    return check


def submit(client, data: bytes, direction: str = "day2night", filename: str = "photo.jpg", **fields: str):
    """POST /api/jobs as a non-browser client would."""
    form = {"file": (io.BytesIO(data), filename), "direction": direction, **fields}
    return client.post("/api/jobs", data=form, content_type="multipart/form-data")


def poll(client, url: str, timeout: float = 90, check=None) -> dict:
    """GET the job until it has finished; every response on the way is checked against OpenAPI."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(url)
        assert response.status_code == 200, response.get_data(as_text=True)
        if check:
            check(response)
        job = response.get_json()
        if job["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.2)
