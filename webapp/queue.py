"""The Celery app bound to the Flask app (the Flask docs' pattern), and enqueuing by task name.

The web only ever sends the task's name and a job id; the worker package holds the task.
"""

from __future__ import annotations

from celery import Celery, Task
from flask import Flask, current_app

RUN_JOB = "worker.tasks.run_job"


def celery_config(app: Flask) -> dict:
    """Celery settings from the app's config: reliable delivery, one job at a time per process."""
    hard = app.config["WORKER_HARD_TIME_LIMIT"]
    broker = app.config["CELERY_BROKER_URL"]
    # Redis delivers a message again when it is not acknowledged within this time: longer than
    # any job may run, so a slow job is never handed to a second worker. (Other transports,
    # such as the SQLite one, take no such option.)
    transport_options = {"visibility_timeout": hard + 120} if broker.startswith(("redis", "rediss")) else {}
    return {
        "broker_url": broker,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": transport_options,
        "task_default_queue": app.config["CELERY_QUEUE"],
        "task_ignore_result": True,  # the jobs table is the source of truth
        "result_backend": None,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # A pool process says "up" only after worker_process_init has loaded and warmed every
        # model; Celery's default 4 s would kill each replacement of a dead pool process (OOM)
        # before it is up, forever.
        "worker_proc_alive_timeout": 180,
        "task_soft_time_limit": app.config["WORKER_SOFT_TIME_LIMIT"],
        "task_time_limit": hard,
        # Fail fast when the broker is down at submit time; the job row stays queued.
        "task_publish_retry_policy": {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
    }


def celery_init_app(app: Flask) -> Celery:
    """Create the Celery app whose tasks run inside the Flask app's context."""

    class FlaskTask(Task):
        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(celery_config(app))
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app


def enqueue(public_id: str) -> None:
    """Hand the job to the workers. Raises when the broker cannot be reached."""
    current_app.extensions["celery"].send_task(RUN_JOB, args=[public_id])
