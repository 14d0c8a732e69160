"""Concurrency caps held across workers: ``per_region`` and ``max_concurrency`` as slot rows.

A capped job has a set of slot rows per cap (``region:<name>`` for each region under
``per_region``, ``job`` for ``max_concurrency``); the cap is the number of rows. An execution
starts only holding one free slot of each set that applies to it. The slots are taken in the
start gate's transaction, each with ``FOR UPDATE SKIP LOCKED`` (so two gates never take one
slot, and none waits for another), and never by counting what runs: a count read before a
claim races, and a counter leaks what a crashed worker held.

A slot is held under the endpoint's claim (holder, endpoint fence and slot of the cell it
runs) with the endpoint's lease: the heartbeat renews both in one transaction, a release or a
finish frees it only under that same claim (a stale claim frees nothing), and a dead worker's
slots become free when its lease passes, never earlier.

An endpoint whose gate found a set full notes, on its endpoint row, the set it waits for and
since when; a gate leaves a free slot to a live endpoint that has waited longer (first come,
first served), so an endpoint that just freed a slot cannot take it back over and over while
another waits. Each function runs in the one transaction the store opened for it, calling the
endpoint SQL of :mod:`._claims` where the two meet.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from ..._types import ExecutionRecord, ExecutionStatus
from .._claims import Claim, ClaimStatus
from . import _claims

if TYPE_CHECKING:
    import psycopg

    from ..._spec import JobSpec, Limits
    from ._rows import Statements

__all__ = [
    "JOB_SCOPE",
    "SLOT_CHANNEL",
    "finish",
    "publish_job",
    "region_scope",
    "release",
    "renew",
    "scopes",
    "start",
]

SLOT_CHANNEL = "beacon_slot"
"""The NOTIFY channel of freed slots (the payload is ``schema:job_id``)."""

JOB_SCOPE = "job"
"""The scope of a job's ``max_concurrency`` slots."""

_FREE = "(holder IS NULL OR lease_until < clock_timestamp())"
_HELD = (
    "job_id = %(job)s AND holder = %(worker)s AND model_id = %(model)s AND region = %(region)s "
    "AND ep_fence = %(fence)s"
)


def region_scope(region: str) -> str:
    """The scope of one region's ``per_region`` slots."""
    return f"region:{region}"


def scopes(spec: JobSpec, limits: Limits) -> dict[str, int]:
    """Each slot set a job has under ``limits``, and its cap (its number of rows)."""
    caps = {}
    if limits.max_concurrency is not None:
        caps[JOB_SCOPE] = limits.max_concurrency
    if limits.per_region is not None:
        for model in spec.models:
            for region in model.regions:
                caps[region_scope(region)] = limits.per_region
    return caps


def publish_job(
    conn: psycopg.Connection[Any],
    schema: str,
    spec: JobSpec,
    limits: Limits | None,
    rerun: Collection[ExecutionStatus] = frozenset(),
) -> None:
    """Publish the job's endpoints and, unless it has slots already, its slots.

    A job's caps are fixed by its first publication with caps: a worker that publishes it
    again (with other limits) changes nothing, so every worker holds the same caps. Two first
    publications at once are ordered by the job row's insert (the second waits for the first
    to commit, then sees its slots: each statement reads what committed before it).
    """
    _claims.publish_job(conn, schema, spec, rerun)
    has_slots = conn.execute(
        f"SELECT 1 FROM {schema}.slots WHERE job_id = %s LIMIT 1", (spec.id,)
    ).fetchone()
    if has_slots is not None:
        return
    caps = scopes(spec, spec.limits if limits is None else limits)
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO {schema}.slots (job_id, scope, n) VALUES (%s, %s, %s) "
            "ON CONFLICT DO NOTHING",
            [(spec.id, scope, n) for scope, cap in caps.items() for n in range(cap)],
        )


def _take(conn: psycopg.Connection[Any], schema: str, c: Claim) -> list[tuple[str, int]] | None:
    """Lock one free slot of each set the claim's executions need; ``None`` if one is full.

    A set is full for this endpoint also when another live endpoint waits for it since
    earlier: waiters are served first come, first served, so an endpoint that just freed a
    slot cannot take it straight back, over and over, while another waits.
    """
    capped = conn.execute(
        f"SELECT scope FROM {schema}.slots WHERE job_id = %s AND scope = ANY(%s) AND n = 0 "
        "ORDER BY scope",
        (c.job_id, [JOB_SCOPE, region_scope(c.region)]),
    ).fetchall()
    taken = []
    for (scope,) in capped:
        row = None
        if not _waited_for_longer(conn, schema, _claims._args(c, scope=scope)):
            row = conn.execute(
                f"SELECT n FROM {schema}.slots WHERE job_id = %s AND scope = %s AND {_FREE} "
                "ORDER BY n LIMIT 1 FOR UPDATE SKIP LOCKED",
                (c.job_id, scope),
            ).fetchone()
        if row is None:
            _wait_in_line(conn, schema, c, scope)
            return None
        taken.append((scope, int(row[0])))
    return taken


