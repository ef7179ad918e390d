"""The reconciler: the database is the record, the broker only a delivery service.

Two kinds of job would otherwise wait forever:

- `queued` jobs whose message the broker no longer holds (Redis restarted without its data,
  a send that failed while the broker was down): re-sent once they have been waiting longer
  than RECONCILE_QUEUED_AFTER seconds since they were last sent;
- `running` jobs whose lease has lapsed (their worker was killed, its host died): put back to
  `queued` and re-sent; the next claim counts a new attempt.

Re-sending is always safe: the claim is one atomic UPDATE, so of two deliveries of one job only
one runs it and the other is skipped. Each row is taken by a conditional UPDATE before its id is
sent, so several workers' reconcilers never send the same job twice in one round. The rules
themselves live in `webapp.lifecycle`.
"""

from __future__ import annotations

import logging
import threading

from flask import Flask, current_app
from sqlalchemy import select

from webapp import lifecycle
from webapp.extensions import db
from webapp.models import Job, JobStatus, utcnow
from webapp.queue import enqueue

log = logging.getLogger(__name__)

#: The reconciler never wakes more often than this, however close the next lease end.
MIN_WAIT_SECONDS = 0.2


def reconcile(limit: int = 500) -> dict[str, int]:
    """One round; returns how many jobs were re-sent: {"queued": n, "expired": m}."""
    now = utcnow()
    queued_after = current_app.config["RECONCILE_QUEUED_AFTER"]
    candidates = db.session.execute(
        select(Job.id, Job.public_id, Job.status, Job.enqueued_at)
        .where(lifecycle.stale(now, queued_after)).order_by(Job.id).limit(limit)
    ).all()
    db.session.rollback()
    counts = {"queued": 0, "expired": 0}
    for row_id, public_id, status, enqueued_at in candidates:
        if not lifecycle.take_for_resend(row_id, status, enqueued_at, now, queued_after):
            continue
        try:
            enqueue(public_id)
        except Exception:  # noqa: BLE001 - broker still away: the row stays queued, next round retries
            log.exception("reconciler: could not re-send job %s; will try again", public_id)
            continue
        kind = "queued" if status == JobStatus.QUEUED else "expired"
        counts[kind] += 1
        log.warning("reconciler: re-sent job %s (%s)", public_id,
                    "queued too long" if kind == "queued" else "its lease lapsed: its worker stopped renewing")
    return counts


class Reconciler(threading.Thread):
    """Runs `reconcile()` at start, then every RECONCILE_INTERVAL seconds, and as soon as the
    earliest running job's lease ends (so a dead worker's job is re-sent the moment it may be
    claimed, not up to an interval later), until `stop()`."""

    def __init__(self, app: Flask) -> None:
        super().__init__(name="seasons-reconciler", daemon=True)
        self.app = app
        self.interval = app.config["RECONCILE_INTERVAL"]
        self._stopped = threading.Event()

    def _round(self) -> float:
        """One round; the seconds to wait before the next."""
        try:
            with self.app.app_context():
                reconcile()
                lease_end = lifecycle.next_lease_end()
        except Exception:  # noqa: BLE001 - the database may be away; try again next round
            log.exception("reconciler: round failed; trying again in %ss", self.interval)
            return self.interval
        if lease_end is None:
            return self.interval
        return max(MIN_WAIT_SECONDS, min(self.interval, (lease_end - utcnow()).total_seconds() + MIN_WAIT_SECONDS))

    def run(self) -> None:
        log.info("reconciler: every %ss and at each lease's end, re-sending jobs queued over %ss or past their lease",
                 self.interval, self.app.config["RECONCILE_QUEUED_AFTER"])
        while not self._stopped.wait(self._round()):
            pass

    def stop(self) -> None:
        self._stopped.set()
