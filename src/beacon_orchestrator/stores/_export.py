"""Exporting execution records: JSON Lines, CSV and flat rows for data frames.

JSON Lines is the lossless format (one :meth:`ExecutionRecord.to_dict` per line, timestamps as
epoch seconds), and :func:`load_jsonl` reads it back. CSV and rows are for analysis: timestamps
become ISO-8601 strings in UTC, and ``metadata``/``receipt`` become JSON strings so every value
is a scalar (``pandas.DataFrame(records_to_rows(records))`` needs no further flattening).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from attrs import frozen

from .._errors import StoreError
from .._record_codec import EncodeError
from .._types import RECORD_CODEC, ExecutionRecord

__all__ = ["ROW_FIELDS", "Extra", "export_csv", "export_jsonl", "load_jsonl", "records_to_rows"]


def _with_duration(columns: tuple[str, ...]) -> tuple[str, ...]:
    at = columns.index("finished_at") + 1
    return (*columns[:at], "duration", *columns[at:])


ROW_FIELDS: tuple[str, ...] = _with_duration(RECORD_CODEC.columns)
"""The columns of :func:`records_to_rows` and :func:`export_csv`, in order (after an optional
leading ``job_id``)."""

Target = str | os.PathLike[str] | IO[str]
"""Where an export goes: a path, or a text file object opened for writing."""


@frozen
class Extra:
    """Columns an export adds to every record's row: their names, and a record's values.

    Attributes:
        columns: The added columns' names, in order.
        values: A record's values of those columns (scalars: ``str``, ``int``, ``float``,
            ``bool`` or ``None``).
    """

    columns: tuple[str, ...]
    values: Callable[[ExecutionRecord], Mapping[str, Any]]


def records_to_rows(
    records: Iterable[ExecutionRecord], *, job_id: str | None = None
) -> list[dict[str, Any]]:
    """Flat dicts, one per record, ready for ``pandas.DataFrame(rows)`` or ``csv.DictWriter``.

    Every value is a scalar: ``str``, ``int``, ``float``, ``bool`` or ``None``. Timestamps
    (``started_at``, ``finished_at``) are ISO-8601 strings in UTC; ``duration`` is
    ``finished_at - started_at`` in seconds; ``metadata`` and ``receipt`` are JSON strings.

    Args:
        records: The records, e.g. ``await store.records(job_id)``.
        job_id: If given, added as a leading ``job_id`` column (to concatenate several jobs).

    Returns:
        One dict per record, with the keys of :data:`ROW_FIELDS` in that order.

    Raises:
        StoreError: A record's metadata or receipt is not JSON-serialisable.
    """
    head = () if job_id is None else ("job_id",)
    columns = (*head, *ROW_FIELDS)
    return [dict(zip(columns, _row_values(r, head, job_id), strict=True)) for r in records]


def _row_values(record: ExecutionRecord, head: tuple[str, ...], job_id: str | None) -> list[Any]:
    """One record's export values in the order of :data:`ROW_FIELDS` (after ``head``)."""
    try:
        values = RECORD_CODEC.to_export(record)
    except EncodeError as exc:
        raise StoreError(f"record {record.key}: {exc}") from exc
    started, finished = record.started_at, record.finished_at
    values["duration"] = None if started is None or finished is None else finished - started
    row = [job_id] if head else []
    row.extend(map(values.__getitem__, ROW_FIELDS))
    return row


@contextmanager
def _writer(target: Target, **open_args: Any) -> Iterator[IO[str]]:
    """The file to write an export to; any failure to write it is a :class:`StoreError`.

    A full disk shows when the buffered text is written out (often only at the end), so the
    file is flushed (or closed) here, where its failure is caught and said in one line. A
    file left half-written at a path is removed: a truncated export looks like a whole one.
    """
    if not isinstance(target, str | os.PathLike):
        try:
            yield target
            target.flush()
        except OSError as exc:
            name = getattr(target, "name", "<stream>")
            raise StoreError(f"cannot write export to {name}: {_reason(exc)}") from exc
        return
    path = Path(os.fspath(target))
    try:
        fp = path.open("w", encoding="utf-8", **open_args)
    except OSError as exc:
        raise StoreError(f"cannot write export to {str(path)!r}: {_reason(exc)}") from exc
    try:
        with fp:
            yield fp
    except OSError as exc:
        with contextlib.suppress(OSError):
            path.unlink()
        raise StoreError(
            f"cannot write export to {str(path)!r}: {_reason(exc)}; the partial file was removed"
        ) from exc


