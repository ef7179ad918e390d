"""The Procfile as production runs it: honcho starts gunicorn and a Celery worker; a photo
posted over real HTTP comes back translated; SIGTERM stops both cleanly.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import secrets
import signal
import subprocess
import time

import pytest
from PIL import Image
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from tests.service.conftest import BIN, REDIS_URL, ROOT, flask_cli, free_port, jpeg_bytes, service_env

pytestmark = pytest.mark.slow


def request(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    return response.status, dict(response.getheaders()), response.read()


def wait_for_http(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "honcho exited early"
        try:
            if request(port, "GET", "/api/directions")[0] == 200:
                return
        except OSError:
            time.sleep(0.3)
    raise AssertionError("the web never answered")


def test_honcho_runs_web_and_worker(model_dir, tmp_path):
    port = free_port()
    settings = {
        "MODEL_DIR": str(model_dir),
        "STORAGE_URL": str(tmp_path / "storage"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'seasons.sqlite'}",
        "CELERY_BROKER_URL": REDIS_URL,
        "CELERY_QUEUE": f"seasons-test-{secrets.token_hex(4)}",
        "WORKER_NAME": f"test-{secrets.token_hex(3)}",
        "WEB_CONCURRENCY": "1",
    }
    assert flask_cli(settings, tmp_path / "instance", "db", "upgrade").returncode == 0
    env = service_env(settings, tmp_path / "instance")
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    log = open(tmp_path / "honcho.log", "wb")
    honcho = subprocess.Popen([str(BIN / "honcho"), "start", "-f", "Procfile", "-p", str(port)], cwd=ROOT, env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_http(port, honcho)
        photo = FileStorage(io.BytesIO(jpeg_bytes(seed=11)), "p.jpg", content_type="image/jpeg")
        boundary, body = encode_multipart({"file": photo, "direction": "night2day", "size": "256"})
        status, headers, reply = request(port, "POST", "/api/jobs", body,
                                         {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert status == 202, reply
        deadline = time.monotonic() + 90
        while (job := json.loads(request(port, "GET", headers["Location"])[2]))["status"] not in ("succeeded",
                                                                                                   "failed"):
            assert time.monotonic() < deadline, job
            time.sleep(0.3)
        assert job["status"] == "succeeded", job
        assert job["worker"].startswith(settings["WORKER_NAME"] + "@")
        status, headers, png = request(port, "GET", job["urls"]["result"])
        assert status == 200 and headers["Content-Type"] == "image/png"
        assert Image.open(io.BytesIO(png)).size == (256, 256)
    finally:
        os.killpg(honcho.pid, signal.SIGTERM)
        try:
            honcho.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(honcho.pid, signal.SIGKILL)
            honcho.wait(10)
        log.close()
    text = (tmp_path / "honcho.log").read_text(errors="replace")
    assert "web.1 stopped" in text and "worker.1 stopped" in text, text[-3000:]
