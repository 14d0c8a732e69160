"""Exports straight from the ``records`` table: CSV rows and JSON Lines without records.

The record path (``stores/_export.py``) reads each row into an ``ExecutionRecord`` and flattens
it again. Here each column goes from its stored value to its exported one through the same two
conversions the record path applies one after the other (the codec's ``from_sql``, then its
``to_export`` for CSV or ``to_plain`` for JSON Lines), composed per column and compiled once
per export: no record is built, and the bytes are the record path's (a property test compares
them). A row whose conversion fails is handed to the record path, so its error is the same too.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from json.encoder import encode_basestring
from typing import Any, Final, Literal

from ..._record_codec import EPOCH_SECONDS, Convert, FieldCodec
from ..._types import RECORD_CODEC, ExecutionRecord
from .._export import ROW_FIELDS, Target, write_csv_rows, write_lines
from .._export import _csv_rows as record_csv_rows
from .._export import _jsonl_lines as record_lines
from ._rows import read_raw_batch

_codec_iso: Final = EPOCH_SECONDS.to_export or str
__all__ = ["ExportFormat", "export_rows", "iso_seconds", "read_raw_batch"]


ExportFormat = Literal["csv", "jsonl"]
"""The formats of a direct export."""

Raw = Sequence[Any]
"""A result row: the row id, then the codec's columns in order."""

# json.dumps(data, ensure_ascii=False) builds this encoder on every call; built once here.
_jsonl: Final = json.JSONEncoder(ensure_ascii=False).encode


_MEMO_SIZE: Final = 4_096


