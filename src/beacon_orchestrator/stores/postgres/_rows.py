"""The ``records`` table's rows, as the record codec flattens records: SQL, encoding, decoding.

Every statement names the codec's columns (after ``job_id``), so a field added to
``ExecutionRecord`` reaches the table once a migration adds its column. Free text (every text
column of the codec but the key's) is stored as UTF-8 ``bytea``: PostgreSQL's ``text`` cannot
hold the NUL character, and an answer may.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

from ..._errors import StoreError
from ..._record_codec import EncodeError
from ..._types import RECORD_CODEC, ExecutionKey, ExecutionRecord, ExecutionStatus

__all__ = [
    "BYTEA_COLUMNS",
    "COLUMNS",
    "KEY_COLUMNS",
    "Row",
    "Statements",
    "record_reader",
    "to_row",
]

Row = tuple[Any, ...]
"""One row of the table: ``job_id``, then the codec's columns."""

COLUMNS: Final = ("job_id", *RECORD_CODEC.columns)
KEY_COLUMNS: Final = ("job_id", *ExecutionKey._fields)
"""The primary key: one row per job and execution key."""
BYTEA_COLUMNS: Final = tuple(
    c for c in RECORD_CODEC.columns if c in RECORD_CODEC.text_columns and c not in KEY_COLUMNS
)
"""The columns of free text, stored as UTF-8 bytes."""

_COMPLETED: Final = ExecutionStatus.COMPLETED.value
_BYTEA_AT: Final = tuple(i for i, c in enumerate(COLUMNS) if c in BYTEA_COLUMNS)
_KEY_TEXT_AT: Final = tuple(
    (i, c) for i, c in enumerate(COLUMNS) if c in KEY_COLUMNS and c in RECORD_CODEC.text_columns
)


class Statements:
    """The record statements of one store's schema.

    Args:
        schema: The store's schema name (already checked).
    """

    def __init__(self, schema: str) -> None:
        updates = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c not in KEY_COLUMNS)
        # The WHERE clause is should_replace() in SQL: COMPLETED is only replaced by COMPLETED.
        self.upsert: Final = (
            f"INSERT INTO {schema}.records ({', '.join(COLUMNS)}) "
            f"VALUES ({', '.join('%s' for _ in COLUMNS)}) "
            f"ON CONFLICT ({', '.join(KEY_COLUMNS)}) DO UPDATE SET {updates} "
            f"WHERE records.status <> '{_COMPLETED}' OR excluded.status = '{_COMPLETED}'"
        )
        self.select: Final = (
            f"SELECT {', '.join(RECORD_CODEC.columns)} FROM {schema}.records "
            "WHERE job_id = %s ORDER BY seq"
        )
        """Every record of a job (one parameter, the job id), in the order keys were first
        written."""
        key = ", ".join(ExecutionKey._fields)
        self.completed: Final = (
            f"SELECT {key} FROM {schema}.records WHERE job_id = %s AND status = '{_COMPLETED}'"
        )


def to_row(job_id: str, record: ExecutionRecord) -> Row:
    """Turn a record into its table row, raising StoreError for what the row cannot hold.

    Runs in the caller's task, so one bad record fails its own write and not a whole batch.
    """
    try:
        row = [job_id, *RECORD_CODEC.to_sql(record)]
    except EncodeError as exc:
        raise StoreError(f"record {record.key}: {exc}") from None
    for index in _BYTEA_AT:
        value = row[index]
        if value is None:
            continue
        if not isinstance(value, str):
            raise StoreError(
                f"record {record.key}: {COLUMNS[index]} must be a string or None, got {value!r}"
            )
        row[index] = _utf8(record.key, COLUMNS[index], value)
    for index, name in _KEY_TEXT_AT:
        value = row[index]
        if not isinstance(value, str) or "\x00" in value:
            raise StoreError(f"record {record.key}: {name} must be a string without NUL")
        _utf8(record.key, name, value)
    return tuple(row)


def _utf8(key: ExecutionKey, name: str, value: str) -> bytes:
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise StoreError(
            f"record {key}: {name} holds characters that are not valid UTF-8 ({exc.reason})"
        ) from None


def record_reader(names: Sequence[str]) -> Callable[[Sequence[Any]], ExecutionRecord]:
    """A function from a result row (columns ``names``) to a record, decoding free text."""
    read = RECORD_CODEC.sql_reader(names)
    at = tuple(i for i, n in enumerate(names) if n in BYTEA_COLUMNS)

    def convert(row: Sequence[Any]) -> ExecutionRecord:
        values = list(row)
        for i in at:
            value = values[i]
            if value is not None:
                values[i] = bytes(value).decode("utf-8")
        return read(values)

    return convert
