"""One codec for every flat form of a record, derived from the record class's attrs fields.

A record is flattened in three places: its dict form (``to_dict``/``from_dict``, JSON Lines),
SQLite's ``records`` table, and the export rows (``records_to_rows``, CSV). All three take
their columns from one :class:`RecordCodec`, which walks ``attrs.fields(cls)`` in order. A
field becomes one column of its own name holding its value as it is, unless its declaration
names an :class:`Encoding` (``field(metadata=encoded(...))``):

- :func:`flattened`: a named tuple spread over one column per item (an execution key becomes
  ``question_id``, ``model_id``, ``region``, ``sample``);
- :func:`enum_value`: an enum member stored as its value;
- :func:`json_object`: a mapping: a dict in the dict form, JSON text in a table or an export;
- :data:`EPOCH_SECONDS`: a timestamp in seconds since the epoch: ISO-8601 (UTC) in exports.

So a new field that is a plain ``str``, ``int``, ``float`` or ``bool`` (or ``None``) needs no
more than its declaration, and any other field must declare its encoding: building the codec
refuses a field it does not know how to flatten. SQLite also needs the new column: add a
migration in ``stores/sqlite/_schema.py`` (a test compares the table with the codec).

Each form is one small function compiled from the fields when the codec is built (as attrs
compiles ``__init__``), so it costs what hand-written code would; :meth:`RecordCodec.source`
shows it. This module knows no record class, so the module that defines one can build its
codec without an import cycle.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Generic, TypeVar, Union, get_args, get_origin, get_type_hints

import attrs
from attrs import AttrsInstance, field, frozen

__all__ = [
    "EPOCH_SECONDS",
    "EncodeError",
    "Encoding",
    "FieldCodec",
    "RecordCodec",
    "encoded",
    "enum_value",
    "flattened",
    "json_object",
]

_R = TypeVar("_R", bound=AttrsInstance)
_CODEC_KEY: Final = "beacon_orchestrator.encoding"
_SCALARS: Final = frozenset({str, int, float, bool, types.NoneType})
_UNIONS: Final = (Union, types.UnionType)

Convert = Callable[[Any], Any]
"""One value of a field (or the tuple of a spreading field's columns) to another form."""


class EncodeError(ValueError):
    """A field value a flat form cannot hold; the message names the field."""


@frozen(kw_only=True)
class Encoding:
    """How one field crosses into flat columns: a conversion per direction and form.

    A conversion left ``None`` keeps the value as it is (and costs nothing on the hot path).
    A conversion that cannot convert a value raises :class:`EncodeError` saying what it must be.

    Attributes:
        items: The columns of a field spread over several (a named tuple's fields), or ``()``
            for one column named after the field. A spreading field's columns hold its items
            as they are; ``from_plain``/``from_sql`` get the tuple of their values.
        item_types: The types of :attr:`items`, in order.
        item_defaults: The defaults of items that have one: a flat form written before an item
            existed (an older export, a dict without it) reads as its default.
        to_plain: To the JSON-ready value of the dict form.
        from_plain: Back from the dict form.
        to_sql: To a table column's value (``str``, ``int``, ``float`` or ``None``).
        from_sql: Back from a table column.
        to_export: To an export row's scalar (``str``, ``int``, ``float``, ``bool``, ``None``).
    """

    items: tuple[str, ...] = ()
    item_types: tuple[Any, ...] = ()
    item_defaults: Mapping[str, Any] = field(factory=dict, hash=False)
    to_plain: Convert | None = None
    from_plain: Convert | None = None
    to_sql: Convert | None = None
    from_sql: Convert | None = None
    to_export: Convert | None = None


def encoded(encoding: Encoding) -> dict[str, Encoding]:
    """The attrs ``metadata`` declaring a field's encoding: ``field(metadata=encoded(...))``."""
    return {_CODEC_KEY: encoding}


def flattened(kind: type[tuple[Any, ...]]) -> Encoding:
    """A named tuple spread over one column per item, each named after the tuple's field.

    An item with a default (the execution key's ``sample``) may be missing from a dict.
    """
    hints = get_type_hints(kind)
    items: tuple[str, ...] = kind._fields  # type: ignore[attr-defined]
    make: Convert = kind._make  # type: ignore[attr-defined]
    defaults: dict[str, Any] = dict(kind._field_defaults)  # type: ignore[attr-defined]
    return Encoding(
        items=items,
        item_types=tuple(hints[i] for i in items),
        item_defaults=defaults,
        from_plain=make,
        from_sql=make,
    )


def enum_value(kind: type[enum.Enum]) -> Encoding:
    """An enum member, stored as its value."""
    # Dict look-ups: calling the enum and reading .value cost a microsecond per row. A StrEnum
    # member and its value are equal, so both find their value here.
    values = {member: member.value for member in kind}
    members = {member.value: member for member in kind}

    def to_value(member: Any) -> Any:
        try:
            return values[member]
        except (KeyError, TypeError):
            raise EncodeError(f"must be a member of {kind.__name__}, got {member!r}") from None

    def to_member(value: Any) -> Any:
        try:
            return members[value]
        except (KeyError, TypeError):
            return kind(value)  # raises the enum's own ValueError

    return Encoding(
        to_plain=to_value,
        from_plain=to_member,
        to_sql=to_value,
        from_sql=to_member,
        to_export=to_value,
    )


# Built once: json.dumps with keyword arguments builds a new encoder on every call, and table
# rows are built on the hot path. ensure_ascii (the default) keeps lone surrogates storable.
_compact_json: Final = json.JSONEncoder(separators=(",", ":")).encode
_export_json: Final = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode


def _json_text(encode: Callable[[Any], str], *, optional: bool) -> Convert:
    """A conversion of a mapping to JSON text with ``encode`` (a closure: no per-call kwargs)."""

    def convert(value: Mapping[str, Any] | None) -> str | None:
        if not value:
            # A mapping that may not be None is stored as {} even if it is (as it always was).
            return None if value is None and optional else "{}"
        try:
            return encode(dict(value))
        except (TypeError, ValueError) as exc:
            raise EncodeError(f"must be JSON-serialisable: {exc}") from None

    return convert


def _optional_dict(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else dict(value)


def _optional_loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _dict_or_empty(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return value or {}


def json_object(*, optional: bool = False) -> Encoding:
    """A mapping of JSON values: a dict in the dict form, JSON text in a table or an export.

    Args:
        optional: Whether the field may be ``None`` (kept as ``None``). A mapping that may not
            reads a ``null`` in the dict form as ``{}``.
    """
    return Encoding(
        to_plain=_optional_dict if optional else dict,
        from_plain=None if optional else _dict_or_empty,
        to_sql=_json_text(_compact_json, optional=optional),
        from_sql=_optional_loads if optional else json.loads,
        to_export=_json_text(_export_json, optional=optional),
    )


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else dt.datetime.fromtimestamp(epoch, tz=dt.UTC).isoformat()


EPOCH_SECONDS: Final = Encoding(to_export=_iso)
"""A timestamp in seconds since the epoch (or ``None``): an ISO-8601 string (UTC) in exports."""


def _plain(kind: Any) -> Encoding:
    # Booleans and integers are read through their type: stored values may be 0/1 or text.
    if kind in (bool, int):
        return Encoding(from_plain=kind, to_sql=kind, from_sql=kind)
    return Encoding()


@frozen
class FieldCodec:
    """One attrs field of a record class and how it is flattened.

    Attributes:
        name: The attribute's name.
        columns: The columns it fills, in order.
        encoding: How its values cross into those columns.
        required: Whether the field has no default (so the dict form must hold its columns).
        text: The columns among :attr:`columns` that hold text (``str`` or ``None``).
    """

    name: str
    columns: tuple[str, ...]
    encoding: Encoding
    required: bool
    text: tuple[str, ...]

    @classmethod
    def of(cls, attribute: attrs.Attribute[Any], hint: Any, owner: type) -> FieldCodec:
        """Read one attrs field, its resolved type hint and its declared encoding.

        Raises:
            TypeError: The field is not a plain scalar and declares no encoding.
        """
        declared: Encoding | None = attribute.metadata.get(_CODEC_KEY)
        kinds = set(get_args(hint)) if get_origin(hint) in _UNIONS else {hint}
        if declared is None and not kinds <= _SCALARS:
            raise TypeError(
                f"{owner.__name__}.{attribute.name}: {hint} is not a plain scalar; declare "
                "its encoding with field(metadata=encoded(...))"
            )
        encoding = _plain(hint) if declared is None else declared
        if encoding.items:
            columns = encoding.items
            text = tuple(c for c, t in zip(columns, encoding.item_types, strict=True) if t is str)
        else:
            columns = (attribute.name,)
            text = columns if declared is None and str in kinds else ()
        return cls(
            name=attribute.name,
            columns=columns,
            encoding=encoding,
            required=attribute.default is attrs.NOTHING,
            text=text,
        )

    @property
    def paths(self) -> tuple[str, ...]:
        """Where each column's value is, from the record (``key.region``), for ``attrgetter``."""
        if self.encoding.items:
            return tuple(f"{self.name}.{c}" for c in self.columns)
        return (self.name,)


# Each form is one function compiled from the fields: it runs once per row on the hot path, and
# compiled it costs what the hand-written code did, where a loop over the fields cost about a
# fifth more per row read.


def _compile(source: str, namespace: dict[str, Any], owner: type) -> Callable[..., Any]:
    """The function ``source`` defines (its name: ``convert``), with ``namespace`` as globals."""
    exec(compile(source, f"<{owner.__name__} codec>", "exec"), namespace)
    function: Callable[..., Any] = namespace["convert"]
    return function


def _encoder_source(
    fields: Sequence[FieldCodec], form: str, namespace: dict[str, Any], *, keyed: bool
) -> str:
    """``convert(record)``: the columns' values, a dict by column if ``keyed`` else a list."""
    values: list[str] = []
    for f in fields:
        convert: Convert | None = getattr(f.encoding, form)
        if f.encoding.items or convert is None:  # a spreading field's items go as they are
            values.extend(f"record.{path}" for path in f.paths)
        else:
            namespace[f"_{form}_{f.name}"] = convert
            values.append(f"_{form}_{f.name}(record.{f.name})")
    columns = [c for f in fields for c in f.columns]
    if keyed:
        body = "{" + ", ".join(f"{c!r}: {v}" for c, v in zip(columns, values, strict=True)) + "}"
    else:
        body = "[" + ", ".join(values) + "]"
    return f"def convert(record):\n    return {body}\n"


def _decoder_source(
    fields: Sequence[FieldCodec], form: str, names: Sequence[str], namespace: dict[str, Any]
) -> str:
    """``convert(row)``: the record from column values in the order of ``names``."""
    at = {name: index for index, name in enumerate(names)}
    arguments: list[str] = []
    for f in fields:
        if f.encoding.items:
            value = "(" + ", ".join(f"row[{at[c]}]" for c in f.columns) + ",)"
        else:
            value = f"row[{at[f.name]}]"
        convert: Convert | None = getattr(f.encoding, form)
        if convert is not None:
            namespace[f"_{form}_{f.name}"] = convert
            value = f"_{form}_{f.name}({value})"
        arguments.append(f"{f.name}={value}")
    return f"def convert(row):\n    return make({', '.join(arguments)})\n"


@frozen
class RecordCodec(Generic[_R]):
    """The flat forms of one attrs class's instances: ``RecordCodec(ExecutionRecord)``.

    Args:
        record_type: The attrs class. Its fields are read once, here.

    Raises:
        TypeError: A field is not a plain scalar and declares no encoding.
    """

    record_type: type[_R]
    fields: tuple[FieldCodec, ...] = field(init=False)
    """The fields, in declaration order."""
    columns: tuple[str, ...] = field(init=False)
    """Every column, in order: the keys of the dict form and of an export row, the values of a
    table row."""
    text_columns: frozenset[str] = field(init=False)
    """The columns that hold text (``str`` or ``None``): the ones a table checks for Unicode."""
    _to_plain: Callable[[_R], dict[str, Any]] = field(init=False, repr=False)
    _to_sql: Callable[[_R], list[Any]] = field(init=False, repr=False)
    _to_export: Callable[[_R], dict[str, Any]] = field(init=False, repr=False)
    _from_plain: Callable[[Sequence[Any]], _R] = field(init=False, repr=False)

    @fields.default
    def _read_fields(self) -> tuple[FieldCodec, ...]:
        hints = get_type_hints(self.record_type)
        return tuple(
            FieldCodec.of(a, hints[a.name], self.record_type)
            for a in attrs.fields(self.record_type)
        )

    @columns.default
    def _all_columns(self) -> tuple[str, ...]:
        return tuple(c for f in self.fields for c in f.columns)

    @text_columns.default
    def _all_text_columns(self) -> frozenset[str]:
        return frozenset(c for f in self.fields for c in f.text)

    @_to_plain.default
    def _compile_to_plain(self) -> Callable[[_R], dict[str, Any]]:
        return self._compile("to_plain")

    @_to_sql.default
    def _compile_to_sql(self) -> Callable[[_R], list[Any]]:
        return self._compile("to_sql")

    @_to_export.default
    def _compile_to_export(self) -> Callable[[_R], dict[str, Any]]:
        return self._compile("to_export")

    @_from_plain.default
    def _compile_from_plain(self) -> Callable[[Sequence[Any]], _R]:
        return self._compile("from_plain", self.columns)

    def source(self, form: str, names: Sequence[str] | None = None) -> str:
        """The Python source compiled for one form, to read or debug it.

        Args:
            form: ``to_plain``, ``to_sql`` or ``to_export`` (from a record), ``from_plain`` or
                ``from_sql`` (to a record).
            names: For ``from_*``, the columns of a row in order (default :attr:`columns`).
        """
        return self._source(form, names, {})

    def _source(self, form: str, names: Sequence[str] | None, namespace: dict[str, Any]) -> str:
        if form.startswith("from_"):
            return _decoder_source(self.fields, form, names or self.columns, namespace)
        return _encoder_source(self.fields, form, namespace, keyed=form != "to_sql")

    def _compile(self, form: str, names: Sequence[str] | None = None) -> Callable[..., Any]:
        namespace: dict[str, Any] = {"make": self.record_type}
        return _compile(self._source(form, names, namespace), namespace, self.record_type)

    def to_dict(self, record: _R) -> dict[str, Any]:
        """The dict form: every column, JSON-ready."""
        return self._to_plain(record)

    def from_dict(self, data: Mapping[str, Any]) -> _R:
        """The record back from its dict form; a missing column leaves its field's default.

        Raises:
            KeyError: A column of a required field is missing.
            ValueError: A value does not convert (e.g. an unknown enum value).
            TypeError: A value does not convert.
        """
        try:
            row = [data[c] for c in self.columns]
        except KeyError:
            return self._from_partial_dict(data)
        return self._from_plain(row)

    def _from_partial_dict(self, data: Mapping[str, Any]) -> _R:
        kwargs: dict[str, Any] = {}
        for f in self.fields:
            if not f.required and not all(c in data for c in f.columns):
                continue  # the attrs default
            raw = _items(f, data) if f.encoding.items else data[f.name]
            convert = f.encoding.from_plain
            kwargs[f.name] = raw if convert is None else convert(raw)
        return self.record_type(**kwargs)

    def to_sql(self, record: _R) -> list[Any]:
        """The values of a table row, one per column of :attr:`columns`.

        Raises:
            EncodeError: A field the table cannot hold, named first in the message.
        """
        return _named(self._to_sql, record, self.fields, "to_sql")

    def sql_reader(self, names: Sequence[str]) -> Callable[[Sequence[Any]], _R]:
        """A function from a result row to a record, finding each column by its name.

        Args:
            names: The result's column names, in order (they may include others).
        """
        reader: Callable[[Sequence[Any]], _R] = self._compile("from_sql", names)
        return reader

    def to_export(self, record: _R) -> dict[str, Any]:
        """The scalars of an export row, by column.

        Raises:
            EncodeError: A field an export cannot hold, named first in the message.
        """
        return _named(self._to_export, record, self.fields, "to_export")


def _items(f: FieldCodec, data: Mapping[str, Any]) -> tuple[Any, ...]:
    """A spreading field's column values from a dict, an item's default for a missing column."""
    defaults = f.encoding.item_defaults
    return tuple(data[c] if c in data or c not in defaults else defaults[c] for c in f.columns)


_T = TypeVar("_T")


def _named(encode: Callable[[Any], _T], record: Any, fields: Sequence[FieldCodec], form: str) -> _T:
    """``encode(record)``, its EncodeError naming the field: a compiled form cannot say which.

    Raises:
        EncodeError: The first field whose conversion fails, named first in the message.
    """
    try:
        return encode(record)
    except EncodeError:
        for f in fields:  # the slow path of a record that cannot be stored: find the field
            convert: Convert | None = getattr(f.encoding, form)
            if convert is None or f.encoding.items:
                continue
            try:
                convert(getattr(record, f.name))
            except EncodeError as exc:
                raise EncodeError(f"{f.name} {exc}") from None
        raise
