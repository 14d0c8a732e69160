"""Reads and writes of the ``jobs`` and ``leases`` tables, and the counts read from ``records``.

Each function runs in a worker thread on a pooled connection, inside the transaction the store
opened for it. Granting and renewing a lease lock the job's lease row (``FOR UPDATE``) from
the read to the write: a compare-and-set, so two runners asking at once cannot both get it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from ..._errors import SpecError, StoreError
from ..._status import JobResult, JobStatus
from ..._types import ExecutionStatus
from .._lease import Holder, Lease, grant_lease, is_current_lease, renewed_lease
from .._protocol import JobInfo, StoredProgress
from .._verdict import result_from_json, result_json

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "LEASE_COLUMNS",
    "acquire",
    "insert_job",
    "job_exists",
    "lease_from_row",
    "read_jobs",
    "read_progress",
    "read_result",
    "read_spec",
    "release",
    "renew",
    "result_from_json",
    "result_json",
    "store_result",
]

LEASE_COLUMNS: Final = ("token", "owner", "pid", "host", "since", "heartbeat", "ttl")
"""The columns a lease is read from, in this order (after ``job_id``)."""


def job_exists(conn: psycopg.Connection[Any], schema: str, job_id: str) -> bool:
    """Whether the job id is stored."""
    row = conn.execute(f"SELECT 1 FROM {schema}.jobs WHERE id = %s", (job_id,)).fetchone()
    return row is not None


def insert_job(
    conn: psycopg.Connection[Any], schema: str, job_id: str, spec_json: str, planned: int, at: float
) -> str:
    """Register a job (and its free lease row) unless its id is stored; return its stored spec."""
    inserted = conn.execute(
        f"INSERT INTO {schema}.jobs (id, spec, planned, created_at) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (id) DO NOTHING RETURNING id",
        (job_id, spec_json, planned, at),
    ).fetchone()
    if inserted is not None:
        conn.execute(
            f"INSERT INTO {schema}.leases (job_id, token) VALUES (%s, 0) ON CONFLICT DO NOTHING",
            (job_id,),
        )
    return read_spec(conn, schema, job_id)


def read_spec(conn: psycopg.Connection[Any], schema: str, job_id: str) -> str:
    """The JSON of the spec a stored job was opened with."""
    row = conn.execute(f"SELECT spec FROM {schema}.jobs WHERE id = %s", (job_id,)).fetchone()
    if row is None:
        raise StoreError(f"unknown job id {job_id!r}")
    return str(row[0])


def store_result(
    conn: psycopg.Connection[Any], schema: str, job_id: str, result: JobResult, at: float
) -> None:
    """Store a job's verdict, finished at ``at``, replacing any earlier one."""
    conn.execute(
        f"UPDATE {schema}.jobs SET status = %s, reason = %s, result = %s, finished_at = %s "
        "WHERE id = %s",
        (
            JobStatus(result.status).value,
            result.reason.encode("utf-8", "surrogatepass"),
            result_json(result),
            at,
            job_id,
        ),
    )


def read_result(conn: psycopg.Connection[Any], schema: str, job_id: str) -> str | None:
    """The stored verdict's JSON, or ``None``."""
    row = conn.execute(f"SELECT result FROM {schema}.jobs WHERE id = %s", (job_id,)).fetchone()
    return None if row is None or row[0] is None else str(row[0])


def lease_from_row(job_id: str, row: tuple[Any, ...] | None) -> tuple[Lease | None, int]:
    """The lease a row holds (``None`` if released or absent) and its token.

    Raises:
        StoreError: The row holds values no lease can have.
    """
    if row is None:
        return None, 0
    token, owner, pid, host, since, heartbeat, ttl = row
    if owner is None:
        return None, int(token)
    try:
        holder = Holder(owner=owner, pid=int(pid), host=host)
        lease = Lease(job_id, holder, since=since, heartbeat=heartbeat, ttl=ttl, token=int(token))
    except SpecError as exc:
        problems = "; ".join(str(p) for p in exc.problems)
        raise StoreError(f"job {job_id!r}: the stored lease is damaged: {problems}") from None
    return lease, int(token)


