"""The shared mode in one process: several workers (SharedRun) on one job through PostgresStore.

The multi-process scenarios (kills, pauses, cancels across processes) are in
``test_many_workers.py``; these pin the rules on one event loop, asyncio and trio.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import anyio
import pytest
from attrs import evolve

from beacon_orchestrator import (
    CostModel,
    ExecutionStatus,
    JobStatus,
    Limits,
    Price,
    UsageError,
    run_job,
)
from beacon_orchestrator._scheduler._options import RunOptions
from beacon_orchestrator._scheduler._shared import SharedOptions, SharedRun, run_shared
from beacon_orchestrator.stores.postgres import PostgresStore
from beacon_orchestrator.testing import FakeExecutor

from ..stores.support import make_spec

pytestmark = pytest.mark.anyio
FAST = SharedOptions(lease=3.0, poll=0.05)


async def test_run_job_on_a_postgres_store_runs_every_key_once(
    postgres_dsn: str, pg_schema: str
) -> None:
    spec = make_spec("shared-1", questions=4, models=2)
    fake = FakeExecutor.random(seed=3, latency=(0.001, 0.005))
    async with PostgresStore(postgres_dsn, schema=pg_schema) as store:
        result = await run_job(spec, fake, store=store)
        records = await store.records(spec.id)
    assert result.status is JobStatus.COMPLETED
    assert Counter(r.status for r in records) == {ExecutionStatus.COMPLETED: spec.size}
    starts = Counter(c.key for c in fake.log if c.kind == "start")
    assert set(starts) == {r.key for r in records}
    assert max(starts.values()) == 1
    # each endpoint's questions started in question order
    order: dict[tuple[str, str], list[str]] = {}
    for call in fake.log:
        if call.kind == "start" and call.key is not None:
            order.setdefault((call.key.model_id, call.key.region), []).append(call.key.question_id)
    assert all(qs == sorted(qs) for qs in order.values())


async def test_three_workers_share_one_job_and_one_verdict_is_stored(
    postgres_dsn: str, pg_schema: str
) -> None:
    spec = make_spec("shared-3", questions=5, models=2)
    fake = FakeExecutor.random(seed=5, latency=(0.002, 0.01))
    results = []
    async with PostgresStore(postgres_dsn, schema=pg_schema) as store:

        async def one() -> None:
            results.append(await run_shared(spec, fake, store, RunOptions(), FAST))

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(one)
        records = await store.records(spec.id)
        (info,) = await store.jobs()
    starts = Counter(c.key for c in fake.log if c.kind == "start")
    assert len(records) == spec.size
    assert max(starts.values()) == 1
    assert {r.status for r in results} == {JobStatus.COMPLETED}
    assert len({(r.status, r.reason) for r in results}) == 1
    assert info.status is JobStatus.COMPLETED


async def test_cancel_skips_pending_keys_and_interrupts_running_ones(
    postgres_dsn: str, pg_schema: str
) -> None:
    spec = make_spec("shared-c", questions=6, models=1)
    fake = FakeExecutor.random(seed=1, latency=(0.3, 0.3))
    async with PostgresStore(postgres_dsn, schema=pg_schema) as store:
        async with anyio.create_task_group() as tg:
            results = []

            async def run() -> None:
                results.append(await run_shared(spec, fake, store, RunOptions(), FAST))

            tg.start_soon(run)
            await anyio.sleep(0.5)
            assert await store.cancel_job(spec.id, "stop now")
            cancelled_at = anyio.current_time()
        records = await store.records(spec.id)
    (result,) = results
    assert result.status is JobStatus.CANCELLED
    counts = Counter(r.status for r in records)
    assert len(records) == spec.size
    # At most one per endpoint was in flight; one may have ended before the notice came.
    assert 1 <= counts[ExecutionStatus.CANCELLED] <= 3
    started = {c.key for c in fake.log if c.kind == "start" and c.at <= cancelled_at}
    assert {r.key for r in records if r.status is ExecutionStatus.CANCELLED} <= started
    assert counts[ExecutionStatus.SKIPPED] > 0
    late = [c for c in fake.log if c.kind == "start" and c.at > cancelled_at]
    assert late == []


async def test_unsupported_options_are_refused_before_anything_runs(
    postgres_dsn: str, pg_schema: str
) -> None:
    spec = make_spec("shared-u")
    async with PostgresStore(postgres_dsn, schema=pg_schema) as store:
        with pytest.raises(UsageError, match="strategy 'region'"):
            await run_job(spec, FakeExecutor(), store=store, strategy="region")
        assert await store.jobs() == []


async def test_a_worker_serves_every_open_job(postgres_dsn: str, pg_schema: str) -> None:
    specs = [make_spec(f"open-{i}", questions=2, models=1) for i in range(2)]
    fake = FakeExecutor.random(seed=2, latency=(0.001, 0.002))
    async with PostgresStore(postgres_dsn, schema=pg_schema) as store:
        for spec in specs:
            await store.publish_job(spec)
        with anyio.move_on_after(3):
            await SharedRun(store, fake, shared=FAST).run()
        done = {j.job_id: j.records for j in await store.jobs()}
    assert done == {s.id: s.size for s in specs}


async def test_three_workers_run_every_sample_of_every_cell_once_in_slot_order(
    postgres_dsn: str, pg_schema: str
) -> None:
    """With samples, each endpoint runs its slots in order: question by question, each
    question's samples one after another; every (cell, sample) key starts once."""
    spec = evolve(make_spec("shared-s", questions=3, models=2), samples=3)
    fake = FakeExecutor.random(seed=7, latency=(0.001, 0.004))
    results = []
    async with PostgresStore(postgres_dsn, schema=pg_schema) as store:

        async def one() -> None:
            results.append(await run_shared(spec, fake, store, RunOptions(), FAST))

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(one)
        records = await store.records(spec.id)
        read_back = [r async for r in results[0].records]
        keys = [k async for k in store.keys(spec.id)]
    assert spec.size == 3 * 2 * 3 * 3
    assert len(records) == spec.size
    assert {r.key.sample for r in records} == {0, 1, 2}
    starts = Counter(c.key for c in fake.log if c.kind == "start")
    assert set(starts) == {r.key for r in records}
    assert max(starts.values()) == 1
    order: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for call in fake.log:
        if call.kind == "start" and call.key is not None:
            k = call.key
            order.setdefault((k.model_id, k.region), []).append((k.question_id, k.sample))
    assert all(slots == sorted(slots) for slots in order.values())
    assert {r.status for r in results} == {JobStatus.COMPLETED}
    assert results[0].planned == spec.size
    assert read_back == records  # the result's records are a view read from the store
    assert sum(len(k.samples) for k in keys) == spec.size


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"adaptive": True}, "adaptive"),
        ({"breaker": True}, "breaker"),
        ({"cost_model": CostModel(default=Price(per_request=0.01))}, "cost_model"),
        ({"limits": Limits(max_cost=1.0)}, "max_cost 1.0"),
        ({"limits": Limits(cold_start_timeout=5.0)}, "cold_start_timeout 5.0"),
    ],
)
async def test_fleet_guards_are_refused_in_shared_mode_before_anything_runs(
    postgres_dsn: str, pg_schema: str, options: dict[str, Any], named: str
) -> None:
    """The fleet guards count what one process sees; shared, they are refused up front."""
    spec = make_spec("shared-f")
    fake = FakeExecutor()
    async with PostgresStore(postgres_dsn, schema=pg_schema) as store:
        with pytest.raises(UsageError, match=named):
            await run_job(spec, fake, store=store, **options)
        assert await store.jobs() == []
    assert fake.log == []


