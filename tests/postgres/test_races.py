"""Races decided by the database: a late completion against the sweep, a lost listener, the
verdict asked for at once by many workers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import psycopg
import pytest

from beacon_orchestrator import (
    ExecutionKey,
    ExecutionRecord,
    ExecutionStatus,
    MemoryStore,
    run_job,
)
from beacon_orchestrator._scheduler._options import RunOptions
from beacon_orchestrator._scheduler._shared import SharedOptions, SharedRun, _decider, run_shared
from beacon_orchestrator.stores._claims import Claim
from beacon_orchestrator.stores.postgres import PostgresStore, _claims
from beacon_orchestrator.stores.postgres._rows import Statements
from beacon_orchestrator.stores.postgres._shared import LISTENER_NAME
from beacon_orchestrator.testing import FakeExecutor

from ..stores.support import make_spec
from .mutants import mutate
from .server import fresh_schema

C = ExecutionStatus.COMPLETED


@pytest.fixture
def schema(postgres_dsn: str) -> Iterator[str]:
    with fresh_schema() as name:
        yield name


def completion_vs_sweep(postgres_dsn: str, schema: str) -> None:
    """The sweep's guard is inside its UPDATE: it re-reads the cell after the completion's
    commit releases it, finds it done, and leaves the COMPLETED record alone."""
    spec = make_spec("race", questions=1, models=1)
    sql = Statements(schema)

    async def setup() -> Any:
        async with PostgresStore(postgres_dsn, schema=schema) as store:
            await store.publish_job(spec)
            (claim,) = await store.claim("w1", 1, 1.0, spec.id)
            assert await store.start(claim, 0)
            assert await store.cancel_job(spec.id, "cancelled mid-flight")
            return claim

    claim = anyio.run(setup)
    key = next(iter(spec.plan()))
    key = type(key)(key.question_id, claim.model_id, claim.region)
    late = ExecutionRecord(key=key, status=C, text="late but in time", attempts=1)
    swept: list[list[str]] = []
    with psycopg.connect(postgres_dsn) as finishing, psycopg.connect(postgres_dsn) as sweeping:
        assert _claims.finish(finishing, schema, claim, 0, late, sql)  # holds the cell's lock
        time.sleep(1.1)  # the lease expires: the sweep may now take the cell, if still running

        def sweep() -> None:
            swept.append(_claims.sweep(sweeping, schema, sql, at=0.0))
            sweeping.commit()

        sweeper = threading.Thread(target=sweep)
        sweeper.start()
        time.sleep(0.3)
        assert sweeper.is_alive(), "the sweep did not wait for the completion's row lock"
        finishing.commit()
        sweeper.join(10)
    assert swept == [[]]
    with psycopg.connect(postgres_dsn) as conn:
        rows = conn.execute(
            f"SELECT status FROM {schema}.records WHERE model_id = %s AND region = %s",
            (claim.model_id, claim.region),
        ).fetchall()
    assert rows == [("completed",)]


def completion_vs_takeover(postgres_dsn: str, schema: str) -> None:
    """A completion committing while a takeover of its expired endpoint waits for the cell: the
    takeover re-reads the cell, finds it done, and the new holder starts at the next slot."""
    spec = make_spec("takeover", questions=2, models=1)
    sql = Statements(schema)

    async def setup() -> Any:
        async with PostgresStore(postgres_dsn, schema=schema) as store:
            await store.publish_job(spec)
            (claim,) = await store.claim("w1", 1, 1.0, spec.id)
            assert await store.start(claim, 0)
            return claim

    claim = anyio.run(setup)
    key = ExecutionKey("q0", claim.model_id, claim.region)
    late = ExecutionRecord(key=key, status=C, text="late but in time", attempts=1)
    taken: list[list[Claim]] = []
    with psycopg.connect(postgres_dsn) as finishing, psycopg.connect(postgres_dsn) as claiming:
        assert _claims.finish(finishing, schema, claim, 0, late, sql)  # holds the cell's lock
        time.sleep(1.1)  # the lease expires: the endpoint may be taken over

        def take_over() -> None:
            taken.append(_claims.claim(claiming, schema, "w2", 1, 30.0, spec.id, sql))
            claiming.commit()

        taker = threading.Thread(target=take_over)
        taker.start()
        time.sleep(0.3)
        assert taker.is_alive(), "the takeover did not wait for the completion's row lock"
        finishing.commit()
        taker.join(10)
    (new,) = taken[0]
    assert (new.fence, new.next_slot) == (claim.fence + 1, 1), "the completed slot would rerun"
    with psycopg.connect(postgres_dsn) as conn:
        rows = conn.execute(
            f"SELECT c.slot, c.state, r.status FROM {schema}.cells c LEFT JOIN {schema}.records r "
            "ON r.job_id = c.job_id AND r.question_id = c.question_id "
            "AND r.model_id = c.model_id AND r.region = c.region AND r.sample = c.sample "
            "WHERE c.model_id = %s AND c.region = %s ORDER BY c.slot",
            (claim.model_id, claim.region),
        ).fetchall()
    assert rows == [(0, "done", "completed"), (1, "pending", None)]


def test_a_completion_committing_while_the_sweep_waits_is_never_overwritten(
    postgres_dsn: str, schema: str
) -> None:
    completion_vs_sweep(postgres_dsn, schema)


def test_a_completion_committing_while_a_takeover_waits_is_kept_and_not_rerun(
    postgres_dsn: str, schema: str
) -> None:
    completion_vs_takeover(postgres_dsn, schema)


def fenced_write(postgres_dsn: str, schema: str) -> None:
    """A write under a claim whose lease expired and was taken over is refused."""
    spec = make_spec("fenced", questions=2, models=1)

    async def scenario() -> tuple[bool, bool | None, list[ExecutionRecord]]:
        async with PostgresStore(postgres_dsn, schema=schema) as store:
            await store.publish_job(spec)
            (old,) = await store.claim("w1", 1, 0.5, spec.id)
            assert await store.start(old, 0)
            await anyio.sleep(0.7)
            (new,) = await store.claim("w2", 1, 30.0, spec.id)  # the takeover
            key = type(next(iter(spec.plan())))("q0", old.model_id, old.region)
            zombie = ExecutionRecord(key=key, status=C, text="zombie", attempts=1)
            refused = await store.finish(old, 0, zombie)
            assert new.fence == old.fence + 1
            assert new.next_slot == 0  # the interrupted slot runs again
            started_again = await store.start(new, 0)
            return refused, started_again, await store.records(spec.id)

    refused, started_again, records = anyio.run(scenario)
    assert refused is False
    assert started_again is True
    assert records == []


def test_a_fenced_write_after_the_lease_expired_is_refused(postgres_dsn: str, schema: str) -> None:
    fenced_write(postgres_dsn, schema)


@pytest.mark.parametrize(
    ("scenario", "mutant"),
    [
        (completion_vs_sweep, "sweep"),
        (completion_vs_takeover, "takeover"),
        (fenced_write, "zombie"),
    ],
    ids=["sweep-unguarded", "takeover-resets-done-cells", "write-unfenced"],
)
def test_each_late_completion_race_fails_when_its_guard_is_removed(
    postgres_dsn: str,
    schema: str,
    scenario: Callable[[str, str], None],
    mutant: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mutate(monkeypatch, mutant)
    with pytest.raises(AssertionError):
        scenario(postgres_dsn, schema)


@pytest.mark.anyio
async def test_a_killed_listener_is_made_up_for_and_nothing_starts_after_the_cancel(
    postgres_dsn: str, schema: str
) -> None:
    """pg_terminate_backend on every listening connection, then cancel: the gate refuses new
    starts at once, and in-flight executions stop within one heartbeat."""
    spec = make_spec("deaf", questions=6, models=1)
    fake = FakeExecutor.random(seed=4, latency=(0.4, 0.4))
    lease = 1.5
    async with PostgresStore(postgres_dsn, schema=schema) as store:
        results = []
        async with anyio.create_task_group() as tg:

            async def run() -> None:
                shared = SharedOptions(lease=lease, poll=0.05)
                results.append(await run_shared(spec, fake, store, RunOptions(), shared))

            tg.start_soon(run)
            await anyio.sleep(0.6)
            with psycopg.connect(postgres_dsn, autocommit=True) as conn:
                killed = conn.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = %s",
                    (LISTENER_NAME,),
                ).fetchone()
            assert killed is not None
            assert killed[0] >= 1
            assert await store.cancel_job(spec.id, "cancel while deaf")
            cancelled_at = anyio.current_time()
        records = await store.records(spec.id)
    starts_after = [c for c in fake.log if c.kind == "start" and c.at > cancelled_at]
    assert starts_after == []
    ends = [c.at - cancelled_at for c in fake.log if c.kind == "end" and c.at > cancelled_at]
    assert all(t < lease / 3 + 0.2 for t in ends), ends
    assert {r.status for r in records} <= {C, ExecutionStatus.CANCELLED, ExecutionStatus.SKIPPED}
    assert len(records) == spec.size


async def verdict_race(postgres_dsn: str, schema: str) -> None:
    """8 workers ask for the verdict at once: one stores it, the single run's."""
    spec = make_spec("verdict", questions=3, models=2)
    fake = FakeExecutor.random(seed=9, latency=(0.001, 0.002), p_permanent=0.3)
    single = await run_job(spec, FakeExecutor.random(seed=9, p_permanent=0.3), store=MemoryStore())
    async with PostgresStore(postgres_dsn, schema=schema, pool_size=8) as store:
        await store.publish_job(spec)
        worker = SharedRun(store, fake, RunOptions(), SharedOptions(poll=0.05), job_id=None)
        with anyio.move_on_after(2):
            await worker.run()  # runs every key; its own verdict attempt may win or not
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(f"UPDATE {schema}.claim_jobs SET state = 'open'")
            conn.execute(f"UPDATE {schema}.jobs SET status = NULL")
        decide = _decider(spec, RunOptions())
        outcomes: list[object] = []

        async def ask() -> None:
            outcomes.append(await store.try_finish(spec.id, decide))

        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(ask)
    won = [o for o in outcomes if o is not None]
    assert len(won) == 1, f"{len(won)} verdicts stored"
    (result,) = won
    assert (result.status, result.reason) == (single.status, single.reason)  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_many_workers_asking_for_the_verdict_at_once_store_one_equal_to_a_single_run(
    postgres_dsn: str, schema: str
) -> None:
    await verdict_race(postgres_dsn, schema)


@pytest.mark.anyio
async def test_the_verdict_race_fails_without_the_job_row_lock(
    postgres_dsn: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    mutate(monkeypatch, "verdict")
    with pytest.raises(AssertionError, match="verdicts stored"):
        await verdict_race(postgres_dsn, schema)
