"""Reads and writes of the ``jobs`` table, and the summaries counted from ``records``.

Each function runs in the store's worker thread on its connection, or turns a value into what
the table holds.
"""

from __future__ import annotations

import sqlite3

from ..._records import RecordFilter
from ..._status import SHOWN_FAILURES, JobResult, JobStatus
from ..._types import ExecutionStatus
from .._protocol import JobInfo, StoredProgress
from .._verdict import result_from_json, result_json
from ._leases import LEASE_COLUMNS, lease_from_row
from ._rows import read_batch
from ._tallies import counted, recorded
from ._transactions import read_snapshot

__all__ = [
    "insert_job",
    "read_jobs",
    "read_progress",
    "read_result",
    "read_spec",
    "store_result",
]


def insert_job(
    conn: sqlite3.Connection, job_id: str, spec_json: str, planned: int, at: float
) -> str:
    """Register a job unless its id is stored; return the spec stored under the id."""
    conn.execute(
        "INSERT INTO jobs (id, spec, planned, created_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (id) DO NOTHING",
        (job_id, spec_json, planned, at),
    )
    return read_spec(conn, job_id)


def read_spec(conn: sqlite3.Connection, job_id: str) -> str:
    """The JSON of the spec a stored job was opened with."""
    return str(conn.execute("SELECT spec FROM jobs WHERE id = ?", (job_id,)).fetchone()[0])


def store_result(conn: sqlite3.Connection, job_id: str, result: JobResult, at: float) -> None:
    """Store a job's verdict, finished at ``at``, replacing any earlier one."""
    conn.execute(
        "UPDATE jobs SET status = ?, reason = ?, result = ?, finished_at = ? WHERE id = ?",
        (JobStatus(result.status).value, result.reason, result_json(result), at, job_id),
    )


def read_result(conn: sqlite3.Connection, job_id: str) -> JobResult | None:
    """A job's stored verdict with its first failures (one snapshot), or ``None``.

    The result reads no other record: its ``records`` are the caller's to attach.
    """
    with read_snapshot(conn):
        row = conn.execute("SELECT result FROM jobs WHERE id = ?", (job_id,)).fetchone()
        failures, _ = read_batch(conn, job_id, _NOT_COMPLETED, 0, SHOWN_FAILURES)
    return None if row[0] is None else result_from_json(job_id, row[0], failures)


_NOT_COMPLETED = RecordFilter(frozenset(ExecutionStatus) - {ExecutionStatus.COMPLETED})


def read_jobs(conn: sqlite3.Connection) -> list[JobInfo]:
    """Every job, oldest first, with how many records it has and its lease."""
    lease_columns = ", ".join(f"l.{c}" for c in LEASE_COLUMNS)
    rows = conn.execute(
        f"SELECT j.id, j.planned, {recorded('j.id')}, "
        f"j.status, j.reason, j.created_at, j.finished_at, {lease_columns} "
        "FROM jobs j LEFT JOIN leases l ON l.job_id = j.id ORDER BY j.rowid"
    ).fetchall()
    return [
        JobInfo(
            job_id=job_id,
            planned=planned,
            records=count,
            status=None if status is None else JobStatus(status),
            reason=reason,
            created_at=created_at,
            finished_at=finished_at,
            lease=lease_from_row(job_id, tuple(lease))[0] if lease[0] is not None else None,
        )
        for job_id, planned, count, status, reason, created_at, finished_at, *lease in rows
    ]


def read_progress(conn: sqlite3.Connection, job_id: str) -> StoredProgress:
    """Counts per status, overall and per question, model and region (one snapshot).

    Per status and endpoint from the job's tallies (models, regions and the total are sums of
    them), per status and question from one grouped query over the outcomes index (in its
    order).
    """
    with read_snapshot(conn):
        planned = int(
            conn.execute("SELECT planned FROM jobs WHERE id = ?", (job_id,)).fetchone()[0]
        )
        endpoints = counted(conn, job_id)
        questions = conn.execute(
            "SELECT question_id, status, count(*) FROM records WHERE job_id = ? "
            "GROUP BY status, question_id",
            (job_id,),
        ).fetchall()
    counts: dict[ExecutionStatus, int] = {}
    by_model: dict[str, dict[ExecutionStatus, int]] = {}
    by_region: dict[str, dict[ExecutionStatus, int]] = {}
    for model, region, value, _, n, _, _ in endpoints:
        if not n:
            continue
        status = ExecutionStatus(value)
        counts[status] = counts.get(status, 0) + n
        for name, groups in ((model, by_model), (region, by_region)):
            slot = groups.setdefault(name, {})
            slot[status] = slot.get(status, 0) + n
    return StoredProgress(
        job_id=job_id,
        planned=planned,
        counts=counts,
        by_question=_tally(questions),
        by_region=by_region,
        by_model=by_model,
    )


def _tally(rows: list[tuple[str, str, int]]) -> dict[str, dict[ExecutionStatus, int]]:
    out: dict[str, dict[ExecutionStatus, int]] = {}
    for name, status, count in rows:
        out.setdefault(name, {})[ExecutionStatus(status)] = count
    return out
