"""`run_job(job_id)`: claim the job, run the pipeline stage by stage, store the files.

The jobs row is the source of truth: every stage entered is committed as it happens, and
the outcome is `succeeded` or `failed` with a code and a message safe to show. Bad input
and missing or damaged models fail at once; only transient trouble (database, storage,
network) is retried, with backoff. TensorFlow is imported by this module's functions only.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError
from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from flask import current_app
from sqlalchemy import or_, select, update
from sqlalchemy.exc import OperationalError

from pipeline import CropBox, InputError, IntakeLimits, ModelError, TranslateOptions, direction_status
from webapp.extensions import db
from webapp.models import Job, JobStatus, iso, utcnow
from webapp.storage import storage

if TYPE_CHECKING:
    from pipeline.registry import ModelRegistry
    from pipeline.translate import TranslateResult

log = logging.getLogger(__name__)

#: Worth another try later: the database, the storage or the network was briefly away.
TRANSIENT_ERRORS = (OperationalError, OSError, BotoCoreError, ClientError)

_registry: ModelRegistry | None = None


def registry() -> ModelRegistry:
    """This process's model registry (models stay loaded for the life of the process)."""
    global _registry
    if _registry is None:
        from pipeline.registry import ModelRegistry, best_precision

        precision = current_app.config.get("INFERENCE_PRECISION", "auto")
        _registry = ModelRegistry(Path(current_app.config["MODEL_DIR"]), current_app.config["RDN_MODEL"],
                                  precision=best_precision() if precision == "auto" else precision)
    return _registry


def warm_up() -> None:
    """Load and trace every installed model now, so that no job pays for it."""
    started = time.perf_counter()
    warmed = []
    for status in direction_status(Path(current_app.config["MODEL_DIR"])):
        if not status.installed:
            continue
        try:
            registry().generator(status.direction).warm_up()
            warmed.append(status.direction.value)
        except ModelError as exc:
            log.error("model for %s cannot be loaded; its jobs will fail: %s", status.direction, exc)
    try:
        registry().rdn().warm_up()
        warmed.append("rdn")
    except ModelError as exc:
        log.warning("no enhancer: %s", exc)
    log.info("models warmed in process %d in %.1fs (%s): %s", os.getpid(), time.perf_counter() - started,
             registry().precision, ", ".join(warmed) or "none")


def lease_seconds(config) -> int:
    """How long a claim holds: JOB_LEASE_SECONDS (by default the hard time limit + 60 s), and
    always longer than the hard time limit, so a job is never taken from a live worker."""
    hard = config["WORKER_HARD_TIME_LIMIT"]
    return max(config.get("JOB_LEASE_SECONDS") or hard + 60, hard + 1)


def claim(job_id: str, worker: str, held_lease: str | None = None) -> Job | None:
    """Mark the job running for `worker`, unless it is finished or another worker holds it.

    One atomic UPDATE, so two deliveries of one job never both run it. A lease longer than
    the hard time limit lets a job whose worker died be claimed again once it expires.
    `held_lease` is given by a retry of an attempt that ended on a transient error without
    being able to release its claim (the database was away): that attempt's own lease, which
    only this retry knows, lets it take the job back at once.
    """
    now = utcnow()
    lease = now + timedelta(seconds=lease_seconds(current_app.config))
    claimable = or_(Job.status == JobStatus.QUEUED, (Job.status == JobStatus.RUNNING) & (Job.lease_until < now))
    if held_lease:
        mine = (Job.status == JobStatus.RUNNING) & (Job.lease_until == datetime.fromisoformat(held_lease))
        claimable = or_(claimable, mine)
    claimed = db.session.execute(
        update(Job)
        .where(Job.public_id == job_id, claimable)
        .values(status=JobStatus.RUNNING, attempts=Job.attempts + 1, worker=worker, started_at=now,
                lease_until=lease, stage=None, stage_started_at={}, timings_ms={},
                error_code=None, error_message=None)
    ).rowcount
    db.session.commit()
    if not claimed:
        log.info("job %s is not claimable (finished, unknown, or held by a live worker); skipped", job_id)
        return None
    return db.session.scalar(select(Job).where(Job.public_id == job_id))


def _enter_stage(job: Job, stage: str) -> None:
    job.stage = stage
    job.stage_started_at = {**job.stage_started_at, stage: iso(utcnow())}
    db.session.commit()


