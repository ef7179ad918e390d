"""Every setting of the web and the workers, read from the environment in one place.

Defaults make an embedded install that needs no server: SQLite and local storage under
instance/, and Redis only when one answers (else a broker kept in SQLite). The README's
configuration table lists the same variables (tests/test_readme.py holds it to this file).
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

from pipeline.intake import IntakeLimits
from pipeline.options import MAX_OUTPUT_SIDE as DEFAULT_MAX_OUTPUT_SIDE

basedir = Path(__file__).resolve().parent
instance_dir = Path(os.environ.get("INSTANCE_DIR") or basedir / "instance")

log = logging.getLogger("seasons.config")


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def database_url(url: str | None) -> str:
    """DATABASE_URL with PostgreSQL pointed at psycopg 3 (the driver we install)."""
    if not url:
        return f"sqlite:///{instance_dir / 'seasons.sqlite'}"
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def redis_answers(url: str, timeout: float = 0.5) -> bool:
    """True when a Redis server answers PING at `url` (used to choose the default broker)."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
    except OSError:
        return False
    # "-NOAUTH" also means a Redis is there; the broker URL then needs its password.
    return reply.startswith((b"+PONG", b"-NOAUTH"))


def resolve_broker_url() -> str:
    """CELERY_BROKER_URL, else Redis at REDIS_URL if it answers, else kombu's SQLite transport.

    Said plainly in the log: the two defaults behave differently under load.
    """
    explicit = os.environ.get("CELERY_BROKER_URL")
    if explicit:
        return explicit
    redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    if redis_answers(redis_url):
        log.warning("broker: Redis answers at %s; using it (set CELERY_BROKER_URL to choose)", redis_url)
        return redis_url
    broker = f"sqla+sqlite:///{instance_dir / 'broker.sqlite'}"
    log.warning(
        "broker: no Redis answers at %s; using the server-less SQLite broker %s "
        "(fine for one host; set CELERY_BROKER_URL for more)", redis_url, broker,
    )
    return broker


class Config:
    """The production settings; tests and tools override single keys with a mapping."""

    SECRET_KEY = os.environ.get("SECRET_KEY")  # None: generated once into instance/secret_key
    SQLALCHEMY_DATABASE_URI = database_url(os.environ.get("DATABASE_URL"))
    # A connection that died while the database was away is noticed and replaced, not handed out.
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}

    # Broker: None means "resolve at start" (see resolve_broker_url).
    CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL")
    CELERY_QUEUE = os.environ.get("CELERY_QUEUE") or "seasons"

    # "s3://bucket/prefix" (endpoint from S3_ENDPOINT_URL, credentials the AWS way) or a directory.
    STORAGE_URL = os.environ.get("STORAGE_URL") or str(instance_dir / "storage")
    S3_ENDPOINT_URL = os.environ.get("S3_ENDPOINT_URL")
    S3_REGION = os.environ.get("S3_REGION") or "us-east-1"

    MODEL_DIR = os.environ.get("MODEL_DIR") or str(basedir / "models")
    RDN_MODEL = os.environ.get("RDN_MODEL")  # None: the one RDN installed
    #: auto = bfloat16 where the CPU computes it natively (AVX-512 BF16/AMX), else float32
    INFERENCE_PRECISION = os.environ.get("INFERENCE_PRECISION", "auto")

    MAX_UPLOAD_BYTES = _int("MAX_UPLOAD_BYTES", IntakeLimits.max_bytes)
    MAX_UPLOAD_PIXELS = _int("MAX_UPLOAD_PIXELS", IntakeLimits.max_pixels)
    #: Cap on a result's side in px: a `full` result of a larger crop is made at the cap.
    MAX_OUTPUT_SIDE = _int("MAX_OUTPUT_SIDE", DEFAULT_MAX_OUTPUT_SIDE)

    WORKER_SOFT_TIME_LIMIT = _int("WORKER_SOFT_TIME_LIMIT", 300)
    WORKER_HARD_TIME_LIMIT = _int("WORKER_HARD_TIME_LIMIT", 360)
    WORKER_MAX_RETRIES = _int("WORKER_MAX_RETRIES", 5)
    #: A worker's claim on a running job lasts JOB_LEASE_SECONDS from its last renewal; the worker
    #: renews it every JOB_LEASE_RENEW_SECONDS (at most half the lease) while the job runs. A job
    #: whose worker stopped renewing (killed, host gone) may be claimed again once the lease lapses.
    JOB_LEASE_SECONDS = _int("JOB_LEASE_SECONDS", 20)
    JOB_LEASE_RENEW_SECONDS = _int("JOB_LEASE_RENEW_SECONDS", 5)

    #: The reconciler (a timer thread in every worker's main process) re-sends to the broker
    #: jobs queued longer than RECONCILE_QUEUED_AFTER seconds since they were last sent (the
    #: broker lost them: Redis restarted without its data) and jobs whose lease has lapsed
    #: (their worker died). Every RECONCILE_INTERVAL seconds and at the earliest lease's end;
    #: 0 turns it off.
    RECONCILE_INTERVAL = _int("RECONCILE_INTERVAL", 10)
    RECONCILE_QUEUED_AFTER = _int("RECONCILE_QUEUED_AFTER", 900)

    #: public: /history and GET /api/jobs list every job (a public gallery, the default);
    #: none: no listing at all, each job is reachable only through its unguessable id.
    HISTORY_VISIBILITY = os.environ.get("HISTORY_VISIBILITY") or "public"

    JOB_RATE_LIMIT = os.environ.get("JOB_RATE_LIMIT") or "30 per minute"
    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI")  # None: Redis if the broker is, else memory
