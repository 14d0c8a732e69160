"""What a job document may cost: its size, its depth and the values it may hold.

A document comes from anyone (a file, a web form, Beacon's portal), and everything the library
does with it afterwards (deep copies, JSON for the store, error messages) costs in proportion to
it. So before any field is read, :func:`document_problems` walks the whole document once, at a
cost bounded by :data:`MAX_DOCUMENT_BYTES` however it is built, and refuses:

* a document over :data:`MAX_DOCUMENT_BYTES` counted as JSON, with shared parts counted each time
  they appear (a YAML alias bomb is refused, not expanded), and a container that holds itself;
* nesting deeper than :data:`MAX_DEPTH`;
* an integer of more than :data:`MAX_INT_DIGITS` digits, NaN and infinity (JSON has none of
  them, and nothing in a job needs them);
* a string that is not valid Unicode or is over ``MAX_TEXT_CHARS`` characters, a key that is not
  a string, and anything that is not a JSON value (bytes, sets, objects).

Files are bounded before they are parsed too (``_files``): at most :data:`MAX_DOCUMENT_BYTES`
bytes of JSON or :data:`MAX_YAML_BYTES` of YAML, and YAML with at most :data:`MAX_ALIASES`
aliases.
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
    "MAX_YAML_BYTES",
    "TOO_DEEP",
    "LongInteger",
    "document_problems",
    "join",
]

MAX_DOCUMENT_BYTES: Final = 16 * 1024 * 1024
"""The largest job document: 16 MiB, as a file or counted as JSON once loaded."""

MAX_YAML_BYTES: Final = 2 * 1024 * 1024
"""The largest YAML file: 2 MiB. YAML is read mostly in Python (about a second per MiB with
LibYAML, five without), so a larger job is better written as JSON."""

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
    """A container being walked.

    Attributes:
        container: The container itself.
        parent: The frame of the container holding it (``None`` for the document).
        key: Its key or index in its parent (its path, for the document).
        depth: Its level (the document is 1).
        entries: Its entries not walked yet, as (key or index, value).
        keyed: Whether it is an object (its keys are checked too).
        start: The document's size counted when it was entered.
        height: Levels of containers inside it, so far.
    """

    container: Any
    parent: _Frame | None
    key: Any
    depth: int
    entries: Iterator[tuple[Any, Any]]
    keyed: bool
    start: int
    height: int = 0

    @property
    def path(self) -> str:
        # Built only when a problem needs it: most containers never do.
        if self.parent is None:
            return str(self.key)
        return self.parent.child(self.key)

    def child(self, key: Any) -> str:
        return join(self.path, key) if self.keyed else f"{self.path}[{key}]"


def _first_repeat(frame: _Frame | None) -> str | None:
    """The path of the first container that holds one of the containers it is in, if any."""
    chain: list[_Frame] = []
    while frame is not None:
        chain.append(frame)
        frame = frame.parent
    seen: set[int] = set()
    for outer_first in reversed(chain):
        if id(outer_first.container) in seen:
            return outer_first.path
        seen.add(id(outer_first.container))
    return None


def _scalar_problem(value: Any) -> SpecProblem | None:
    """What is wrong with a value that is not a container, at path ``""`` (set by the caller)."""
    if isinstance(value, str):
        return text_problem(value, "")
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        # Compared, not converted: converting a long integer is what this guards against.
        return _long_integer(value) if not -_CEILING < value < _CEILING else None
    if isinstance(value, float):
        return None if math.isfinite(value) else SpecProblem("", _NOT_FINITE, value)
    if isinstance(value, LongInteger):
        return _long_integer(value)
    return SpecProblem("", _JSON_VALUE, value)


def _long_integer(value: int | LongInteger) -> SpecProblem:
    return SpecProblem(
        "", f"too large: an integer in a job document has at most {MAX_INT_DIGITS} digits", value
    )


@define
class _Walk:
    """One walk over a document: the problems found, the size counted, the containers open.

    A container met again (a YAML alias, or a list repeated in code) is not walked again: the
    size and the height it was found to have are counted once more, so the document is
    measured as written out in full at the cost of walking each container once.
    """

    problems: list[SpecProblem] = field(factory=list)
    size: int = 0
    stack: list[_Frame] = field(factory=list)
    # id() of each large container walked: (its size, its height). The document keeps them
    # alive, so no id is reused while the walk lasts.
    walked: dict[int, tuple[int, int]] = field(factory=dict)

    def report(self, problem: SpecProblem | None, frame: _Frame, key: Any) -> None:
        # The path is built only for a problem: most values have none.
        if problem is not None:
            self.problems.append(evolve(problem, path=frame.child(key)))

    def scan(self, frame: _Frame) -> tuple[Any, Any] | None:
        """Walk ``frame``'s entries up to its next container; ``None`` at its end or a stop."""
        keyed = frame.keyed
        for key, value in frame.entries:
            if keyed:
                self.check_key(key, frame)
            kind = type(value)
            if kind is str:
                self.size += len(value) + 2
                if len(value) > _SHORT or not value.isascii():
                    self.report(text_problem(value, ""), frame, key)
            elif kind is int or kind is float:
                self.size += _SCALAR_COST
                if not -_CEILING < value < _CEILING:  # NaN fails this too
                    self.report(_scalar_problem(value), frame, key)
            elif value is None or kind is bool:
                self.size += _SCALAR_COST
            elif kind is dict or kind is list or isinstance(value, _CONTAINERS):
                if value:
                    return key, value
                self.size += 2  # an empty one needs no walk
            else:
                self.size += _SCALAR_COST
                self.report(_scalar_problem(value), frame, key)
            if self.size > MAX_DOCUMENT_BYTES or len(self.problems) >= _MAX_PROBLEMS:
                return None
        return None

    def check_key(self, key: Any, frame: _Frame) -> None:
        if type(key) is not str:
            self.size += _SCALAR_COST
            self.problems.append(
                SpecProblem(frame.path, "expected an object with string keys", key)
            )
            return
        self.size += len(key) + 3
        if len(key) > _SHORT or not key.isascii():
            problem = text_problem(key, "")
            if problem is not None:
                self.problems.append(evolve(problem, path=join(frame.path, key)))

    def enter(self, value: Any, parent: _Frame | None, key: Any) -> bool:
        """Start walking a container; ``False`` if the walk must stop (nested too deeply)."""
        depth = 1 if parent is None else parent.depth + 1
        known = self.walked.get(id(value))
        if known is not None:
            size, height = known
            self.size += size
            if parent is not None:
                parent.height = max(parent.height, height)
            return self.fits(parent, key, depth + height - 1)
        # A container that holds itself is met again before it is walked to its end: it nests
        # without end, and is told so when it is too deep.
        if not self.fits(parent, key, depth):
            return False
        keyed = isinstance(value, Mapping)
        entries: Iterator[tuple[Any, Any]] = iter(value.items()) if keyed else enumerate(value)
        self.stack.append(_Frame(value, parent, key, depth, entries, keyed, self.size))
        self.size += 2 + len(value)
        return True

    def fits(self, parent: _Frame | None, key: Any, deepest: int) -> bool:
        if deepest <= MAX_DEPTH:
            return True
        cycle = _first_repeat(parent)
        if cycle is not None:
            self.problems.append(SpecProblem(cycle, _CYCLE))
        else:
            path = str(key) if parent is None else parent.child(key)
            self.problems.append(SpecProblem(path, TOO_DEEP))
        return False

    def leave(self, frame: _Frame) -> None:
        """A container walked to its end: remember a large one, count its height in its parent."""
        self.stack.pop()
        height = frame.height + 1
        size = self.size - frame.start
        if size >= _REMEMBER:
            # Only large ones: a small one met again is walked again, at a small cost.
            self.walked[id(frame.container)] = (size, height)
        if frame.parent is not None:
            frame.parent.height = max(frame.parent.height, height)

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
            found = self.scan(frame)
            if self.size > MAX_DOCUMENT_BYTES:
                self.problems.append(self.too_large())
                return
            if found is None:
                if len(self.problems) < _MAX_PROBLEMS:
                    self.leave(frame)
                continue
            key, value = found
            if not self.enter(value, frame, key):
                return
            if self.size > MAX_DOCUMENT_BYTES:
                self.problems.append(self.too_large())
                return


