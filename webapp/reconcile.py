"""The reconciler: the database is the record, the broker only a delivery service.

Two kinds of job would otherwise wait forever:

- `queued` jobs whose message the broker no longer holds (Redis restarted without its data,
  a send that failed while the broker was down): re-sent once they have been waiting longer
  than RECONCILE_QUEUED_AFTER seconds since they were last sent;
- `running` jobs whose lease has expired (their worker was killed, its host died): put back to
  `queued` and re-sent; the next claim counts a new attempt.

Re-sending is always safe: the worker's claim is one atomic UPDATE, so of two deliveries of
one job only one runs it and the other is skipped. Each row is taken by a conditional UPDATE
before its id is sent, so several workers' reconcilers never send the same job twice in one round.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from flask import Flask, current_app
from sqlalchemy import and_, func, or_, select, update

from webapp.extensions import db
from webapp.models import Job, JobStatus, utcnow
from webapp.queue import enqueue

log = logging.getLogger(__name__)


def reconcile(limit: int = 500) -> dict[str, int]:
    """One round; returns how many jobs were re-sent: {"queued": n, "expired": m}."""
    now = utcnow()
    queued_before = now - timedelta(seconds=current_app.config["RECONCILE_QUEUED_AFTER"])
    last_sent = func.coalesce(Job.enqueued_at, Job.created_at)
    stale = or_(
        and_(Job.status == JobStatus.QUEUED, last_sent < queued_before),
        and_(Job.status == JobStatus.RUNNING, Job.lease_until < now),
    )
    candidates = db.session.execute(
        select(Job.id, Job.public_id, Job.status, Job.enqueued_at).where(stale).order_by(Job.id).limit(limit)
    ).all()
    db.session.rollback()
    counts = {"queued": 0, "expired": 0}
    for row_id, public_id, status, enqueued_at in candidates:
        # Take the row only if nobody changed it meanwhile (a worker claimed it, another reconciler
        # took it): the same condition again, plus the enqueued_at we read.
        same = Job.enqueued_at.is_(None) if enqueued_at is None else Job.enqueued_at == enqueued_at
        taken = db.session.execute(
            update(Job).where(Job.id == row_id, Job.status == status, same, stale)
            .values(status=JobStatus.QUEUED, stage=None, lease_until=None, enqueued_at=now)
        ).rowcount
        db.session.commit()
        if not taken:
            continue
        try:
            enqueue(public_id)
        except Exception:  # noqa: BLE001 - broker still away: the row stays queued, next round retries
            log.exception("reconciler: could not re-send job %s; will try again", public_id)
            continue
        kind = "queued" if status == JobStatus.QUEUED else "expired"
        counts[kind] += 1
        log.warning("reconciler: re-sent job %s (%s)", public_id,
                    "queued too long" if kind == "queued" else "running past its lease: its worker is gone")
    return counts


class Reconciler(threading.Thread):
    """Runs `reconcile()` every RECONCILE_INTERVAL seconds until `stop()`."""

    def __init__(self, app: Flask) -> None:
        super().__init__(name="seasons-reconciler", daemon=True)
        self.app = app
        self.interval = app.config["RECONCILE_INTERVAL"]
        self._stopped = threading.Event()

    def run(self) -> None:
        log.info("reconciler: every %ss, re-sending jobs queued over %ss or past their lease",
                 self.interval, self.app.config["RECONCILE_QUEUED_AFTER"])
        while not self._stopped.wait(self.interval):
            try:
                with self.app.app_context():
                    reconcile()
            except Exception:  # noqa: BLE001 - the database may be away; try again next round
                log.exception("reconciler: round failed; trying again in %ss", self.interval)

    def stop(self) -> None:
        self._stopped.set()
