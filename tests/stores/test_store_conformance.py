"""Every store in the project passes the one conformance state machine, on asyncio and trio.

The last tests show that the suite catches a store that breaks the write rule, and stores that
break the lease rules: granting a held lease, never letting one expire, granting in two steps.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import hypothesis
import pytest
from attrs import define, evolve

from beacon_orchestrator import (
    ExecutionRecord,
    ExecutionStatus,
    Holder,
    JobLockedError,
    Lease,
    MemoryStore,
    RecordFilter,
    SQLiteStore,
    Store,
    UsageError,
)
from beacon_orchestrator.stores import EndpointKeys, check_batch, grant_lease, should_replace
from beacon_orchestrator.testing._store_conformance import StoreFactory, store_conformance_test


@asynccontextmanager
async def memory_store(clock: Callable[[], float]) -> AsyncIterator[Store]:
    yield MemoryStore(clock=clock)


@asynccontextmanager
async def sqlite_store(clock: Callable[[], float]) -> AsyncIterator[Store]:
    with tempfile.TemporaryDirectory(prefix="beacon-conformance-") as tmp:
        async with SQLiteStore(Path(tmp) / "jobs.db", clock=clock) as store:
            yield store


TestMemoryStoreOnAsyncio = store_conformance_test(memory_store, backend="asyncio")
TestMemoryStoreOnTrio = store_conformance_test(memory_store, backend="trio")
TestSQLiteStoreOnAsyncio = store_conformance_test(sqlite_store, backend="asyncio")
TestSQLiteStoreOnTrio = store_conformance_test(sqlite_store, backend="trio")


@define
class OverwritingStore(MemoryStore):
    """A broken store: it lets a failed record replace a completed one."""

    async def write(self, job_id: str, record: ExecutionRecord) -> None:
        self._job(job_id).records[record.key] = record

    async def write_many(self, job_id: str, records: Sequence[ExecutionRecord]) -> None:
        self._job(job_id)
        for record in records:
            await self.write(job_id, record)


@asynccontextmanager
async def overwriting_store(clock: Callable[[], float]) -> AsyncIterator[Store]:
    yield OverwritingStore(clock=clock)


def test_the_suite_catches_a_store_that_replaces_completed_records() -> None:
    # A fixed search (see _finds_the_bug): a random one of 200 examples missed this bug now and
    # then once the machine had more rules to pick from.
    _finds_the_bug(overwriting_store, "stored ExecutionRecord")


@define
class LeaseForAll(MemoryStore):
    """A broken store: whoever asks gets the lease, held or not."""

    async def acquire_lease(self, job_id: str, holder: Holder, ttl: float) -> Lease:
        job = self._job(job_id)
        job.lease = grant_lease(None, job_id, holder, ttl, self.clock(), last_token=job.lease_token)
        job.lease_token = job.lease.token
        return job.lease


@define
class LeaseForEver(MemoryStore):
    """A broken store: a lease never expires (a crashed runner would block the job for good)."""

    async def acquire_lease(self, job_id: str, holder: Holder, ttl: float) -> Lease:
        current = self._job(job_id).lease
        if current is not None and current.holder.owner != holder.owner:
            raise JobLockedError(current, now=self.clock())
        return await super().acquire_lease(job_id, holder, ttl)


@define
class LeaseInTwoSteps(MemoryStore):
    """A broken store: it reads the lease, awaits (a round trip), then writes: not atomic."""

    async def acquire_lease(self, job_id: str, holder: Holder, ttl: float) -> Lease:
        job = self._job(job_id)
        current, token = job.lease, job.lease_token
        await anyio.sleep(0.001)
        lease = grant_lease(current, job_id, holder, ttl, self.clock(), last_token=token)
        job.lease, job.lease_token = lease, lease.token
        return lease


def _finds_the_bug(factory: StoreFactory, message: str) -> None:
    broken = store_conformance_test(
        factory,
        hypothesis_settings=hypothesis.settings(
            max_examples=600,
            deadline=None,
            database=None,
            # The search for a mutant's bug must not depend on luck: a fixed seed, so the test
            # either always finds it or never does.
            derandomize=True,
            # Runs long enough for a lease to be taken, expire and be asked for again: at 30
            # steps the fixed search found the never-expiring lease by luck, and lost it when
            # unrelated code changed; at 50 it finds every mutant here within a few examples.
            stateful_step_count=50,
            phases=[hypothesis.Phase.generate],
        ),
    )
    with pytest.raises(AssertionError, match=message):
        broken("runTest").runTest()


def test_the_suite_catches_a_store_that_grants_a_held_lease() -> None:
    @asynccontextmanager
    async def factory(clock: Callable[[], float]) -> AsyncIterator[Store]:
        yield LeaseForAll(clock=clock)

    # Found either way: a held lease granted, or one's own lease granted anew (a new token).
    _finds_the_bug(
        factory, "got the held lease|of two racing runners got the lease|re-acquiring one's own"
    )


def test_the_suite_catches_a_store_whose_leases_never_expire() -> None:
    @asynccontextmanager
    async def factory(clock: Callable[[], float]) -> AsyncIterator[Store]:
        yield LeaseForEver(clock=clock)

    # Which rule sees it first depends on which racer asks first: the lease a runner still
    # holds (never expired) wins a race again, and the loser is told of that lease.
    _finds_the_bug(
        factory,
        "was refused a free lease|0 of two racing runners got the lease"
        "|the loser's JobLockedError does not name the winner",
    )


def test_the_suite_catches_a_store_that_grants_in_two_steps() -> None:
    @asynccontextmanager
    async def factory(clock: Callable[[], float]) -> AsyncIterator[Store]:
        yield LeaseInTwoSteps(clock=clock)

    _finds_the_bug(factory, "2 of two racing runners got the lease")


@define
class DropsTheLastBatch(MemoryStore):
    """A broken store: its paging stops at the last full batch (an off-by-one in the cursor)."""

    async def iter_records(
        self, job_id: str, *, batch: int = 1000, **filters: Any
    ) -> AsyncIterator[ExecutionRecord]:
        found = [r async for r in super().iter_records(job_id, batch=batch, **filters)]
        for record in found[: len(found) - len(found) % batch]:
            yield record


@define
class ClampsTheBatch(MemoryStore):
    """A broken store: a batch below 1 silently becomes 1 instead of being refused."""

    async def iter_records(
        self, job_id: str, *, batch: int = 1000, **filters: Any
    ) -> AsyncIterator[ExecutionRecord]:
        async for record in super().iter_records(job_id, batch=max(1, int(batch)), **filters):
            yield record


@define
class KeysOfEveryStatus(MemoryStore):
    """A broken store: keys() ignores the statuses asked for (a resume would skip failures)."""

    async def keys(
        self, job_id: str, *, status: Collection[ExecutionStatus] | None = None
    ) -> AsyncIterator[EndpointKeys]:
        async for found in super().keys(job_id):
            yield found


def test_the_suite_catches_a_store_that_reads_a_batch_below_one() -> None:
    @asynccontextmanager
    async def factory(clock: Callable[[], float]) -> AsyncIterator[Store]:
        yield ClampsTheBatch(clock=clock)

    _finds_the_bug(factory, r"iter_records\(batch=.*\) should raise")


def test_the_suite_catches_a_store_that_drops_the_last_batch() -> None:
    @asynccontextmanager
    async def factory(clock: Callable[[], float]) -> AsyncIterator[Store]:
        yield DropsTheLastBatch(clock=clock)

    _finds_the_bug(factory, r"iter_records\(")


def test_the_suite_catches_keys_that_ignore_the_statuses() -> None:
    @asynccontextmanager
    async def factory(clock: Callable[[], float]) -> AsyncIterator[Store]:
        yield KeysOfEveryStatus(clock=clock)

    _finds_the_bug(factory, r"keys\(status=")


@define
class SampleBlindStore(MemoryStore):
    """A broken store: it keys records by their cell, so a cell's samples overwrite each other
    (a table whose primary key lacks ``sample``)."""

    async def write(self, job_id: str, record: ExecutionRecord) -> None:
        records = self._job(job_id).records
        cell = record.key.cell
        if should_replace(records.get(cell), record):
            records[cell] = evolve(record, key=cell)

    async def write_many(self, job_id: str, records: Sequence[ExecutionRecord]) -> None:
        self._job(job_id)
        for record in records:
            await self.write(job_id, record)


def test_the_suite_catches_a_store_that_keeps_one_record_per_cell_whatever_its_samples() -> None:
    @asynccontextmanager
    async def factory(clock: Callable[[], float]) -> AsyncIterator[Store]:
        yield SampleBlindStore(clock=clock)

    _finds_the_bug(factory, r": stored .*, expected ")  # a record lost to another sample


@define
class KeysWithoutSamples(MemoryStore):
    """A broken store: keys() says sample 0 for every key (a query that forgot ``sample``)."""

    async def keys(
        self, job_id: str, *, status: Collection[ExecutionStatus] | None = None
    ) -> AsyncIterator[EndpointKeys]:
        async for found in super().keys(job_id, status=status):
            yield evolve(found, samples=(0,) * len(found.samples))


@define
class KeysWithoutCost(MemoryStore):
    """A broken store: keys() never says what the records cost (a budget would restart at 0)."""

    async def keys(
        self, job_id: str, *, status: Collection[ExecutionStatus] | None = None
    ) -> AsyncIterator[EndpointKeys]:
        async for found in super().keys(job_id, status=status):
            yield evolve(found, cost=None)


def test_the_suite_catches_keys_without_their_cost() -> None:
    @asynccontextmanager
    async def factory(clock: Callable[[], float]) -> AsyncIterator[Store]:
        yield KeysWithoutCost(clock=clock)

    _finds_the_bug(factory, r"keys\(\) of .*: cost None, want ")


def test_the_suite_catches_keys_without_their_samples() -> None:
    @asynccontextmanager
    async def factory(clock: Callable[[], float]) -> AsyncIterator[Store]:
        yield KeysWithoutSamples(clock=clock)

    _finds_the_bug(factory, r"keys\(\) gives .* twice|keys\(status=")


@pytest.mark.parametrize("batch", [1, 2, 1000])
def test_check_batch_gives_back_a_count_of_at_least_one(batch: int) -> None:
    assert check_batch(batch) == batch


@pytest.mark.parametrize("batch", [0, -1, True, 2.5, "10", None])
def test_check_batch_refuses_what_cannot_page_naming_the_field_and_the_value(batch: object) -> None:
    with pytest.raises(UsageError, match=rf"batch: expected an integer >= 1, got {batch!r}"):
        check_batch(batch)


def test_sqlite_reads_without_a_loop_refuse_a_batch_below_one(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "jobs.db")
    with pytest.raises(UsageError, match="batch: expected an integer >= 1, got 0"):
        store.iter_records_sync("any", RecordFilter(), batch=0)
