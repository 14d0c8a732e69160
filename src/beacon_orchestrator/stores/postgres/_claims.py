"""The SQL of many workers sharing one job: claims, the start gate, fenced writes, cancel.

Each function runs in a worker thread on a pooled connection, in the one transaction the store
opened for it. Times are the database's (``clock_timestamp()``), so the workers' clocks never
matter. The invariants, each held by one statement:

- **Claim**: free or expired endpoints are taken with ``FOR UPDATE SKIP LOCKED``; the fence
  grows by one each time. Taking over an expired endpoint sends the executions its old holder
  left running back to pending (or, run twice already, to ``FAILED``), in the same transaction.
- **Start gate**: the job row is read ``FOR SHARE`` (so a cancel's update waits for it, and a
  gate after a committed cancel sees it), and the endpoint's ``next_slot`` is compared and
  incremented under the current fence and an unexpired lease.

A cell is one slot of an endpoint: sample ``s`` of question ``q`` is slot ``q * samples + s``,
as the job's plan numbers them, so an endpoint runs its questions in order, each question's
samples one after another.
- **Fenced finish**: a record is stored only if its cell is running under this fence *and*
  the endpoint is still held under it with an unexpired lease (checked in the same UPDATE).
- **Verdict**: the job row is locked ``FOR UPDATE``; only an open job with every cell done
  gets one, so exactly one worker stores it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from ..._status import JobResult
from ..._types import ExecutionKey, ExecutionRecord, ExecutionStatus
from .._claims import Claim, ClaimStatus, Decide
from . import _jobs
from ._rows import Statements, record_reader, to_row

if TYPE_CHECKING:
    import psycopg

    from ..._spec import JobSpec

__all__ = [
    "CANCEL_CHANNEL",
    "cancel_job",
    "claim",
    "finish",
    "publish_job",
    "release",
    "renew",
    "start",
    "sweep",
    "try_finish",
]

CANCEL_CHANNEL = "beacon_cancel"
"""The NOTIFY channel of cancels (the payload is ``schema:job_id``)."""

_EP = "job_id = %(job)s AND model_id = %(model)s AND region = %(region)s"


def _args(c: Claim, **more: Any) -> dict[str, Any]:
    return {
        "job": c.job_id,
        "model": c.model_id,
        "region": c.region,
        "worker": c.worker,
        "fence": c.fence,
        **more,
    }


def publish_job(
    conn: psycopg.Connection[Any],
    schema: str,
    spec: JobSpec,
    rerun: Collection[ExecutionStatus] = frozenset(),
) -> None:
    """Make the job's endpoints and cells claimable; cells with a finished record start done.

    Cells whose record has a status in ``rerun`` start pending instead; a job already finished
    is reopened for them (see :func:`_reopen`).
    """
    job = spec.id
    inserted = conn.execute(
        f"INSERT INTO {schema}.claim_jobs (job_id) VALUES (%s) ON CONFLICT DO NOTHING "
        "RETURNING job_id",
        (job,),
    ).fetchone()
    if inserted is None:
        _reopen(conn, schema, job, rerun)
        return
    samples = spec.samples
    slots = [
        (q * samples + s, question.id, s)
        for q, question in enumerate(spec.questions)
        for s in range(samples)
    ]
    endpoints = [(m.id, r) for m in spec.models for r in m.regions]
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO {schema}.endpoints (job_id, model_id, region, ord, n_slots) "
            "VALUES (%s, %s, %s, %s, %s)",
            [(job, m, r, i, len(slots)) for i, (m, r) in enumerate(endpoints)],
        )
        cur.executemany(
            f"INSERT INTO {schema}.cells (job_id, model_id, region, slot, question_id, sample) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            [(job, m, r, slot, qid, s) for m, r in endpoints for slot, qid, s in slots],
        )
    finished = [s.value for s in ExecutionStatus if s.finished and s not in rerun]
    conn.execute(
        f"UPDATE {schema}.cells c SET state = 'done' FROM {schema}.records r "
        "WHERE c.job_id = %s AND r.job_id = c.job_id AND r.question_id = c.question_id "
        "AND r.model_id = c.model_id AND r.region = c.region AND r.sample = c.sample "
        "AND r.status = ANY(%s)",
        (job, finished),
    )
    _settle_endpoints(conn, schema, job)


def _reopen(
    conn: psycopg.Connection[Any], schema: str, job: str, rerun: Collection[ExecutionStatus]
) -> None:
    """Run a finished job's keys stored with a status in ``rerun`` again (a resume).

    Under the job row's lock and only from ``finished``: of the workers that resume it at once,
    one reopens it and the others join the reopened job, so each such key runs once more. An
    open job (still running, or left by a fleet that stopped) is joined as it is.
    """
    row = conn.execute(
        f"SELECT state FROM {schema}.claim_jobs WHERE job_id = %s FOR UPDATE", (job,)
    ).fetchone()
    if row is None or row[0] != "finished" or not rerun:
        return
    again = conn.execute(
        f"UPDATE {schema}.cells c SET state = 'pending', runs = 0, fence = NULL "
        f"FROM {schema}.records r WHERE c.job_id = %s AND r.job_id = c.job_id "
        "AND r.question_id = c.question_id AND r.model_id = c.model_id AND r.region = c.region "
        "AND r.sample = c.sample AND r.status = ANY(%s) RETURNING 1",
        (job, sorted(s.value for s in rerun)),
    ).fetchall()
    if not again:
        return  # nothing to run again: the stored verdict stands
    conn.execute(
        f"UPDATE {schema}.claim_jobs SET state = 'open', cancelled_at = NULL, "
        "cancel_reason = NULL WHERE job_id = %s",
        (job,),
    )
    conn.execute(
        f"UPDATE {schema}.jobs SET status = NULL, reason = NULL, result = NULL, "
        "finished_at = NULL WHERE id = %s",
        (job,),
    )
    _settle_endpoints(conn, schema, job)


def _lock_endpoints(conn: psycopg.Connection[Any], schema: str, where: str, args: Any) -> None:
    """Lock endpoint rows in key order before updating several of them.

    Two statements that each update many endpoints (a cancel, a renewal) would otherwise
    deadlock, each holding a row the other waits for.
    """
    conn.execute(
        f"SELECT 1 FROM {schema}.endpoints WHERE {where} "
        "ORDER BY job_id, model_id, region FOR UPDATE",
        args,
    )


def _settle_endpoints(conn: psycopg.Connection[Any], schema: str, job: str) -> None:
    """Each endpoint's ``next_slot`` at its first cell not done, and ``done`` when none is left."""
    _lock_endpoints(conn, schema, "job_id = %s", (job,))
    conn.execute(
        f"UPDATE {schema}.endpoints e SET "
        f"next_slot = coalesce((SELECT min(slot) FROM {schema}.cells c WHERE c.job_id = e.job_id "
        "AND c.model_id = e.model_id AND c.region = e.region AND c.state = 'pending'), "
        "e.n_slots), "
        f"done = NOT EXISTS (SELECT 1 FROM {schema}.cells c WHERE c.job_id = e.job_id "
        "AND c.model_id = e.model_id AND c.region = e.region AND c.state <> 'done') "
        "WHERE e.job_id = %s",
        (job,),
    )


