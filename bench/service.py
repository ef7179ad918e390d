"""The service end to end: HTTP → database → broker → worker → storage, with warm workers.

    .venv/bin/python bench/service.py [--models shipped|full|tiny] [--jobs 12] [--clients 4] [--poll 0.02]
                                      [--sequential 10]

Starts, on loopback only, gunicorn (the Procfile's web command, 2 workers) and Celery
workers (the test suite's `Worker`: prefork, one single-threaded pool process each) over a
SQLite database migrated with `flask db upgrade`, local storage and a Redis queue of its
own, all under a temporary directory; models are random weights (time does not depend on
their values) written in a subprocess: `full` = the default architectures (ResNet-9 ngf 64
for all six directions, the CPU RDN C3-D4-G32-G032), `tiny` = `pipeline init-random`'s;
`shipped` serves the trained models in the repository's models/ as they are.

- cold start: worker launch → pool process has loaded and warmed every model (import +
  load + warm-up), and the load+warm-up part alone, as the worker logs it;
- overhead: jobs one at a time from one client; per job, the server's elapsed time (created
  → finished) and the client's (POST → the poll that sees it finished, polling every 20
  ms), each minus the pipeline's own stage time (timings_ms: decode, crop, networks,
  encode) = what the service adds (HTTP, database, broker, queueing, store); p50 / p95;
- throughput: `--clients` concurrent clients each submitting and waiting for jobs, with 1
  and then 2 worker processes; jobs/s and the workers' RSS (main + pool process).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import save, table  # noqa: E402
from tests.service.conftest import (  # noqa: E402
    BIN,
    REDIS_URL,
    Worker,
    flask_cli,
    free_port,
    jpeg_bytes,
    scratch_postgres,
    service_env,
)

MODELS = {
    "shipped": None,
    "full": ({"ngf": 64, "n_blocks": 9}, {"C": 3, "D": 4, "G": 32, "G0": 32, "x": 2}),
    "tiny": (None, None),
}
PIPELINE_STAGES = ("decode", "crop", "generator", "rdn", "encode")
_seeds = iter(range(10**6))
_seed_lock = threading.Lock()


def write_models(model_dir: Path, kind: str) -> None:
    generator, rdn = MODELS[kind]
    code = ("import sys; from pipeline.registry import write_random_models; "
            f"write_random_models(sys.argv[1], {generator!r}, {rdn!r})")
    subprocess.run([sys.executable, "-c", code, str(model_dir)], cwd=ROOT, check=True,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


class Web:
    """gunicorn as the Procfile runs it, on a free loopback port."""

    def __init__(self, settings: dict[str, str], instance: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log, "wb")
        self.process = subprocess.Popen(
            [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{self.port}", "--workers", "2", "webapp:create_app()"],
            cwd=ROOT, env=service_env(settings, instance), stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{self.url}/api/directions", timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise SystemExit(f"gunicorn did not start; see {log}")
            time.sleep(0.2)

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(30)
        self._log.close()


def run_job(url: str, timings: list[dict], poll_s: float = 0.02, timeout: float = 300) -> None:
    """Submit one distinct photo, poll until it has finished, record the times."""
    with _seed_lock:
        seed = next(_seeds)
    photo = jpeg_bytes(seed=seed % 250, width=640 + 4 * (seed // 250))  # distinct bytes: no dedup
    with requests.Session() as session:
        start = time.perf_counter()
        response = session.post(f"{url}/api/jobs", files={"file": ("photo.jpg", photo, "image/jpeg")},
                                 data={"direction": "summer2winter"}, timeout=60)
        response.raise_for_status()
        location = url + response.headers["Location"]
        deadline = time.monotonic() + timeout
        while True:
            job = session.get(location, timeout=60).json()
            if job["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
                break
            time.sleep(poll_s)
        client_ms = (time.perf_counter() - start) * 1000
    if job["status"] != "succeeded":
        raise SystemExit(f"job did not succeed: {job}")
    stages = job["timings_ms"]
    created, started, finished = (dt.datetime.fromisoformat(job[k])
                                  for k in ("created_at", "started_at", "finished_at"))
    timings.append({"client_ms": client_ms, "server_ms": job["elapsed_ms"],
                    "queue_ms": (started - created).total_seconds() * 1000,
                    "in_worker_ms": (finished - started).total_seconds() * 1000,
                    "pipeline_ms": sum(stages.get(s, 0) for s in PIPELINE_STAGES),
                    "networks_ms": stages.get("generator", 0) + stages.get("rdn", 0),
                    "store_ms": stages.get("store", 0), "worker": job["worker"]})


def rss_mb(worker: Worker) -> dict:
    """RSS of a celery worker's main process and of its pool process(es), in MB."""
    main = psutil.Process(worker.process.pid)
    children = main.children(recursive=True)
    return {"main_mb": main.memory_info().rss / 2**20, "pool_mb": [c.memory_info().rss / 2**20 for c in children]}


