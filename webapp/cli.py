"""`flask jobs`: the job history from a shell, for operators.

Recent jobs, then per direction: how many in each status and the mean time of each stage.
"""

from __future__ import annotations

from collections import defaultdict
from statistics import mean

import click
from sqlalchemy import func, select

from webapp.extensions import db
from webapp.models import STAGES, Job, JobStatus


def _when(job: Job) -> str:
    return job.created_at.strftime("%Y-%m-%d %H:%M:%S")


def _seconds(job: Job) -> str:
    if not (job.started_at and job.finished_at):
        return "-"
    return f"{(job.finished_at - job.started_at).total_seconds():.1f}s"


@click.command("jobs")
@click.option("--limit", default=20, show_default=True, help="how many recent jobs to list")
@click.option("--status", type=click.Choice([s.value for s in JobStatus]), help="only jobs in this status")
def jobs_command(limit: int, status: str | None) -> None:
    """List recent jobs, and per-direction counts and mean stage timings."""
    query = select(Job).order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
    if status:
        query = query.where(Job.status == JobStatus(status))
    recent = db.session.scalars(query).all()
    click.echo(f"recent jobs ({len(recent)}):")
    for job in recent:
        problem = f"  {job.error_code}: {job.error_message}" if job.error_code else ""
        click.echo(
            f"  {_when(job)}  {job.public_id}  {job.direction:14} {job.status.value:9} "
            f"stage={job.stage or '-':11} attempts={job.attempts} run={_seconds(job):>6} "
            f"worker={job.worker or '-'}{problem}"
        )

    counts: dict[str, dict[str, int]] = defaultdict(dict)
    rows = db.session.execute(select(Job.direction, Job.status, func.count()).group_by(Job.direction, Job.status))
    for direction, job_status, count in rows:
        counts[direction][job_status.value] = count
    timings: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    succeeded = select(Job.direction, Job.timings_ms).where(Job.status == JobStatus.SUCCEEDED)
    for direction, stage_ms in db.session.execute(succeeded):
        for stage, ms in (stage_ms or {}).items():
            timings[direction][stage].append(ms)

    click.echo("\nper direction (mean ms per stage over succeeded jobs):")
    header = f"  {'direction':14} " + " ".join(f"{s.value:>9}" for s in JobStatus)
    click.echo(header + "  " + " ".join(f"{s:>11}" for s in STAGES))
    for direction in sorted(counts):
        row = f"  {direction:14} " + " ".join(f"{counts[direction].get(s.value, 0):>9}" for s in JobStatus)
        means = [timings[direction].get(s) for s in STAGES]
        click.echo(row + "  " + " ".join(f"{mean(m):>11.1f}" if m else f"{'-':>11}" for m in means))
