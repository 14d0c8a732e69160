"""What a job document may cost: its size, its depth and the values it may hold.

A document comes from anyone (a file, a web form, Beacon's portal), and everything the library
does with it afterwards (deep copies, JSON for the store, error messages) costs in proportion to
it. So before any field is read, :func:`document_problems` walks the whole document once, at a
cost bounded by :data:`MAX_DOCUMENT_BYTES` however it is built, and refuses:

* a document over :data:`MAX_DOCUMENT_BYTES` counted as JSON, with shared parts counted each time
  they appear (a YAML alias bomb, or a dict that holds itself, is refused, not expanded);
* nesting deeper than :data:`MAX_DEPTH`;
* an integer of more than :data:`MAX_INT_DIGITS` digits, NaN and infinity (JSON has none of
  them, and nothing in a job needs them);
* a string that is not valid Unicode or is over ``MAX_TEXT_CHARS`` characters, a key that is not
  a string, and anything that is not a JSON value (bytes, sets, objects).

Files are bounded before they are parsed too (``_files``): at most :data:`MAX_DOCUMENT_BYTES`
bytes, and YAML with at most :data:`MAX_ALIASES` aliases.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

from attrs import define, evolve, field, frozen

from .._checks import text_problem
from .._errors import SpecProblem, short_repr

__all__ = [
    "MAX_ALIASES",
    "MAX_DEPTH",
    "MAX_DOCUMENT_BYTES",
    "MAX_INT_DIGITS",
    "TOO_DEEP",
    "LongInteger",
    "document_problems",
    "join",
]

MAX_DOCUMENT_BYTES: Final = 16 * 1024 * 1024
"""The largest job document: 16 MiB, as a file or counted as JSON once loaded."""

MAX_DEPTH: Final = 64
"""The deepest nesting of objects and lists in a job document."""

MAX_INT_DIGITS: Final = 64
"""The most digits an integer in a job document may have."""

MAX_ALIASES: Final = 100
"""The most YAML aliases (``*name``, ``<<: *name``) one YAML job file may use."""

TOO_DEEP: Final = (
    f"nested too deeply: a job document nests objects and lists at most {MAX_DEPTH} levels"
)
"""The problem with a document nested deeper than :data:`MAX_DEPTH` levels."""

_MAX_PROBLEMS: Final = 100
_KEY_REPR: Final = 40
_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_JSON_VALUE: Final = (
    "expected a JSON value (an object, a list, a string, a number, true, false or null)"
)


@frozen
class LongInteger:
    """Stands in for an integer written with more than :data:`MAX_INT_DIGITS` digits.

    The parsers put it where such an integer was instead of converting it (Python refuses to
    convert one of over 4300 digits, and a conversion costs time in the number's length);
    :func:`document_problems` then reports it where it is.

    Attributes:
        digits: How many characters the number was written with.
    """

    digits: int

    def __repr__(self) -> str:
        return f"<an integer of {self.digits} digits>"


def join(path: str, key: object) -> str:
    """The path of ``key`` inside ``path``: ``limits.job_timeout``, ``catalogue['a b']``.

    A long key is shortened (its start and its length), so a path stays one short line.
    """
    if isinstance(key, str) and len(key) <= _KEY_REPR and _IDENTIFIER.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{short_repr(key, _KEY_REPR)}]"


@define
class _Frame:
    """A container being walked: its path, its depth and its remaining entries."""

    path: str
    depth: int
    entries: Iterator[tuple[Any, Any]]
    keyed: bool

    def child(self, key: Any) -> str:
        return join(self.path, key) if self.keyed else f"{self.path}[{key}]"


def _scalar_problem(value: Any) -> SpecProblem | None:
    """What is wrong with a value that is not a container, at path ``""`` (set by the caller)."""
    if isinstance(value, str):
        return text_problem(value, "")
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        # bit_length, not str(): converting a long integer is what this guards against.
        return _long_integer(value) if value.bit_length() > _MAX_INT_BITS else None
    if isinstance(value, float):
        return None if math.isfinite(value) else SpecProblem("", _NOT_FINITE, value)
    if isinstance(value, LongInteger):
        return _long_integer(value)
    return SpecProblem("", _JSON_VALUE, value)


def _cost(value: Any) -> int:
    """What a value that is not a container adds to the document's size, as JSON (near enough)."""
    if isinstance(value, str):
        return len(value) + 2
    return _SCALAR_COST


def _long_integer(value: int | LongInteger) -> SpecProblem:
    return SpecProblem(
        "", f"too large: an integer in a job document has at most {MAX_INT_DIGITS} digits", value
    )


@define
class _Walk:
    """One walk over a document: the problems found, the size counted, the containers open."""

    problems: list[SpecProblem] = field(factory=list)
    size: int = 0
    stack: list[_Frame] = field(factory=list)

    def add(self, problem: SpecProblem | None, frame: _Frame, key: Any) -> None:
        # The path is built only for a problem: most values have none.
        if problem is not None:
            self.problems.append(evolve(problem, path=frame.child(key)))

    def key(self, key: Any, frame: _Frame) -> None:
        """Count an object's key, and record what is wrong with it."""
        if isinstance(key, str):
            self.size += len(key) + 3
            problem = text_problem(key, "")
            if problem is not None:
                self.problems.append(evolve(problem, path=join(frame.path, key)))
        else:
            self.size += _SCALAR_COST
            self.problems.append(
                SpecProblem(frame.path, "expected an object with string keys", key)
            )

    def enter(self, value: Any, path: str, depth: int) -> bool:
        """Start walking a container; ``False`` if it is nested too deeply (the walk stops)."""
        if depth > MAX_DEPTH:
            self.problems.append(
                SpecProblem(path, f"{TOO_DEEP} (and one that holds itself never ends)")
            )
            return False
        keyed = isinstance(value, Mapping)
        entries: Iterator[tuple[Any, Any]] = iter(value.items()) if keyed else enumerate(value)
        self.size += 2 + len(value)
        self.stack.append(_Frame(path, depth, entries, keyed))
        return True

    def too_large(self) -> SpecProblem:
        # Where the size ran out, to two levels (``metadata.bomb``): deeper says nothing more.
        where = self.stack[min(2, len(self.stack) - 1)].path if self.stack else ""
        return SpecProblem(
            where,
            f"too large: a job document is at most {MAX_DOCUMENT_BYTES // _MIB} MiB counted as "
            "JSON, every repeated part (a YAML alias) counted each time it appears; this one "
            "is larger, checked up to here",
        )

    def run(self) -> None:
        """Walk the open containers until the end, or until the document proves too costly."""
        while self.stack and len(self.problems) < _MAX_PROBLEMS:
            frame = self.stack[-1]
            entry = next(frame.entries, None)
            if entry is None:
                self.stack.pop()
                continue
            key, value = entry
            if frame.keyed:
                self.key(key, frame)
            if isinstance(value, Mapping | list | tuple):
                if not self.enter(value, frame.child(key), frame.depth + 1):
                    return
            else:
                self.size += _cost(value)
                self.add(_scalar_problem(value), frame, key)
            if self.size > MAX_DOCUMENT_BYTES:
                self.problems.append(self.too_large())
                return


_MIB: Final = 1024 * 1024
_SCALAR_COST: Final = 8
# 10**64 has 213 bits: anything longer has more than 64 digits.
_MAX_INT_BITS: Final = math.ceil(MAX_INT_DIGITS / math.log10(2))
_NOT_FINITE: Final = (
    "expected a finite number: NaN and infinity (or a number too large for a float) cannot be "
    "stored or sent as JSON"
)


def document_problems(doc: Any, path: str = "") -> list[SpecProblem]:
    """Every problem with the cost or the values of a document, in document order.

    The walk is iterative (no recursion, whatever the depth) and stops when the document
    proves too large or too deep, or after a hundred problems, so its own cost is bounded
    however the document is built: the parts a YAML alias bomb shares are counted each time
    they appear, as a JSON writer would write them.

    Args:
        doc: A parsed document, or a part of a job built in code (``params``, ``metadata``).
        path: Where ``doc`` is in the job (``""`` for a whole document).
    """
    walk = _Walk()
    if isinstance(doc, Mapping | list | tuple):
        walk.enter(doc, path, 1)
        walk.run()
    else:
        problem = _scalar_problem(doc)
        if problem is not None:
            walk.problems.append(evolve(problem, path=path))
    if len(walk.problems) >= _MAX_PROBLEMS:
        walk.problems.append(
            SpecProblem(path, f"stopped after {_MAX_PROBLEMS} problems; there may be more")
        )
    return walk.problems
