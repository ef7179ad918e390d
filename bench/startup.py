"""Worker start-up: launch → models warmed, end to end and phase by phase.

    .venv/bin/python bench/startup.py [--launches 3] [--model-dir models]

End to end: starts a real `celery worker` (prefork, one pool process, the settings the service
tests use: one intra-op thread) on the shipped models, Redis at REDIS_URL and a throwaway SQLite
database, and times launch → "models warmed" in its log, `--launches` times.

Phase by phase: a fresh Python process runs what a pool process runs before its first job, in
order (imports, the precision measurement, each model's load and warm-up), and times each step.
Prints both tables and writes bench/results/startup.json.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import save, table  # noqa: E402

BIN = Path(sys.executable).parent
THREADS = {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
           "OMP_NUM_THREADS": "1"}


def launch(model_dir: Path) -> float:
    """Seconds from `celery worker` launch to its "models warmed" log line."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, **THREADS, "MODEL_DIR": str(model_dir), "INSTANCE_DIR": tmp,
               "DATABASE_URL": f"sqlite:///{tmp}/db.sqlite", "CELERY_QUEUE": f"startup-{secrets.token_hex(4)}",
               "STORAGE_URL": f"{tmp}/storage", "RECONCILE_INTERVAL": "0", "SECRET_KEY": "startup"}
        log = Path(tmp) / "worker.log"
        started = time.perf_counter()
        process = subprocess.Popen(
            [str(BIN / "celery"), "-A", "worker:celery_app", "worker", "--loglevel", "INFO", "--pool", "prefork",
             "--concurrency", "1", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=ROOT, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
        try:
            while "models warmed" not in log.read_text(errors="replace"):
                if process.poll() is not None or time.perf_counter() - started > 120:
                    raise SystemExit(f"worker did not warm up:\n{log.read_text()[-3000:]}")
                time.sleep(0.01)
            return time.perf_counter() - started
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def phases(model_dir: str) -> list[tuple[str, float]]:
    """Run in a fresh process: what a pool process does before its first job, step by step."""
    steps: list[tuple[str, float]] = []
    last = time.perf_counter()

    def step(name: str) -> None:
        nonlocal last
        now = time.perf_counter()
        steps.append((name, now - last))
        last = now

    import worker  # noqa: F401 - Celery, Flask, SQLAlchemy and the app, as the main process imports them
    step("import worker (Celery, Flask app, database models)")
    import tensorflow as tf  # noqa: F401
    step("import TensorFlow")
    from pipeline.registry import ModelRegistry, choose_precision
    step("import Keras, pipeline.registry and networks")
    choice = choose_precision("auto")
    step(f"measure precision: {choice.describe()}")
    from pipeline import direction_status
    registry = ModelRegistry(Path(model_dir), precision=choice)
    for status in direction_status(Path(model_dir)):
        model = registry.generator(status.direction)
        step(f"load {status.direction.value} ({model.self_ensemble})")
        model.warm_up()
        step(f"warm up {status.direction.value}")
    rdn = registry.rdn()
    step("load rdn")
    rdn.warm_up()
    step("warm up rdn")
    return steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--launches", type=int, default=3)
    parser.add_argument("--model-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--phases-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phases_only:
        print(json.dumps(phases(str(args.model_dir))))
        return 0

    out = subprocess.run([sys.executable, __file__, "--phases-only", "--model-dir", str(args.model_dir)],
                         cwd=ROOT, env={**os.environ, **THREADS}, capture_output=True, text=True, check=True)
    steps = json.loads(out.stdout.strip().splitlines()[-1])
    total = sum(seconds for _, seconds in steps)
    print(table(["phase (one process, in order)", "s", "share"],
                [[name, f"{seconds:.2f}", f"{seconds / total:.0%}"] for name, seconds in steps]
                + [["all", f"{total:.2f}", ""]]))
    launches = [launch(args.model_dir) for _ in range(args.launches)]
    print(table(["launch", "launch → models warmed, s"], [[n + 1, f"{s:.2f}"] for n, s in enumerate(launches)]))
    print(f"\nwritten to {save('startup', {'phases': steps, 'launches': launches})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
