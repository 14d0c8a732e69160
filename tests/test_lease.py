"""One run per job: a run holds its job's lease from before it plans until after the verdict.

Two runs of one job on one store used to both execute every key (twice the GPU time, no
warning). Here: the second run is refused before it runs anything, with a message naming the
holder; a holder that died is taken over; the heartbeat keeps a long run's lease; and a run
whose lease was taken over after a stall stops at once and stores nothing more. The same
across processes, through ``beacon run``, is in ``tests/cli/test_two_runs.py``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio
import pytest
from attrs import define, field

from beacon_orchestrator import (
    Event,
    ExecutionRecord,
    Holder,
    JobCancelled,
    JobFinished,
    JobLockedError,
    JobSpec,
    JobStatus,
    Lease,
    LeaseLostError,
    Limits,
    MemoryStore,
    ModelTarget,
    Question,
    SQLiteStore,
    Store,
    run_job,
    start_job,
)
from beacon_orchestrator._scheduler._lease import LEASE_TTL
from beacon_orchestrator.testing import FakeExecutor, Step, find_violations, run_virtual
from beacon_orchestrator.testing._lease_conformance import DEAD_PID, REMOTE_HOST

BACKENDS = [pytest.param("asyncio", id="asyncio"), pytest.param("trio", id="trio")]
HERE = socket.gethostname()


def make_spec(questions: int = 3) -> JobSpec:
    """``questions`` x 2 models x 2 regions."""
    return JobSpec(
        id="leased",
        questions=[Question(f"q{i}", f"question {i}?") for i in range(questions)],
        models=[ModelTarget(m, ["us-east", "eu-west"]) for m in ("m1", "m2")],
        limits=Limits(per_endpoint=1),
    )


def one_record_per_key(spec: JobSpec, records: Sequence[ExecutionRecord]) -> bool:
    keys = [r.key for r in records]
    return len(keys) == len(set(keys)) and set(keys) == set(spec.plan())


# -- two runs in one process ----------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def new_store(kind: str, tmp_path: Path) -> Store:
    return MemoryStore() if kind == "memory" else SQLiteStore(tmp_path / "jobs.db")


@pytest.mark.anyio
async def test_start_job_twice_refuses_the_second_before_it_runs_anything(
    store_kind: str, tmp_path: Path
) -> None:
    spec = make_spec()
    store = new_store(store_kind, tmp_path)
    first = FakeExecutor(default=Step(outcome="hang"))
    second = FakeExecutor()
    async with anyio.create_task_group() as tg:
        handle = await start_job(tg, spec, first, store=store)
        with pytest.raises(JobLockedError) as info:
            await start_job(tg, spec, second, store=store)
        assert second.log == [], "the refused run called its executor"
        message = str(info.value)
        assert f"host {HERE!r}, pid {os.getpid()}, since " in message
        assert "\n" not in message
        (job,) = await store.jobs()
        assert job.lease == info.value.lease
        assert job.lease is not None
        assert job.lease.holder.pid == os.getpid()
        handle.cancel("enough")
        result = await handle.wait()
    assert result.status is JobStatus.CANCELLED
    assert one_record_per_key(spec, await store.records(spec.id))
    assert (await store.jobs())[0].lease is None, "the lease outlived its run"
    # Released: the next run resumes (and runs what the first one could not).
    third = FakeExecutor()
    resumed = await run_job(spec, third, store=store)
    assert resumed.status is JobStatus.COMPLETED
    assert len(third.starts()) == spec.size
    assert one_record_per_key(spec, await store.records(spec.id))
    if isinstance(store, SQLiteStore):
        await store.aclose()


@pytest.mark.anyio
async def test_a_refused_run_changes_nothing_in_the_store() -> None:
    spec = make_spec()
    store = MemoryStore()
    async with anyio.create_task_group() as tg:
        handle = await start_job(tg, spec, FakeExecutor(default=Step(outcome="hang")), store=store)
        before = (await store.jobs(), await store.records(spec.id))
        with pytest.raises(JobLockedError):
            await run_job(spec, FakeExecutor(), store=store)
        assert (await store.jobs(), await store.records(spec.id)) == before
        handle.cancel()


# -- dead holders are taken over ----------------------------------------------------------------


@pytest.mark.anyio
async def test_a_holder_whose_process_is_gone_is_taken_over_and_the_job_completes() -> None:
    spec = make_spec()
    store = MemoryStore()
    await store.open_job(spec)
    crashed = await store.acquire_lease(spec.id, Holder("crashed", DEAD_PID, HERE), LEASE_TTL)
    result = await run_job(spec, FakeExecutor(), store=store)
    assert result.status is JobStatus.COMPLETED
    assert one_record_per_key(spec, list(result.records))
    with pytest.raises(LeaseLostError):
        await store.renew_lease(crashed)  # the crashed run, back from the dead, is fenced off


@pytest.mark.anyio
async def test_a_holder_on_another_host_holds_the_job_until_its_heartbeat_expires() -> None:
    spec = make_spec()
    now = [1_700_000_000.0]
    store = MemoryStore(clock=lambda: now[0])
    await store.open_job(spec)
    await store.acquire_lease(spec.id, Holder("far", 99, REMOTE_HOST), LEASE_TTL)
    fake = FakeExecutor()
    now[0] += LEASE_TTL  # exactly as old as its ttl: still held
    with pytest.raises(JobLockedError, match=f"host {REMOTE_HOST!r}, pid 99"):
        await run_job(spec, fake, store=store)
    assert fake.log == []
    assert await store.records(spec.id) == []
    now[0] += 0.5
    assert (await run_job(spec, fake, store=store)).status is JobStatus.COMPLETED


# -- the heartbeat, and a lease lost after a stall ----------------------------------------------


@define
class WatchedStore(MemoryStore):
    """A MemoryStore on the event loop's clock that logs renewals and writes, and can stall one
    renewal for a while (as a process paused by the OS or a debugger would)."""

    stall_renewal: int | None = None
    stall_for: float = 0.0
    on_lost: Callable[[str], None] | None = None
    log: list[tuple[str, float]] = field(factory=list)
    renewals: int = 0

    async def renew_lease(self, lease: Lease) -> Lease:
        self.renewals += 1
        if self.renewals == self.stall_renewal:
            await anyio.sleep(self.stall_for)
        try:
            renewed = await super().renew_lease(lease)
        except LeaseLostError:
            self.log.append(("lost", anyio.current_time()))
            if self.on_lost is not None:
                self.on_lost("cancel")  # a mark in the executor's log: nothing starts after it
            raise
        self.log.append(("renewed", anyio.current_time()))
        return renewed

    async def write(self, job_id: str, record: ExecutionRecord) -> None:
        self.log.append(("write", anyio.current_time()))
        await super().write(job_id, record)

    async def write_many(self, job_id: str, records: Sequence[ExecutionRecord]) -> None:
        self.log.append(("write", anyio.current_time()))
        await super().write_many(job_id, records)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_heartbeat_keeps_a_run_longer_than_the_ttl_from_being_taken_over(
    backend: str,
) -> None:
    spec = make_spec(questions=8)  # 8 questions x 30 s on each endpoint: 240 s, 8 ttls

    async def main() -> None:
        store = WatchedStore(clock=anyio.current_time)
        refusals = 0
        async with anyio.create_task_group() as tg:
            handle = await start_job(
                tg, spec, FakeExecutor(default=Step(latency=30.0)), store=store
            )
            for _ in range(7):
                await anyio.sleep(LEASE_TTL + 1.0)
                with pytest.raises(JobLockedError):
                    await store.acquire_lease(spec.id, Holder("far", 99, REMOTE_HOST), LEASE_TTL)
                refusals += 1
            result = await handle.wait()
        assert result.status is JobStatus.COMPLETED
        assert refusals == 7
        renewed = [t for kind, t in store.log if kind == "renewed"]
        # One beat every third of the ttl, from the start to the end of the workers.
        assert len(renewed) == pytest.approx(240.0 / (LEASE_TTL / 3), abs=1)
        assert max(b - a for a, b in zip([0.0, *renewed], renewed, strict=False)) <= LEASE_TTL / 3
        assert (await store.jobs())[0].lease is None

    run_virtual(main, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "stall",
    [
        pytest.param(45.0, id="found-lost-mid-execution"),
        pytest.param(40.0, id="found-lost-as-executions-end"),
    ],
)
def test_a_run_that_loses_its_lease_stops_at_once_and_stores_nothing_more(
    backend: str, stall: float
) -> None:
    spec = make_spec(questions=8)  # 8 questions x 10 s on each endpoint: 80 s
    taker = Holder("taker", 99, REMOTE_HOST)
    lost_at = 2 * LEASE_TTL / 3 + stall

    async def main() -> None:
        fake = FakeExecutor(default=Step(latency=10.0))
        # The second renewal (t=20) stalls until lost_at (executions end at 60, 70, ...); the
        # lease, renewed last at t=10, expires at 40.
        store = WatchedStore(
            clock=anyio.current_time, stall_renewal=2, stall_for=stall, on_lost=fake.mark
        )
        events: list[Event] = []
        taken: list[Lease] = []

        async def take_over() -> None:
            await anyio.sleep(45.0)
            taken.append(await store.acquire_lease(spec.id, taker, LEASE_TTL))

        async with anyio.create_task_group() as tg:
            tg.start_soon(take_over)
            with pytest.raises(LeaseLostError) as info:
                await run_job(spec, fake, store=store, on_event=events.append)
        assert info.value.current == taken[0]
        kinds = [kind for kind, _ in store.log]
        lost = kinds.index("lost")
        assert store.log[lost][1] == lost_at
        assert "write" not in kinds[lost:], "the run stored records after it lost its lease"
        assert "write" in kinds[:lost]  # (it did store some before: fencing is checked on renew)
        cancels = [e for e in events if isinstance(e, JobCancelled)]
        assert [(c.source, c.at) for c in cancels] == [("lease", lost_at)]
        assert not any(isinstance(e, JobFinished) for e in events), "a verdict without the lease"
        assert (await store.jobs())[0].status is None
        assert (
            find_violations(spec, events, [], executor_log=fake.log, only=["no_start_after_cancel"])
            == []
        )
        ended_after = [c for c in fake.log if c.kind == "end" and c.at > lost_at]
        assert ended_after == [], "executions ran on after the lease was lost"
        if lost_at % 10.0:  # mid-execution: they were interrupted (at the instant they end,
            # which of the two happens first is the backend's scheduling order)
            interrupted = [c for c in fake.log if c.kind == "end" and c.outcome == "cancelled"]
            assert {c.at for c in interrupted} == {lost_at}
        # The new holder's turn (here: this test's, which gives it to a fresh run).
        completed = set(await store.completed_keys(spec.id))
        await store.release_lease(taken[0])
        again = FakeExecutor()
        result = await run_job(spec, again, store=store)
        assert result.status is JobStatus.COMPLETED
        assert one_record_per_key(spec, await store.records(spec.id))
        assert not {c.key for c in again.starts()} & completed

    run_virtual(main, backend=backend)
