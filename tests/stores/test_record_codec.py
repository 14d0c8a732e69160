"""The record codec: one derivation of the dict form, the SQLite row and the export row.

Round trips through each form for any record, and the guards that make a new field of
ExecutionRecord impossible to forget in any of them.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sqlite3
from collections.abc import Iterator, Mapping
from typing import Any

import attrs
import pytest
from attrs import frozen
from hypothesis import given

from beacon_orchestrator import (
    ExecutionKey,
    ExecutionRecord,
    ExecutionStatus,
    StoreError,
    records_to_rows,
)
from beacon_orchestrator._record_codec import EncodeError, RecordCodec
from beacon_orchestrator._types import RECORD_CODEC
from beacon_orchestrator.stores import ROW_FIELDS
from beacon_orchestrator.stores.sqlite._rows import (
    COLUMNS,
    SELECT_RECORDS,
    read_records,
    to_row,
)
from beacon_orchestrator.stores.sqlite._schema import migrate
from beacon_orchestrator.stores.sqlite._tallies import write_rows
from beacon_orchestrator.testing._store_conformance import conformance_records

KEY = ExecutionKey("q1", "m1", "us-east")


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    """A fresh database at the current schema version, as the store migrates it."""
    connection = sqlite3.connect(":memory:", isolation_level=None)
    migrate(connection, ":memory:")
    try:
        yield connection
    finally:
        connection.close()


# -- every field is covered -----------------------------------------------------------------


def test_every_field_of_execution_record_is_a_column_of_every_form() -> None:
    fields = [a.name for a in attrs.fields(ExecutionRecord)]
    assert [f.name for f in RECORD_CODEC.fields] == fields
    assert all(f.columns for f in RECORD_CODEC.fields)
    record = ExecutionRecord(key=KEY, status=ExecutionStatus.COMPLETED)
    columns = list(RECORD_CODEC.columns)
    assert list(record.to_dict()) == columns
    assert [c for c in ROW_FIELDS if c != "duration"] == columns
    assert list(COLUMNS) == ["job_id", *columns]
    for form in ("to_plain", "to_sql", "to_export", "from_plain", "from_sql"):
        source = RECORD_CODEC.source(form)  # what was compiled for the form
        assert all(f"record.{name}" in source or f"{name}=" in source for name in fields)


def test_the_records_table_has_exactly_the_codecs_columns(conn: sqlite3.Connection) -> None:
    """A new field of ExecutionRecord needs a migration adding its column: this says so."""
    table = [row[1] for row in conn.execute("PRAGMA table_info(records)")]
    assert sorted(table) == sorted(COLUMNS)


@frozen
class _Tagged:
    name: str
    tags: Mapping[str, str]


def test_a_field_that_is_not_a_plain_scalar_must_declare_its_encoding() -> None:
    with pytest.raises(TypeError, match=r"_Tagged\.tags: .*declare its encoding"):
        RecordCodec(_Tagged)


@frozen(kw_only=True)
class _WithTip(ExecutionRecord):
    tip: float | None = None


def test_a_new_plain_field_reaches_every_form_without_more_code() -> None:
    codec = RecordCodec(_WithTip)
    record = _WithTip(key=KEY, status=ExecutionStatus.FAILED, attempts=2, tip=0.25)
    assert codec.columns == (*RECORD_CODEC.columns, "tip")
    assert codec.to_dict(record)["tip"] == 0.25
    assert codec.from_dict(codec.to_dict(record)) == record
    assert codec.to_sql(record)[-1] == 0.25
    assert codec.sql_reader(codec.columns)(codec.to_sql(record)) == record
    assert codec.to_export(record)["tip"] == 0.25


# -- round trips ----------------------------------------------------------------------------


@given(record=conformance_records())
def test_the_dict_form_round_trips_through_json(record: ExecutionRecord) -> None:
    data = json.loads(json.dumps(record.to_dict()))
    assert ExecutionRecord.from_dict(data) == record


@given(record=conformance_records())
def test_a_sqlite_row_round_trips_through_the_table(record: ExecutionRecord) -> None:
    connection = sqlite3.connect(":memory:", isolation_level=None)
    try:
        migrate(connection, ":memory:")
        write_rows([to_row("job", record)], connection)
        assert read_records(connection.execute(SELECT_RECORDS, ("job",))) == [record]
        # Columns are found by name, whatever order a query lists them in.
        reversed_columns = ", ".join(reversed(RECORD_CODEC.columns))
        cursor = connection.execute(f"SELECT {reversed_columns}, job_id FROM records")
        assert read_records(cursor) == [record]
    finally:
        connection.close()


def _epoch(iso: str | None) -> float | None:
    return None if iso is None else dt.datetime.fromisoformat(iso).timestamp()


@given(record=conformance_records())
def test_an_export_row_holds_every_field(record: ExecutionRecord) -> None:
    """Export rows are for analysis (ISO timestamps, JSON text), but lose nothing else."""
    (row,) = records_to_rows([record])
    assert tuple(row) == ROW_FIELDS
    back: dict[str, Any] = dict(row)
    for name in ("started_at", "finished_at"):
        back[name] = _epoch(row[name])
        expected = getattr(record, name)
        assert (back[name] is None) == (expected is None)
        if expected is not None:
            assert math.isclose(back[name], expected, rel_tol=0, abs_tol=1e-6)
            back[name] = expected  # ISO-8601 keeps microseconds only
    back["metadata"] = json.loads(row["metadata"])
    back["receipt"] = None if row["receipt"] is None else json.loads(row["receipt"])
    back["usage"] = None if row["usage"] is None else json.loads(row["usage"])
    del back["duration"]
    assert ExecutionRecord.from_dict(back) == record


# -- what the forms accept and refuse -------------------------------------------------------


def test_from_dict_fills_missing_columns_with_defaults_and_needs_the_key_and_status() -> None:
    minimal = {"question_id": "q1", "model_id": "m1", "region": "us-east", "status": "skipped"}
    assert ExecutionRecord.from_dict(minimal) == ExecutionRecord(
        key=KEY, status=ExecutionStatus.SKIPPED
    )
    lenient = {**minimal, "empty": 0, "attempts": "2", "metadata": None, "receipt": None}
    record = ExecutionRecord.from_dict(lenient)
    assert (record.empty, record.attempts, record.metadata, record.receipt) == (False, 2, {}, None)
    with pytest.raises(KeyError, match="region"):
        ExecutionRecord.from_dict({k: v for k, v in minimal.items() if k != "region"})
    with pytest.raises(ValueError, match="'done'"):
        ExecutionRecord.from_dict({**minimal, "status": "done"})


def test_a_value_a_form_cannot_hold_is_an_error_naming_its_field() -> None:
    bad = ExecutionRecord(key=KEY, status=ExecutionStatus.COMPLETED, receipt={"at": object()})
    with pytest.raises(EncodeError, match=r"^receipt must be JSON-serialisable"):
        RECORD_CODEC.to_sql(bad)
    with pytest.raises(StoreError, match=r"^record q1/m1@us-east: receipt must be JSON"):
        to_row("job", bad)
    with pytest.raises(StoreError, match=r"^record q1/m1@us-east: receipt must be JSON"):
        records_to_rows([bad])
    # A None where a mapping must be is stored as {}, as it always was: a NOT NULL violation
    # would fail every write of the batch, not only this one.
    no_metadata = attrs.evolve(bad, receipt=None, metadata=None)  # type: ignore[arg-type]
    row = dict(zip(("job_id", *RECORD_CODEC.columns), to_row("job", no_metadata), strict=True))
    assert (row["metadata"], row["receipt"]) == ("{}", None)
    wrong_status = attrs.evolve(bad, status="done", receipt=None)  # type: ignore[arg-type]
    with pytest.raises(StoreError, match=r"status must be a member of ExecutionStatus, got 'done'"):
        to_row("job", wrong_status)