def claim(
    conn: psycopg.Connection[Any],
    schema: str,
    worker: str,
    n: int,
    lease: float,
    job_id: str | None,
    sql: Statements,
) -> list[Claim]:
    """Claim up to ``n`` free or expired endpoints, oldest job and first endpoint first."""
    rows = conn.execute(
        f"WITH cand AS (SELECT e.job_id, e.model_id, e.region FROM {schema}.endpoints e "
        f"JOIN {schema}.claim_jobs j ON j.job_id = e.job_id JOIN {schema}.jobs jj "
        "ON jj.id = e.job_id WHERE j.state = 'open' AND j.cancelled_at IS NULL AND NOT e.done "
        "AND (e.holder IS NULL OR e.lease_until < clock_timestamp()) "
        "AND (%(only)s::text IS NULL OR e.job_id = %(only)s) "
        "ORDER BY jj.seq, e.ord LIMIT %(n)s FOR UPDATE OF e SKIP LOCKED) "
        f"UPDATE {schema}.endpoints e SET holder = %(worker)s, fence = e.fence + 1, "
        "lease_until = clock_timestamp() + make_interval(secs => %(lease)s) FROM cand "
        "WHERE e.job_id = cand.job_id AND e.model_id = cand.model_id "
        "AND e.region = cand.region RETURNING e.job_id, e.model_id, e.region, e.fence",
        {"only": job_id, "n": n, "worker": worker, "lease": lease},
    ).fetchall()
    claims = []
    for job, model, region, fence in rows:
        _take_over(conn, schema, job, model, region, sql)
        (next_slot,) = conn.execute(
            f"SELECT next_slot FROM {schema}.endpoints WHERE {_EP}",
            {"job": job, "model": model, "region": region},
        ).fetchone() or (0,)
        claims.append(Claim(job, model, region, worker, int(fence), int(next_slot)))
    return claims


