"""Shared bench helpers: machine facts, timing, a plain-text table and a JSON record."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    """What the figures were measured on."""
    cpu = "unknown"
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu == "unknown":
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    versions = {"python": platform.python_version()}
    for module in ("tensorflow", "keras", "numpy", "PIL", "torch"):
        try:
            versions[module] = __import__(module).__version__
        except ImportError:
            pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "avx512_bf16": "avx512_bf16" in flags,
        "avx512_vnni": "avx512_vnni" in flags,
        "versions": versions,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def timed(fn: Callable[[], object]) -> float:
    """Wall time of one call, in milliseconds."""
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def warm_ms(fn: Callable[[], object], repeats: int = 5) -> float:
    """Median of `repeats` calls after the first (which the caller has timed as cold)."""
    return statistics.median(timed(fn) for _ in range(repeats))


def interleaved_warm_ms(fns: dict[str, Callable[[], object]], repeats: int = 5) -> dict[str, float]:
    """Median warm ms of each callable, timed in rounds so that load from other processes
    falls on all of them alike and their ratios stay fair on a shared machine.

    In each round every callable runs twice and only the second call is timed: the first
    absorbs what the previous one left behind (PyTorch's OpenMP threads spin on after a
    call, and would otherwise be charged to the next framework's call).
    """
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            fn()
            times[name].append(timed(fn))
    return {name: statistics.median(t) for name, t in times.items()}


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "-|-".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return str(value)


def save(name: str, record: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **record}, indent=2) + "\n")
    return path
