"""The ``leases`` table: who runs each job, granted, renewed and released atomically.

Each function runs in the store's worker thread on its connection. Granting and renewing read
the job's row and write the new lease in one ``BEGIN IMMEDIATE`` transaction, which holds
SQLite's write lock from the read to the commit: a compare-and-set, so two processes asking at
once cannot both get the lease.

Fencing is best-effort here: a run notices that its lease passed to another runner when it
next renews (every third of the time to live) and stores nothing after that, but a write it
had already begun may still land. The write rule keeps that harmless for ``COMPLETED`` records.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, Final

from ..._errors import SpecError, StoreError
from .._lease import Holder, Lease, grant_lease, is_current_lease, renewed_lease
from ._transactions import write_transaction

__all__ = ["LEASE_COLUMNS", "acquire", "lease_from_row", "release", "renew"]

LEASE_COLUMNS: Final = ("token", "owner", "pid", "host", "since", "heartbeat", "ttl")
"""The columns a lease is read from, in this order (after ``job_id``)."""

_SELECT: Final = f"SELECT {', '.join(LEASE_COLUMNS)} FROM leases WHERE job_id = ?"
_UPSERT: Final = (
    f"INSERT INTO leases (job_id, {', '.join(LEASE_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (job_id) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in LEASE_COLUMNS)
)


def lease_from_row(job_id: str, row: tuple[Any, ...] | None) -> tuple[Lease | None, int]:
    """The lease a row holds (``None`` if released or absent) and its token.

    Raises:
        StoreError: The row holds values no lease can have (a damaged or hostile file).
    """
    if row is None:
        return None, 0
    token, owner, pid, host, since, heartbeat, ttl = row
    if owner is None:
        return None, token if isinstance(token, int) else 0
    try:
        holder = Holder(owner=owner, pid=pid, host=host)
        return Lease(job_id, holder, since=since, heartbeat=heartbeat, ttl=ttl, token=token), token
    except SpecError as exc:
        problems = "; ".join(str(p) for p in exc.problems)
        raise StoreError(f"job {job_id!r}: the stored lease is damaged: {problems}") from None


def _read(conn: sqlite3.Connection, job_id: str) -> tuple[Lease | None, int]:
    return lease_from_row(job_id, conn.execute(_SELECT, (job_id,)).fetchone())


def _write(conn: sqlite3.Connection, lease: Lease) -> None:
    h = lease.holder
    conn.execute(
        _UPSERT,
        (
            lease.job_id,
            lease.token,
            h.owner,
            h.pid,
            h.host,
            lease.since,
            lease.heartbeat,
            lease.ttl,
        ),
    )


def acquire(
    conn: sqlite3.Connection,
    job_id: str,
    holder: Holder,
    ttl: float,
    now: float,
    alive: Callable[[Holder], bool],
) -> Lease:
    """Grant ``holder`` the job's lease, or raise ``JobLockedError`` (writing nothing)."""
    with write_transaction(conn):
        current, token = _read(conn, job_id)
        lease = grant_lease(current, job_id, holder, ttl, now, last_token=token, alive=alive)
        _write(conn, lease)
    return lease


def renew(conn: sqlite3.Connection, lease: Lease, now: float) -> Lease:
    """Move the lease's heartbeat to ``now``, or raise ``LeaseLostError`` (writing nothing)."""
    with write_transaction(conn):
        current, _ = _read(conn, lease.job_id)
        renewed = renewed_lease(current, lease, now)
        _write(conn, renewed)
    return renewed


def release(conn: sqlite3.Connection, lease: Lease) -> None:
    """Clear the holder of the job's row if ``lease`` is still the job's lease."""
    with write_transaction(conn):
        current, _ = _read(conn, lease.job_id)
        if is_current_lease(current, lease):
            conn.execute(
                "UPDATE leases SET owner = NULL, pid = NULL, host = NULL, since = NULL, "
                "heartbeat = NULL, ttl = NULL WHERE job_id = ?",
                (lease.job_id,),
            )
