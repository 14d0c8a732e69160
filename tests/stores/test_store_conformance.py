"""Every store in the project passes the one conformance state machine, on asyncio and trio.

The last test shows that the suite catches a store that breaks the write rule.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import hypothesis
import pytest
from attrs import define

from beacon_orchestrator import ExecutionRecord, MemoryStore, SQLiteStore, Store
from beacon_orchestrator.testing._store_conformance import store_conformance_test


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
    broken = store_conformance_test(
        overwriting_store,
        # No shrinking: finding the bug is the point, and shrinking a state machine is slow.
        hypothesis_settings=hypothesis.settings(
            max_examples=200,
            deadline=None,
            database=None,
            stateful_step_count=30,
            phases=[hypothesis.Phase.generate],
        ),
    )
    with pytest.raises(AssertionError, match="stored ExecutionRecord"):
        broken("runTest").runTest()
