"""HTML pages: minimal server-rendered shells; ES modules in static/js fetch the JSON API.

Pages never render job data themselves (the API is the one source of it): they only check
that a job exists, so unknown ids get a real 404, and pick the result page's interaction
from the job's pair.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, current_app, redirect, render_template, send_from_directory, url_for

from pipeline.directions import PAIRS, Direction

bp = Blueprint("pages", __name__)

#: Front-end packages installed by `npm ci`, served from node_modules (no CDN). Only these
#: files are reachable, so node_modules is not browsable.
VENDOR_FILES = {
    "cropperjs": ("cropperjs/dist", {"cropper.esm.js", "cropper.min.css"}),
}
NODE_MODULES = Path(__file__).resolve().parent.parent / "node_modules"

INTERACTIONS = {
    "scratch": {
        "template": "result_scratch.html",
        "title": "Scratch to reveal",
        "hint": "Drag across the photo to scratch it away and uncover the {target}.",
    },
    "hover-focus": {
        "template": "result_focus.html",
        "title": "Hover to focus",
        "hint": "Move over the photo: {target} comes into focus where you point.",
    },
    "scroll-reveal": {
        "template": "result_reveal.html",
        "title": "Scroll to reveal",
        "hint": "Scroll down and {target} settles over the photo; scroll up to go back.",
    },
}


def _find_job(job_id: str) -> dict | None:
    """The job's id, direction and status, or None when there is no such job."""
    if not job_id or len(job_id) > 64:
        return None
    from sqlalchemy import select

    from webapp.extensions import db
    from webapp.models import Job

    job = db.session.scalar(select(Job).where(Job.public_id == job_id))
    if job is None:
        return None
    return {"id": job.public_id, "direction": job.direction, "status": str(job.status)}


def _not_found(what: str = "page"):
    return render_template("404.html", what=what), 404


@bp.get("/")
def upload():
    return render_template("upload.html", pairs=PAIRS)


@bp.get("/jobs/<job_id>")
def job_page(job_id: str):
    job = _find_job(job_id)
    if job is None:
        return _not_found("job")
    return render_template("job.html", job_id=job["id"])


@bp.get("/jobs/<job_id>/result")
def result_page(job_id: str):
    job = _find_job(job_id)
    if job is None:
        return _not_found("job")
    if job["status"] != "succeeded":
        # The job page shows progress or the error, and comes back here when it is done.
        return redirect(url_for("pages.job_page", job_id=job["id"]))
    direction = Direction.parse(job["direction"])
    interaction = INTERACTIONS[direction.pair.interaction]
    return render_template(
        interaction["template"],
        job_id=job["id"],
        direction=direction,
        interaction=direction.pair.interaction,
        interaction_title=interaction["title"],
        hint=interaction["hint"].format(source=direction.source, target=direction.target),
    )


@bp.get("/history")
def history():
    if current_app.config["HISTORY_VISIBILITY"] != "public":
        return _not_found()
    return render_template("history.html", directions=list(Direction))


@bp.get("/vendor/<package>/<path:filename>")
def vendor(package: str, filename: str):
    entry = VENDOR_FILES.get(package)
    if entry is None or filename not in entry[1]:
        return _not_found()
    return send_from_directory(NODE_MODULES / entry[0], filename, max_age=86400)
