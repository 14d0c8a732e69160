"""The rules a value must pass to be accepted, each written once.

A rule is used twice: by the attrs validators of the value classes (:class:`RetryPolicy`,
:class:`MinSuccessRate`, :class:`Limits`) and by the document loaders. So a value refused in
Python and the same value refused in a job file fail the same test and are described with the
same words, and both raise :class:`~beacon_orchestrator.SpecError`.

Numbers follow the documents' notion, not Python's: a ``bool`` is not a number (JSON's ``true``
is not ``1``), and neither NaN nor infinity is (JSON cannot carry them, and ``None`` already
means "no bound" wherever a bound may be left out). Absurd values are refused too: a duration
is at most 30 days (:data:`MAX_SECONDS`) and a count fits in 64 bits (:data:`MAX_INT`), so that
no deadline overflows and every value can be stored and sent.

Text is bounded as well: any string is valid Unicode (no lone surrogates, which can be neither
stored nor sent as UTF-8) of at most :data:`MAX_TEXT_CHARS` characters, and an id is printable
text of at most :data:`MAX_ID_CHARS` characters. The job-document reference
(``docs/reference/job-documents.md``) states these rules for users.

This module sits below both the job spec and the status policies, so that each can use it
without importing the other.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Final, TypeGuard

from attrs import evolve, frozen

from ._errors import SpecError, SpecProblem

__all__ = [
    "BOOLEAN",
    "MAX_ID_CHARS",
    "MAX_INT",
    "MAX_SECONDS",
    "MAX_TEXT_CHARS",
    "NON_NEGATIVE_INT",
    "NON_NEGATIVE_NUMBER",
    "NON_NEGATIVE_SECONDS",
    "POSITIVE_INT",
    "POSITIVE_SECONDS",
    "RATE",
    "SAMPLES",
    "Rule",
    "Validator",
    "bool_hint",
    "describe_char",
    "duplicates",
    "id_problem",
    "is_int",
    "is_number",
    "optional_text_problem",
    "prompt_problem",
    "text_problem",
]

Validator = Callable[[Any, Any, Any], None]
"""An attrs validator: called with the instance, the attribute and the value."""

MAX_SECONDS: Final = 30 * 24 * 3600
"""The longest duration a limit or a wait may be: 30 days (2,592,000 seconds).

Longer ones are almost certainly a unit mistake, and absurd ones (``1e308``) overflow the
deadlines computed from them; ``None`` means "no bound" where a bound may be left out.
"""

MAX_INT: Final = 2**63 - 1
"""The largest count: a 64-bit integer, what SQLite and Beacon's Go services can hold."""

MAX_TEXT_CHARS: Final = 1024 * 1024
"""The longest string a job may hold (a prompt, a name, a metadata value or key)."""

MAX_ID_CHARS: Final = 256
"""The longest id (job, question, model): every record, file and display repeats it."""


# -- numbers -----------------------------------------------------------------------------------


