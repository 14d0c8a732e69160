"""The SQLite store's direct export writes the record path's bytes, without building records."""

from __future__ import annotations

import datetime as dt
import io
import sqlite3
import tempfile
from pathlib import Path

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beacon_orchestrator import (
    ExecutionKey,
    ExecutionRecord,
    ExecutionStatus,
    SQLiteStore,
    StoreError,
    UsageError,
)
from beacon_orchestrator.stores import RecordFilter, export_csv, export_jsonl
from beacon_orchestrator.stores.sqlite._export_rows import (
    _csv_converter,
    _jsonl_converter,
    iso_seconds,
    read_raw_batch,
)
from beacon_orchestrator.testing._store_conformance import conformance_records

from .support import make_spec, record

# Ids with Unicode and NUL, several samples per cell: what a key column may hold.
_ids = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=5)
_keys = st.builds(ExecutionKey, _ids, _ids, _ids, st.integers(0, 3))
_records = st.lists(conformance_records(_keys), max_size=8, unique_by=lambda r: r.key)


def _stored(path: Path, records: list[ExecutionRecord]) -> SQLiteStore:
    async def main() -> SQLiteStore:
        async with SQLiteStore(path) as store:
            await store.open_job(make_spec())
            await store.write_many("job", records)
        return store

    return anyio.run(main)


def _both(store: SQLiteStore, fmt: str) -> tuple[str, str]:
    """The text of the record path's export and of the direct one."""
    by_records, direct = io.StringIO(newline=""), io.StringIO(newline="")
    writer = export_csv if fmt == "csv" else export_jsonl
    n = writer(store.iter_records_sync("job", RecordFilter()), by_records)
    assert store.export_sync("job", "csv" if fmt == "csv" else "jsonl", direct) == n
    return by_records.getvalue(), direct.getvalue()


@settings(max_examples=60, deadline=None)
@given(records=_records)
def test_direct_export_is_byte_identical_to_the_record_path(records: list[ExecutionRecord]) -> None:
    """For any stored records (Unicode, NUL, None, empty, usage, cost, samples, metadata and
    receipts), CSV and JSON Lines straight from the rows equal the export of the records."""
    with tempfile.TemporaryDirectory() as tmp:
        store = _stored(Path(tmp) / "s.db", records)
        for fmt in ("csv", "jsonl"):
            by_records, direct = _both(store, fmt)
            assert direct == by_records
            assert len(direct.splitlines()) >= len(records)  # every record is in it


def test_direct_export_spans_batches_in_stored_order(tmp_path: Path) -> None:
    """More rows than one query reads (5,000) come out once each, in the order written."""
    keys = [ExecutionKey(f"q{i}", "m0", "us-east") for i in range(5_003)]
    store = _stored(tmp_path / "s.db", [record(k) for k in keys])
    by_records, direct = _both(store, "jsonl")
    assert direct == by_records
    assert [line.split('"', 4)[3] for line in direct.splitlines()] == [k.question_id for k in keys]


def test_direct_export_of_a_memory_store_or_an_unknown_job_is_refused(tmp_path: Path) -> None:
    """':memory:' cannot be read by a second connection; an unknown job is named."""
    with pytest.raises(UsageError, match="memory"):
        SQLiteStore(":memory:").export_sync("job", "csv", io.StringIO())
    store = _stored(tmp_path / "s.db", [])
    with pytest.raises(StoreError, match="unknown job id 'nope'"):
        store.export_sync("nope", "jsonl", io.StringIO())


_EDGES = [
    0.0,
    1.0,
    0.5,
    1e-7,
    4.9999995e-7,
    5e-7,
    1.5e-6,
    2.5e-6,
    0.9999995,
    0.99999949,
    1699999999.9999996,
]


@given(epoch=st.floats(-1e10, 1e10, allow_nan=False) | st.sampled_from(_EDGES))
def test_iso_seconds_is_the_codecs_iso_form(epoch: float) -> None:
    """For any float timestamp (sub-microsecond and half-even rounding cases, before 1970),
    the export's remembered ISO form equals the codec's ``datetime`` one."""
    iso = iso_seconds()
    expected = dt.datetime.fromtimestamp(epoch, tz=dt.UTC).isoformat()
    assert iso(epoch) == expected
    assert iso(epoch) == expected  # remembered, still the same
    assert iso(None) is None


def test_stored_rows_convert_without_falling_back_to_records(tmp_path: Path) -> None:
    """The compiled conversions take every ordinary stored row themselves: a row they cannot
    convert goes to the record path (right, but several times slower), so none may here."""
    statuses = list(ExecutionStatus)
    keys = [ExecutionKey(f"q{i}", "m0", "us-east", i % 2) for i in range(len(statuses))]
    _stored(tmp_path / "s.db", [record(k, s) for k, s in zip(keys, statuses, strict=True)])
    conn = sqlite3.connect(tmp_path / "s.db")
    rows, _ = read_raw_batch(conn, "job", 0, 10)
    conn.close()
    assert len(rows) == len(statuses)
    for convert in (_csv_converter(), _jsonl_converter()):
        assert all(isinstance(convert(row), str) for row in rows)  # raised: it fell back
