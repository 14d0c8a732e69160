"""What a finished job left behind, gathered once for the invariant checkers to read."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Literal, TypeAlias

from attrs import field, frozen

from .._events import Event, ExecutionFinished, ExecutionStarted, JobCancelled
from .._spec import JobSpec, Limits
from .._types import ExecutionKey, ExecutionRecord
from ._fake import Call

__all__ = ["ReplayStep", "RunLog"]

ReplayStep: TypeAlias = tuple[Literal["start", "finish"], ExecutionKey]
"""One step of a replay: an execution's first attempt starting, or the execution finishing."""


# Typed converters: mypy's attrs plugin cannot solve the generic ``tuple`` or ``frozenset``.
def _events(events: Iterable[Event]) -> tuple[Event, ...]:
    return tuple(events)


def _records(records: Iterable[ExecutionRecord]) -> tuple[ExecutionRecord, ...]:
    return tuple(records)


def _calls(log: Iterable[Call] | None) -> tuple[Call, ...] | None:
    return None if log is None else tuple(log)


def _keys(keys: Iterable[ExecutionKey]) -> frozenset[ExecutionKey]:
    return frozenset(keys)


@frozen
class RunLog:
    """A job's spec, events, records and executor log, and how the job was told to run.

    Built once per check; every checker reads it and none changes it. Iterables given to it are
    copied, so a generator of records can be read by several checkers.

    Attributes:
        spec: The job's spec.
        events: Every event the job emitted, in order.
        records: The store's records of the job after it ended.
        strategy: The strategy the job ran with.
        limits: The limits it ran with (default: the spec's).
        executor_log: A :class:`FakeExecutor`'s log, if the job ran on one.
        resumed: Keys already completed in the store before this run.
        tolerance: Seconds of slack for time comparisons.
    """

    spec: JobSpec
    events: tuple[Event, ...] = field(converter=_events)
    records: tuple[ExecutionRecord, ...] = field(converter=_records)
    strategy: str = "endpoint"
    limits: Limits = field()
    executor_log: tuple[Call, ...] | None = field(default=None, converter=_calls)
    resumed: frozenset[ExecutionKey] = field(default=frozenset(), converter=_keys)
    tolerance: float = 1e-6

    @limits.default
    def _spec_limits(self) -> Limits:
        return self.spec.limits

    @property
    def cancel_index(self) -> int | None:
        """Where the first :class:`JobCancelled` stands in :attr:`events`, if anywhere."""
        return next((i for i, e in enumerate(self.events) if isinstance(e, JobCancelled)), None)

    @property
    def cancel_mark(self) -> int | None:
        """The ``seq`` of the executor log's ``"cancel"`` mark, if it has one."""
        return next(
            (c.seq for c in self.executor_log or () if c.kind == "mark" and c.outcome == "cancel"),
            None,
        )

    @property
    def planned(self) -> frozenset[ExecutionKey]:
        """Every key the spec plans."""
        return frozenset(self.spec.plan())

    def starts(self) -> Iterator[ExecutionStarted]:
        """Every :class:`ExecutionStarted` event, retries included, in order."""
        return (e for e in self.events if isinstance(e, ExecutionStarted))

    def finishes(self) -> Iterator[ExecutionFinished]:
        """Every :class:`ExecutionFinished` event, in order."""
        return (e for e in self.events if isinstance(e, ExecutionFinished))

    def replay(self, events: Sequence[Event] | None = None) -> Iterator[ReplayStep]:
        """First attempts starting and executions finishing, in the order of ``events``.

        A retry is the same execution going on, so only attempt 1 counts as a start.

        Args:
            events: A part of :attr:`events` (default: all of them).
        """
        for e in self.events if events is None else events:
            if isinstance(e, ExecutionStarted) and e.attempt == 1:
                yield "start", e.key
            elif isinstance(e, ExecutionFinished):
                yield "finish", e.record.key