def is_int(value: object) -> TypeGuard[int]:
    """Whether ``value`` is an integer (a ``bool`` is not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> TypeGuard[int | float]:
    """Whether ``value`` is a finite int or float (a ``bool``, NaN or infinity is not)."""
    if is_int(value):
        return True
    return isinstance(value, float) and math.isfinite(value)


def _positive_int(value: object) -> bool:
    return is_int(value) and value >= 1


def _non_negative_int(value: object) -> bool:
    return is_int(value) and value >= 0


def _positive_number(value: object) -> bool:
    return is_number(value) and value > 0


def _non_negative_number(value: object) -> bool:
    return is_number(value) and value >= 0


def _rate(value: object) -> bool:
    return is_number(value) and 0 <= value <= 1


# -- rules -------------------------------------------------------------------------------------


@frozen
class Rule:
    """A test of one value and the expectation a problem with that value states.

    Attributes:
        test: Whether a value passes. It gets any value (a document holds anything), so it
            checks the type before comparing.
        expectation: What was expected, as the problem says it (``expected a positive
            integer``).
        optional: Whether ``None`` passes too (a bound that may be left out).
        ceiling: The largest value that passes, if there is one. A value that passes
            ``test`` but is above it gets the ``beyond`` message instead: the ordinary
            mistake keeps its short message, and the absurd value is told the bound.
        beyond: What a value above ``ceiling`` is told.
    """

    test: Callable[[Any], bool]
    expectation: str
    optional: bool = False
    ceiling: float | None = None
    beyond: str = ""

    def passes(self, value: Any) -> bool:
        """Whether ``value`` passes this rule."""
        if self.optional and value is None:
            return True
        # An int compares exactly with a float, however large: no overflow here.
        return self.test(value) and (self.ceiling is None or value <= self.ceiling)

    def message(self, value: Any) -> str:
        """What a failing ``value`` is told: the expectation, or the bound it is beyond."""
        return self.beyond if self.test(value) else self.expectation

    def problem(self, value: Any, path: str) -> SpecProblem | None:
        """The problem with ``value`` located at ``path``, or ``None`` if it passes."""
        return None if self.passes(value) else SpecProblem(path, self.message(value), value)

    def or_none(self) -> Rule:
        """The same rule, passing ``None`` too (same words: ``None`` is the documented default)."""
        return evolve(self, optional=True)

    def validator(self, *, bool_as_number: bool = False) -> Validator:
        """An attrs validator raising :class:`SpecError` that names the class and the field.

        Args:
            bool_as_number: Let ``True`` and ``False`` through, as Python's 1 and 0. Only for a
                field that is checked again, strictly, wherever it is used.
        """

        def check(instance: Any, attribute: Any, value: Any) -> None:
            if bool_as_number and isinstance(value, bool):
                return
            if not self.passes(value):
                raise SpecError.for_field(
                    type(instance).__name__, attribute.name, self.message(value), value
                )

        return check


_BEYOND_INT = f"expected at most {MAX_INT} (a 64-bit integer)"
_BEYOND_SECONDS = f"expected at most 30 days ({MAX_SECONDS} seconds)"

POSITIVE_INT = Rule(
    _positive_int, "expected a positive integer", ceiling=MAX_INT, beyond=_BEYOND_INT
)
NON_NEGATIVE_INT = Rule(
    _non_negative_int, "expected an integer >= 0", ceiling=MAX_INT, beyond=_BEYOND_INT
)
NON_NEGATIVE_NUMBER = Rule(_non_negative_number, "expected a number >= 0")
POSITIVE_SECONDS = Rule(
    _positive_number,
    "expected a positive number of seconds",
    ceiling=MAX_SECONDS,
    beyond=f"{_BEYOND_SECONDS}; leave it out (null) for no bound",
)
NON_NEGATIVE_SECONDS = Rule(
    _non_negative_number,
    "expected a number of seconds >= 0",
    ceiling=MAX_SECONDS,
    beyond=_BEYOND_SECONDS,
)
RATE = Rule(_rate, "expected a number between 0 and 1")
SAMPLES = Rule(
    _positive_int,
    "expected an integer >= 1 (how many times each cell is executed)",
    ceiling=MAX_INT,
    beyond=_BEYOND_INT,
)
BOOLEAN = Rule(lambda value: isinstance(value, bool), "expected true or false")


# -- text --------------------------------------------------------------------------------------


def bool_hint(value: object) -> str:
    """A hint for a ``bool`` where text was expected, else ``""``."""
    # YAML 1.1 reads unquoted yes/no/on/off (and the region NO) as booleans.
    if isinstance(value, bool):
        return " (quote it: YAML reads unquoted yes/no/on/off as booleans)"
    return ""


_SURROGATE: Final = re.compile("[\ud800-\udfff]")

# What each kind of unprintable character is, as a problem names it.
_UNPRINTABLE: Final = {
    "Cc": "a control character",
    "Cf": "an invisible formatting character",
    "Cs": "a lone surrogate",
    "Co": "a private-use character",
    "Cn": "an unassigned code point",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
    "Zs": "a space other than ' '",
}


def describe_char(char: str) -> str:
    """A character as a problem names it: ``U+202E RIGHT-TO-LEFT OVERRIDE``, ``U+0000``."""
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X}{f' {name}' if name else ''}"


def text_problem(value: str, path: str) -> SpecProblem | None:
    """The problem with a string anywhere in a job, or ``None``.

    A string is valid Unicode (a lone surrogate can be neither stored nor sent as UTF-8, so
    it would fail every execution later) of at most :data:`MAX_TEXT_CHARS` characters.
    """
    if len(value) > MAX_TEXT_CHARS:
        return SpecProblem(path, f"too long: a text is at most {MAX_TEXT_CHARS} characters", value)
    found = _SURROGATE.search(value)
    if found is not None:
        return SpecProblem(
            path,
            f"not valid Unicode: a lone surrogate {describe_char(found.group())} at index "
            f"{found.start()} cannot be stored or sent as UTF-8",
            value,
        )
    return None


def id_problem(value: object, path: str, what: str) -> SpecProblem | None:
    """The problem with an id (``what`` names it: ``"job id"``), or ``None``.

    An id is a non-empty string of printable text, at most :data:`MAX_ID_CHARS` characters,
    without leading or trailing white space: stores and records key everything by it,
    ``" q1"`` beside ``"q1"`` would be two questions, and an id with a NUL, a line break or a
    bidirectional override (U+202E) would corrupt every file and display that shows it.
    """
    if not isinstance(value, str):
        return SpecProblem(path, f"expected a {what} (a non-empty string){bool_hint(value)}", value)
    if not value.strip():
        return SpecProblem(path, f"expected a non-empty {what}", value)
    if len(value) > MAX_ID_CHARS:
        return SpecProblem(path, f"too long: a {what} is at most {MAX_ID_CHARS} characters", value)
    # A lone surrogate is told what any text is told (a document's checks find it first).
    surrogate = text_problem(value, path)
    if surrogate is not None:
        return surrogate
    if not value.isprintable():
        index, char = next((i, c) for i, c in enumerate(value) if not c.isprintable())
        kind = _UNPRINTABLE.get(unicodedata.category(char), "an unprintable character")
        return SpecProblem(
            path,
            f"a {what} must be printable text: {describe_char(char)} at index {index} is "
            f"{kind} (control, formatting and bidirectional characters, line breaks and lone "
            "surrogates are refused)",
            value,
        )
    if value != value.strip():
        return SpecProblem(path, f"a {what} must not start or end with white space", value)
    return None


def prompt_problem(value: object, path: str) -> SpecProblem | None:
    """The problem with a prompt, or ``None``: it must be text, and not only white space."""
    if not isinstance(value, str):
        return SpecProblem(path, "expected the prompt text (a string)", value)
    if not value.strip():
        return SpecProblem(
            path, "expected a non-empty prompt; an endpoint refuses an empty one", value
        )
    return text_problem(value, path)


def optional_text_problem(value: object, path: str) -> SpecProblem | None:
    """The problem with an optional text field (a name, a category), or ``None``."""
    if value is None:
        return None
    if isinstance(value, str):
        return text_problem(value, path)
    return SpecProblem(path, f"expected a string or null{bool_hint(value)}", value)


# -- collections -------------------------------------------------------------------------------


def duplicates(indexed: Sequence[tuple[str, Any]], what: str) -> list[SpecProblem]:
    """A problem for each repeated value after its first occurrence.

    Args:
        indexed: ``(path, value)`` pairs, in the order the document lists them.
        what: What the values are, as the message names them (``"question id"``).
    """
    problems: list[SpecProblem] = []
    first: dict[Any, str] = {}
    for where, value in indexed:
        if not isinstance(value, Hashable):
            continue
        if value in first:
            problems.append(
                SpecProblem(where, f"duplicate {what}; first used at {first[value]}", value)
            )
        else:
            first[value] = where
    return problems
