"""The ``records`` table's rows: the upsert, the query, and turning records into rows and back."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any, Final

from ..._errors import StoreError
from ..._types import ExecutionKey, ExecutionRecord, ExecutionStatus

__all__ = ["SELECT_RECORDS", "UPSERT", "Row", "read_records", "to_row", "write_rows"]

Row = tuple[Any, ...]
"""One row of the table: ``job_id``, then the record's columns."""

# The WHERE clause is should_replace() in SQL: a COMPLETED row is only replaced by a COMPLETED one.
UPSERT: Final = """
    INSERT INTO records (
        job_id, question_id, model_id, region, status, text, empty, error_code,
        error_message, attempts, started_at, finished_at, provider, metadata, receipt
    ) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (job_id, question_id, model_id, region) DO UPDATE SET
        status = excluded.status,
        text = excluded.text,
        empty = excluded.empty,
        error_code = excluded.error_code,
        error_message = excluded.error_message,
        attempts = excluded.attempts,
        started_at = excluded.started_at,
        finished_at = excluded.finished_at,
        provider = excluded.provider,
        metadata = excluded.metadata,
        receipt = excluded.receipt
    WHERE records.status != 'completed' OR excluded.status = 'completed'
"""

SELECT_RECORDS: Final = """
    SELECT question_id, model_id, region, status, text, empty, error_code, error_message,
           attempts, started_at, finished_at, provider, metadata, receipt
    FROM records WHERE job_id = ? ORDER BY rowid
"""


# Built once: json.dumps with keyword arguments builds a new encoder on every call, and rows are
# built on the hot path. ensure_ascii (the default) keeps lone surrogates storable.
_ENCODE: Final = json.JSONEncoder(separators=(",", ":")).encode


def _json(value: Mapping[str, Any]) -> str:
    return _ENCODE(dict(value)) if value else "{}"


def _check_text(key: ExecutionKey, row: Row) -> None:
    for index, name in _TEXT_COLUMNS:
        value = row[index]
        if value is None or (type(value) is str and value.isascii()):
            continue  # the common case, checked in O(1)
        if not isinstance(value, str):
            raise StoreError(f"record {key}: {name} must be a string or None, got {value!r}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise StoreError(
                f"record {key}: {name} holds characters that are not valid UTF-8 ({exc.reason})"
            ) from None


_TEXT_COLUMNS: Final = (
    (1, "question_id"),
    (2, "model_id"),
    (3, "region"),
    (5, "text"),
    (7, "error_code"),
    (8, "error_message"),
    (12, "provider"),
)


def to_row(job_id: str, record: ExecutionRecord) -> Row:
    """Turn a record into its table row, raising StoreError for what the row cannot hold.

    Runs in the caller's task, so one bad record fails its own write and not the whole batch.
    """
    key = record.key
    try:
        metadata = _json(record.metadata)
        receipt = None if record.receipt is None else _json(record.receipt)
    except (TypeError, ValueError) as exc:
        raise StoreError(
            f"record {key}: metadata and receipt must be JSON-serialisable: {exc}"
        ) from None
    row = (
        job_id,
        key[0],
        key[1],
        key[2],
        ExecutionStatus(record.status).value,
        record.text,
        1 if record.empty else 0,
        record.error_code,
        record.error_message,
        int(record.attempts),
        record.started_at,
        record.finished_at,
        record.provider,
        metadata,
        receipt,
    )
    _check_text(key, row)
    return row


def _record(row: Sequence[Any]) -> ExecutionRecord:
    return ExecutionRecord(
        key=ExecutionKey(row[0], row[1], row[2]),
        status=ExecutionStatus(row[3]),
        text=row[4],
        empty=bool(row[5]),
        error_code=row[6],
        error_message=row[7],
        attempts=row[8],
        started_at=row[9],
        finished_at=row[10],
        provider=row[11],
        metadata=json.loads(row[12]),
        receipt=None if row[13] is None else json.loads(row[13]),
    )


def write_rows(rows: list[Row], conn: sqlite3.Connection) -> None:
    """Upsert rows in one transaction (the write rule applies, also among the rows)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(UPSERT, rows)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def read_records(cursor: sqlite3.Cursor) -> list[ExecutionRecord]:
    """The records of a query's result (:data:`SELECT_RECORDS`)."""
    return [_record(row) for row in cursor]
