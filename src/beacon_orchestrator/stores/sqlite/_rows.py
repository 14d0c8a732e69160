"""The ``records`` table's rows, as the record codec flattens records: SQL, encoding, decoding.

Every statement names the codec's columns (after ``job_id``), so a field added to
``ExecutionRecord`` reaches the table once a migration adds its column.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Final

from ..._errors import StoreError
from ..._record_codec import EncodeError
from ..._types import RECORD_CODEC, ExecutionKey, ExecutionRecord, ExecutionStatus
from ._transactions import write_transaction

__all__ = [
    "COLUMNS",
    "KEY_COLUMNS",
    "SELECT_RECORDS",
    "UPSERT",
    "Row",
    "read_records",
    "to_row",
    "write_rows",
]

Row = tuple[Any, ...]
"""One row of the table: ``job_id``, then the codec's columns."""

COLUMNS: Final = ("job_id", *RECORD_CODEC.columns)
KEY_COLUMNS: Final = ("job_id", *ExecutionKey._fields)
"""The primary key: one row per job and execution key."""

_COMPLETED: Final = ExecutionStatus.COMPLETED.value

# The WHERE clause is should_replace() in SQL: a COMPLETED row is only replaced by a COMPLETED one.
UPSERT: Final = (
    f"INSERT INTO records ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)}) "
    f"ON CONFLICT ({', '.join(KEY_COLUMNS)}) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c not in KEY_COLUMNS)
    + f" WHERE records.status != '{_COMPLETED}' OR excluded.status = '{_COMPLETED}'"
)

SELECT_RECORDS: Final = (
    f"SELECT {', '.join(RECORD_CODEC.columns)} FROM records WHERE job_id = ? ORDER BY rowid"
)
"""Every record of a job (one parameter, the job id), in the order keys were first written."""

# (index in a row, column) of the record's own text, which SQLite must be able to store.
_TEXT: Final = tuple((i, c) for i, c in enumerate(COLUMNS) if c in RECORD_CODEC.text_columns)


def to_row(job_id: str, record: ExecutionRecord) -> Row:
    """Turn a record into its table row, raising StoreError for what the row cannot hold.

    Runs in the caller's task, so one bad record fails its own write and not the whole batch.
    """
    try:
        row = (job_id, *RECORD_CODEC.to_sql(record))
    except EncodeError as exc:
        raise StoreError(f"record {record.key}: {exc}") from None
    _check_text(record.key, row)
    return row


def _check_text(key: ExecutionKey, row: Row) -> None:
    for index, name in _TEXT:
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


def write_rows(rows: list[Row], conn: sqlite3.Connection) -> None:
    """Upsert rows in one transaction (the write rule applies, also among the rows)."""
    with write_transaction(conn):
        conn.executemany(UPSERT, rows)


def read_records(cursor: sqlite3.Cursor) -> list[ExecutionRecord]:
    """The records of a query's result, its columns found by name."""
    read = RECORD_CODEC.sql_reader([d[0] for d in cursor.description])
    return [read(row) for row in cursor]