def read_jobs(conn: psycopg.Connection[Any], schema: str) -> list[JobInfo]:
    """Every job, oldest first, with how many records it has and its lease."""
    lease_columns = ", ".join(f"l.{c}" for c in LEASE_COLUMNS)
    rows = conn.execute(
        f"SELECT j.id, j.planned, (SELECT count(*) FROM {schema}.records r "
        "WHERE r.job_id = j.id), "
        f"j.status, j.reason, j.created_at, j.finished_at, {lease_columns} "
        f"FROM {schema}.jobs j LEFT JOIN {schema}.leases l ON l.job_id = j.id ORDER BY j.seq"
    ).fetchall()
    return [
        JobInfo(
            job_id=job_id,
            planned=int(planned),
            records=int(count),
            status=None if status is None else JobStatus(status),
            reason=None if reason is None else bytes(reason).decode("utf-8", "surrogatepass"),
            created_at=created_at,
            finished_at=finished_at,
            lease=lease_from_row(job_id, tuple(lease))[0] if lease[0] is not None else None,
        )
        for job_id, planned, count, status, reason, created_at, finished_at, *lease in rows
    ]


def read_progress(conn: psycopg.Connection[Any], schema: str, job_id: str) -> StoredProgress:
    """Counts per status, overall and per question, model and region (one snapshot)."""
    row = conn.execute(f"SELECT planned FROM {schema}.jobs WHERE id = %s", (job_id,)).fetchone()
    if row is None:
        raise StoreError(f"unknown job id {job_id!r}")
    groups: dict[str, dict[str, dict[ExecutionStatus, int]]] = {}
    for column in ("question_id", "model_id", "region"):
        out: dict[str, dict[ExecutionStatus, int]] = {}
        for name, status, count in conn.execute(
            f"SELECT {column}, status, count(*) FROM {schema}.records "
            f"WHERE job_id = %s GROUP BY {column}, status",
            (job_id,),
        ):
            out.setdefault(name, {})[ExecutionStatus(status)] = int(count)
        groups[column] = out
    counts: dict[ExecutionStatus, int] = {}
    for slot in groups["region"].values():
        for status, n in slot.items():
            counts[status] = counts.get(status, 0) + n
    return StoredProgress(
        job_id=job_id,
        planned=int(row[0]),
        counts=counts,
        by_question=groups["question_id"],
        by_region=groups["region"],
        by_model=groups["model_id"],
    )


# -- leases ---------------------------------------------------------------------------------


def _locked_lease(
    conn: psycopg.Connection[Any], schema: str, job_id: str
) -> tuple[Lease | None, int]:
    row = conn.execute(
        f"SELECT {', '.join(LEASE_COLUMNS)} FROM {schema}.leases WHERE job_id = %s FOR UPDATE",
        (job_id,),
    ).fetchone()
    if row is None:
        raise StoreError(f"unknown job id {job_id!r}")
    return lease_from_row(job_id, tuple(row))


def _write_lease(conn: psycopg.Connection[Any], schema: str, lease: Lease) -> None:
    h = lease.holder
    conn.execute(
        f"UPDATE {schema}.leases SET token = %s, owner = %s, pid = %s, host = %s, since = %s, "
        "heartbeat = %s, ttl = %s WHERE job_id = %s",
        (
            lease.token,
            h.owner,
            h.pid,
            h.host,
            lease.since,
            lease.heartbeat,
            lease.ttl,
            lease.job_id,
        ),
    )


def acquire(
    conn: psycopg.Connection[Any],
    schema: str,
    job_id: str,
    holder: Holder,
    ttl: float,
    now: float,
    alive: Callable[[Holder], bool],
) -> Lease:
    """Grant ``holder`` the job's lease, or raise ``JobLockedError`` (writing nothing)."""
    current, token = _locked_lease(conn, schema, job_id)
    lease = grant_lease(current, job_id, holder, ttl, now, last_token=token, alive=alive)
    _write_lease(conn, schema, lease)
    return lease


def renew(conn: psycopg.Connection[Any], schema: str, lease: Lease, now: float) -> Lease:
    """Move the lease's heartbeat to ``now``, or raise ``LeaseLostError`` (writing nothing)."""
    current, _ = _locked_lease(conn, schema, lease.job_id)
    renewed = renewed_lease(current, lease, now)
    _write_lease(conn, schema, renewed)
    return renewed


def release(conn: psycopg.Connection[Any], schema: str, lease: Lease) -> None:
    """Clear the holder of the job's row if ``lease`` is still the job's lease."""
    current, _ = _locked_lease(conn, schema, lease.job_id)
    if is_current_lease(current, lease):
        conn.execute(
            f"UPDATE {schema}.leases SET owner = NULL, pid = NULL, host = NULL, since = NULL, "
            "heartbeat = NULL, ttl = NULL WHERE job_id = %s",
            (lease.job_id,),
        )