def _compose(
    first: Convert | None, second: Convert | None, then: Convert | None = None
) -> Convert | None:
    """``second(first(value))``; when both exist, remembered for the last few stored values.

    ``then`` is applied after ``second`` to a remembered value (a CSV cell's quoting).

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
        if then is not None:
            converted = then(converted)
        if len(memo) >= _MEMO_SIZE:
            memo.clear()
        memo[value] = converted
        return converted

    return both


def iso_seconds() -> Callable[[float | None], str | None]:
    """The codec's ISO-8601 (UTC) form of an epoch timestamp, computed for less.

    ``datetime.fromtimestamp`` splits a float into whole seconds and microseconds rounded half
    to even; so does this, and it formats a second once, the last few thousand remembered:
    the timestamps of a job fall in far fewer seconds than it has rows. Anything but a float
    goes to the codec's own conversion.
    """
    memo: dict[float, str] = {}

    def iso(epoch: float | None) -> str | None:
        if epoch.__class__ is not float:
            return _codec_iso(epoch)
        fraction, whole = math.modf(epoch)
        micro = round(fraction * 1e6)
        if micro >= 1_000_000:
            micro -= 1_000_000
            whole += 1.0
        elif micro < 0:
            micro += 1_000_000
            whole -= 1.0
        try:
            head = memo[whole]
        except KeyError:
            if len(memo) >= _MEMO_SIZE:
                memo.clear()
            stamp = dt.datetime.fromtimestamp(int(whole), tz=dt.UTC).isoformat()
            head = memo[whole] = stamp.removesuffix("+00:00")
        return f"{head}.{micro:06d}+00:00" if micro else f"{head}+00:00"

    return iso


def _values(
    fields: Sequence[FieldCodec],
    form: str,
    namespace: dict[str, Any],
    then: Convert | None = None,
) -> list[str]:
    """Per column, the expression of its exported value from ``row`` (the row id at 0).

    A remembered conversion (see :func:`_compose`) ends with ``then``.
    """
    at = 1
    values: list[str] = []
    for f in fields:
        if f.encoding.items:  # a spreading field's items are stored and exported as they are
            values.extend(f"row[{at + i}]" for i in range(len(f.columns)))
        else:
            second = getattr(f.encoding, form)
            if f.encoding is EPOCH_SECONDS and form == "to_export":
                second = iso_seconds()
            convert = _compose(f.encoding.from_sql, second, then)
            value = f"row[{at}]"
            if convert is not None:
                # "_m_": remembered, so already ended with ``then``
                name = f"_m_{f.name}" if f.encoding.from_sql and second else f"_{f.name}"
                namespace[name] = convert
                value = f"{name}({value})"
            values.append(value)
        at += len(f.columns)
    return values


def _compile(source: str, namespace: dict[str, Any]) -> Callable[[Raw], Any]:
    exec(compile(source, "<direct export>", "exec"), namespace)
    function: Callable[[Raw], Any] = namespace["convert"]
    return function


def _cell(value: Any) -> str:
    """One CSV cell as :func:`csv.writer` writes it (the excel dialect, minimal quoting)."""
    if value is None:
        return ""
    text = value if value.__class__ is str else str(value)
    if '"' in text:
        return '"' + text.replace('"', '""') + '"'
    if "," in text or "\n" in text or "\r" in text:
        return '"' + text + '"'
    return text


# Columns whose value is made here and never needs quoting: ISO timestamps, numbers, booleans.
_UNQUOTED: Final = frozenset({"started_at", "finished_at", "duration", "attempts", "empty"})


def _csv_converter() -> Callable[[Raw], str]:
    """``convert(row)``: the CSV line of a row, as :func:`csv.writer` writes it, line end included.

    Its cells are those of :data:`ROW_FIELDS`.
    """
    namespace: dict[str, Any] = {"cell": _cell}
    fields = RECORD_CODEC.fields
    values = _values(fields, "to_export", namespace, then=_cell)
    by_column = dict(zip(RECORD_CODEC.columns, values, strict=True))
    remembered = {c for c, v in by_column.items() if v.startswith("_m_")}
    at = {c: 1 + i for i, c in enumerate(RECORD_CODEC.columns)}
    started, finished = f"row[{at['started_at']}]", f"row[{at['finished_at']}]"
    by_column["duration"] = (
        f"(None if {started} is None or {finished} is None else {finished} - {started})"
    )
    by_column["empty"] = f'("true" if {by_column["empty"]} else "false")'
    cells: list[str] = []
    for i, c in enumerate(ROW_FIELDS):
        if c in _UNQUOTED:
            cells.append(f'("" if (v{i} := {by_column[c]}) is None else str(v{i}))')
        elif c in remembered:  # already a cell: quoted as it was remembered
            cells.append(by_column[c])
        else:
            cells.append(f"cell({by_column[c]})")
    body = ", ".join(cells)
    return _compile(f"def convert(row):\n    return ','.join(({body})) + '\\r\\n'\n", namespace)


_INFINITIES: Final = (math.inf, -math.inf)


def _json_scalar(value: Any) -> str:
    """A value's JSON text as :data:`_jsonl` writes it, numbers without the encoder's call."""
    if value is None:
        return "null"
    kind = value.__class__
    if kind is int:
        return int.__repr__(value)
    if kind is float and value == value and value not in _INFINITIES:
        return float.__repr__(value)
    return _jsonl(value)  # booleans, NaN, infinities and anything else: the encoder itself


def _jsonl_converter() -> Callable[[Raw], str]:
    """``convert(row)``: the JSON Lines text of a row (without its newline).

    The object's text is put together as ``json.dumps(record.to_dict(), ensure_ascii=False)``
    writes it: strings through the encoder's own string function, JSON columns as the encoder
    wrote them (remembered), numbers as their ``repr``.
    """
    namespace: dict[str, Any] = {"string": encode_basestring, "scalar": _json_scalar}
    values = _values(RECORD_CODEC.fields, "to_plain", namespace, then=_jsonl)
    remembered = {
        c for c, v in zip(RECORD_CODEC.columns, values, strict=True) if v.startswith("_m_")
    }
    pieces: list[str] = []
    for c, v in zip(RECORD_CODEC.columns, values, strict=True):
        if c in remembered:
            text = v
        elif c in RECORD_CODEC.text_columns:
            text = f'("null" if (s := {v}) is None else string(s))'
        else:
            text = f"scalar({v})"
        separator = "{" if not pieces else ", "
        pieces.extend((repr(separator + _jsonl(c) + ": "), text))
    body = ", ".join(pieces)
    return _compile(f"def convert(row):\n    return ''.join(({body}, '}}'))\n", namespace)


_read = RECORD_CODEC.sql_reader(RECORD_CODEC.columns)


def _record(row: Raw) -> ExecutionRecord:
    return _read(row[1:])


def _csv_rows(batches: Iterable[Sequence[Raw]]) -> Iterator[str | list[Any]]:
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
