"""The ``records`` table's rows, as the record codec flattens records: SQL, encoding, decoding.

Every statement names the codec's columns (after ``job_id``), so a field added to
``ExecutionRecord`` reaches the table once a migration adds its column. Free text (every text
column of the codec but the key's) is stored as UTF-8 ``bytea``: PostgreSQL's ``text`` cannot
hold the NUL character, and an answer may.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any, Final

from ..._errors import StoreError
from ..._record_codec import EncodeError
from ..._records import RecordFilter
from ..._types import RECORD_CODEC, ExecutionKey, ExecutionRecord, ExecutionStatus
from .._protocol import EndpointKeys

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "BYTEA_COLUMNS",
    "COLUMNS",
    "KEY_COLUMNS",
    "Row",
    "Statements",
    "endpoint_keys",
    "read_batch",
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
        self._batch = f"SELECT seq, {', '.join(RECORD_CODEC.columns)} FROM {schema}.records "
        # Each endpoint's keys as parallel arrays, in the order they were first written: a
        # resumed run of a large job reads a row per endpoint, not one per key.
        self._keys = (
            "SELECT model_id, region, array_agg(question_id ORDER BY seq), "
            "array_agg(sample ORDER BY seq), array_agg(status ORDER BY seq), "
            f"array_agg(empty ORDER BY seq), sum(cost) FROM {schema}.records "
        )

    def batch(self, job_id: str, f: RecordFilter, after: int, limit: int) -> tuple[str, Any]:
        """The query of up to ``limit`` records passing ``f`` after row ``after`` (by ``seq``).

        Keyset pagination: each batch is a query of its own, so no cursor stays open between
        batches and the job's writes go on meanwhile.
        """
        where, params = _where(job_id, f)
        return (
            f"{self._batch}WHERE {where} AND seq > %s ORDER BY seq LIMIT %s",
            (*params, after, limit),
        )

    def keys(self, job_id: str, statuses: Collection[ExecutionStatus] | None) -> tuple[str, Any]:
        """The query of :func:`endpoint_keys`: the keys with a record of ``statuses``."""
        f = RecordFilter(None if statuses is None else frozenset(statuses))
        where, params = _where(job_id, f)
        return f"{self._keys}WHERE {where} GROUP BY model_id, region", params


def _where(job_id: str, f: RecordFilter) -> tuple[str, tuple[Any, ...]]:
    """The SQL conditions of a filter on one job, and their parameters."""
    sql = ["job_id = %s"]
    params: list[Any] = [job_id]
    if f.statuses is not None:
        sql.append("status = ANY(%s)")
        params.append(sorted(s.value for s in f.statuses))
    for column, value in (("region", f.region), ("model_id", f.model), ("question_id", f.question)):
        if value is not None:
            sql.append(f"{column} = %s")
            params.append(value)
    return " AND ".join(sql), tuple(params)


_STATUS: Final = {s.value: s for s in ExecutionStatus}


def endpoint_keys(row: Sequence[Any]) -> EndpointKeys:
    """One row of :meth:`Statements.keys` as the endpoint's :class:`EndpointKeys`."""
    model, region, qids, samples, statuses, empty, cost = row
    return EndpointKeys(
        model_id=model,
        region=region,
        question_ids=tuple(qids),
        samples=tuple(int(s) for s in samples),
        statuses=tuple(_STATUS[s] for s in statuses),
        empty=tuple(bool(e) for e in empty),
        cost=None if cost is None else float(cost),
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


def read_batch(
    conn: psycopg.Connection[Any], query: tuple[str, Any]
) -> tuple[list[ExecutionRecord], int]:
    """A batch's records (the query's first column is each row's ``seq``), and the last read."""
    cursor = conn.execute(*query)
    rows = cursor.fetchall()
    if not rows:
        return [], 0
    read = record_reader([d.name for d in (cursor.description or [])[1:]])
    return [read(row[1:]) for row in rows], int(rows[-1][0])
