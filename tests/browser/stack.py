"""A live Seasons for the browser tests and screenshots: gunicorn + one Celery worker.

Real processes, throwaway state: SQLite and storage in a temporary instance directory, tiny
random models, and a Celery queue of its own on the local Redis, so other test runs sharing
that Redis never take these jobs. `python -m tests.browser.stack` runs one by hand.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
REDIS_URL = os.environ.get("BROWSER_TEST_REDIS_URL") or "redis://127.0.0.1:6379/0"

_PREPARE = """
from pipeline.registry import write_random_models
from webapp import create_app
from webapp.extensions import db
from flask_migrate import upgrade
import sys
if sys.argv[2] == "random":
    write_random_models(sys.argv[1])
app = create_app()
with app.app_context():
    upgrade()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveStack:
    """Start with `start()`, stop with `stop()`; `url` is the site's base URL."""

    def __init__(self, base: Path | None = None, model_dir: Path | str | None = None) -> None:
        """`model_dir`: serve these models (e.g. trained ones) instead of fresh random ones."""
        self.base = Path(base or tempfile.mkdtemp(prefix="seasons-browser-"))
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.queue = f"seasons-browser-{secrets.token_hex(4)}"
        self.procs: list[subprocess.Popen] = []
        self.random_models = model_dir is None
        self.env = {
            **os.environ,
            "INSTANCE_DIR": str(self.base / "instance"),
            "DATABASE_URL": f"sqlite:///{self.base / 'seasons.sqlite'}",
            "STORAGE_URL": str(self.base / "storage"),
            "MODEL_DIR": str(model_dir or self.base / "models"),
            "SECRET_KEY": secrets.token_hex(16),
            "CELERY_BROKER_URL": REDIS_URL,
            "CELERY_QUEUE": self.queue,
            "RATELIMIT_STORAGE_URI": "memory://",
            "JOB_RATE_LIMIT": "1000 per minute",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONUNBUFFERED": "1",
        }

    def _log(self, name: str):
        return open(self.base / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process

    def start(self, timeout: float = 120) -> LiveStack:
        subprocess.run([sys.executable, "-c", _PREPARE, self.env["MODEL_DIR"],
                        "random" if self.random_models else "given"], cwd=ROOT, env=self.env,
                       check=True, stdout=self._log("prepare"), stderr=subprocess.STDOUT)
        self.procs.append(subprocess.Popen(
            [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{self.port}", "--workers", "1", "--threads", "8",
             "--timeout", "60", "webapp:create_app()"],
            cwd=ROOT, env=self.env, stdout=self._log("web"), stderr=subprocess.STDOUT))
        self.procs.append(subprocess.Popen(
            [str(BIN / "celery"), "-A", "worker:celery_app", "worker", "--pool=solo", "--concurrency=1",
             "-Q", self.queue, "--loglevel=INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
             "-n", f"{self.queue}@%h"],
            cwd=ROOT, env=self.env, stdout=self._log("worker"), stderr=subprocess.STDOUT))
        deadline = time.monotonic() + timeout
        while True:
            for proc in self.procs:
                if proc.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"a process exited early; logs in {self.base}:\n{self.logs()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/directions", timeout=2) as r:
                    if r.status == 200 and self._worker_ready():
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the stack did not come up in {timeout:.0f} s:\n{self.logs()}")
            time.sleep(0.3)

    def _worker_ready(self) -> bool:
        path = self.base / "worker.log"
        return path.exists() and b"ready." in path.read_bytes()

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in sorted(self.base.glob("*.log"))
        )

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # so `finally` stops the children
    stack = LiveStack().start()
    print(f"Seasons at {stack.url} (state in {stack.base}); Ctrl-C stops it", flush=True)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        stack.cleanup()
