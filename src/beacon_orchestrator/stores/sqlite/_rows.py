"""The ``records`` table's rows, as the record codec flattens records: SQL, encoding, decoding.

Every statement names the codec's columns (after ``job_id``), so a field added to
``ExecutionRecord`` reaches the table once a migration adds its column.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from typing import Any, Final

from ..._errors import StoreError
from ..._record_codec import EncodeError
from ..._records import RecordFilter
from ..._types import RECORD_CODEC, ExecutionKey, ExecutionRecord, ExecutionStatus
from .._protocol import EndpointKeys

__all__ = [
    "COLUMNS",
    "KEY_COLUMNS",
    "SELECT_RECORDS",
    "UPSERT",
    "Row",
    "read_batch",
    "read_keys",
    "read_raw_batch",
    "read_records",
    "to_row",
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


def read_records(cursor: sqlite3.Cursor) -> list[ExecutionRecord]:
    """The records of a query's result, its columns found by name."""
    read = RECORD_CODEC.sql_reader([d[0] for d in cursor.description])
    return [read(row) for row in cursor]


_SELECT_BATCH: Final = f"SELECT rowid, {', '.join(RECORD_CODEC.columns)} FROM records WHERE "


def _where(f: RecordFilter) -> tuple[str, list[Any]]:
    """The SQL conditions of a filter (after ``job_id = ?``) and their parameters."""
    sql: list[str] = []
    params: list[Any] = []
    if f.statuses is not None:
        sql.append(f"status IN ({', '.join('?' for _ in f.statuses)})")
        params.extend(sorted(s.value for s in f.statuses))
    for column, value in (("region", f.region), ("model_id", f.model), ("question_id", f.question)):
        if value is not None:
            sql.append(f"{column} = ?")
            params.append(value)
    return "".join(f" AND {c}" for c in sql), params


def read_batch(
    conn: sqlite3.Connection, job_id: str, f: RecordFilter, after: int, limit: int
) -> tuple[list[ExecutionRecord], int]:
    """Up to ``limit`` records passing ``f`` stored after row ``after``, and the last row read.

    Each batch is a query of its own (keyset pagination on the row id), so no statement stays
    open between batches and writes go on meanwhile.
    """
    where, params = _where(f)
    # With a question, the primary key finds its rows; with statuses, the outcomes index. With
    # neither, walk the table in row id order from ``after`` (``+job_id`` keeps SQLite from
    # scanning an index and sorting the whole job for every batch).
    indexed = f.question is not None or f.statuses is not None
    job = "job_id = ?" if indexed else "+job_id = ?"
    cursor = conn.execute(
        f"{_SELECT_BATCH}{job}{where} AND rowid > ? ORDER BY rowid LIMIT ?",
        (job_id, *params, after, limit),
    )
    rows = cursor.fetchall()
    if not rows:
        return [], after
    read = RECORD_CODEC.sql_reader([d[0] for d in cursor.description[1:]])
    return [read(row[1:]) for row in rows], int(rows[-1][0])


def read_raw_batch(
    conn: sqlite3.Connection, job_id: str, after: int, limit: int
) -> tuple[list[Row], int]:
    """Up to ``limit`` rows of a job after row ``after`` as stored, and the last row id read.

    A row is its row id, then the codec's columns: what a direct export converts.
    """
    cursor = conn.execute(
        f"{_SELECT_BATCH}+job_id = ? AND rowid > ? ORDER BY rowid LIMIT ?", (job_id, after, limit)
    )
    rows = cursor.fetchall()
    return rows, int(rows[-1][0]) if rows else after


_SEP: Final = "\x1f"  # ids are printable text: a control character never occurs in one
_STATUS: Final = {s.value: s for s in ExecutionStatus}


def read_keys(
    conn: sqlite3.Connection, job_id: str, statuses: Collection[ExecutionStatus] | None
) -> list[EndpointKeys]:
    """Which keys have a record of ``statuses``, endpoint by endpoint, from one grouped query.

    The question ids, samples, statuses and empty flags of an endpoint come as four concatenated
    strings (the aggregates visit the group's rows in one order), split here: a resumed run of
    a large job reads a few hundred rows rather than one per key.
    """
    where, params = _where(RecordFilter(None if statuses is None else frozenset(statuses)))
    rows = conn.execute(
        "SELECT model_id, region, group_concat(question_id, char(31)), "
        "group_concat(sample, char(31)), group_concat(status, char(31)), "
        "group_concat(empty, ''), sum(cost) "
        f"FROM records WHERE job_id = ?{where} GROUP BY model_id, region",
        (job_id, *params),
    )
    status = _STATUS.__getitem__
    return [
        EndpointKeys(
            model_id=model,
            region=region,
            question_ids=tuple(qids.split(_SEP)),
            samples=tuple(map(int, samples.split(_SEP))),
            statuses=tuple(map(status, codes.split(_SEP))),
            empty=tuple(c == "1" for c in empty),
            cost=cost,
        )
        for model, region, qids, samples, codes, empty, cost in rows
    ]
