"""``beacon export`` of a PostgreSQL job: streamed a batch per query, the SQLite export's bytes."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from beacon_orchestrator import ExecutionKey, ExecutionStatus, SQLiteStore, StoreError, UsageError
from beacon_orchestrator._records import RecordFilter
from beacon_orchestrator.stores import _protocol
from beacon_orchestrator.stores.postgres import PostgresStore, _rows, _sync

from ..cli.support import invoke
from ..stores.support import make_spec, record
from .server import fresh_database

JOB = "export-job"
STATUSES = tuple(ExecutionStatus)


@pytest.fixture
def dsn(postgres_dsn: str) -> Iterator[str]:
    """A fresh database (the CLI uses the store's default schema)."""
    with fresh_database() as url:
        yield url


def _fill(dsn: str, db: Path) -> int:
    """The same records, answers with NUL and non-ASCII text among them, in both stores."""
    spec = make_spec(JOB, questions=7, models=2)
    records = [
        record(key, STATUSES[i % len(STATUSES)], text=f"answer {i} \x00 ünï {'x' * (i % 5)}")
        for i, key in enumerate(spec.plan())
    ]

    async def fill() -> None:
        async with PostgresStore(dsn) as pg, SQLiteStore(db) as lite:
            for store in (pg, lite):
                await store.open_job(spec)
                await store.write_many(JOB, records)

    anyio.run(fill)
    return len(records)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_postgres_export_is_read_a_batch_per_query_and_equals_the_sqlite_export(
    tmp_path: Path, dsn: str, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = _fill(dsn, tmp_path / "same.db")
    batches: list[int] = []
    read_batch = _rows.read_batch

    def counted(conn: Any, query: Any) -> Any:
        found, after = read_batch(conn, query)
        batches.append(len(found))
        return found, after

    monkeypatch.setattr(_protocol, "READ_BATCH", 5)
    monkeypatch.setattr(_sync, "read_batch", counted)
    from_pg = invoke(["export", JOB, "--store", dsn, "--format", fmt])
    from_sqlite = invoke(["export", JOB, "--store", str(tmp_path / "same.db"), "--format", fmt])
    assert from_pg.exit_code == 0, from_pg.output
    assert from_sqlite.exit_code == 0, from_sqlite.output
    assert from_pg.stdout == from_sqlite.stdout
    assert len(from_pg.stdout.splitlines()) == n + (fmt == "csv")
    # Never more than a batch at once: every record came in a query of at most 5.
    assert sum(batches) == n
    assert max(batches) <= 5
    assert len(batches) == math.floor(n / 5) + 1


def test_iter_records_sync_filters_refuses_a_bad_batch_and_an_unknown_job(
    tmp_path: Path, dsn: str
) -> None:
    _fill(dsn, tmp_path / "same.db")
    store = PostgresStore(dsn)
    only_failed = RecordFilter.of(status=ExecutionStatus.FAILED)
    failed = list(store.iter_records_sync(JOB, only_failed, batch=2))
    assert failed
    assert {r.status for r in failed} == {ExecutionStatus.FAILED}
    everything = list(store.iter_records_sync(JOB, RecordFilter(), batch=3))
    keys = [r.key for r in everything]
    assert len(set(keys)) == len(keys) == 42
    assert isinstance(keys[0], ExecutionKey)
    with pytest.raises(UsageError, match="batch"):
        store.iter_records_sync(JOB, RecordFilter(), batch=0)
    with pytest.raises(StoreError, match="unknown job id 'nope'"):
        list(store.iter_records_sync("nope", RecordFilter()))