def _take_over(
    conn: psycopg.Connection[Any], schema: str, job: str, model: str, region: str, sql: Statements
) -> None:
    """Cells an earlier holder left running: pending again, or FAILED once run twice."""
    where = {"job": job, "model": model, "region": region}
    left = conn.execute(
        f"UPDATE {schema}.cells SET state = CASE WHEN runs >= 2 THEN 'done' ELSE 'pending' END "
        f"WHERE {_EP} AND state = 'running' RETURNING question_id, sample, runs",
        where,
    ).fetchall()
    if not left:
        return
    failed = [
        ExecutionRecord(
            key=ExecutionKey(qid, model, region, int(sample)),
            status=ExecutionStatus.FAILED,
            error_code="INTERRUPTED",
            error_message=f"the worker running it stopped, {runs} times",
            attempts=int(runs),
        )
        for qid, sample, runs in left
        if runs >= 2
    ]
    if failed:
        with conn.cursor() as cur:
            cur.executemany(sql.upsert, [to_row(job, r) for r in failed])
    conn.execute(
        f"UPDATE {schema}.endpoints e SET next_slot = coalesce((SELECT min(slot) FROM "
        f"{schema}.cells c WHERE c.job_id = e.job_id AND c.model_id = e.model_id "
        f"AND c.region = e.region AND c.state = 'pending'), e.n_slots) WHERE {_EP}",
        where,
    )


def start(conn: psycopg.Connection[Any], schema: str, c: Claim, slot: int) -> bool:
    """The start gate, in one statement (see the module's docstring)."""
    row = conn.execute(
        f"WITH job AS (SELECT 1 FROM {schema}.claim_jobs WHERE job_id = %(job)s "
        "AND state = 'open' AND cancelled_at IS NULL FOR SHARE), "
        f"ep AS (UPDATE {schema}.endpoints SET next_slot = next_slot + 1 WHERE {_EP} "
        "AND holder = %(worker)s AND fence = %(fence)s AND lease_until > clock_timestamp() "
        "AND next_slot = %(slot)s AND EXISTS (SELECT 1 FROM job) RETURNING 1) "
        f"UPDATE {schema}.cells SET state = 'running', fence = %(fence)s, runs = runs + 1 "
        f"WHERE {_EP} AND slot = %(slot)s AND state = 'pending' AND EXISTS (SELECT 1 FROM ep) "
        "RETURNING 1",
        _args(c, slot=slot),
    ).fetchone()
    return row is not None


def finish(
    conn: psycopg.Connection[Any],
    schema: str,
    c: Claim,
    slot: int,
    record: ExecutionRecord,
    sql: Statements,
) -> bool:
    """Store the record if the cell runs under this fence and the lease still holds."""
    row = to_row(c.job_id, record)
    done = conn.execute(
        f"UPDATE {schema}.cells x SET state = 'done' FROM {schema}.endpoints e "
        "WHERE x.job_id = %(job)s AND x.model_id = %(model)s AND x.region = %(region)s "
        "AND x.slot = %(slot)s AND x.state = 'running' AND x.fence = %(fence)s "
        "AND e.job_id = x.job_id AND e.model_id = x.model_id AND e.region = x.region "
        "AND e.fence = %(fence)s AND e.holder = %(worker)s "
        "AND e.lease_until > clock_timestamp() RETURNING e.n_slots",
        _args(c, slot=slot),
    ).fetchone()
    if done is None:
        return False
    conn.execute(sql.upsert, row)
    if slot + 1 >= int(done[0]):
        conn.execute(
            f"UPDATE {schema}.endpoints SET done = true, holder = NULL, lease_until = NULL "
            f"WHERE {_EP} AND fence = %(fence)s",
            _args(c),
        )
    return True


def renew(conn: psycopg.Connection[Any], schema: str, worker: str, lease: float) -> ClaimStatus:
    """Renew every unexpired lease of ``worker`` (an expired one is never renewed)."""
    _lock_endpoints(conn, schema, "holder = %s AND NOT done", (worker,))
    rows = conn.execute(
        f"UPDATE {schema}.endpoints SET lease_until = clock_timestamp() + "
        "make_interval(secs => %s) WHERE holder = %s AND NOT done "
        "AND lease_until > clock_timestamp() RETURNING job_id, model_id, region, fence",
        (lease, worker),
    ).fetchall()
    held = frozenset((j, m, r, int(f)) for j, m, r, f in rows)
    jobs = sorted({j for j, _, _, _ in held})
    cancelled = conn.execute(
        f"SELECT job_id FROM {schema}.claim_jobs WHERE job_id = ANY(%s) "
        "AND (cancelled_at IS NOT NULL OR state <> 'open')",
        (jobs,),
    ).fetchall()
    return ClaimStatus(held=held, cancelled=frozenset(j for (j,) in cancelled))


def release(conn: psycopg.Connection[Any], schema: str, c: Claim) -> None:
    """Hand the endpoint back if this claim still holds it; its next slot stays next."""
    conn.execute(
        f"UPDATE {schema}.endpoints SET holder = NULL, lease_until = NULL "
        f"WHERE {_EP} AND holder = %(worker)s AND fence = %(fence)s",
        _args(c),
    )


