"""The Seasons web app: `create_app(config)` builds it (the Flask tutorial's factory).

The web stays light: it validates uploads with the pipeline's intake and reads model
manifests, and never imports TensorFlow; workers run the translations.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from flask import Flask, Response

from config import Config, basedir, instance_dir, resolve_broker_url


def _instance_secret_key(instance_path: str) -> str:
    """The key in instance/secret_key, written once (atomically: many processes start at once)."""
    path = Path(instance_path) / "secret_key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    return path.read_text().strip()


#: Sent with every response. The pages' own <meta> CSP says the same minus frame-ancestors,
#: which only a header can carry.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def create_app(config: Mapping | None = None) -> Flask:
    """Build the app from config.Config, with `config`'s keys (tests, tools) on top."""
    app = Flask(__name__, instance_path=str(instance_dir))
    app.config.from_object(Config)
    if config:
        app.config.from_mapping(config)
    os.makedirs(app.instance_path, exist_ok=True)
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = _instance_secret_key(app.instance_path)
    if app.config["HISTORY_VISIBILITY"] not in ("public", "none"):
        raise ValueError(f"HISTORY_VISIBILITY must be public or none, not {app.config['HISTORY_VISIBILITY']!r}")
    from webapp.lifecycle import LeaseTerms

    LeaseTerms.of(app.config)  # refuses lease settings a live worker could lose its job under
    if not app.config["CELERY_BROKER_URL"]:
        app.config["CELERY_BROKER_URL"] = resolve_broker_url()
    if not app.config["RATELIMIT_STORAGE_URI"]:
        broker = app.config["CELERY_BROKER_URL"]
        app.config["RATELIMIT_STORAGE_URI"] = broker if broker.startswith("redis") else "memory://"
    app.config["MAX_CONTENT_LENGTH"] = app.config["MAX_UPLOAD_BYTES"] + 1_000_000  # room for form fields

    from webapp.extensions import csrf, db, limiter, migrate
    from webapp.queue import celery_init_app
    from webapp.storage import init_storage

    db.init_app(app)
    migrate.init_app(app, db, directory=str(basedir / "migrations"), render_as_batch=True)
    csrf.init_app(app)
    limiter.init_app(app)
    init_storage(app)
    celery_init_app(app)

    from webapp import api, pages
    from webapp.cli import jobs_command
    from webapp.errors import register_error_handlers

    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    register_error_handlers(app)
    app.cli.add_command(jobs_command)

    @app.after_request
    def security_headers(response: Response) -> Response:
        """On every response: the strict CSP (as a header, so frame-ancestors holds), no sniffing."""
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.context_processor
    def history_visibility() -> dict:
        return {"history_public": app.config["HISTORY_VISIBILITY"] == "public"}

    return app
