"""The one place that turns a submission into a stored upload and a queued job.

Everything a person can get wrong is refused here, before anything is written: the
direction, the options, whether its models are installed, the file and the crop box.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from pipeline import CropBox, Direction, IntakeLimits, Photo, TranslateOptions, open_photo
from pipeline.manifests import default_rdn, direction_status, read_manifests
from webapp.extensions import db
from webapp.models import Job, Upload, utcnow
from webapp.queue import enqueue
from webapp.storage import storage

log = logging.getLogger(__name__)


class ModelNotInstalled(Exception):
    """The direction (or the enhancer) asked for has no model on this deployment."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Submission:
    """A validated request, before the file is read."""

    direction: Direction
    crop: CropBox | None
    options: TranslateOptions


def parse_submission(fields: Mapping[str, str]) -> Submission:
    """The form fields, already valid per the OpenAPI schema (webapp.validation), as a `Submission`."""
    return Submission(
        direction=Direction(fields["direction"]),
        crop=CropBox.parse(fields["crop"]) if "crop" in fields else None,
        options=TranslateOptions(enhance=fields["enhance"] == "true", size=int(fields["size"])),
    )


def check_models(submission: Submission) -> None:
    """Refuse a direction whose generator (or, with enhance, the RDN) is not installed."""
    model_dir = Path(current_app.config["MODEL_DIR"])
    status = next(s for s in direction_status(model_dir) if s.direction == submission.direction)
    if not status.installed:
        raise ModelNotInstalled(f"{submission.direction.label} is not available here: {status.reason}")
    if submission.options.enhance and default_rdn(read_manifests(model_dir), current_app.config["RDN_MODEL"]) is None:
        raise ModelNotInstalled("enhancement is not available here: no RDN model is installed; send enhance=false")


def intake_limits() -> IntakeLimits:
    """This deployment's upload limits, as the web checks them at submission and the worker again at intake."""
    return IntakeLimits(current_app.config["MAX_UPLOAD_BYTES"], current_app.config["MAX_UPLOAD_PIXELS"])


def _safe_filename(name: str | None) -> str:
    """The file's base name for display only (never used as a path), without control characters."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    return base[:255] or "upload"


def _store_upload(photo: Photo, data: bytes, filename: str) -> Upload:
    """The upload with this content, stored and recorded once."""
    upload = db.session.scalar(select(Upload).where(Upload.sha256 == photo.sha256))
    if upload is not None:
        return upload
    key = f"uploads/{photo.sha256[:2]}/{photo.sha256}"
    storage().put(key, data, photo.mime_type)
    upload = Upload(
        sha256=photo.sha256, filename=filename, byte_size=photo.byte_size, width=photo.width,
        height=photo.height, format=photo.format, mime_type=photo.mime_type, storage_key=key,
    )
    try:
        with db.session.begin_nested():
            db.session.add(upload)
    except IntegrityError:  # the same file arrived at the same moment on another request
        upload = db.session.scalar(select(Upload).where(Upload.sha256 == photo.sha256))
    return upload


def create_job(data: bytes, filename: str | None, submission: Submission) -> Job:
    """Validate the file and crop box, store the upload once, record the job and enqueue it.

    Nothing is stored until everything is valid. The row is committed before the message is
    sent: if the broker is down the job stays queued in the database (the source of truth)
    and the failure is logged.
    """
    check_models(submission)
    photo = open_photo(data, intake_limits())
    box = (submission.crop or CropBox.centered(photo.width, photo.height)).validate(photo.width, photo.height)
    name = _safe_filename(filename)
    upload = _store_upload(photo, data, name)
    job = Job(
        upload=upload, filename=name, direction=submission.direction.value,
        crop_x=box.x, crop_y=box.y, crop_size=box.size,
        enhance=submission.options.enhance, size=submission.options.size, enqueued_at=utcnow(),
    )
    db.session.add(job)
    db.session.commit()
    try:
        enqueue(job.public_id)
    except Exception:  # noqa: BLE001 - any broker failure: the row is kept as queued
        log.exception("job %s recorded but could not be enqueued; it stays queued", job.public_id)
    return job
