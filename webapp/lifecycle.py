"""A job's life after it is queued: claim, stages, success or failure, give-back, and the lease.

One home for every rule that decides who may write a job row, called by the worker's task and
by the reconciler alike:

- A **claim** is one atomic UPDATE that takes a `queued` job, or a `running` one whose lease
  has lapsed, and counts an attempt. The attempt number identifies the claim from then on.
- The **lease** is short and renewed: a heartbeat thread in the worker moves `lease_until`
  forward every JOB_LEASE_RENEW_SECONDS while the job runs, and so does every stage write. A
  holder that stops renewing (killed, its host gone) loses the job once the lease lapses, and
  anyone may claim it then: a redelivered message, or the reconciler, which wakes when the
  earliest lease ends.
- Every later write (stage, success, failure, give-back) is conditional on still holding the
  claim (same attempt, still running), so a worker that lost its job to another — its renewals
  could not reach the database for a whole lease — stops at its next write and never records a
  result.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from webapp.extensions import db
from webapp.models import Job, JobStatus, iso, utcnow

log = logging.getLogger(__name__)


class ClaimLost(Exception):
    """This attempt no longer holds its job: another claim took it after the lease lapsed."""


@dataclass(frozen=True)
class LeaseTerms:
    """How long a claim holds without renewal, and how often its holder renews it."""

    seconds: float
    renew_every: float

    @classmethod
    def of(cls, config: Any) -> LeaseTerms:
        """The app's lease settings, refused at start unless renewal fits twice into the lease
        (one missed heartbeat must never cost a live worker its job)."""
        terms = cls(float(config["JOB_LEASE_SECONDS"]), float(config["JOB_LEASE_RENEW_SECONDS"]))
        if not 0 < terms.renew_every <= terms.seconds / 2:
            raise ValueError(f"JOB_LEASE_RENEW_SECONDS ({terms.renew_every:g}) must be above 0 and at most half "
                             f"of JOB_LEASE_SECONDS ({terms.seconds:g})")
        return terms

    def end(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.seconds)


@dataclass
class Claim:
    """One attempt's hold on a job; `until` is the lease's end as last written by this attempt."""

    job_id: str
    attempt: int
    until: datetime

    def held(self) -> ColumnElement[bool]:
        """The rows this claim still holds (none once another attempt took the job)."""
        return and_(Job.public_id == self.job_id, Job.status == JobStatus.RUNNING, Job.attempts == self.attempt)


def lease_lapsed(now: datetime) -> ColumnElement[bool]:
    """Running jobs whose holder stopped renewing: anyone may claim them."""
    return and_(Job.status == JobStatus.RUNNING, Job.lease_until < now)


def claim(job_id: str, worker: str, terms: LeaseTerms, held_attempt: int | None = None) -> tuple[Job, Claim] | None:
    """Mark the job running for `worker` and count an attempt, unless it is finished or held.

    `held_attempt` comes with a retry of an attempt that ended on a transient error without being
    able to give the job back (the database was away): that attempt has stopped, so its retry
    takes the job back at once instead of waiting for the lease.
    """
    now = utcnow()
    claimable = or_(Job.status == JobStatus.QUEUED, lease_lapsed(now))
    if held_attempt is not None:
        claimable = or_(claimable, (Job.status == JobStatus.RUNNING) & (Job.attempts == held_attempt))
    claimed = db.session.execute(
        update(Job)
        .where(Job.public_id == job_id, claimable)
        .values(status=JobStatus.RUNNING, attempts=Job.attempts + 1, worker=worker, started_at=now,
                lease_until=terms.end(now), stage=None, stage_started_at={}, timings_ms={},
                error_code=None, error_message=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    if not claimed:
        log.info("job %s is not claimable (finished, unknown, or held by a live worker); skipped", job_id)
        return None
    job = db.session.scalar(select(Job).where(Job.public_id == job_id))
    return job, Claim(job_id, job.attempts, job.lease_until)


def _write(held: Claim, **values: Any) -> None:
    """One conditional write by the claim's holder; ClaimLost when another attempt has the job."""
    written = db.session.execute(
        update(Job).where(held.held()).values(**values).execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    if not written:
        raise ClaimLost(f"job {held.job_id}: attempt {held.attempt} no longer holds it")


def enter_stage(job: Job, held: Claim, stage: str, terms: LeaseTerms) -> None:
    """Record the stage as it starts (the job page shows it); the write renews the lease too."""
    now = utcnow()
    started = {**job.stage_started_at, stage: iso(now)}
    _write(held, stage=stage, stage_started_at=started, lease_until=terms.end(now))
    held.until = terms.end(now)


def succeed(held: Claim, **results: Any) -> None:
    """The job's outcome: its files, timings and models (`results` are Job columns)."""
    _write(held, status=JobStatus.SUCCEEDED, finished_at=utcnow(), lease_until=None, **results)


def fail(held: Claim, code: str, message: str) -> None:
    """A failure with a stable code and a message safe to show."""
    db.session.rollback()
    _write(held, status=JobStatus.FAILED, finished_at=utcnow(), lease_until=None,
           error_code=code, error_message=message)
    log.warning("job %s failed: %s: %s", held.job_id, code, message)


def give_back(held: Claim) -> bool:
    """Put the job back to `queued` while its retry waits. False when the database could not be
    reached, so the retry must carry the attempt to take its claim back."""
    try:
        db.session.rollback()
        _write(held, status=JobStatus.QUEUED, stage=None, lease_until=None, enqueued_at=utcnow())
    except ClaimLost:
        pass  # another attempt has it already: nothing to give back
    except OperationalError:
        db.session.rollback()
        return False
    return True


class Heartbeat(threading.Thread):
    """Renews a running job's lease every `terms.renew_every` seconds until `stop()`.

    Uses its own connections (the engine's pool), never the task's session. A renewal that meets
    the database away is logged and tried again next beat; the task's own next write then fails
    the same way and the retry rules take over. A renewal that finds the claim gone ends the beat.
    """

    def __init__(self, engine: Engine, held: Claim, terms: LeaseTerms) -> None:
        super().__init__(name=f"lease-{held.job_id}", daemon=True)
        self.engine, self.held, self.terms = engine, held, terms
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(self.terms.renew_every):
            now = utcnow()
            try:
                with self.engine.begin() as conn:
                    renewed = conn.execute(update(Job).where(self.held.held()).values(
                        lease_until=self.terms.end(now))).rowcount
            except OperationalError as exc:
                log.warning("job %s: lease renewal failed, the lease ends at %s: %s",
                            self.held.job_id, iso(self.held.until), exc)
                continue
            if not renewed:
                log.warning("job %s: attempt %d no longer holds it; renewal stopped",
                            self.held.job_id, self.held.attempt)
                return
            self.held.until = self.terms.end(now)

    def stop(self) -> None:
        """No renewal starts after this; one already under way is waited for a beat at most (a
        renewal that lands late matches nothing: the job has been given back or finished)."""
        self._stopped.set()
        self.join(self.terms.renew_every)


def stale(now: datetime, queued_after: float) -> ColumnElement[bool]:
    """What the reconciler re-sends: jobs queued longer than `queued_after` seconds since they
    were last handed to the broker, and jobs whose lease has lapsed."""
    last_sent = func.coalesce(Job.enqueued_at, Job.created_at)
    return or_(and_(Job.status == JobStatus.QUEUED, last_sent < now - timedelta(seconds=queued_after)),
               lease_lapsed(now))


def take_for_resend(row_id: int, status: JobStatus, enqueued_at: datetime | None, now: datetime,
                    queued_after: float) -> bool:
    """Set a stale row `queued` with a fresh `enqueued_at`, only if nobody changed it since it was
    read (a worker claimed it, another reconciler took it); True when this caller took it."""
    same = Job.enqueued_at.is_(None) if enqueued_at is None else Job.enqueued_at == enqueued_at
    taken = db.session.execute(
        update(Job).where(Job.id == row_id, Job.status == status, same, stale(now, queued_after))
        .values(status=JobStatus.QUEUED, stage=None, lease_until=None, enqueued_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return bool(taken)


def next_lease_end() -> datetime | None:
    """When the earliest running job's lease ends, if any job is running."""
    end = db.session.scalar(select(func.min(Job.lease_until)).where(Job.status == JobStatus.RUNNING))
    db.session.rollback()
    return end
