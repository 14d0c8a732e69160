"""A result reads its records from the store on demand: filters, keys, sync and async, bounds.

A ``JobResult`` holds no record of a job run on a store (only the first failures, to show);
``result.records`` streams them, ``result[key]`` finds one. These tests pin what each way of
reading gives, and what is refused with a message rather than a traceback.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from beacon_orchestrator import (
    ExecutionKey,
    ExecutionRecord,
    ExecutionRequest,
    ExecutionStatus,
    JobResult,
    JobStatus,
    Limits,
    MemoryStore,
    RecordFilter,
    Records,
    Response,
    SQLiteStore,
    UsageError,
    run_job,
    start_job,
)
from beacon_orchestrator._status import SHOWN_FAILURES
from beacon_orchestrator.testing import FakeExecutor, Step

from .stores.support import make_spec, record

C, F, T = ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.TIMEOUT
S = ExecutionStatus.SKIPPED


def _records(n: int = 30) -> tuple[ExecutionRecord, ...]:
    statuses = (C, F, C, T, S)
    regions = ("us-east", "eu-west")
    return tuple(
        record(ExecutionKey(f"q{i}", "m0", regions[i % 2]), statuses[i % 5]) for i in range(n)
    )


def _hand_built(records: tuple[ExecutionRecord, ...]) -> JobResult:
    return JobResult(
        "job", JobStatus.FAILED, "some failed", {C: 12, F: 6, T: 6, S: 6}, 0.4, 30, records
    )


# -- built from a tuple ----------------------------------------------------------------------------


def test_a_hand_built_result_keeps_its_first_failures_and_never_lists_records() -> None:
    records = _records()
    result = _hand_built(records)
    failed = [r for r in records if r.status is not C]
    assert result.failures == tuple(failed[:SHOWN_FAILURES])
    assert result.not_completed == 18
    assert "q1" not in repr(result)
    assert repr(result).endswith("records=30)")
    assert list(result.records) == list(records)


@given(
    status=st.none() | st.frozensets(st.sampled_from(ExecutionStatus)),
    region=st.none() | st.sampled_from(["us-east", "eu-west", "nowhere"]),
    question=st.none() | st.sampled_from(["q1", "q2", "q9", "q99"]),
)
def test_filtering_a_view_keeps_exactly_the_records_that_match(
    status: frozenset[ExecutionStatus] | None, region: str | None, question: str | None
) -> None:
    """Property: a filtered view yields the records every condition admits, in order."""
    records = _records()
    view = _hand_built(records).records(status=status, region=region, question=question)
    want = [
        r
        for r in records
        if (status is None or r.status in status)
        and (region is None or r.key.region == region)
        and (question is None or r.key.question_id == question)
    ]
    assert list(view) == want
    assert len(view) == len(want)


def test_filters_narrow_each_other_and_a_key_indexes_the_view() -> None:
    records = _records()
    result = _hand_built(records)
    failed_east = result.records(status=[F, T])(region="us-east")
    assert {r.status for r in failed_east} <= {F, T}
    assert {r.key.region for r in failed_east} == {"us-east"}
    assert list(result.records(region="us-east")(region="eu-west")) == []
    assert result[records[3].key] == records[3]
    assert result.records(status=C)[records[0].key] == records[0]
    with pytest.raises(KeyError):
        result.records(status=C)[records[1].key]  # failed: filtered out
    with pytest.raises(UsageError, match="expected an ExecutionKey, got 0"):
        result.records[0]  # type: ignore[index]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"status": "finished"}, "status: expected one of completed, .*got 'finished'"),
        ({"status": 3}, "status: expected an ExecutionStatus or several, got 3"),
        ({"region": 5}, "region: expected a string or None, got 5"),
    ],
)
def test_a_bad_filter_is_refused_naming_the_argument(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        RecordFilter.of(**kwargs)  # type: ignore[arg-type]


# -- read from a store ---------------------------------------------------------------------------

KEYS = list(make_spec("job", questions=2, models=1).plan())


def _executor() -> FakeExecutor:
    return FakeExecutor(
        {KEYS[1]: [Step(outcome="permanent")], KEYS[4]: [Step(outcome="permanent")]}
    )


@pytest.mark.anyio
async def test_a_result_on_a_memory_store_reads_it_sync_and_async_alike() -> None:
    store = MemoryStore()
    spec = make_spec("job", questions=2, models=1)
    result = await run_job(spec, _executor(), store=store)
    stored = await store.records(spec.id)
    assert isinstance(result.records, Records)
    assert list(result.records) == stored
    assert [r async for r in result.records] == stored
    assert {r.key for r in result.failures} == {KEYS[1], KEYS[4]}
    failed = [r async for r in result.records(status=F)]
    assert failed == list(result.failures)
    assert await result.record(KEYS[0]) == stored[[r.key for r in stored].index(KEYS[0])]
    assert await result.records(status=F).get(KEYS[0]) is None


@pytest.mark.anyio
async def test_a_result_on_a_sqlite_file_reads_it_after_the_store_is_closed(tmp_path: Path) -> None:
    spec = make_spec("job", questions=2, models=1)
    async with SQLiteStore(tmp_path / "jobs.db") as store:
        result = await run_job(spec, _executor(), store=store)
        stored = await store.records(spec.id)
        assert await result.records.list() == stored
    # A plain for: a read-only connection of its own, in this thread.
    assert list(result.records) == stored
    assert result[KEYS[4]].status is F
    assert {r.key for r in result.records(status=F, region=KEYS[4].region)} == {KEYS[1], KEYS[4]}
    assert [r.key for r in result.records(status=F, question=KEYS[4].question_id)] == [KEYS[4]]


@pytest.mark.anyio
async def test_a_memory_sqlite_store_is_read_asynchronously_only() -> None:
    spec = make_spec("job", questions=1, models=1)
    async with SQLiteStore(":memory:") as store:
        result = await run_job(spec, _executor(), store=store)
        assert len(await result.records.list()) == spec.size
        with pytest.raises(UsageError, match=r"':memory:' SQLiteStore is read asynchronously"):
            list(result.records)


class _AsyncOnly:
    """A store reduced to what a result reads: iter_records, without a sync read."""

    def __init__(self, records: list[ExecutionRecord]) -> None:
        self._records = records

    async def iter_records(self, job_id: str, **filters: object) -> AsyncIterator[ExecutionRecord]:
        for r in self._records:
            yield r


def test_a_store_read_only_asynchronously_says_how_to_read_it() -> None:
    view = Records(_AsyncOnly(list(_records(3))), "job")
    with pytest.raises(UsageError, match=r"use 'async for record in result\.records"):
        list(view)
    assert anyio.run(view.list) == list(_records(3))


# -- the collector while a job ends ----------------------------------------------------------------


@pytest.mark.anyio
async def test_the_collector_threshold_is_put_back_after_a_cancelled_job() -> None:
    """Paused from cancel() to the verdict, then exactly as it was."""
    before = gc.get_threshold()
    spec = make_spec("job", questions=4, models=2)
    hang = FakeExecutor.random(seed=1, latency=(10.0, 10.0))
    async with anyio.create_task_group() as tg:
        handle = await start_job(tg, spec, hang, limits=Limits(cancel_grace=0.0))
        await anyio.sleep(0.01)
        handle.cancel()
        # From cancel() to the verdict the collector makes no automatic pass (only churn then).
        assert gc.get_threshold() == (0, 0, 0)
        result = await handle.wait()
    assert result.status is JobStatus.CANCELLED
    assert gc.get_threshold() == before
    assert gc.isenabled()


class _Hanging:
    """Hangs in every execution; ``all_started`` is set once ``n`` are inside at once."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.started = 0
        self.all_started = anyio.Event()

    async def execute(self, request: ExecutionRequest) -> Response:
        self.started += 1
        if self.started == self.n:
            self.all_started.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable: sleep_forever returned")


