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
from pathlib import Path
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError
from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from flask import current_app
from sqlalchemy.exc import OperationalError

from pipeline import CropBox, InputError, ModelError, TranslateOptions, direction_status
from webapp import lifecycle
from webapp.extensions import db
from webapp.jobs import intake_limits
from webapp.models import Job
from webapp.queue import RUN_JOB
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
        from pipeline.registry import ModelRegistry, choose_precision

        choice = choose_precision(current_app.config["INFERENCE_PRECISION"])
        log.info("inference precision in process %d: %s", os.getpid(), choice.describe())
        _registry = ModelRegistry(Path(current_app.config["MODEL_DIR"]), current_app.config["RDN_MODEL"], choice)
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


def _lease_terms() -> lifecycle.LeaseTerms:
    return lifecycle.LeaseTerms.of(current_app.config)


def _translate(job: Job, held: lifecycle.Claim, data: bytes) -> TranslateResult:
    from pipeline.translate import translate

    return translate(
        data,
        job.direction,
        CropBox(*job.crop),
        TranslateOptions(enhance=job.enhance, size=job.size),
        registry=registry(),
        limits=intake_limits(),
        on_stage=lambda stage: lifecycle.enter_stage(job, held, stage, _lease_terms()),
        include_before=True,
        max_side=current_app.config["MAX_OUTPUT_SIDE"],
    )


def _store(job: Job, held: lifecycle.Claim, result: TranslateResult) -> None:
    lifecycle.enter_stage(job, held, "store", _lease_terms())
    started = time.perf_counter()
    result_key, before_key = f"results/{job.public_id}.png", f"results/{job.public_id}-before.png"
    storage().put(before_key, result.before, result.mime_type)
    storage().put(result_key, result.data, result.mime_type)
    store_ms = round((time.perf_counter() - started) * 1000, 2)
    lifecycle.succeed(held, result_key=result_key, before_key=before_key,
                      timings_ms={**result.metadata["timings_ms"], "store": store_ms},
                      models=result.metadata["models"], untrained=result.metadata["untrained"])
    log.info("job %s succeeded: %s", held.job_id, {**result.metadata["timings_ms"], "store": store_ms})


def _retry_countdown(retries: int) -> int:
    """Backoff before retry `retries + 1`: 2, 4, 8… seconds, at most a minute."""
    return min(2 ** (retries + 1), 60)


@shared_task(bind=True, name=RUN_JOB)
def run_job(self, job_id: str, held_attempt: int | None = None) -> None:
    """Run one job to `succeeded` or `failed`; retry only transient errors, with backoff.

    Acks late and rejects on a lost worker (`webapp.queue.celery_config`): a job whose worker
    died is delivered again, and claimed again once its lease has lapsed.
    """
    terms = _lease_terms()
    try:
        claimed = lifecycle.claim(job_id, self.request.hostname or "worker", terms, held_attempt)
    except OperationalError as exc:  # the database is away: keep the message, try again later
        try:
            db.session.rollback()
        except OperationalError:
            pass
        retries = self.request.retries
        log.warning("job %s: database unavailable at claim, retry %d: %s", job_id, retries + 1, exc)
        raise self.retry(exc=exc, countdown=_retry_countdown(retries),
                         max_retries=current_app.config["WORKER_MAX_RETRIES"] + 5) from exc
    if claimed is None:
        return
    job, held = claimed
    heartbeat = lifecycle.Heartbeat(db.engine, held, terms)
    heartbeat.start()
    try:
        _run(self, job, held)
    except lifecycle.ClaimLost as exc:
        log.warning("%s; stopped without recording anything", exc)
    finally:
        heartbeat.stop()


def _run(task, job: Job, held: lifecycle.Claim) -> None:
    label = job.direction_enum.label
    try:
        try:
            data = storage().get(job.upload.storage_key)
        except KeyError:
            lifecycle.fail(held, "original_missing",
                           "the uploaded photo is no longer in storage; please upload it again")
            return
        _store(job, held, _translate(job, held, data))
    except InputError as exc:
        lifecycle.fail(held, exc.code.value, exc.message)
    except ModelError as exc:
        log.error("job %s: model error: %s", held.job_id, exc)
        lifecycle.fail(held, "model_error",
                       f"the model for {label} is missing or damaged here; the operators have been told")
    except SoftTimeLimitExceeded:
        limit = current_app.config["WORKER_SOFT_TIME_LIMIT"]
        lifecycle.fail(held, "timeout", f"the translation took longer than {limit} s and was stopped")
    except lifecycle.ClaimLost:
        raise
    except TRANSIENT_ERRORS as exc:
        retries = task.request.retries
        if retries >= current_app.config["WORKER_MAX_RETRIES"]:
            log.error("job %s: giving up after %d retries: %s", held.job_id, retries, exc)
            lifecycle.fail(held, "unavailable",
                           "the service could not finish this job right now; please try again later")
            return
        log.warning("job %s: transient error, retry %d: %s", held.job_id, retries + 1, exc)
        raise task.retry(exc=exc, countdown=_retry_countdown(retries), args=[held.job_id],
                         kwargs={"held_attempt": None if lifecycle.give_back(held) else held.attempt}) from exc
    except Exception:  # noqa: BLE001 - an unknown failure still ends as a readable `failed`
        log.exception("job %s: unexpected error", held.job_id)
        lifecycle.fail(held, "internal_error", "the translation failed unexpectedly; the operators have been told")
