"""A bounded load test on loopback: N submissions to gunicorn, W Celery workers, status polling.

    .venv/bin/python bench/load.py [--jobs 200] [--workers 2] [--poll-rate 20] [--timeout 900] [--kill-at 50]

Starts everything it needs and stops it afterwards: a throwaway redis-server on a free port, a
fresh PostgreSQL database (TEST_PG_ADMIN_URL, default postgres@127.0.0.1:5432/test; dropped at
the end), tiny untrained models, `flask db upgrade`, gunicorn (2 processes) and W workers
(prefork, one pool process each). It then posts N small JPEGs over HTTP (enhance=false, 256 px),
polls `GET /api/jobs/<id>` at a fixed rate while the jobs run, and checks that every job
succeeded, was logged as succeeded exactly once and left exactly one result pair in storage, and
that only jobs a killed worker held were claimed more than once. With `--kill-at N` the first
worker (main and pool process) is SIGKILLed right after the N-th submission, as when its host
dies; the jobs it held are claimed again once their leases lapse, and the table shows when.
Prints a table and writes bench/results/load.json. Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg
import requests
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import save, table  # noqa: E402

BIN = Path(sys.executable).parent
PG_ADMIN = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, process: subprocess.Popen, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{what} did not start") from None
            time.sleep(0.1)


def jpeg(seed: int) -> bytes:
    gradient = Image.linear_gradient("L").resize((160, 120))
    rgb = Image.merge("RGB", (gradient, gradient.rotate(seed % 360).resize((160, 120)), gradient.point(
        lambda v: (v + seed) % 256)))
    buffer = io.BytesIO()
    rgb.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main() -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--poll-rate", type=float, default=20.0, help="status requests per second")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for all jobs")
    parser.add_argument("--kill-at", type=int, default=0, help="SIGKILL the first worker after this submission")
    args = parser.parse_args()

    processes: list[subprocess.Popen] = []
    database = f"seasons_load_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    tmp = Path(tempfile.mkdtemp(prefix="seasons-load-"))
    try:
        redis_port, web_port = free_port(), free_port()
        processes.append(subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "", "--appendonly", "no",
             "--dir", str(tmp)], stdout=subprocess.DEVNULL, start_new_session=True))
        wait_port(redis_port, processes[-1], "redis-server")
        subprocess.run([sys.executable, "-m", "pipeline", "init-random", "--out", str(tmp / "models")], cwd=ROOT,
                       check=True, capture_output=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        env = {
            **os.environ,
            "DATABASE_URL": PG_ADMIN.rsplit("/", 1)[0] + f"/{database}",
            "CELERY_BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
            "STORAGE_URL": str(tmp / "storage"), "MODEL_DIR": str(tmp / "models"),
            "INSTANCE_DIR": str(tmp / "instance"), "SECRET_KEY": "load-test", "FLASK_APP": "webapp",
            "JOB_RATE_LIMIT": "100000 per minute", "TF_CPP_MIN_LOG_LEVEL": "2",
            "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "1",
        }
        subprocess.run([str(BIN / "flask"), "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True)
        processes.append(subprocess.Popen(
            [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{web_port}", "--workers", "2", "webapp:create_app()"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp / "web.log", "wb"), start_new_session=True))
        logs, workers = [], []
        for n in range(args.workers):
            logs.append(tmp / f"worker{n}.log")
            processes.append(subprocess.Popen(
                [str(BIN / "celery"), "-A", "worker:celery_app", "worker", "--loglevel", "INFO", "--concurrency", "1",
                 "--hostname", f"load{n}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"],
                cwd=ROOT, env=env, stdout=open(logs[-1], "wb"), stderr=subprocess.STDOUT, start_new_session=True))
            workers.append(processes[-1])
        wait_port(web_port, processes[1], "gunicorn")
        deadline = time.monotonic() + 120
        while not all("models warmed" in log.read_text(errors="replace") for log in logs):
            if time.monotonic() > deadline:
                raise SystemExit("workers did not get ready")
            time.sleep(0.2)

        base = f"http://127.0.0.1:{web_port}"
        session = requests.Session()
        ids: list[str] = []
        submit_ms: list[float] = []
        # Poll at a fixed rate (one request every 1/rate s, on schedule), from the first submission
        # until every job has finished, cycling through the jobs submitted so far.
        poll_ms: list[float] = []
        poll_errors = 0
        finished: dict[str, dict] = {}
        stop = threading.Event()

        def poller() -> None:
            nonlocal poll_errors
            poll_session, interval, tick, i = requests.Session(), 1 / args.poll_rate, time.monotonic(), 0
            while not stop.is_set():
                if not ids:
                    time.sleep(0.01)
                    continue
                job_id = ids[i % len(ids)]
                i += 1
                t0 = time.perf_counter()
                try:
                    response = poll_session.get(f"{base}/api/jobs/{job_id}", timeout=10)
                    poll_ms.append((time.perf_counter() - t0) * 1000)
                    job = response.json()
                    if job.get("status") in ("succeeded", "failed"):
                        finished[job_id] = job
                except (requests.RequestException, ValueError):
                    poll_errors += 1
                tick += interval
                time.sleep(max(0.0, tick - time.monotonic()))

        thread = threading.Thread(target=poller, daemon=True)
        started = time.monotonic()
        thread.start()

        for n in range(args.jobs):
            t0 = time.perf_counter()
            response = session.post(f"{base}/api/jobs", files={"file": (f"p{n}.jpg", jpeg(n), "image/jpeg")},
                                    data={"direction": "day2night", "enhance": "false", "size": "256"}, timeout=30)
            submit_ms.append((time.perf_counter() - t0) * 1000)
            if response.status_code != 202:
                raise SystemExit(f"submission {n}: {response.status_code} {response.text[:300]}")
            ids.append(response.json()["id"])
            if n + 1 == args.kill_at:
                os.killpg(workers[0].pid, signal.SIGKILL)
                killed_at = dt.datetime.now(dt.UTC)
        submitted = time.monotonic() - started

        deadline = started + args.timeout
        while len(finished) < len(ids) and time.monotonic() < deadline:
            time.sleep(0.5)
        stop.set()
        thread.join(10)
        # Whatever the poller did not see finish, read once more.
        for job_id in ids:
            if job_id not in finished:
                finished[job_id] = session.get(f"{base}/api/jobs/{job_id}", timeout=10).json()

        jobs = [finished[i] for i in ids]
        # From the first job created to the last one finished, as the database recorded them.
        moments = [dt.datetime.fromisoformat(j[k]) for j in jobs for k in ("created_at", "finished_at") if j[k]]
        wall = (max(moments) - min(moments)).total_seconds()
        logged = "".join(log.read_text(errors="replace") for log in logs)
        succeeded = sum(j["status"] == "succeeded" for j in jobs)
        once = sum(j["attempts"] == 1 for j in jobs)
        again = [j for j in jobs if j["attempts"] > 1]
        stored = sorted(p.name for p in (tmp / "storage" / "results").glob("*"))
        one_result = sum(stored.count(f"{i}.png") == stored.count(f"{i}-before.png") == 1 for i in ids)
        logged_once = sum(len(re.findall(rf"job {re.escape(i)} succeeded", logged)) == 1 for i in ids)
        per_worker = {}
        for j in jobs:
            per_worker[j["worker"]] = per_worker.get(j["worker"], 0) + 1
        latency_s = [(j["elapsed_ms"]) / 1000 for j in jobs if j["status"] == "succeeded"]
        run_ms = [sum(j["timings_ms"].values()) for j in jobs if j["status"] == "succeeded"]

        rows = [
            ["jobs submitted / succeeded / failed", f"{len(ids)} / {succeeded} / {len(ids) - succeeded}"],
            ["claimed once (attempts = 1) / logged succeeded once / one result pair",
             f"{once} / {logged_once} / {one_result}"],
            ["workers (jobs each)", ", ".join(f"{w}: {n}" for w, n in sorted(per_worker.items(), key=str))],
            ["submission time, s (mean ms each)", f"{submitted:.1f} ({statistics.mean(submit_ms):.1f})"],
            ["first created → last finished, s", f"{wall:.1f}"],
            ["throughput, jobs/s", f"{succeeded / wall:.2f}"],
            ["job latency created→finished p50 / p99, s",
             f"{percentile(latency_s, 50):.1f} / {percentile(latency_s, 99):.1f}"],
            ["pipeline+store ms per job p50 / p99", f"{percentile(run_ms, 50):.0f} / {percentile(run_ms, 99):.0f}"],
            [f"status polls at {args.poll_rate:g}/s: count / errors", f"{len(poll_ms)} / {poll_errors}"],
            ["status poll latency p50 / p99 / max, ms",
             f"{percentile(poll_ms, 50):.1f} / {percentile(poll_ms, 99):.1f} / {max(poll_ms, default=0):.1f}"],
        ]
        if args.kill_at:
            def after_kill(job: dict, key: str) -> str:
                return f"{(dt.datetime.fromisoformat(job[key]) - killed_at).total_seconds():.1f}"

            rows.append([f"worker SIGKILLed after submission {args.kill_at}: jobs claimed again (attempts)",
                         ", ".join(f"{j['id'][:6]}… ({j['attempts']})" for j in again) or "none"])
            rows.append(["kill → re-claimed / → succeeded, s",
                         "; ".join(f"{after_kill(j, 'started_at')} / {after_kill(j, 'finished_at')}" for j in again)])
        print(table(["measure", "value"], rows))
        # Only a job the killed worker held may run twice; each leaves one result.
        ok = succeeded == logged_once == one_result == len(ids) and len(again) <= (1 if args.kill_at else 0)
        path = save("load", {
            "jobs": args.jobs, "workers": args.workers, "poll_rate": args.poll_rate, "kill_at": args.kill_at,
            "ok": ok, "succeeded": succeeded, "claimed_once": once, "logged_once": logged_once,
            "one_result": one_result, "per_worker": per_worker,
            "claimed_again": [{k: j[k] for k in ("id", "attempts", "started_at", "finished_at")} for j in again],
            "submit_s": round(submitted, 2), "wall_s": round(wall, 2),
            "latency_s": {"p50": percentile(latency_s, 50), "p99": percentile(latency_s, 99)},
            "poll_ms": {"count": len(poll_ms), "errors": poll_errors, "p50": percentile(poll_ms, 50),
                        "p99": percentile(poll_ms, 99), "max": max(poll_ms, default=0)},
        })
        print(f"\n{'OK' if ok else 'FAILED'}: written {path.relative_to(ROOT)}")
        return 0 if ok else 1
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())