def cpu_seconds(process: psutil.Process, children: bool = True) -> float:
    """User + system CPU seconds of a process and (alive) children."""
    total = 0.0
    for p in [process, *(process.children(recursive=True) if children else [])]:
        try:
            times = p.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def cpu_by_part(web: Web, workers: list[Worker]) -> dict[str, float]:
    """CPU seconds so far of each part on the machine: workers, gunicorn, Redis, the bench's clients
    (its own process: the client threads)."""
    redis = [p for p in psutil.process_iter(["name"]) if p.info["name"] == "redis-server"]
    return {"workers": sum(cpu_seconds(psutil.Process(w.process.pid)) for w in workers),
            "web": cpu_seconds(psutil.Process(web.process.pid)),
            "redis": sum(cpu_seconds(p) for p in redis),
            "clients": cpu_seconds(psutil.Process(), children=False)}  # web and workers are its children


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def start_worker(settings: dict, instance: Path, log: Path) -> tuple[Worker, dict]:
    started = time.perf_counter()
    worker = Worker(settings, instance, log)
    worker.wait_ready(timeout=600)
    launch_to_ready = time.perf_counter() - started
    warmed = re.search(r"models warmed in process \d+ in ([\d.]+)s \((\w+)\)", worker.log())
    return worker, {"launch_to_warm_s": launch_to_ready, "load_and_warm_up_s": float(warmed.group(1)),
                    "precision": warmed.group(2), **rss_mb(worker)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", choices=MODELS, default="full")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite",
                        help="SQLite in a temporary folder (the embedded default) or a scratch database on "
                             "the local PostgreSQL (what a deployment with several workers uses)")
    parser.add_argument("--sequential", type=int, default=10, help="jobs one at a time (overhead)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (throughput)")
    parser.add_argument("--jobs", type=int, default=12, help="jobs per throughput run")
    parser.add_argument("--poll", type=float, default=0.02,
                        help="seconds between a throughput client's status polls (the web page polls ~1 s; "
                             "at 20 ms, 4 clients send 200 requests/s that the same cores must serve)")
    args = parser.parse_args()

    record: dict = {"args": vars(args), "cold_start": [], "throughput": []}
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="seasons-bench-")))
        database_url = (stack.enter_context(scratch_postgres("seasons_bench")) if args.database == "postgresql"
                        else f"sqlite:///{tmp / 'seasons.sqlite'}")
        instance = tmp / "instance"
        instance.mkdir()
        if args.models == "shipped":
            model_dir = ROOT / "models"
        else:
            model_dir = tmp / "models"
            write_models(model_dir, args.models)
        settings = {"MODEL_DIR": str(model_dir), "STORAGE_URL": str(tmp / "storage"),
                    "DATABASE_URL": database_url, "CELERY_BROKER_URL": REDIS_URL,
                    "CELERY_QUEUE": f"seasons-bench-{secrets.token_hex(4)}", "JOB_RATE_LIMIT": "100000 per minute",
                    "RECONCILE_INTERVAL": "0"}
        migrated = flask_cli(settings, instance, "db", "upgrade")
        if migrated.returncode:
            raise SystemExit(migrated.stderr)
        web = Web(settings, instance, tmp / "web.log")
        workers: list[Worker] = []
        try:
            worker, cold = start_worker(settings, instance, tmp / "worker0.log")
            workers.append(worker)
            record["cold_start"].append(cold)

            run_job(web.url, [])  # the first job through a fresh web process and worker
            sequential: list[dict] = []
            for _ in range(args.sequential):
                run_job(web.url, sequential)
            record["sequential"] = sequential

            for n_workers in (1, 2):
                if n_workers == 2:
                    worker, cold = start_worker(settings, instance, tmp / "worker1.log")
                    workers.append(worker)
                    record["cold_start"].append(cold)
                done: list[dict] = []
                per_client = [args.jobs // args.clients + (i < args.jobs % args.clients) for i in range(args.clients)]
                threads = [threading.Thread(target=lambda k=k, done=done: [run_job(web.url, done, args.poll)
                                                                           for _ in range(k)])
                           for k in per_client]
                cpu_before = cpu_by_part(web, workers)
                started = time.perf_counter()
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                wall = time.perf_counter() - started
                cpu_after = cpu_by_part(web, workers)
                record["throughput"].append({
                    "workers": n_workers, "clients": args.clients, "poll_s": args.poll, "jobs": len(done),
                    "wall_s": wall,
                    "jobs_per_s": len(done) / wall,
                    "pipeline_ms_p50": statistics.median(d["pipeline_ms"] for d in done),
                    "client_ms_p50": statistics.median(d["client_ms"] for d in done),
                    "jobs_by_worker": {w: sum(d["worker"] == w for d in done) for w in {d["worker"] for d in done}},
                    "cpu_ms_per_job": {k: (cpu_after[k] - cpu_before[k]) * 1000 / len(done) for k in cpu_after},
                    "rss": [rss_mb(w) for w in workers]})
        finally:
            for worker in workers:
                worker.stop()
            web.stop()

    print(f"models: {args.models}; database {args.database}; precision {record['cold_start'][0]['precision']}\n")
    print(table(["worker", "launch → warm s", "load + warm-up s", "RSS main MB", "RSS pool MB"],
                [[i, c["launch_to_warm_s"], c["load_and_warm_up_s"], c["main_mb"], c["pool_mb"][0]]
                 for i, c in enumerate(record["cold_start"])]))
    rows = []
    for label, key in (("server (created → finished)", "server_ms"), ("client (POST → seen finished)", "client_ms")):
        over = [d[key] - d["pipeline_ms"] for d in sequential]
        over_net = [d[key] - d["networks_ms"] for d in sequential]
        rows.append([label, statistics.median(d[key] for d in sequential),
                     statistics.median(d["pipeline_ms"] for d in sequential),
                     statistics.median(over), percentile(over, 95), statistics.median(over_net)])
    record["overhead"] = rows
    median = lambda key: statistics.median(d[key] for d in sequential)
    print(f"\n{len(sequential)} jobs one at a time; server side p50: created → claimed {median('queue_ms'):.1f} ms, "
          f"claimed → finished {median('in_worker_ms'):.1f} ms of which pipeline {median('pipeline_ms'):.1f} ms "
          f"and store {median('store_ms'):.1f} ms:")
    print(table(["measured from", "total p50 ms", "pipeline p50 ms", "overhead p50 ms", "overhead p95 ms",
                 "total − networks p50 ms"], rows))
    base = record["throughput"][0]["jobs_per_s"]
    print("\nthroughput:")
    print(table(["workers", "clients", "poll s", "jobs", "wall s", "jobs/s", "speed-up", "job p50 ms (client)",
                 "RSS MB"],
                [[t["workers"], t["clients"], t["poll_s"], t["jobs"], t["wall_s"], t["jobs_per_s"],
                  f"{t['jobs_per_s'] / base:.2f}×",
                  t["client_ms_p50"],
                  " + ".join(f"{r['main_mb']:.0f}/{'/'.join(f'{p:.0f}' for p in r['pool_mb'])}" for r in t["rss"])]
                 for t in record["throughput"]]))
    parts = list(record["throughput"][0]["cpu_ms_per_job"])
    print("\nCPU ms per job during each throughput run (all processes of each part; 2 cores = 2,000 ms/s):")
    print(table(["workers", *parts, "all"],
                [[t["workers"], *(t["cpu_ms_per_job"][k] for k in parts), sum(t["cpu_ms_per_job"].values())]
                 for t in record["throughput"]]))
    print(f"\nwritten to {save(f'service-{args.models}', record)}")


if __name__ == "__main__":
    main()
