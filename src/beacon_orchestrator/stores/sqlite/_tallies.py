"""The ``tallies`` table: records counted per endpoint, status and empty flag, as written.

``beacon status`` and :meth:`SQLiteStore.progress` read a job's counts from its few hundred
tally rows instead of visiting an index entry per record (0.5 s at 500,000 records).

The tallies count every record up to a row id, the mark (``tally_mark``); a reader adds the
records after the mark, counted in the same snapshot, so the sum is exact in every
transaction. Rows after the mark are only ever new records: row ids grow, and no record is
ever deleted. Writers keep it so, at almost no cost per record:

- A batch of new keys (every batch of a fresh run) is inserted with ``ON CONFLICT DO
  NOTHING``; when every row went in, nothing was replaced and nothing else is written.
- Every :data:`FOLD_EVERY` rows, the transaction that passes them also folds the rows after
  the mark into the tallies (one grouped query over those rows) and moves the mark.
- A batch that meets a stored key is rolled back to before its insert and written row by row:
  a replaced record counted in the tallies (before the mark) moves its count to its new
  outcome; one after the mark is counted by the next fold or reader, as it is then.

Every change is part of the transaction that writes the records, so the tallies are exactly as
durable and as current as the records.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterable
from typing import Any, Final

from ..._types import ExecutionStatus
from ._rows import COLUMNS, UPSERT, Row
from ._transactions import read_snapshot, write_transaction

__all__ = [
    "FOLD_EVERY",
    "TALLY_TABLES",
    "Tally",
    "counted",
    "read_tally",
    "recorded",
    "write_rows",
]

FOLD_EVERY: Final = 5_000
"""New rows after the mark that make a write fold them into the tallies: a reader counts at
most this many rows (and the last batch) itself."""

_GROUPED: Final = (
    "SELECT job_id, model_id, region, status, empty, count(*), count(cost), "
    "coalesce(sum(cost), 0.0) FROM records WHERE rowid > ? "
    "GROUP BY job_id, model_id, region, status, empty"
)
_ADD_SET: Final = (
    " ON CONFLICT DO UPDATE SET "
    "n = n + excluded.n, priced = priced + excluded.priced, cost = cost + excluded.cost"
)

TALLY_TABLES: Final = (
    """
    CREATE TABLE tallies (
        job_id   TEXT NOT NULL,
        model_id TEXT NOT NULL,
        region   TEXT NOT NULL,
        status   TEXT NOT NULL,
        empty    INTEGER NOT NULL,
        n        INTEGER NOT NULL,
        priced   INTEGER NOT NULL,
        cost     REAL NOT NULL,
        PRIMARY KEY (job_id, model_id, region, status, empty)
    ) WITHOUT ROWID
    """,
    "CREATE TABLE tally_mark (upto INTEGER NOT NULL)",
    # What the file already holds is counted now (-1: every row id is after it).
    "INSERT INTO tally_mark VALUES (-1)",
    f"INSERT INTO tallies {_GROUPED.replace('?', '-1')}",
    "UPDATE tally_mark SET upto = coalesce((SELECT max(rowid) FROM records), -1)",
)
"""The migration that adds the tallies: per job, endpoint, status and empty flag, how many
records, how many of them have a cost, and the sum of their costs (``0.0`` when none has one:
``priced`` tells the two apart); and the mark."""

_AT: Final = {c: i for i, c in enumerate(COLUMNS)}
_JOB, _QUESTION, _MODEL, _REGION, _SAMPLE = (
    _AT[c] for c in ("job_id", "question_id", "model_id", "region", "sample")
)
_STATUS, _EMPTY, _COST = _AT["status"], _AT["empty"], _AT["cost"]

_INSERT_NEW: Final = UPSERT.split(" ON CONFLICT ")[0] + " ON CONFLICT DO NOTHING"
_MARK: Final = "SELECT upto, last_insert_rowid() FROM tally_mark"
_STORED: Final = (
    "SELECT rowid, status, empty, cost FROM records "
    "WHERE job_id = ? AND question_id = ? AND model_id = ? AND region = ? AND sample = ?"
)


def write_rows(rows: list[Row], conn: sqlite3.Connection) -> None:
    """Upsert rows and keep the tallies, in one transaction (the write rule applies)."""
    with write_transaction(conn):
        conn.execute("SAVEPOINT new_rows")
        if conn.executemany(_INSERT_NEW, rows).rowcount == len(rows):
            conn.execute("RELEASE new_rows")  # every key was new: nothing was replaced
            mark, last = conn.execute(_MARK).fetchone()
            if last - mark >= FOLD_EVERY:
                _fold(conn, mark)
            return
        conn.execute("ROLLBACK TO new_rows")
        conn.execute("RELEASE new_rows")
        _write_each(rows, conn)


def _fold(conn: sqlite3.Connection, mark: int) -> None:
    """Count the rows after ``mark`` into the tallies, and move the mark past them."""
    conn.execute(f"INSERT INTO tallies {_GROUPED}{_ADD_SET}", (mark,))
    conn.execute("UPDATE tally_mark SET upto = (SELECT max(rowid) FROM records)")


_Group = tuple[str, str, str, str, bool]  # job, model, region, status, empty


def _write_each(rows: Iterable[Row], conn: sqlite3.Connection) -> None:
    """Upsert row by row, moving a counted record's count from its old outcome to its new."""
    mark = conn.execute(_MARK).fetchone()[0]
    moved: dict[_Group, list[float]] = {}  # records, priced records, cost
    for row in rows:
        key = (row[_JOB], row[_QUESTION], row[_MODEL], row[_REGION], row[_SAMPLE])
        stored = conn.execute(_STORED, key).fetchone()
        if conn.execute(UPSERT, row).rowcount == 0 or stored is None or stored[0] > mark:
            continue  # a COMPLETED record stays; a new or uncounted one is counted later
        _, status, empty, cost = stored
        job, model, region = row[_JOB], row[_MODEL], row[_REGION]
        _move(moved, (job, model, region, status, bool(empty)), cost, -1)
        _move(moved, (job, model, region, row[_STATUS], bool(row[_EMPTY])), row[_COST], 1)
    conn.executemany(
        f"INSERT INTO tallies VALUES (?, ?, ?, ?, ?, ?, ?, ?){_ADD_SET}",
        [(*group, int(n), int(priced), cost) for group, (n, priced, cost) in moved.items()],
    )


