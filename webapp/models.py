"""The job history: uploads (stored once per content) and the jobs made from them.

The `jobs` row is the source of truth for a job's state; the broker only carries its id.
"""

from __future__ import annotations

import enum
import secrets
from datetime import UTC, datetime

from sqlalchemy import JSON, DateTime, Enum, ForeignKey, Integer, String, Text, func, select
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pipeline import STAGES as PIPELINE_STAGES
from pipeline import Direction
from webapp.extensions import db

#: The pipeline's stages and the worker's own last one, storing the files.
STAGES = (*PIPELINE_STAGES, "store")


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, as the API writes every time."""
    return moment.isoformat().replace("+00:00", "Z") if moment else None


class UTCDateTime(db.TypeDecorator):
    """A timezone-aware UTC datetime on every database (SQLite drops the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED)


def new_public_id() -> str:
    """128 random bits: job URLs cannot be guessed or enumerated."""
    return secrets.token_urlsafe(16)


class Upload(db.Model):
    """One uploaded file, stored once however many jobs use it (keyed by its sha256)."""

    __tablename__ = "uploads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    filename: Mapped[str] = mapped_column(String(255))
    byte_size: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    format: Mapped[str] = mapped_column(String(16))
    mime_type: Mapped[str] = mapped_column(String(32))
    storage_key: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    jobs: Mapped[list[Job]] = relationship(back_populates="upload")


class Job(db.Model):
    """One translation request and everything that happened to it."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    upload_id: Mapped[int] = mapped_column(ForeignKey("uploads.id"), index=True)
    # The name this submission gave the file (the upload keeps the first one seen).
    filename: Mapped[str] = mapped_column(String(255))
    direction: Mapped[str] = mapped_column(String(32), index=True)
    crop_x: Mapped[int] = mapped_column(Integer)
    crop_y: Mapped[int] = mapped_column(Integer)
    crop_size: Mapped[int] = mapped_column(Integer)
    enhance: Mapped[bool] = mapped_column(default=True)
    size: Mapped[int] = mapped_column(Integer, default=512)

    status: Mapped[JobStatus] = mapped_column(
        Enum(JobStatus, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]),
        default=JobStatus.QUEUED, index=True,
    )
    stage: Mapped[str | None] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(255))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Until when the worker that claimed the job owns it; past it, the job may be claimed again.
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the job's id was last handed to the broker (the reconciler re-sends old ones).
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # {stage: ISO start time} as the worker enters each stage, and {stage: ms} once done.
    stage_started_at: Mapped[dict] = mapped_column(JSON, default=dict)
    timings_ms: Mapped[dict] = mapped_column(JSON, default=dict)

    result_key: Mapped[str | None] = mapped_column(String(255))
    before_key: Mapped[str | None] = mapped_column(String(255))
    # [{name, kind, sha256, trained}] of the models that made the result.
    models: Mapped[list] = mapped_column(JSON, default=list)
    untrained: Mapped[bool] = mapped_column(default=False)

    upload: Mapped[Upload] = relationship(back_populates="jobs", lazy="joined")

    @property
    def direction_enum(self) -> Direction:
        return Direction(self.direction)

    @property
    def crop(self) -> tuple[int, int, int]:
        return (self.crop_x, self.crop_y, self.crop_size)

    def queue_position(self) -> int | None:
        """1 for the next queued job to run, 2 for the one after it…; None unless queued."""
        if self.status != JobStatus.QUEUED:
            return None
        ahead = select(func.count()).select_from(Job).where(
            Job.status == JobStatus.QUEUED, Job.id < self.id
        )
        return db.session.scalar(ahead) + 1
