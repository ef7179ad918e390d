"""Faults against real processes: the broker loses its data while jobs are queued, a worker is
SIGKILLed in the middle of a job. The database is the record; the reconciler (a timer in every
worker) re-sends what the broker lost or a dead worker left behind, and the atomic claim makes
sure no job ever runs twice at the same time.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import time
from datetime import datetime
from pathlib import Path

import pytest
import redis

from tests.reliability.conftest import FaultWorker, Proxy
from tests.service.conftest import app_config, flask_cli, jpeg_bytes, poll, submit
from webapp import create_app

pytestmark = pytest.mark.slow


def settings_for(model_dir, tmp_path, broker: str, database: str, **extra: str) -> dict[str, str]:
    return {
        "MODEL_DIR": str(model_dir),
        "STORAGE_URL": str(tmp_path / "storage"),
        "CELERY_QUEUE": f"seasons-test-{secrets.token_hex(4)}",
        "CELERY_BROKER_URL": broker,
        "DATABASE_URL": database,
        "RECONCILE_INTERVAL": "1",
        **extra,
    }


def migrate(settings: dict[str, str], tmp_path) -> None:
    upgrade = flask_cli(settings, tmp_path / "instance", "db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr


def results(storage: Path) -> list[str]:
    return sorted(p.name for p in (storage / "results").glob("*")) if (storage / "results").exists() else []


def succeeded_lines(worker: FaultWorker, job_id: str, wait: float = 10.0) -> int:
    """How many times `worker` logged the job's success. The worker commits `succeeded` just
    before it writes that line, so a test that has just read the status waits (up to `wait`
    seconds) for the first line to reach the log."""
    deadline = time.monotonic() + wait
    while not (count := len(re.findall(rf"job {re.escape(job_id)} succeeded", worker.log()))):
        if time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    return count


def test_broker_data_dropped_while_queued(model_dir, postgres_url, own_redis, tmp_path, fault_worker):
    """Jobs queued, Redis FLUSHALL (its data is gone) → the reconciler re-sends them → each runs once."""
    settings = settings_for(model_dir, tmp_path, own_redis, postgres_url, RECONCILE_QUEUED_AFTER="3")
    migrate(settings, tmp_path)
    client = create_app(app_config(settings)).test_client()
    broker = redis.Redis.from_url(own_redis)

    lost = []
    for seed in range(3):
        response = submit(client, jpeg_bytes(160, 120, seed=seed), enhance="false", size="256")
        assert response.status_code == 202, response.get_data(as_text=True)
        lost.append(response.get_json()["id"])
    assert broker.llen(settings["CELERY_QUEUE"]) == 3
    broker.flushall()  # as a Redis restarted without persistence
    assert broker.llen(settings["CELERY_QUEUE"]) == 0
    # One more, sent after the flush: its message exists, and the reconciler may send it again too.
    response = submit(client, jpeg_bytes(160, 120, seed=9), enhance="false", size="256")
    kept = response.get_json()["id"]

    worker = fault_worker(settings)
    jobs = {job_id: poll(client, f"/api/jobs/{job_id}", timeout=90) for job_id in [*lost, kept]}
    for job_id, job in jobs.items():
        assert job["status"] == "succeeded", job
        assert job["attempts"] == 1, job  # claimed once: a duplicate delivery is skipped, never run
        assert succeeded_lines(worker, job_id) == 1
    for job_id in lost:
        assert f"re-sent job {job_id} (queued too long)" in worker.log()
    assert results(tmp_path / "storage") == sorted(f"{j}{s}.png" for j in jobs for s in ("", "-before"))


@pytest.mark.parametrize("victim", ["node", "pool-process"])
def test_worker_sigkilled_mid_job(model_dir, postgres_url, own_redis, tmp_path, fault_worker, victim):
    """SIGKILL the worker (main and pool process: its host died), or only its pool process (the
    OOM killer), while the job is in the generator stage → once the lease has expired the job is
    finished by another worker, or by the same worker's new pool process: one result, two
    attempts recorded."""
    limits = {"WORKER_SOFT_TIME_LIMIT": "8", "WORKER_HARD_TIME_LIMIT": "10", "JOB_LEASE_SECONDS": "11",
              "RECONCILE_QUEUED_AFTER": "60"}
    settings = settings_for(model_dir, tmp_path, own_redis, postgres_url, **limits)
    migrate(settings, tmp_path)
    client = create_app(app_config(settings)).test_client()

    doomed = fault_worker({**settings, "SLOW_STAGE_SECONDS": "60", "SLOW_STAGE_ONCE": str(tmp_path / "slowed")},
                          "--include", "tests.reliability.slow_stage")
    # A photo of its own: the session's database is shared, and uploads are stored once per content.
    photo = jpeg_bytes(160, 120, seed=30 + len(victim))
    response = submit(client, photo, enhance="false", size="256")
    assert response.status_code == 202
    url = response.headers["Location"]
    deadline = time.monotonic() + 60
    while True:
        job = client.get(url).get_json()
        if job["status"] == "running" and job["stage"] == "generator":
            break
        assert time.monotonic() < deadline and job["status"] in ("queued", "running"), job
        time.sleep(0.1)
    first_worker, first_started = job["worker"], datetime.fromisoformat(job["started_at"])
    if victim == "node":
        doomed.kill()
        rescuer = fault_worker(settings)
    else:
        doomed.kill_pool_process()
        rescuer = doomed
    job = poll(client, url, timeout=90)
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 2 and (job["worker"] != first_worker) == (victim == "node"), job
    # Claimed again only once the first claim's lease had run out: never two runs at once.
    assert (datetime.fromisoformat(job["started_at"]) - first_started).total_seconds() >= 11
    assert succeeded_lines(rescuer, job["id"]) == 1
    resent = f"re-sent job {job['id']} (running past its lease" in rescuer.log()
    if victim == "node":
        assert resent and succeeded_lines(doomed, job["id"], wait=0) == 0
    else:
        # Celery hands the message back (reject on worker lost). Back while the lease lives, it
        # is skipped and the reconciler re-sends the job once the lease has run out; back after
        # that (a slow pool restart on a loaded machine), it claims the job itself.
        assert "WorkerLostError" in doomed.log()
        assert resent == ("is not claimable" in doomed.log()), doomed.log()
    assert results(tmp_path / "storage") == [f"{job['id']}-before.png", f"{job['id']}.png"]


def test_database_away_while_worker_runs_a_job(model_dir, postgres_url, own_redis, tmp_path, fault_worker):
    """The worker's database connection is cut in the middle of a job (its status write fails,
    and so does giving the job back): the retry takes back its own claim as soon as the
    database returns, without waiting for the lease, and finishes the job."""
    host_port = postgres_url.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.split(":")
    proxy = Proxy((host, int(port)))
    proxy.start()
    try:
        direct = settings_for(model_dir, tmp_path, own_redis, postgres_url, RECONCILE_INTERVAL="0")
        migrate(direct, tmp_path)
        through_proxy = {**direct, "DATABASE_URL": postgres_url.replace(host_port, f"127.0.0.1:{proxy.port}"),
                         "SLOW_STAGE_SECONDS": "3"}
        worker = fault_worker(through_proxy, "--include", "tests.reliability.slow_stage")
        client = create_app(app_config(direct)).test_client()  # the web reaches the database directly
        url = submit(client, jpeg_bytes(160, 120, seed=4), enhance="false", size="256").headers["Location"]
        deadline = time.monotonic() + 60
        while (job := client.get(url).get_json())["stage"] != "generator":
            assert time.monotonic() < deadline, job
            time.sleep(0.1)
        proxy.cut()  # while the generator stage sleeps: the next status write fails
        deadline = time.monotonic() + 30
        while "transient error, retry 1" not in worker.log():
            assert time.monotonic() < deadline, worker.log()[-3000:]
            time.sleep(0.2)
        while "database unavailable at claim" not in worker.log():  # the retry meets it away too
            assert time.monotonic() < deadline, worker.log()[-3000:]
            time.sleep(0.2)
        proxy.start()
        job = poll(client, url, timeout=60)
        assert job["status"] == "succeeded" and job["attempts"] == 2, job
        assert succeeded_lines(worker, job["id"]) == 1 and "not claimable" not in worker.log()
        # Well before the lease (hard limit + 60 s) could have run out.
        started = datetime.fromisoformat(job["created_at"])
        assert (datetime.fromisoformat(job["finished_at"]) - started).total_seconds() < 60
    finally:
        proxy.cut()


def test_sigterm_lets_the_job_in_hand_finish(model_dir, postgres_url, own_redis, tmp_path, fault_worker):
    """SIGTERM to a worker in the middle of a job: warm shutdown, the job finishes first."""
    settings = settings_for(model_dir, tmp_path, own_redis, postgres_url, RECONCILE_INTERVAL="0")
    migrate(settings, tmp_path)
    client = create_app(app_config(settings)).test_client()
    worker = fault_worker({**settings, "SLOW_STAGE_SECONDS": "3"}, "--include", "tests.reliability.slow_stage")
    url = submit(client, jpeg_bytes(160, 120, seed=50), enhance="false", size="256").headers["Location"]
    deadline = time.monotonic() + 60
    while (job := client.get(url).get_json())["stage"] != "generator":
        assert time.monotonic() < deadline and job["status"] in ("queued", "running"), job
        time.sleep(0.1)
    os.kill(worker.process.pid, signal.SIGTERM)  # the main process, as a supervisor stops it
    assert worker.process.wait(60) == 0
    job = client.get(url).get_json()
    assert job["status"] == "succeeded" and job["attempts"] == 1, job
    assert "Warm shutdown" in worker.log() and succeeded_lines(worker, job["id"]) == 1