def _translate(job: Job, data: bytes) -> TranslateResult:
    from pipeline.translate import translate

    config = current_app.config
    return translate(
        data,
        job.direction,
        CropBox(*job.crop),
        TranslateOptions(enhance=job.enhance, size=job.size),
        registry=registry(),
        limits=IntakeLimits(config["MAX_UPLOAD_BYTES"], config["MAX_UPLOAD_PIXELS"]),
        on_stage=lambda stage: _enter_stage(job, stage),
        include_before=True,
    )


def _store(job: Job, result: TranslateResult) -> None:
    _enter_stage(job, "store")
    started = time.perf_counter()
    result_key, before_key = f"results/{job.public_id}.png", f"results/{job.public_id}-before.png"
    storage().put(before_key, result.before, result.mime_type)
    storage().put(result_key, result.data, result.mime_type)
    store_ms = round((time.perf_counter() - started) * 1000, 2)
    job.result_key, job.before_key = result_key, before_key
    job.timings_ms = {**result.metadata["timings_ms"], "store": store_ms}
    job.models = result.metadata["models"]
    job.untrained = result.metadata["untrained"]
    job.status, job.finished_at, job.lease_until = JobStatus.SUCCEEDED, utcnow(), None
    db.session.commit()


def _fail(job: Job, code: str, message: str) -> None:
    db.session.rollback()
    job.status, job.finished_at, job.lease_until = JobStatus.FAILED, utcnow(), None
    job.error_code, job.error_message = code, message
    db.session.commit()
    log.warning("job %s failed: %s: %s", job.public_id, code, message)


def _requeue(job: Job) -> bool:
    """Give the job back to the queue while its retry waits (best effort: the database may be
    away); True when that was recorded."""
    try:
        db.session.rollback()
        job.status, job.stage, job.lease_until, job.enqueued_at = JobStatus.QUEUED, None, None, utcnow()
        db.session.commit()
        return True
    except OperationalError:
        db.session.rollback()
        return False


@shared_task(bind=True, name="worker.tasks.run_job", acks_late=True, reject_on_worker_lost=True)
def run_job(self, job_id: str, held_lease: str | None = None) -> None:
    """Run one job to `succeeded` or `failed`; retry only transient errors, with backoff."""
    try:
        job = claim(job_id, self.request.hostname or "worker", held_lease)
    except OperationalError as exc:  # the database is away: keep the message, try again later
        try:
            db.session.rollback()
        except OperationalError:
            pass
        retries = self.request.retries
        log.warning("job %s: database unavailable at claim, retry %d: %s", job_id, retries + 1, exc)
        raise self.retry(exc=exc, countdown=min(2 ** (retries + 1), 60),
                         max_retries=current_app.config["WORKER_MAX_RETRIES"] + 5) from exc
    if job is None:
        return
    label, my_lease = job.direction_enum.label, iso(job.lease_until)
    try:
        try:
            data = storage().get(job.upload.storage_key)
        except KeyError:
            _fail(job, "original_missing", "the uploaded photo is no longer in storage; please upload it again")
            return
        _store(job, _translate(job, data))
        log.info("job %s succeeded: %s", job_id, job.timings_ms)
    except InputError as exc:
        _fail(job, exc.code.value, exc.message)
    except ModelError as exc:
        log.error("job %s: model error: %s", job_id, exc)
        _fail(job, "model_error", f"the model for {label} is missing or damaged here; the operators have been told")
    except SoftTimeLimitExceeded:
        limit = current_app.config["WORKER_SOFT_TIME_LIMIT"]
        _fail(job, "timeout", f"the translation took longer than {limit} s and was stopped")
    except TRANSIENT_ERRORS as exc:
        retries = self.request.retries
        if retries >= current_app.config["WORKER_MAX_RETRIES"]:
            log.error("job %s: giving up after %d retries: %s", job_id, retries, exc)
            _fail(job, "unavailable", "the service could not finish this job right now; please try again later")
            return
        log.warning("job %s: transient error, retry %d: %s", job_id, retries + 1, exc)
        raise self.retry(exc=exc, countdown=min(2 ** (retries + 1), 60), args=[job_id],
                         kwargs={"held_lease": None if _requeue(job) else my_lease}) from exc
    except Exception:  # noqa: BLE001 - an unknown failure still ends as a readable `failed`
        log.exception("job %s: unexpected error", job_id)
        _fail(job, "internal_error", "the translation failed unexpectedly; the operators have been told")
