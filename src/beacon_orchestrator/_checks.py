"""The rules a value must pass to be accepted, each written once.

A rule is used twice: by the attrs validators of the value classes (:class:`RetryPolicy`,
:class:`MinSuccessRate`, :class:`Limits`) and by the document loaders. So a value refused in
Python and the same value refused in a job file fail the same test and are described with the
same words, and both raise :class:`~beacon_orchestrator.SpecError`.

Numbers follow the documents' notion, not Python's: a ``bool`` is not a number (JSON's ``true``
is not ``1``), and neither NaN nor infinity is (JSON cannot carry them, and ``None`` already
means "no bound" wherever a bound may be left out).

This module sits below both the job spec and the status policies, so that each can use it
without importing the other.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeGuard

from attrs import frozen

from ._errors import SpecError, SpecProblem

__all__ = [
    "BOOLEAN",
    "NON_NEGATIVE_INT",
    "NON_NEGATIVE_NUMBER",
    "NON_NEGATIVE_SECONDS",
    "POSITIVE_INT",
    "POSITIVE_SECONDS",
    "RATE",
    "Rule",
    "Validator",
    "bool_hint",
    "duplicates",
    "id_problem",
    "is_int",
    "is_number",
    "optional_text_problem",
    "prompt_problem",
]

Validator = Callable[[Any, Any, Any], None]
"""An attrs validator: called with the instance, the attribute and the value."""


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
    """

    test: Callable[[Any], bool]
    expectation: str
    optional: bool = False

    def passes(self, value: Any) -> bool:
        """Whether ``value`` passes this rule."""
        return (self.optional and value is None) or self.test(value)

    def problem(self, value: Any, path: str) -> SpecProblem | None:
        """The problem with ``value`` located at ``path``, or ``None`` if it passes."""
        return None if self.passes(value) else SpecProblem(path, self.expectation, value)

    def or_none(self) -> Rule:
        """The same rule, passing ``None`` too (same words: ``None`` is the documented default)."""
        return Rule(self.test, self.expectation, optional=True)

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
                    type(instance).__name__, attribute.name, self.expectation, value
                )

        return check


POSITIVE_INT = Rule(_positive_int, "expected a positive integer")
NON_NEGATIVE_INT = Rule(_non_negative_int, "expected an integer >= 0")
NON_NEGATIVE_NUMBER = Rule(_non_negative_number, "expected a number >= 0")
POSITIVE_SECONDS = Rule(_positive_number, "expected a positive number of seconds")
NON_NEGATIVE_SECONDS = Rule(_non_negative_number, "expected a number of seconds >= 0")
RATE = Rule(_rate, "expected a number between 0 and 1")
BOOLEAN = Rule(lambda value: isinstance(value, bool), "expected true or false")


# -- text --------------------------------------------------------------------------------------


def bool_hint(value: object) -> str:
    """A hint for a ``bool`` where text was expected, else ``""``."""
    # YAML 1.1 reads unquoted yes/no/on/off (and the region NO) as booleans.
    if isinstance(value, bool):
        return " (quote it: YAML reads unquoted yes/no/on/off as booleans)"
    return ""


def id_problem(value: object, path: str, what: str) -> SpecProblem | None:
    """The problem with an id (``what`` names it: ``"job id"``), or ``None``.

    An id is a non-empty string without leading or trailing white space: stores and records
    key everything by it, and ``" q1"`` beside ``"q1"`` would be two questions.
    """
    if not isinstance(value, str):
        return SpecProblem(path, f"expected a {what} (a non-empty string){bool_hint(value)}", value)
    if not value.strip():
        return SpecProblem(path, f"expected a non-empty {what}", value)
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
    return None


def optional_text_problem(value: object, path: str) -> SpecProblem | None:
    """The problem with an optional text field (a name, a category), or ``None``."""
    if value is None or isinstance(value, str):
        return None
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