_MIB: Final = 1024 * 1024
_SCALAR_COST: Final = 8
_CONTAINERS: Final = (Mapping, list, tuple)
# Strings at most this long, and ASCII, need no further look (the common case, kept fast).
_SHORT: Final = 1024
_CYCLE: Final = (
    "the same object as a container it is inside: a job document is a tree of values, without "
    "cycles"
)
# Containers counting at least this much are remembered when met again (a YAML alias); below it,
# walking one again costs about as much as remembering it.
_REMEMBER: Final = 1024
# The smallest integer with too many digits: compared, never converted.
_CEILING: Final = 10**MAX_INT_DIGITS
_NOT_FINITE: Final = (
    "expected a finite number: NaN and infinity (or a number too large for a float) cannot be "
    "stored or sent as JSON"
)


def document_problems(doc: Any, path: str = "") -> list[SpecProblem]:
    """Every problem with the cost or the values of a document, in document order.

    The walk is iterative (no recursion, whatever the depth), walks each container once
    however often it appears, and stops when the document proves too large, too deep or a
    cycle, or after a hundred problems: so its own cost is bounded however the document is
    built. A container that appears several times (the parts a YAML alias bomb shares) is
    counted each time, as a JSON writer would write it out.

    Args:
        doc: A parsed document, or a part of a job built in code (``params``, ``metadata``).
        path: Where ``doc`` is in the job (``""`` for a whole document).
    """
    walk = _Walk()
    if isinstance(doc, _CONTAINERS):
        walk.enter(doc, None, path)
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