def cancel_job(
    conn: psycopg.Connection[Any], schema: str, job_id: str, reason: str, sql: Statements
) -> bool:
    """Cancel: set the flag, store SKIPPED for every pending cell, NOTIFY; all one transaction."""
    row = conn.execute(
        f"UPDATE {schema}.claim_jobs SET cancelled_at = clock_timestamp(), cancel_reason = %s "
        "WHERE job_id = %s AND cancelled_at IS NULL AND state = 'open' RETURNING job_id",
        (reason, job_id),
    ).fetchone()
    if row is None:
        return False
    skipped = conn.execute(
        f"UPDATE {schema}.cells SET state = 'done' WHERE job_id = %s AND state = 'pending' "
        "RETURNING question_id, model_id, region, sample",
        (job_id,),
    ).fetchall()
    at = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
    records = [
        ExecutionRecord(
            key=ExecutionKey(qid, model, region, int(sample)),
            status=ExecutionStatus.SKIPPED,
            error_code="SKIPPED",
            error_message=f"never started: {reason}",
            finished_at=None if at is None else float(at[0]),
        )
        for qid, model, region, sample in skipped
    ]
    if records:
        with conn.cursor() as cur:
            cur.executemany(sql.upsert, [to_row(job_id, r) for r in records])
    _settle_endpoints(conn, schema, job_id)
    conn.execute("SELECT pg_notify(%s, %s)", (CANCEL_CHANNEL, f"{schema}:{job_id}"))
    return True


def sweep(conn: psycopg.Connection[Any], schema: str, sql: Statements, at: float) -> list[str]:
    """Running cells of cancelled jobs whose holder's lease expired: stored CANCELLED.

    The guard (cell running under the endpoint's fence, lease expired) is inside the UPDATE,
    never a read before it, so a completion committed meanwhile is never overwritten. Returns
    the jobs touched.
    """
    rows = conn.execute(
        f"UPDATE {schema}.cells c SET state = 'done' FROM {schema}.endpoints e, "
        f"{schema}.claim_jobs j WHERE j.job_id = c.job_id AND j.cancelled_at IS NOT NULL "
        "AND j.state = 'open' AND e.job_id = c.job_id AND e.model_id = c.model_id "
        "AND e.region = c.region AND c.state = 'running' AND c.fence = e.fence "
        "AND e.lease_until < clock_timestamp() "
        "RETURNING c.job_id, c.question_id, c.model_id, c.region, c.sample, c.runs, "
        "j.cancel_reason",
    ).fetchall()
    by_job: dict[str, list[ExecutionRecord]] = {}
    for job, qid, model, region, sample, runs, reason in rows:
        by_job.setdefault(job, []).append(
            ExecutionRecord(
                key=ExecutionKey(qid, model, region, int(sample)),
                status=ExecutionStatus.CANCELLED,
                error_code="CANCELLED",
                error_message=f"interrupted: {reason} (its worker stopped answering)",
                attempts=int(runs),
                finished_at=at,
            )
        )
    for job, records in by_job.items():
        with conn.cursor() as cur:
            cur.executemany(sql.upsert, [to_row(job, r) for r in records])
        _settle_endpoints(conn, schema, job)
    return sorted(by_job)


def try_finish(
    conn: psycopg.Connection[Any],
    schema: str,
    job_id: str,
    decide: Decide,
    sql: Statements,
    at: float,
) -> JobResult | None:
    """The verdict, stored by exactly one caller: the job locked, open, every cell done."""
    # A look without a lock first: the job row's FOR UPDATE would hold up every start gate
    # (FOR SHARE on it) each time an idle worker asks whether the job is over.
    if _cells_left(conn, schema, job_id):
        return None
    row = conn.execute(
        f"SELECT state, cancel_reason FROM {schema}.claim_jobs WHERE job_id = %s FOR UPDATE",
        (job_id,),
    ).fetchone()
    if row is None or row[0] != "open":
        return None
    if _cells_left(conn, schema, job_id):
        return None
    cursor = conn.execute(sql.select, (job_id,))
    read = record_reader([d.name for d in cursor.description or []])
    records: Sequence[ExecutionRecord] = [read(r) for r in cursor]
    result = decide(records, row[1])
    _jobs.store_result(conn, schema, job_id, result, at)
    conn.execute(f"UPDATE {schema}.claim_jobs SET state = 'finished' WHERE job_id = %s", (job_id,))
    return result


def _cells_left(conn: psycopg.Connection[Any], schema: str, job_id: str) -> bool:
    left = conn.execute(
        f"SELECT 1 FROM {schema}.cells WHERE job_id = %s AND state <> 'done' LIMIT 1", (job_id,)
    ).fetchone()
    return left is not None
