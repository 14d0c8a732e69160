"""Exports straight from the ``records`` table: CSV rows and JSON Lines without records.

The record path (``stores/_export.py``) reads each row into an ``ExecutionRecord`` and flattens
it again. Here each column goes from its stored value to its exported one through the same two
conversions the record path applies one after the other (the codec's ``from_sql``, then its
``to_export`` for CSV or ``to_plain`` for JSON Lines), composed per column and compiled once
per export: no record is built, and the bytes are the record path's (a property test compares
them). A row whose conversion fails is handed to the record path, so its error is the same too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Final, Literal

from ..._record_codec import Convert, FieldCodec
from ..._types import RECORD_CODEC, ExecutionRecord
from .._export import ROW_FIELDS, Target, write_csv_rows, write_lines
from .._export import _csv_rows as record_csv_rows
from .._export import _jsonl_lines as record_lines
from ._rows import read_raw_batch

__all__ = ["ExportFormat", "export_rows", "read_raw_batch"]


ExportFormat = Literal["csv", "jsonl"]
"""The formats of a direct export."""

Raw = Sequence[Any]
"""A result row: the row id, then the codec's columns in order."""

# json.dumps(data, ensure_ascii=False) builds this encoder on every call; built once here.
_jsonl: Final = json.JSONEncoder(ensure_ascii=False).encode


_MEMO_SIZE: Final = 4_096


def _compose(first: Convert | None, second: Convert | None) -> Convert | None:
    """``second(first(value))``; when both exist, remembered for the last few stored values.

    Both exist for the columns stored as text that the codec parses (JSON, enum values), whose
    few distinct values repeat from row to row (``{}``, ``completed``); timestamps and text
    convert in one step or none, and are not remembered.
    """
    if first is None or second is None:
        return first or second
    memo: dict[Any, Any] = {}

    def both(value: Any) -> Any:
        try:
            return memo[value]
        except KeyError:
            pass
        converted = second(first(value))
        if len(memo) >= _MEMO_SIZE:
            memo.clear()
        memo[value] = converted
        return converted

    return both


def _values(fields: Sequence[FieldCodec], form: str, namespace: dict[str, Any]) -> list[str]:
    """Per column, the expression of its exported value from ``row`` (the row id at 0)."""
    at = 1
    values: list[str] = []
    for f in fields:
        if f.encoding.items:  # a spreading field's items are stored and exported as they are
            values.extend(f"row[{at + i}]" for i in range(len(f.columns)))
        else:
            convert = _compose(f.encoding.from_sql, getattr(f.encoding, form))
            value = f"row[{at}]"
            if convert is not None:
                namespace[f"_{f.name}"] = convert
                value = f"_{f.name}({value})"
            values.append(value)
        at += len(f.columns)
    return values


def _compile(source: str, namespace: dict[str, Any]) -> Callable[[Raw], Any]:
    exec(compile(source, "<direct export>", "exec"), namespace)
    function: Callable[[Raw], Any] = namespace["convert"]
    return function


def _csv_converter() -> Callable[[Raw], list[Any]]:
    """``convert(row)``: the CSV row of :data:`ROW_FIELDS` (booleans as ``true``/``false``)."""
    namespace: dict[str, Any] = {}
    by_column = dict(
        zip(RECORD_CODEC.columns, _values(RECORD_CODEC.fields, "to_export", namespace), strict=True)
    )
    at = {c: 1 + i for i, c in enumerate(RECORD_CODEC.columns)}
    started, finished = f"row[{at['started_at']}]", f"row[{at['finished_at']}]"
    by_column["duration"] = (
        f"(None if {started} is None or {finished} is None else {finished} - {started})"
    )
    by_column["empty"] = f'("true" if {by_column["empty"]} else "false")'
    body = ", ".join(by_column[c] for c in ROW_FIELDS)
    return _compile(f"def convert(row):\n    return [{body}]\n", namespace)


def _jsonl_converter() -> Callable[[Raw], str]:
    """``convert(row)``: the JSON Lines text of a row (without its newline)."""
    namespace: dict[str, Any] = {"encode": _jsonl}
    values = _values(RECORD_CODEC.fields, "to_plain", namespace)
    pairs = ", ".join(f"{c!r}: {v}" for c, v in zip(RECORD_CODEC.columns, values, strict=True))
    return _compile(f"def convert(row):\n    return encode({{{pairs}}})\n", namespace)


def _record(row: Raw) -> ExecutionRecord:
    read = RECORD_CODEC.sql_reader(RECORD_CODEC.columns)
    return read(row[1:])


def _csv_rows(batches: Iterable[Sequence[Raw]]) -> Iterator[list[Any]]:
    convert = _csv_converter()
    for rows in batches:
        for row in rows:
            try:
                yield convert(row)
            except Exception:  # the record path says what is wrong, as it would
                yield from record_csv_rows([_record(row)], (), None, ROW_FIELDS, None)


def _jsonl_lines(batches: Iterable[Sequence[Raw]]) -> Iterator[str]:
    convert = _jsonl_converter()
    for rows in batches:
        for row in rows:
            try:
                yield convert(row)
            except Exception:  # the record path says what is wrong, as it would
                yield from record_lines([_record(row)], None, None)


def export_rows(batches: Iterable[Sequence[Raw]], fmt: ExportFormat, target: Target) -> int:
    """Write the rows of ``batches`` (row id, then the codec's columns) as ``fmt``; how many.

    Raises:
        StoreError: The target cannot be written, or a row cannot be exported (as the record
            path would say).
    """
    if fmt == "csv":
        return write_csv_rows(ROW_FIELDS, _csv_rows(batches), target)
    return write_lines(_jsonl_lines(batches), target)