def _reason(exc: OSError) -> str:
    # The OS's words without Python's "[Errno 28]" and the repeated path.
    return exc.strerror or str(exc)


def export_jsonl(
    records: Iterable[ExecutionRecord],
    target: Target,
    *,
    job_id: str | None = None,
    extra: Extra | None = None,
) -> int:
    """Write records as JSON Lines: one :meth:`ExecutionRecord.to_dict` object per line.

    Lossless: :func:`load_jsonl` gives back equal records (timestamps stay epoch seconds).

    Args:
        records: The records to write.
        target: A path (created or overwritten, UTF-8) or a text file object.
        job_id: If given, added to every line as ``"job_id"``.
        extra: Columns to add to every line (e.g. labels, see
            :func:`beacon_orchestrator.analysis.label_columns`).

    Returns:
        How many records were written.

    Raises:
        StoreError: The path cannot be written, or a record's metadata is not JSON-serialisable.
    """
    count = 0
    with _writer(target) as fp:
        for r in records:
            data = r.to_dict() if job_id is None else {"job_id": job_id, **r.to_dict()}
            if extra is not None:
                data.update(extra.values(r))
            try:
                line = json.dumps(data, ensure_ascii=False)
            except (TypeError, ValueError) as exc:
                raise StoreError(f"record {r.key}: cannot export as JSON: {exc}") from exc
            fp.write(line + "\n")
            count += 1
    return count


def load_jsonl(source: str | os.PathLike[str] | IO[str]) -> list[ExecutionRecord]:
    """Read records written by :func:`export_jsonl` (blank lines are skipped).

    Raises:
        StoreError: Naming the line that is not a valid record.
    """
    if isinstance(source, str | os.PathLike):
        path = Path(os.fspath(source))
        try:
            with path.open(encoding="utf-8") as fp:
                return _parse_jsonl(fp, str(path))
        except OSError as exc:
            raise StoreError(f"cannot read records from {str(path)!r}: {exc}") from exc
    return _parse_jsonl(source, getattr(source, "name", "<stream>"))


def _parse_jsonl(fp: IO[str], name: str) -> list[ExecutionRecord]:
    records: list[ExecutionRecord] = []
    for number, line in enumerate(fp, start=1):
        if not line.strip():
            continue
        try:
            records.append(ExecutionRecord.from_dict(json.loads(line)))
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"{name}, line {number}: not an execution record: {exc!r}") from exc
    return records


def export_csv(
    records: Iterable[ExecutionRecord],
    target: Target,
    *,
    job_id: str | None = None,
    extra: Extra | None = None,
) -> int:
    """Write records as CSV with a header row, the columns of :func:`records_to_rows`.

    ``None`` becomes an empty cell, booleans ``true``/``false``, timestamps ISO-8601 (UTC),
    ``metadata`` and ``receipt`` JSON strings.

    Args:
        records: The records to write.
        target: A path (created or overwritten, UTF-8) or a text file object (open it with
            ``newline=""``, as the :mod:`csv` module asks).
        job_id: If given, a leading ``job_id`` column.
        extra: Columns to add after the record's (e.g. labels, see
            :func:`beacon_orchestrator.analysis.label_columns`).

    Returns:
        How many records were written.

    Raises:
        StoreError: The path cannot be written, or a record's metadata is not JSON-serialisable.
    """
    fields = ROW_FIELDS if job_id is None else ("job_id", *ROW_FIELDS)
    if extra is not None:
        fields = (*fields, *extra.columns)
    count = 0
    head = () if job_id is None else ("job_id",)
    empty_at = fields.index("empty")
    with _writer(target, newline="") as fp:
        # A list per row, not a dict: an export of 500,000 records streams at C speed.
        writer = csv.writer(fp)
        writer.writerow(fields)
        for r in records:
            row = _row_values(r, head, job_id)
            row[empty_at] = "true" if row[empty_at] else "false"
            if extra is not None:
                values = extra.values(r)
                row.extend(values.get(c) for c in extra.columns)
            writer.writerow(row)
            count += 1
    return count
