"""The ``tallies`` table: records counted per endpoint, status and empty flag, as written.

``beacon status`` and :meth:`SQLiteStore.progress` read a job's counts from its few hundred
tally rows instead of visiting an index entry per record (0.5 s at 500,000 records). Every
transaction that writes records updates the tallies it changes, in the same transaction, so
they are exactly as durable and as current as the records.

Keeping them costs little because a batch of new records (every batch of a fresh run) is
inserted with ``ON CONFLICT DO NOTHING`` first: when each row was inserted, none replaced
anything, and the batch's tally is counted from the rows in Python and added with one
statement per endpoint, status and empty flag. A batch that meets a stored key (a resumed or
rerun job) is rolled back to before that insert and written row by row, reading each key's
stored outcome first, so that a replaced record's count moves to its new status.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterable
from typing import Any, Final

from ..._types import ExecutionStatus
from ._rows import COLUMNS, UPSERT, Row
from ._transactions import write_transaction

__all__ = ["FILL_TALLIES", "TALLIES_TABLE", "Tally", "read_tally", "write_rows"]

TALLIES_TABLE: Final = """
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
    """
"""Per job, endpoint, status and empty flag: how many records, how many have a cost, and the
sum of their costs (``0.0`` when none has one: ``priced`` tells the two apart)."""

FILL_TALLIES: Final = (
    "INSERT INTO tallies SELECT job_id, model_id, region, status, empty, count(*), count(cost), "
    "coalesce(sum(cost), 0.0) FROM records GROUP BY job_id, model_id, region, status, empty"
)
"""Counts the records a file already holds (the migration that adds the table)."""

_AT: Final = {c: i for i, c in enumerate(COLUMNS)}
_JOB, _QUESTION, _MODEL, _REGION, _SAMPLE = (
    _AT[c] for c in ("job_id", "question_id", "model_id", "region", "sample")
)
_STATUS, _EMPTY, _COST = _AT["status"], _AT["empty"], _AT["cost"]

_INSERT_NEW: Final = UPSERT.split(" ON CONFLICT ")[0] + " ON CONFLICT DO NOTHING"
_ADD: Final = (
    "INSERT INTO tallies VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET "
    "n = n + excluded.n, priced = priced + excluded.priced, cost = cost + excluded.cost"
)
_STORED: Final = (
    "SELECT status, empty, cost FROM records "
    "WHERE job_id = ? AND question_id = ? AND model_id = ? AND region = ? AND sample = ?"
)

_Group = tuple[str, str, str, str, bool]  # job, model, region, status, empty
_Counts = dict[_Group, list[float]]  # records, priced records, cost


def _count(counts: _Counts, group: _Group, cost: float | None, sign: int) -> None:
    found = counts.get(group)
    if found is None:
        found = counts[group] = [0, 0, 0.0]
    found[0] += sign
    if cost is not None:
        found[1] += sign
        found[2] += sign * cost


def _group(row: Row) -> _Group:
    return (row[_JOB], row[_MODEL], row[_REGION], row[_STATUS], bool(row[_EMPTY]))


def write_rows(rows: list[Row], conn: sqlite3.Connection) -> None:
    """Upsert rows and update their tallies, in one transaction (the write rule applies)."""
    with write_transaction(conn):
        conn.execute("SAVEPOINT new_rows")
        inserted = conn.executemany(_INSERT_NEW, rows).rowcount
        counts: _Counts = {}
        if inserted == len(rows):  # every key was new: nothing replaced, nothing to look up
            conn.execute("RELEASE new_rows")
            for row in rows:
                _count(counts, _group(row), row[_COST], 1)
        else:
            conn.execute("ROLLBACK TO new_rows")
            conn.execute("RELEASE new_rows")
            _write_each(rows, conn, counts)
        conn.executemany(_ADD, _additions(counts))


def _write_each(rows: Iterable[Row], conn: sqlite3.Connection, counts: _Counts) -> None:
    """Upsert row by row, moving a replaced record's count from its old outcome to its new."""
    for row in rows:
        key = (row[_JOB], row[_QUESTION], row[_MODEL], row[_REGION], row[_SAMPLE])
        stored = conn.execute(_STORED, key).fetchone()
        if conn.execute(UPSERT, row).rowcount == 0:
            continue  # a COMPLETED record stays
        if stored is not None:
            status, empty, cost = stored
            old = (row[_JOB], row[_MODEL], row[_REGION], status, bool(empty))
            _count(counts, old, cost, -1)
        _count(counts, _group(row), row[_COST], 1)


def _additions(counts: _Counts) -> list[Row]:
    return [(*group, int(n), int(priced), cost) for group, (n, priced, cost) in counts.items()]


_STATUSES: Final = {s.value: i for i, s in enumerate(ExecutionStatus)}
_COMPLETED: Final = ExecutionStatus.COMPLETED.value

Tally = tuple[list[Row], list[Row]]
"""Per endpoint: model, region, cost (``None``: no record has one), completed empty answers,
then a count per status (in the order of :class:`ExecutionStatus`); and the key, status and
empty flag of each record of the questions asked for."""


def read_tally(conn: sqlite3.Connection, job_id: str, questions: Collection[str]) -> Tally:
    """What ``beacon status`` counts: the job's tally rows, and the keys of ``questions``."""
    found = conn.execute(
        "SELECT model_id, region, status, empty, n, priced, cost FROM tallies "
        "WHERE job_id = ? AND n > 0",
        (job_id,),
    ).fetchall()
    endpoints: dict[tuple[str, str], list[Any]] = {}
    for model, region, status, empty, n, priced, cost in found:
        row = endpoints.get((model, region))
        if row is None:
            row = endpoints[model, region] = [model, region, None, 0] + [0] * len(_STATUSES)
        if priced:
            row[2] = cost if row[2] is None else row[2] + cost
        if empty and status == _COMPLETED:
            row[3] += n
        row[4 + _STATUSES[status]] += n
    marks = ", ".join("?" for _ in questions)
    cells = conn.execute(
        "SELECT question_id, model_id, region, sample, status, empty FROM records "
        f"WHERE job_id = ? AND question_id IN ({marks}) ORDER BY rowid",
        (job_id, *questions),
    ).fetchall()
    return [tuple(row) for row in endpoints.values()], cells
