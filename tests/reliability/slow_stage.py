"""Loaded into a test worker with Celery's own `--include` option: makes one stage slow, so a
test can kill the worker while a job is certainly in the middle of it. Production code has
no hook for this; the module wraps `webapp.lifecycle.enter_stage` in the worker's main process
before its pool process is forked.

SLOW_STAGE (default generator) sleeps SLOW_STAGE_SECONDS (default 3) after it is entered;
with SLOW_STAGE_ONCE=<path>, only the first time on this machine (the file marks it done).
"""

from __future__ import annotations

import os
import time

from webapp import lifecycle

_enter_stage = lifecycle.enter_stage
STAGE = os.environ.get("SLOW_STAGE", "generator")
SECONDS = float(os.environ.get("SLOW_STAGE_SECONDS", "3"))
ONCE = os.environ.get("SLOW_STAGE_ONCE")


def _slow_enter_stage(job, held, stage: str, terms) -> None:
    _enter_stage(job, held, stage, terms)
    if stage == STAGE:
        if ONCE:
            try:
                os.close(os.open(ONCE, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return
        time.sleep(SECONDS)


lifecycle.enter_stage = _slow_enter_stage