def _waited_for_longer(conn: psycopg.Connection[Any], schema: str, args: dict[str, Any]) -> bool:
    """Whether another endpoint, held under a live lease, waits for the set since earlier."""
    row = conn.execute(
        f"SELECT 1 FROM {schema}.endpoints w WHERE w.job_id = %(job)s "
        "AND w.waiting_for = %(scope)s AND NOT w.done AND w.lease_until > clock_timestamp() "
        "AND NOT (w.model_id = %(model)s AND w.region = %(region)s) "
        "AND w.waiting_since < coalesce((SELECT waiting_since FROM "
        f"{schema}.endpoints WHERE job_id = %(job)s AND model_id = %(model)s "
        "AND region = %(region)s), clock_timestamp()) LIMIT 1",
        args,
    ).fetchone()
    return row is not None


def _wait_in_line(conn: psycopg.Connection[Any], schema: str, c: Claim, scope: str) -> None:
    """Note that the claim's endpoint waits for ``scope`` (keeping its place if it waited)."""
    conn.execute(
        f"UPDATE {schema}.endpoints SET waiting_for = %(scope)s, "
        "waiting_since = coalesce(waiting_since, clock_timestamp()) "
        "WHERE job_id = %(job)s AND model_id = %(model)s AND region = %(region)s "
        "AND holder = %(worker)s AND fence = %(fence)s",
        _claims._args(c, scope=scope),
    )


def start(conn: psycopg.Connection[Any], schema: str, c: Claim, slot: int) -> bool | None:
    """The start gate with the caps: ``None`` if a cap has no free slot now (nothing changed).

    The slots are locked first (never waiting), then the endpoint's gate runs; only if it lets
    the cell start are the slots taken, under the claim and with the endpoint's lease.
    """
    taken = _take(conn, schema, c)
    if taken is None:
        return None
    if not _claims.start(conn, schema, c, slot):
        return False
    if taken:  # out of the line it may have waited in
        conn.execute(
            f"UPDATE {schema}.endpoints SET waiting_for = NULL, waiting_since = NULL "
            "WHERE job_id = %s AND model_id = %s AND region = %s",
            (c.job_id, c.model_id, c.region),
        )
    for scope, n in taken:
        conn.execute(
            f"UPDATE {schema}.slots s SET holder = %(worker)s, fence = s.fence + 1, "
            "model_id = %(model)s, region = %(region)s, ep_fence = %(fence)s, cell = %(cell)s, "
            f"lease_until = e.lease_until FROM {schema}.endpoints e "
            "WHERE s.job_id = %(job)s AND s.scope = %(scope)s AND s.n = %(n)s "
            "AND e.job_id = %(job)s AND e.model_id = %(model)s AND e.region = %(region)s",
            _claims._args(c, cell=slot, scope=scope, n=n),
        )
    return True


def _free(conn: psycopg.Connection[Any], schema: str, c: Claim, cell: int | None) -> None:
    """Free the slots held under the claim (for one cell, or all); NOTIFY if any was."""
    freed = conn.execute(
        f"UPDATE {schema}.slots SET holder = NULL, lease_until = NULL "
        f"WHERE {_HELD} AND (%(cell)s::integer IS NULL OR cell = %(cell)s) RETURNING 1",
        _claims._args(c, cell=cell),
    ).fetchall()
    if freed:
        conn.execute("SELECT pg_notify(%s, %s)", (SLOT_CHANNEL, f"{schema}:{c.job_id}"))


def finish(
    conn: psycopg.Connection[Any],
    schema: str,
    c: Claim,
    slot: int,
    record: ExecutionRecord,
    sql: Statements,
) -> bool:
    """The fenced finish, freeing the cell's slots in the same transaction (stored or not)."""
    stored = _claims.finish(conn, schema, c, slot, record, sql)
    _free(conn, schema, c, slot)
    return stored


def release(conn: psycopg.Connection[Any], schema: str, c: Claim) -> None:
    """Hand the endpoint back and free every slot held under the claim."""
    _claims.release(conn, schema, c)
    _free(conn, schema, c, None)


def renew(conn: psycopg.Connection[Any], schema: str, worker: str, lease: float) -> ClaimStatus:
    """Renew the worker's endpoints, then its slots to their endpoints' new lease.

    A slot is renewed only while its own lease holds and its endpoint is still held under the
    same claim: a slot whose lease passed is free for others, and stays so.
    """
    status = _claims.renew(conn, schema, worker, lease)
    conn.execute(
        f"UPDATE {schema}.slots s SET lease_until = e.lease_until FROM {schema}.endpoints e "
        "WHERE s.holder = %(worker)s AND s.lease_until > clock_timestamp() "
        "AND e.job_id = s.job_id AND e.model_id = s.model_id AND e.region = s.region "
        "AND e.holder = %(worker)s AND e.fence = s.ep_fence",
        {"worker": worker},
    )
    return status
