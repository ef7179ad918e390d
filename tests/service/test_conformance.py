"""The JSON API holds to its own OpenAPI document: schemathesis, every check and every phase
(the stateful one follows the links from a submission to the job and its files), against the
real stack — gunicorn and a Celery worker with tiny models (tests.browser.stack).

Bounded by examples per operation, not by time, so a seed replays the same run: the test prints
its command line; `CONFORMANCE_SEED=N` reruns it with seed N.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from pathlib import Path

import pytest

from tests.browser.stack import BIN, REDIS_URL, ROOT, LiveStack

pytestmark = pytest.mark.slow

CONFIG = Path(__file__).with_name("schemathesis.toml")
MAX_EXAMPLES = 25
#: A small upload limit keeps the cases just over it (413 file_too_large) small too.
MAX_UPLOAD_BYTES = 200_000


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    from config import redis_answers

    if not redis_answers(REDIS_URL):
        pytest.skip(f"no Redis answers at {REDIS_URL}")
    stack = LiveStack(tmp_path_factory.mktemp("conformance"))
    stack.env["MAX_UPLOAD_BYTES"] = str(MAX_UPLOAD_BYTES)
    yield stack.start()
    stack.stop()


def test_the_api_holds_to_its_openapi_document(stack):
    seed = int(os.environ.get("CONFORMANCE_SEED") or secrets.randbelow(2**32))
    command = [
        str(BIN / "st"), "--config-file", str(CONFIG.relative_to(ROOT)), "run", f"{stack.url}/api/openapi.json",
        "--checks", "all", "--phases", "examples,coverage,fuzzing,stateful", "--max-examples", str(MAX_EXAMPLES),
        "--seed", str(seed), "--generation-database", "none", "--request-timeout", "30", "--no-color",
    ]
    print(f"schemathesis seed {seed}: {' '.join(command)}")
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240)
    print(f"{done.stdout[done.stdout.find(' Examples ('):]}\n(schemathesis ran {time.monotonic() - started:.1f} s)")
    assert done.returncode == 0, f"seed {seed}; replay: {' '.join(command)}\n{done.stdout[-8000:]}{done.stderr[-2000:]}"
