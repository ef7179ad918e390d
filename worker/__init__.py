"""The Celery worker process: `celery -A worker:celery_app worker`.

The Flask app is built first (the Flask docs' Celery pattern), so the task runs inside its
app context with the same config, database and storage as the web.
"""

from __future__ import annotations

from celery.signals import worker_process_init, worker_ready, worker_shutdown

from webapp import create_app
from webapp.extensions import db
from webapp.reconcile import Reconciler

flask_app = create_app()
celery_app = flask_app.extensions["celery"]

from worker import tasks  # noqa: E402 - registers run_job on celery_app


@worker_process_init.connect
def _load_models(**_: object) -> None:
    """Each pool process loads and warms its models once, before it takes a job."""
    with flask_app.app_context():
        db.engine.dispose(close=False)  # never share a parent's database connections after fork
        tasks.warm_up()


_reconciler: Reconciler | None = None


@worker_ready.connect
def _start_reconciler(**_: object) -> None:
    """The worker's main process re-sends jobs the broker lost or a dead worker left behind."""
    global _reconciler
    if flask_app.config["RECONCILE_INTERVAL"] > 0:
        _reconciler = Reconciler(flask_app)
        _reconciler.start()


@worker_shutdown.connect
def _stop_reconciler(**_: object) -> None:
    if _reconciler is not None:
        _reconciler.stop()