async def test_a_start_let_through_before_the_process_stood_still_past_its_fence_is_not_sent(
    postgres_dsn: str, pg_schema: str
) -> None:
    """The gate lets a slot start, then the whole process stalls past its fence (as under
    SIGSTOP, the event loop blocked): on waking it must not send that request, and the slot runs
    later, once, under the endpoint's next claim."""
    import time

    spec = make_spec("shared-stall", questions=3, models=1)
    fake = FakeExecutor.random(seed=11, latency=(0.001, 0.003))
    lease = 1.5
    stalled: list[float] = []

    class Stalling(PostgresStore):
        async def start(self, claim: Any, slot: int) -> bool | None:
            started = await super().start(claim, slot)
            if started and not stalled:
                time.sleep(lease)  # the event loop stands still: no timer can fire meanwhile
                stalled.append(anyio.current_time())
            return started

    async with Stalling(postgres_dsn, schema=pg_schema) as store:
        result = await run_shared(
            spec, fake, store, RunOptions(), SharedOptions(lease=lease, poll=0.05)
        )
        records = await store.records(spec.id)
    assert stalled, "the stall never happened"
    assert result.status is JobStatus.COMPLETED
    assert Counter(r.status for r in records) == {ExecutionStatus.COMPLETED: spec.size}
    starts = Counter(c.key for c in fake.log if c.kind == "start")
    assert max(starts.values()) == 1, f"a key was sent twice: {starts}"
