"""Running a finished shared job again: ``rerun_failed`` as in one process, keys run once.

A job run on a PostgresStore (the shared mode) and run again reruns what a single-process
resume reruns (``RunOptions.rerun_failed``): ``CANCELLED``/``SKIPPED`` keys always,
``FAILED``/``TIMEOUT`` ones unless told not to, ``COMPLETED`` ones never. Several workers
resuming it at once reopen it once between them, so each such key runs once more.
"""

from __future__ import annotations

from collections import Counter

import anyio
import pytest

from beacon_orchestrator import ExecutionStatus, JobStatus, run_job
from beacon_orchestrator._scheduler._options import RunOptions
from beacon_orchestrator._scheduler._shared import SharedOptions, run_shared
from beacon_orchestrator.stores.postgres import PostgresStore
from beacon_orchestrator.testing import FakeExecutor

from ..stores.support import make_spec

pytestmark = pytest.mark.anyio
FAST = SharedOptions(lease=3.0, poll=0.05)
C, F = ExecutionStatus.COMPLETED, ExecutionStatus.FAILED


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_three_workers_resuming_a_job_run_each_failed_key_once_and_no_completed_one(
    postgres_dsn: str, pg_schema: str, seed: int
) -> None:
    spec = make_spec("rerun", questions=5, models=2)
    failing = FakeExecutor.random(seed=seed, latency=(0.001, 0.003), p_permanent=0.4)
    healthy = FakeExecutor.random(seed=seed, latency=(0.001, 0.01))
    async with PostgresStore(postgres_dsn, schema=pg_schema, pool_size=6) as store:
        first = await run_job(spec, failing, store=store)
        before = {r.key: r.status for r in await store.records(spec.id)}
        results = []

        async def worker() -> None:
            results.append(await run_shared(spec, healthy, store, RunOptions(), FAST))

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(worker)
        after = {r.key: r for r in await store.records(spec.id)}
        (info,) = await store.jobs()
    failed = {k for k, s in before.items() if s is F}
    assert failed, "the first run failed nothing: the seed tests nothing"
    assert first.status is not JobStatus.COMPLETED or first.counts.get(F)
    starts = Counter(c.key for c in healthy.log if c.kind == "start")
    assert set(starts) == failed, "exactly the failed keys ran again"
    assert max(starts.values()) == 1, "a failed key ran twice on resume"
    assert {r.status for r in after.values()} == {C}
    assert len(after) == spec.size
    assert {(r.status, r.counts.get(C)) for r in results} == {(JobStatus.COMPLETED, spec.size)}
    assert info.status is JobStatus.COMPLETED


async def test_rerun_failed_false_keeps_failed_keys_and_the_stored_verdict(
    postgres_dsn: str, pg_schema: str
) -> None:
    spec = make_spec("keep", questions=4, models=2)
    failing = FakeExecutor.random(seed=2, latency=(0.001, 0.003), p_permanent=0.4)
    healthy = FakeExecutor.random(seed=2, latency=(0.001, 0.003))
    async with PostgresStore(postgres_dsn, schema=pg_schema) as store:
        first = await run_job(spec, failing, store=store)
        again = await run_job(spec, healthy, store=store, rerun_failed=False)
        records = await store.records(spec.id)
    assert first.counts.get(F)
    assert healthy.starts() == []
    assert (again.status, again.reason, again.counts) == (first.status, first.reason, first.counts)
    assert Counter(r.status for r in records) == {s: n for s, n in first.counts.items() if n}


async def test_a_resumed_cancelled_job_runs_its_cancelled_and_skipped_keys_without_rerun_failed(
    postgres_dsn: str, pg_schema: str
) -> None:
    spec = make_spec("resume-cancelled", questions=6, models=1)
    slow = FakeExecutor.random(seed=4, latency=(0.2, 0.2))
    healthy = FakeExecutor.random(seed=4, latency=(0.001, 0.003))
    async with PostgresStore(postgres_dsn, schema=pg_schema) as store:
        async with anyio.create_task_group() as tg:

            async def cancel_soon() -> None:
                while not slow.starts():
                    await anyio.sleep(0.01)
                await anyio.sleep(0.05)
                assert await store.cancel_job(spec.id, "stopped by the test")

            tg.start_soon(cancel_soon)
            first = await run_shared(spec, slow, store, RunOptions(), FAST)
        before = {r.key: r.status for r in await store.records(spec.id)}
        again = await run_job(spec, healthy, store=store, rerun_failed=False)
        after = await store.records(spec.id)
    assert first.status is JobStatus.CANCELLED
    interrupted = {k for k, s in before.items() if s is not C}
    assert interrupted, "the cancel interrupted nothing"
    assert {c.key for c in healthy.starts()} == interrupted
    assert len(healthy.starts()) == len(interrupted)
    assert again.status is JobStatus.COMPLETED
    assert {r.status for r in after} == {C}
