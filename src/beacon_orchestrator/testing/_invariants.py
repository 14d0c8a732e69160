"""Check the scheduler's invariants on a finished job's events and records.

The invariants are explained in ``docs/explanation/invariants.md``; their checkers live in
``_checkers``, one per invariant, and read a ``RunLog`` built here once per check.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from attrs import frozen

from .._events import Event
from .._spec import JobSpec, Limits
from .._types import ExecutionKey, ExecutionRecord
from ._checkers import CHECKERS, INVARIANTS, InvariantName
from ._fake import Call
from ._run_log import RunLog

__all__ = [
    "INVARIANTS",
    "InvariantName",
    "InvariantViolation",
    "Violation",
    "check_invariants",
    "find_violations",
]


@frozen
class Violation:
    """One broken invariant, with what showed it."""

    invariant: InvariantName
    message: str

    def __str__(self) -> str:
        return f"[{self.invariant}] {self.message}"


class InvariantViolation(AssertionError):
    """Raised by :func:`check_invariants`; ``violations`` lists every one found."""

    def __init__(self, violations: Sequence[Violation]) -> None:
        self.violations = tuple(violations)
        shown = "\n".join(f"  - {v}" for v in self.violations[:20])
        more = len(self.violations) - 20
        super().__init__(
            f"{len(self.violations)} invariant violation(s):\n{shown}"
            + (f"\n  ... and {more} more" if more > 0 else "")
        )


def check_invariants(
    spec: JobSpec,
    events: Sequence[Event],
    records: Iterable[ExecutionRecord],
    *,
    strategy: str = "endpoint",
    limits: Limits | None = None,
    executor_log: Sequence[Call] | None = None,
    resumed: Collection[ExecutionKey] = (),
    only: Collection[InvariantName] | None = None,
    tolerance: float = 1e-6,
) -> None:
    """Raise :class:`InvariantViolation` unless the job kept every invariant.

    Args:
        spec: The job's spec.
        events: Every event the job emitted, in order (collect them with ``on_event=list.append``).
        records: The store's records of the job after it ended.
        strategy: The strategy the job ran with.
        limits: The limits it ran with (default: ``spec.limits``).
        executor_log: A :class:`FakeExecutor`'s log; a ``mark`` whose label is ``"cancel"``
            (put there right before cancelling the caller's scope) counts as a cancellation
            request, and the executor's own starts are checked against it too.
        resumed: Keys already completed in the store before this run (they must not run).
        only: Check only these invariants (default: all).
        tolerance: Seconds of slack for time comparisons (``bounded_stop``).
    """
    violations = find_violations(
        spec,
        events,
        records,
        strategy=strategy,
        limits=limits,
        executor_log=executor_log,
        resumed=resumed,
        only=only,
        tolerance=tolerance,
    )
    if violations:
        raise InvariantViolation(violations)


def find_violations(
    spec: JobSpec,
    events: Sequence[Event],
    records: Iterable[ExecutionRecord],
    *,
    strategy: str = "endpoint",
    limits: Limits | None = None,
    executor_log: Sequence[Call] | None = None,
    resumed: Collection[ExecutionKey] = (),
    only: Collection[InvariantName] | None = None,
    tolerance: float = 1e-6,
) -> list[Violation]:
    """Like :func:`check_invariants`, but return the violations instead of raising.

    They come invariant by invariant, in the order of :data:`INVARIANTS`.
    """
    run = RunLog(
        spec,
        events,
        records,
        strategy=strategy,
        limits=spec.limits if limits is None else limits,
        executor_log=executor_log,
        resumed=resumed,
        tolerance=tolerance,
    )
    wanted = set(INVARIANTS if only is None else only)
    return [
        Violation(name, message)
        for name in INVARIANTS
        if name in wanted
        for message in CHECKERS[name](run)
    ]
