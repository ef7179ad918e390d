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
import socket
import time
from datetime import datetime
from pathlib import Path

import pytest
import redis

from tests.reliability.conftest import FaultWorker, Proxy
from tests.service.conftest import app_config, flask_cli, jpeg_bytes, poll, submit
from webapp import create_app
from webapp.queue import enqueue

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


#: Short lease settings for the fault tests: a lease of 6 s renewed every 2 s.
LEASE = {"JOB_LEASE_SECONDS": "6", "JOB_LEASE_RENEW_SECONDS": "2"}
LEASE_S, RENEW_S = 6.0, 2.0
#: Room for the reconciler's wake-up, the broker and the claim on two shared, busy cores.
SLACK_S = 5.0


def wait_for_stage(client, url: str, stage: str = "generator", timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while (job := client.get(url).get_json())["stage"] != stage or job["status"] != "running":
        assert time.monotonic() < deadline and job["status"] in ("queued", "running"), job
        time.sleep(0.1)
    return job


def wait_for_log(worker: FaultWorker, text: str, count: int = 1, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while worker.log().count(text) < count:
        assert time.monotonic() < deadline, worker.log()[-3000:]
        time.sleep(0.1)


@pytest.mark.parametrize("victim", ["node", "pool-process"])
@pytest.mark.parametrize("rescue", ["second-worker", "alone"])
def test_worker_sigkilled_mid_job(model_dir, postgres_url, own_redis, tmp_path, fault_worker, victim, rescue):
    """SIGKILL the worker (main and pool process: its host died), or only its pool process (the
    OOM killer), in the generator stage, with a second worker up or alone (a node killed alone is
    started again, as a supervisor would) → the job is claimed again as soon as its lease lapses,
    whoever is up then, and finishes: one result, two attempts recorded.

    The reconciler's interval is longer than the whole test: it re-sends the job because it wakes
    at the lease's end, not on its timer."""
    settings = settings_for(model_dir, tmp_path, own_redis, postgres_url, **LEASE, RECONCILE_INTERVAL="300",
                            RECONCILE_QUEUED_AFTER="300")
    migrate(settings, tmp_path)
    client = create_app(app_config(settings)).test_client()
    slow = {**settings, "SLOW_STAGE_SECONDS": "60", "SLOW_STAGE_ONCE": str(tmp_path / "slowed")}
    doomed = fault_worker(slow, "--include", "tests.reliability.slow_stage")
    # A photo of its own: the session's database is shared, and uploads are stored once per content.
    photo = jpeg_bytes(160, 120, seed=30 + len(victim) + 10 * len(rescue))
    response = submit(client, photo, enhance="false", size="256")
    assert response.status_code == 202
    url = response.headers["Location"]
    job = wait_for_stage(client, url)
    first_worker = job["worker"]
    time.sleep(RENEW_S * 1.5)  # the lease has been renewed while the stage runs
    assert client.get(url).get_json()["attempts"] == 1
    rescuer = fault_worker(slow, "--include", "tests.reliability.slow_stage") if rescue == "second-worker" else None
    killed_at = time.time()
    if victim == "node":
        doomed.kill()
        rescuer = rescuer or fault_worker(settings)  # alone: the host's supervisor starts it again
    else:
        doomed.kill_pool_process()
        if rescuer is None:
            rescuer = doomed
            wait_for_log(doomed, "models warmed", count=2)  # the new pool process is up
    ready_at = time.time()
    job = poll(client, url, timeout=90)
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 2, job
    if rescue == "alone":
        assert (job["worker"] != first_worker) == (victim == "node"), job
    reclaimed = datetime.fromisoformat(job["started_at"]).timestamp()
    finished = datetime.fromisoformat(job["finished_at"]).timestamp()
    print(f"\n{victim}, {rescue}: kill → ready {ready_at - killed_at:.1f} s → re-claim "
          f"{reclaimed - killed_at:.1f} s → succeeded {finished - killed_at:.1f} s")
    # Never claimed while the killed attempt's lease could still hold; claimed once it lapsed.
    assert reclaimed - killed_at >= LEASE_S - RENEW_S - 0.5
    assert reclaimed <= max(killed_at + LEASE_S, ready_at) + SLACK_S
    finisher = rescuer if job["worker"] == rescuer.name.replace("%h", socket.gethostname()) else doomed
    assert succeeded_lines(finisher, job["id"]) == 1
    others = [w for w in {doomed, rescuer} if w is not finisher]
    assert all(succeeded_lines(w, job["id"], wait=0) == 0 for w in others)
    if victim == "pool-process":
        assert "WorkerLostError" in doomed.log()
    assert results(tmp_path / "storage") == [f"{job['id']}-before.png", f"{job['id']}.png"]


def test_live_worker_keeps_its_job_past_many_leases(model_dir, postgres_url, own_redis, tmp_path, fault_worker):
    """A job that runs for three leases, with a second worker and both reconcilers every second,
    and its message delivered a second time mid-run: the heartbeat keeps the claim, the duplicate
    is skipped, nothing is re-sent, one attempt, one result."""
    settings = settings_for(model_dir, tmp_path, own_redis, postgres_url, **LEASE, RECONCILE_QUEUED_AFTER="300")
    migrate(settings, tmp_path)
    app = create_app(app_config(settings))
    client = app.test_client()
    slow = {**settings, "SLOW_STAGE_SECONDS": str(3 * LEASE_S), "SLOW_STAGE_ONCE": str(tmp_path / "slowed")}
    workers = [fault_worker(slow, "--include", "tests.reliability.slow_stage", wait=False) for _ in range(2)]
    for worker in workers:
        worker.wait_ready()
    url = submit(client, jpeg_bytes(160, 120, seed=61), enhance="false", size="256").headers["Location"]
    job = wait_for_stage(client, url)
    time.sleep(LEASE_S)
    with app.app_context():
        enqueue(job["id"])  # a duplicate delivery while the job runs
    job = poll(client, url, timeout=90)
    assert job["status"] == "succeeded" and job["attempts"] == 1, job
    logs = "".join(worker.log() for worker in workers)
    assert len(re.findall(rf"job {re.escape(job['id'])} succeeded", logs)) == 1
    assert f"job {job['id']} is not claimable" in logs
    assert "re-sent job" not in logs and "lease renewal failed" not in logs
    assert results(tmp_path / "storage") == [f"{job['id']}-before.png", f"{job['id']}.png"]


def test_database_away_while_worker_runs_a_job(model_dir, postgres_url, own_redis, tmp_path, fault_worker):
    """The worker's database connection is cut in the middle of a job (its lease renewals fail,
    its status write fails, and so does giving the job back): the attempt ends in the retry rules,
    and the retry takes back its own claim as soon as the database returns, and finishes the job."""
    host_port = postgres_url.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.split(":")
    proxy = Proxy((host, int(port)))
    proxy.start()
    try:
        direct = settings_for(model_dir, tmp_path, own_redis, postgres_url, RECONCILE_INTERVAL="0", **LEASE)
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
        assert "lease renewal failed" in worker.log()  # the heartbeat met the outage, and went on
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
