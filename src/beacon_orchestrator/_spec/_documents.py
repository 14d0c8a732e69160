"""Reading a parsed job document, whatever its format.

A format reads every field, records each problem it finds (with its path, the offending value
and what was expected) and carries on with the next field, so one
:class:`~beacon_orchestrator.SpecError` lists them all and a user fixes a document in one go.
A field that failed is replaced by :data:`INVALID`, so the fields that depend on it are not
reported again.

Before any field is read, :func:`check_document` bounds what the document may cost (its size,
depth and values: ``_bounds``); a document that breaks those bounds is refused with those
problems alone, since reading its fields would cost what the bounds guard against.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, Final, cast

from .._checks import id_problem
from .._errors import SpecError, SpecProblem, UsageError
from ._bounds import document_problems, join
from ._regions import RegionTable
from ._values import SpecFields

__all__ = [
    "INVALID",
    "Check",
    "Invalid",
    "Problems",
    "any_invalid",
    "check_document",
    "finish",
    "id_check",
    "is_list",
    "join",
    "optional_mapping",
    "region_list",
    "region_table",
    "take",
    "unknown_fields",
]


class Invalid:
    """Marks a value that failed validation (its problem is already recorded)."""

    def __repr__(self) -> str:
        return "<invalid>"


INVALID: Final = Invalid()

Problems = list[SpecProblem]
Check = Callable[[Any, str], SpecProblem | None]
"""Gives the problem with a value located at a path, or ``None``."""

# Keys longer than any field name are not compared with the field names: difflib's cost grows
# with the product of the lengths, and a long key is no typo.
_SUGGEST_UP_TO: Final = 64


def any_invalid(*values: object) -> bool:
    """Whether any of ``values`` failed validation."""
    return any(value is INVALID for value in values)


def check_document(doc: object, path: str = "") -> None:
    """Refuse a document that costs too much to read, before reading any of it.

    Raises:
        SpecError: Listing the document's problems of size, depth and values (``_bounds``).
    """
    problems = document_problems(doc, path)
    if problems:
        raise SpecError(problems)


def is_list(value: object) -> bool:
    """Whether ``value`` is a list as a parsed document holds one (a tuple counts)."""
    return isinstance(value, list | tuple)


def id_check(what: str) -> Check:
    """The check of an id (``what`` names it: ``"model id"``)."""
    return partial(id_problem, what=what)


def region_table(regions: object) -> RegionTable:
    """The table to normalise region names with: the given one, or the built-in default.

    Raises:
        UsageError: When ``regions`` is neither a RegionTable nor ``None``.
    """
    if regions is None:
        return RegionTable.default()
    if isinstance(regions, RegionTable):
        return regions
    raise UsageError(f"regions must be a RegionTable or None, got {type(regions).__name__}")


def unknown_fields(
    obj: Mapping[Any, Any], allowed: Sequence[str], path: str, problems: Problems
) -> None:
    """Record each key of ``obj`` that is not ``allowed``, suggesting the closest one."""
    for key in obj:
        if key in allowed:
            continue
        suggest = isinstance(key, str) and len(key) <= _SUGGEST_UP_TO
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6) if suggest else []
        if close:
            message = f"unknown field; did you mean {close[0]!r}?"
        else:
            message = f"unknown field; expected one of {', '.join(allowed)}"
        problems.append(SpecProblem(join(path, key), message))


def take(
    obj: Mapping[Any, Any],
    key: str,
    path: str,
    problems: Problems,
    check: Check,
    *,
    required: bool,
    default: Any = None,
) -> Any:
    """The value of ``obj[key]`` if present and valid; :data:`INVALID` after recording a problem.

    An absent optional field gives ``default``.
    """
    where = join(path, key)
    if key not in obj:
        if required:
            problems.append(SpecProblem(where, "required field is missing"))
            return INVALID
        return default
    value = obj[key]
    problem = check(value, where)
    if problem is not None:
        problems.append(problem)
        return INVALID
    return value


def optional_mapping(
    obj: Mapping[Any, Any], key: str, path: str, problems: Problems
) -> dict[Any, Any] | Invalid:
    """An optional object field (absent or null means empty), deep-copied from the document."""
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.append(SpecProblem(join(path, key), "expected an object", value))
        return INVALID
    return copy.deepcopy(dict(value))


def region_list(
    raw: Any, path: str, table: RegionTable, problems: Problems, *, allow_empty: bool
) -> list[str] | Invalid:
    """Resolve a list of region names through ``table``, reporting repeats after folding."""
    if not is_list(raw):
        problems.append(SpecProblem(path, "expected a list of region names", raw))
        return INVALID
    if not raw and not allow_empty:
        problems.append(SpecProblem(path, "expected at least one region"))
        return INVALID
    resolved: list[str] = []
    first: dict[str, tuple[str, Any]] = {}
    before = len(problems)
    for j, name in enumerate(raw):
        where = f"{path}[{j}]"
        result = table.resolve(name, where)
        if isinstance(result, SpecProblem):
            problems.append(result)
        elif result in first:
            at, given = first[result]
            spelled = f" as {given!r}" if given != name else ""
            problems.append(
                SpecProblem(
                    where, f"duplicate region {result!r}; already listed at {at}{spelled}", name
                )
            )
        else:
            first[result] = (where, name)
            resolved.append(result)
    return resolved if len(problems) == before else INVALID


def finish(problems: Problems, fields: Mapping[str, Any]) -> SpecFields:
    """The fields of a JobSpec read from a document.

    Raises:
        SpecError: Listing every problem recorded while reading the document.
    """
    if problems or any_invalid(*fields.values()):
        raise SpecError(problems or [SpecProblem("", "invalid job document")])
    # Every value passed its checks above; the JobSpec built from them checks the whole.
    return cast(SpecFields, dict(fields))
