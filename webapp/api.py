"""The JSON API under /api: submit a job, follow it, list the history and the directions.

Errors are JSON `{"error": {"code", "message"}}` (see webapp.errors). Files are served by job
id with fixed content types, never by a stored name.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from flask import Blueprint, Response, abort, current_app, jsonify, request, url_for
from sqlalchemy import select

from pipeline import InputError, InputErrorCode, direction_status
from pipeline.intake import MIN_SIDE
from webapp.extensions import csrf, db, limiter
from webapp.images import side_by_side_png, thumbnail_jpeg
from webapp.jobs import create_job, intake_limits, parse_submission
from webapp.models import Job, JobStatus, iso, utcnow
from webapp.openapi import LIST_QUERY, PHOTO_MEDIA_TYPES, openapi_document, submission_schema
from webapp.storage import storage
from webapp.validation import checked_fields

bp = Blueprint("api", __name__, url_prefix="/api")
csrf.exempt(bp)  # the API applies its own rule: see check_csrf


@bp.before_request
def check_csrf() -> None:
    """A browser's POST must carry the page's CSRF token (header X-CSRFToken).

    A request with none of Cookie, Origin and Referer is not a browser acting for someone
    (curl, scripts): it carries no ambient credentials to abuse, so it needs no token.
    """
    if request.method in current_app.config["WTF_CSRF_METHODS"] and current_app.config["WTF_CSRF_ENABLED"]:
        if any(h in request.headers for h in ("Cookie", "Origin", "Referer")):
            csrf.protect()


def job_json(job: Job) -> dict:
    """A job as the API shows it (the OpenAPI schema `Job`)."""
    direction = job.direction_enum
    succeeded = job.status == JobStatus.SUCCEEDED
    end = job.finished_at or utcnow()
    file_url = lambda kind: url_for("api.job_file", job_id=job.public_id, kind=kind)
    data = {
        "id": job.public_id,
        "status": job.status.value,
        "stage": job.stage,
        "queue_position": job.queue_position(),
        "direction": direction.value,
        "label": direction.label,
        "pair": direction.pair.name,
        "interaction": direction.pair.interaction,
        "source_domain": direction.source,
        "target_domain": direction.target,
        "crop": list(job.crop),
        "options": {"enhance": job.enhance, "size": job.size},
        "attempts": job.attempts,
        "worker": job.worker,
        "error": {"code": job.error_code, "message": job.error_message} if job.error_code else None,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "elapsed_ms": round((end - job.created_at).total_seconds() * 1000),
        "stage_started_at": dict(job.stage_started_at or {}),
        "timings_ms": dict(job.timings_ms or {}),
        "models": list(job.models or []),
        "untrained": job.untrained,
        "upload": {
            "filename": job.filename,
            "width": job.upload.width,
            "height": job.upload.height,
            "format": job.upload.format,
            "byte_size": job.upload.byte_size,
        },
        "urls": {
            "self": url_for("api.get_job", job_id=job.public_id),
            "page": f"/jobs/{job.public_id}",
            "result_page": f"/jobs/{job.public_id}/result",
            "original": file_url("original"),
            "before": file_url("before") if succeeded else None,
            "result": file_url("result") if succeeded else None,
            "side_by_side": file_url("side-by-side") if succeeded else None,
            "thumbnail": file_url("thumbnail"),
        },
    }
    if job.untrained:
        data["warning"] = "made with untrained models: not a real translation"
    return data


def _job_or_404(job_id: str) -> Job:
    job = db.session.scalar(select(Job).where(Job.public_id == job_id))
    if job is None:
        abort(404, description="no job with this id")
    return job


@bp.post("/jobs")
@limiter.limit(lambda: current_app.config["JOB_RATE_LIMIT"])
def create() -> tuple[Response, int, dict]:
    upload = request.files.get("file")
    if upload is None:
        raise InputError(InputErrorCode.EMPTY, "attach the photo as the multipart field 'file'")
    submission = parse_submission(checked_fields(request.form, submission_schema(intake_limits())))
    job = create_job(upload.read(), upload.filename, submission)
    location = url_for("api.get_job", job_id=job.public_id)
    return jsonify(job_json(job)), 202, {"Location": location}


@bp.get("/jobs/<job_id>")
def get_job(job_id: str) -> Response:
    return jsonify(job_json(_job_or_404(job_id)))


@bp.get("/jobs")
def list_jobs() -> Response:
    if current_app.config["HISTORY_VISIBILITY"] != "public":
        abort(404, description="this site keeps its history private; follow a job through its own link")
    args = checked_fields(request.args, LIST_QUERY)
    query = select(Job).order_by(Job.created_at.desc(), Job.id.desc())
    if "status" in args:
        query = query.where(Job.status == JobStatus(args["status"]))
    if "direction" in args:
        query = query.where(Job.direction == args["direction"])
    page = db.paginate(query, page=args["page"], per_page=args["per_page"], error_out=False)
    return jsonify({
        "jobs": [job_json(job) for job in page.items],
        "page": page.page,
        "per_page": page.per_page,
        "total": page.total,
        "pages": page.pages,
    })


@bp.get("/directions")
def directions() -> Response:
    statuses = direction_status(Path(current_app.config["MODEL_DIR"]))
    return jsonify({
        "directions": [
            {
                "name": s.direction.value,
                "label": s.direction.label,
                "pair": s.direction.pair.name,
                "source": s.direction.source,
                "target": s.direction.target,
                "interaction": s.direction.pair.interaction,
                "installed": s.installed,
                "trained": s.trained,
                "reason": s.reason,
            }
            for s in statuses
        ],
        "limits": {
            "max_bytes": current_app.config["MAX_UPLOAD_BYTES"],
            "max_pixels": current_app.config["MAX_UPLOAD_PIXELS"],
            "formats": PHOTO_MEDIA_TYPES,
            "min_side": MIN_SIDE,
        },
    })


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_document(intake_limits()))


def _cached(key: str, mime_type: str, make: Callable[[], bytes]) -> bytes:
    """The derived file at `key`, made and stored on first request."""
    try:
        return storage().get(key)
    except KeyError:
        data = make()
        storage().put(key, data, mime_type)
        return data


@bp.get("/jobs/<job_id>/<any(original, before, result, 'side-by-side', thumbnail):kind>")
def job_file(job_id: str, kind: str) -> Response:
    job = _job_or_404(job_id)
    succeeded = job.status == JobStatus.SUCCEEDED
    if kind == "original":
        data, mime_type = storage().get(job.upload.storage_key), job.upload.mime_type
    elif kind == "thumbnail":
        source = job.result_key if succeeded else job.upload.storage_key
        key = f"thumbnails/{job.public_id}" if succeeded else f"thumbnails/{job.upload.sha256}"
        data, mime_type = _cached(key, "image/jpeg", lambda: thumbnail_jpeg(storage().get(source))), "image/jpeg"
    elif not succeeded:
        abort(404, description=f"the job is {job.status.value}; its {kind} exists once it has succeeded")
    elif kind == "side-by-side":
        make = lambda: side_by_side_png(storage().get(job.before_key), storage().get(job.result_key))
        data, mime_type = _cached(f"results/{job.public_id}-side-by-side.png", "image/png", make), "image/png"
    else:
        data, mime_type = storage().get(job.before_key if kind == "before" else job.result_key), "image/png"
    response = Response(data, mimetype=mime_type)
    response.headers["Content-Disposition"] = "inline"
    # A job's files never change once they exist.
    response.cache_control.private = True
    response.cache_control.max_age = 31_536_000
    response.cache_control.immutable = True
    response.add_etag()
    return response.make_conditional(request)
