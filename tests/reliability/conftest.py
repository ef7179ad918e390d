"""Fault-injection parts: a throwaway Redis of our own (so FLUSHALL or a kill touches nothing
shared), and Celery workers that can take extra options and be SIGKILLed. The service tests'
fixtures (tiny models, a fresh PostgreSQL database) are reused."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
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
    """A `celery worker` like the service tests' one (extra options after the settings), that
    can also lose just its pool process."""

    def kill_pool_process(self) -> int:
        """SIGKILL only the pool process running the job (as the kernel's OOM killer would)."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        assert len(children) == 1, children
        os.kill(int(children[0]), signal.SIGKILL)
        return int(children[0])

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


class Proxy:
    """A loopback TCP proxy to `upstream` that can be cut (refusing and dropping connections)
    and restored on the same port."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream, self.port = upstream, free_port()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            self._sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        if self._listener:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() (Linux)
            self._listener.close()
            self._listener = None
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._sockets.clear()
