"""Every failure under /api answers `{"error": {"code", "message"}}` with a fitting status.

400 bad input (the pipeline's `InputErrorCode`s), 403 csrf_failed, 404 not_found,
409 model_not_installed, 413 file_too_large, 429 rate_limited, 503 database_unavailable.
"""

from __future__ import annotations

import enum
import logging

from flask import Flask, Response, jsonify, request
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from pipeline import InputError, InputErrorCode
from webapp.extensions import db
from webapp.jobs import ModelNotInstalled

log = logging.getLogger(__name__)


class ApiErrorCode(enum.StrEnum):
    """The API's codes beside the intake's `InputErrorCode`s."""

    CSRF_FAILED = "csrf_failed"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    MODEL_NOT_INSTALLED = "model_not_installed"
    RATE_LIMITED = "rate_limited"
    DATABASE_UNAVAILABLE = "database_unavailable"


_HTTP_CODES = {404: ApiErrorCode.NOT_FOUND, 405: ApiErrorCode.METHOD_NOT_ALLOWED, 429: ApiErrorCode.RATE_LIMITED}


def error_response(status: int, code: str, message: str) -> tuple[Response, int]:
    return jsonify({"error": {"code": code, "message": message}}), status


def _is_api() -> bool:
    return request.path.startswith("/api/")


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(InputError)
    def input_error(exc: InputError):
        status = 413 if exc.code == InputErrorCode.FILE_TOO_LARGE else 400
        return error_response(status, exc.code.value, exc.message)

    @app.errorhandler(ModelNotInstalled)
    def model_not_installed(exc: ModelNotInstalled):
        return error_response(409, ApiErrorCode.MODEL_NOT_INSTALLED, exc.message)

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        if not _is_api():
            return exc
        return error_response(403, ApiErrorCode.CSRF_FAILED, f"{exc.description} Send the page's token as X-CSRFToken.")

    @app.errorhandler(OperationalError)
    def database_unavailable(exc: OperationalError):
        log.error("database unavailable: %s", exc)
        try:
            db.session.rollback()
        except OperationalError:
            pass  # the connection is gone; the pool replaces it
        return error_response(503, ApiErrorCode.DATABASE_UNAVAILABLE,
                              "the job database is unavailable for a moment; try again shortly")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if not _is_api():
            return exc
        if exc.code == 413:
            limit = app.config["MAX_UPLOAD_BYTES"] / 1_000_000
            return error_response(413, InputErrorCode.FILE_TOO_LARGE,
                                  f"the upload is too large; the limit is {limit:g} MB")
        code = _HTTP_CODES.get(exc.code or 500, (exc.name or "error").lower().replace(" ", "_"))
        response, status = error_response(exc.code or 500, code, exc.description or exc.name)
        # Werkzeug's headers for the status, such as a 405's Allow (RFC 9110 requires it); the body is ours.
        response.headers.extend((name, value) for name, value in exc.get_headers() if name.lower() != "content-type")
        return response, status