def _move(moved: dict[_Group, list[float]], group: _Group, cost: float | None, sign: int) -> None:
    found = moved.get(group)
    if found is None:
        found = moved[group] = [0, 0, 0.0]
    found[0] += sign
    if cost is not None:
        found[1] += sign
        found[2] += sign * cost


_COUNTED: Final = (
    "SELECT model_id, region, status, empty, n, priced, cost FROM tallies WHERE job_id = ? "
    "UNION ALL "
    "SELECT model_id, region, status, empty, count(*), count(cost), coalesce(sum(cost), 0.0) "
    # +job_id: walk the row ids after the mark, not the job's index entries.
    "FROM records WHERE rowid > (SELECT upto FROM tally_mark) AND +job_id = ? "
    "GROUP BY model_id, region, status, empty"
)


def counted(conn: sqlite3.Connection, job_id: str) -> list[tuple[Any, ...]]:
    """The job's records counted per endpoint, status and empty flag, in one snapshot.

    Rows of ``n`` records, ``priced`` of them with a cost and ``cost`` their sum, from the
    tallies and from the rows after the mark: a group may come in two rows, to be added up.
    """
    return conn.execute(_COUNTED, (job_id, job_id)).fetchall()


def recorded(job_id_column: str) -> str:
    """SQL for how many records the job whose id is in ``job_id_column`` has."""
    return (
        f"((SELECT coalesce(sum(n), 0) FROM tallies WHERE job_id = {job_id_column}) + "
        "(SELECT count(*) FROM records WHERE rowid > (SELECT upto FROM tally_mark) "
        f"AND +job_id = {job_id_column}))"
    )


_STATUSES: Final = {s.value: i for i, s in enumerate(ExecutionStatus)}
_COMPLETED: Final = ExecutionStatus.COMPLETED.value

Tally = tuple[list[Row], list[Row]]
"""Per endpoint: model, region, cost (``None``: no record has one), completed empty answers,
then a count per status (in the order of :class:`ExecutionStatus`); and the key, status and
empty flag of each record of the questions asked for."""


def read_tally(conn: sqlite3.Connection, job_id: str, questions: Collection[str]) -> Tally:
    """What ``beacon status`` counts, in one snapshot: per endpoint, and ``questions``' keys."""
    with read_snapshot(conn):
        found = counted(conn, job_id)
        marks = ", ".join("?" for _ in questions)
        cells = conn.execute(
            "SELECT question_id, model_id, region, sample, status, empty FROM records "
            f"WHERE job_id = ? AND question_id IN ({marks}) ORDER BY rowid",
            (job_id, *questions),
        ).fetchall()
    endpoints: dict[tuple[str, str], list[Any]] = {}
    for model, region, status, empty, n, priced, cost in found:
        if not n:
            continue
        row = endpoints.get((model, region))
        if row is None:
            row = endpoints[model, region] = [model, region, None, 0] + [0] * len(_STATUSES)
        if priced:
            row[2] = cost if row[2] is None else row[2] + cost
        if empty and status == _COMPLETED:
            row[3] += n
        row[4 + _STATUSES[status]] += n
    return [tuple(row) for row in endpoints.values()], cells