@pytest.mark.anyio
async def test_interrupted_executions_leave_no_reference_cycles_for_the_collector() -> None:
    """Cancelling 300 executions in flight leaves (nearly) nothing for the collector.

    An interrupted worker ends without keeping its cancellation's exception, traceback and
    frames in a reference cycle (asyncio's task kept it when the worker re-raised: about 40
    objects per task, collected while the job ended); they are freed as the task ends.
    """
    spec = make_spec("job", questions=1, models=100)  # 300 endpoints, all in flight at once
    in_flight = len(spec.endpoints)
    hang = _Hanging(in_flight)
    gc.collect()
    gc.disable()  # what the job leaves is counted below, not collected meanwhile
    try:
        async with anyio.create_task_group() as tg:
            handle = await start_job(tg, spec, hang, limits=Limits(cancel_grace=0.0))
            with anyio.fail_after(10):
                await hang.all_started.wait()
            handle.cancel()
            result = await handle.wait()
        cyclic = gc.collect()
    finally:
        gc.enable()
    assert result.counts[ExecutionStatus.CANCELLED] == in_flight
    assert cyclic < in_flight // 2, f"{cyclic} objects in cycles after {in_flight} interrupted"


def test_a_store_without_the_bulk_reads_is_refused_before_the_job_starts() -> None:
    from beacon_orchestrator import RegionQueue

    class OldStore(MemoryStore):
        keys = None  # type: ignore[assignment]

    with pytest.raises(UsageError, match=r"store OldStore lacks keys of the Store protocol"):
        RegionQueue(make_spec(), FakeExecutor(), store=OldStore())  # type: ignore[arg-type]


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_a_key_of_a_later_sample_finds_its_own_record_not_its_cells_first(
    kind: str, tmp_path: Path
) -> None:
    """A cell has a record per sample: ``records[key]`` and ``record(key)`` give the sample
    the key names, and a filter by question, model and region gives every sample."""
    from beacon_orchestrator import JobSpec, ModelTarget, Question

    spec = JobSpec(
        id="sampled",
        questions=(Question("q0", "Why?"), Question("q1", "How?")),
        models=(ModelTarget("m0", ("us-east",)),),
        samples=3,
    )
    store = MemoryStore() if kind == "memory" else SQLiteStore(tmp_path / "s.db")
    async with store:
        result = await run_job(spec, FakeExecutor(), store=store)

        def by_index(key: ExecutionKey) -> ExecutionRecord:
            return result.records[key]  # plain indexing reads without an event loop

        for key in spec.plan():
            found = await result.record(key)
            assert found is not None
            assert found.key == key
            assert (await anyio.to_thread.run_sync(by_index, key)).key == key
        cell = [
            r.key for r in await result.records(question="q1", model="m0", region="us-east").list()
        ]
        assert sorted(cell) == [ExecutionKey("q1", "m0", "us-east", s) for s in range(3)]
