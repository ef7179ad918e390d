"""Fault-injection parts: a throwaway Redis of our own (so FLUSHALL or a kill touches nothing
shared), and Celery workers that can take extra options and be SIGKILLed. The service tests'
fixtures (tiny models, a fresh PostgreSQL database) are reused."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.service.conftest import (  # noqa: F401 - fixtures reused from the service tests
    BIN,
    ROOT,
    Worker,
    check_openapi,
    free_port,
    model_dir,
    postgres_url,
    service_env,
)


@pytest.fixture
def own_redis(tmp_path) -> Iterator[str]:
    """A redis-server of this test's own on a free loopback port, no persistence; yields its URL."""
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise AssertionError("redis-server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)


class FaultWorker(Worker):
    """A `celery worker` like the service tests' one, with extra options and environment."""

    def __init__(self, settings: dict[str, str], instance_dir: Path, log_path: Path, *extra: str) -> None:
        import secrets

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

    def kill(self) -> None:
        """SIGKILL the whole worker (main and pool process), as when its host dies."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


@pytest.fixture
def fault_worker(tmp_path) -> Iterator:
    workers: list[FaultWorker] = []

    def start(settings: dict[str, str], *extra: str, wait: bool = True) -> FaultWorker:
        worker = FaultWorker(settings, tmp_path / "instance", tmp_path / f"worker{len(workers)}.log", *extra)
        workers.append(worker)
        if wait:
            worker.wait_ready()
        return worker

    yield start
    for worker in workers:
        worker.stop()
