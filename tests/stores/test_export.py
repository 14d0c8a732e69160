"""Exports: lossless JSON Lines, CSV and flat rows for data frames."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from beacon_orchestrator import (
    ExecutionKey,
    ExecutionRecord,
    ExecutionStatus,
    StoreError,
    export_csv,
    export_jsonl,
    load_jsonl,
    records_to_rows,
)
from beacon_orchestrator.stores import ROW_FIELDS
from beacon_orchestrator.testing._store_conformance import conformance_records

from .support import record

KEY = ExecutionKey("q1", "llama3.2-1b", "eu-west")


@given(records=st.lists(conformance_records(), max_size=6))
def test_jsonl_export_then_load_gives_equal_records(records: list[ExecutionRecord]) -> None:
    """Property: JSON Lines is lossless for any JSON-ready record (text, timestamps, metadata)."""
    buffer = io.StringIO()
    assert export_jsonl(records, buffer) == len(records)
    buffer.seek(0)
    assert load_jsonl(buffer) == records


@given(records=st.lists(conformance_records(), max_size=6))
def test_rows_hold_only_scalars_in_the_documented_columns(records: list[ExecutionRecord]) -> None:
    """Property: every row has exactly the documented columns, every value a scalar, so a data
    frame needs no flattening."""
    rows = records_to_rows(records, job_id="job-7")
    assert len(rows) == len(records)
    for row, r in zip(rows, records, strict=True):
        assert tuple(row) == ("job_id", *ROW_FIELDS)
        assert all(v is None or isinstance(v, str | int | float | bool) for v in row.values())
        assert json.loads(row["metadata"]) == dict(r.metadata)
        assert (row["question_id"], row["model_id"], row["region"], row["sample"]) == tuple(r.key)


def test_rows_have_iso_timestamps_and_a_duration() -> None:
    (row,) = records_to_rows([record(KEY)])
    assert row["started_at"] == "2023-11-14T22:13:20.250000+00:00"
    assert dt.datetime.fromisoformat(row["finished_at"]).timestamp() == 1_700_000_001.5
    assert row["duration"] == 1.25
    assert row["status"] == "completed"
    assert "job_id" not in row
    (skipped,) = records_to_rows([ExecutionRecord(key=KEY, status=ExecutionStatus.SKIPPED)])
    assert (skipped["started_at"], skipped["duration"], skipped["receipt"]) == (None, None, None)


def test_csv_has_a_header_json_cells_and_empty_cells_for_none(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    failed = ExecutionRecord(
        key=ExecutionKey("q2", "m", "us-east"),
        status=ExecutionStatus.FAILED,
        error_code="HTTP_503",
        error_message='comma, "quote"\nand newline',
        attempts=3,
    )
    assert export_csv([record(KEY), failed], path, job_id="job-7") == 2
    with path.open(newline="", encoding="utf-8") as fp:
        rows = list(csv.DictReader(fp))
    assert list(rows[0]) == ["job_id", *ROW_FIELDS]
    assert rows[0]["job_id"] == "job-7"
    assert rows[0]["empty"] == "false"
    assert json.loads(rows[0]["metadata"]) == {"inference_time": 1.25, "tokens": [3, 4]}
    assert json.loads(rows[0]["receipt"]) == {"id": "r-1"}
    assert rows[1]["text"] == ""
    assert rows[1]["error_message"] == 'comma, "quote"\nand newline'
    assert rows[1]["attempts"] == "3"


def test_exports_write_to_paths_and_report_unwritable_ones(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    export_jsonl([record(KEY)], path, job_id="job-7")
    (line,) = path.read_text(encoding="utf-8").splitlines()
    assert json.loads(line)["job_id"] == "job-7"
    assert load_jsonl(path) == [record(KEY)]
    with pytest.raises(StoreError, match="missing"):
        export_csv([record(KEY)], tmp_path / "missing" / "out.csv")


def test_bad_input_is_a_store_error_naming_the_record_or_line(tmp_path: Path) -> None:
    bad = ExecutionRecord(key=KEY, status=ExecutionStatus.COMPLETED, metadata={"at": object()})
    with pytest.raises(StoreError, match=r"q1/llama3\.2-1b@eu-west"):
        export_jsonl([bad], io.StringIO())
    with pytest.raises(StoreError, match=r"q1/llama3\.2-1b@eu-west"):
        records_to_rows([bad])
    with pytest.raises(StoreError, match="line 2"):
        load_jsonl(io.StringIO(json.dumps(record(KEY).to_dict()) + '\n{"nope": 1}\n'))
