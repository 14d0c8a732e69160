"""Check the scheduler's invariants (DESIGN §4) on a finished job's events and records."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from typing import Literal, TypeAlias

from attrs import frozen

from .._events import (
    Event,
    ExecutionFinished,
    ExecutionStarted,
    JobCancelled,
    JobFinished,
)
from .._spec import JobSpec, Limits
from .._types import Endpoint, ExecutionKey, ExecutionRecord, ExecutionStatus
from ._fake import Call

__all__ = [
    "INVARIANTS",
    "InvariantName",
    "InvariantViolation",
    "Violation",
    "check_invariants",
    "find_violations",
]

InvariantName: TypeAlias = Literal[
    "no_start_after_cancel",
    "everything_accounted_for",
    "verdict_last",
    "no_duplicates",
    "order",
    "bounds",
    "bounded_stop",
]

INVARIANTS: tuple[InvariantName, ...] = (
    "no_start_after_cancel",
    "everything_accounted_for",
    "verdict_last",
    "no_duplicates",
    "order",
    "bounds",
    "bounded_stop",
)
"""The invariants of DESIGN §4, in its order."""


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
    """Like :func:`check_invariants`, but return the violations instead of raising."""
    limits = spec.limits if limits is None else limits
    wanted = set(INVARIANTS if only is None else only)
    records = list(records)
    resumed_set = set(resumed)
    out: list[Violation] = []

    def bad(name: InvariantName, message: str) -> None:
        if name in wanted:
            out.append(Violation(name, message))

    cancel_index = next((i for i, e in enumerate(events) if isinstance(e, JobCancelled)), None)
    cancel_event = None if cancel_index is None else events[cancel_index]

    # 1. No start after cancel -------------------------------------------------------------
    if cancel_index is not None:
        for e in events[cancel_index + 1 :]:
            if isinstance(e, ExecutionStarted):
                bad(
                    "no_start_after_cancel",
                    f"{e.key} attempt {e.attempt} started after JobCancelled",
                )
    if executor_log is not None:
        mark = next(
            (c.seq for c in executor_log if c.kind == "mark" and c.outcome == "cancel"), None
        )
        if mark is not None:
            for c in executor_log:
                if c.kind == "start" and c.seq > mark:
                    bad(
                        "no_start_after_cancel",
                        f"executor saw {c.key} attempt {c.attempt} start after the cancel mark",
                    )

    # 2. Everything accounted for --------------------------------------------------------------
    planned = set(spec.plan())
    seen: dict[ExecutionKey, int] = defaultdict(int)
    for r in records:
        seen[r.key] += 1
        status: object = r.status  # a third-party store may hand back anything
        if not isinstance(status, ExecutionStatus):
            bad("everything_accounted_for", f"{r.key} has a non-terminal status {status!r}")
    for key, n in seen.items():
        if n > 1:
            bad("everything_accounted_for", f"{key} has {n} records")
        if key not in planned:
            bad("everything_accounted_for", f"{key} has a record but is not planned")
    missing = planned - seen.keys()
    if missing:
        sample = ", ".join(sorted(map(str, missing))[:5])
        bad("everything_accounted_for", f"{len(missing)} planned keys have no record: {sample}")
    finished_events: dict[ExecutionKey, int] = defaultdict(int)
    for e in events:
        if isinstance(e, ExecutionFinished):
            finished_events[e.record.key] += 1
    for key in planned - resumed_set:
        n = finished_events.get(key, 0)
        if n != 1:
            bad("everything_accounted_for", f"{key} has {n} ExecutionFinished events, expected 1")

    # 3. Verdict last ----------------------------------------------------------------------
    finals = [i for i, e in enumerate(events) if isinstance(e, JobFinished)]
    if len(finals) != 1:
        bad("verdict_last", f"expected exactly one JobFinished, got {len(finals)}")
    elif finals[0] != len(events) - 1:
        tail = type(events[-1]).__name__
        bad("verdict_last", f"JobFinished is not the last event (last is {tail})")
    else:
        final = events[finals[0]]
        assert isinstance(final, JobFinished)
        total = sum(final.result.counts.values())
        if total != spec.size:
            bad("verdict_last", f"the verdict counts {total} records, the job plans {spec.size}")
        stored = {r.key: r.status for r in records}
        for r in final.result.records:
            if stored.get(r.key) is not r.status:
                bad("verdict_last", f"the result's record of {r.key} differs from the store's")
                break

    # 4. No duplicates ---------------------------------------------------------------------
    attempts: dict[ExecutionKey, list[int]] = defaultdict(list)
    for e in events:
        if isinstance(e, ExecutionStarted):
            attempts[e.key].append(e.attempt)
    for key, seq in attempts.items():
        if seq != list(range(1, len(seq) + 1)):
            bad("no_duplicates", f"{key} attempts went {seq}, expected 1, 2, ...")
        if key in resumed_set:
            bad("no_duplicates", f"{key} was completed before the resume but ran again")
    if executor_log is not None:
        calls: dict[tuple[ExecutionKey | None, int], int] = defaultdict(int)
        for c in executor_log:
            if c.kind == "start":
                calls[c.key, c.attempt] += 1
        for (called, attempt), n in calls.items():
            if n > 1:
                bad("no_duplicates", f"the executor ran {called} attempt {attempt} {n} times")

    # 5. Order, and 6. bounds: replay starts (attempt 1) and finishes ------------------------
    q_index = {q.id: i for i, q in enumerate(spec.questions)}
    per_endpoint = limits.per_endpoint if strategy == "endpoint" else 1
    region_of_groups = strategy == "region"
    terminal: set[ExecutionKey] = set(resumed_set)
    last_q: dict[Endpoint, int] = {}
    in_flight: set[ExecutionKey] = set()
    by_region: dict[str, int] = defaultdict(int)
    by_endpoint: dict[Endpoint, int] = defaultdict(int)
    endpoints = spec.endpoints
    for e in events:
        if isinstance(e, ExecutionStarted) and e.attempt == 1:
            key = e.key
            qi = q_index[key.question_id]
            ep = key.endpoint
            if strategy == "endpoint":
                prev = last_q.get(ep, -1)
                if qi <= prev:
                    bad("order", f"{ep} started question #{qi} after question #{prev}")
                last_q[ep] = qi
            else:
                for qj in range(qi):
                    qid = spec.questions[qj].id
                    for other in endpoints:
                        if region_of_groups and other.region != key.region:
                            continue
                        k = ExecutionKey(qid, other.model_id, other.region)
                        if k not in terminal:
                            bad("order", f"{key} started before {k} was terminal")
                            break
                    else:
                        continue
                    break
            in_flight.add(key)
            by_region[key.region] += 1
            by_endpoint[ep] += 1
            if limits.max_concurrency is not None and len(in_flight) > limits.max_concurrency:
                bad("bounds", f"{len(in_flight)} in flight > max_concurrency")
            if limits.per_region is not None and by_region[key.region] > limits.per_region:
                bad("bounds", f"{by_region[key.region]} in flight in {key.region} > per_region")
            if by_endpoint[ep] > per_endpoint:
                bad("bounds", f"{by_endpoint[ep]} in flight on {ep} > {per_endpoint}")
        elif isinstance(e, ExecutionFinished):
            key = e.record.key
            terminal.add(key)
            if key in in_flight:
                in_flight.discard(key)
                by_region[key.region] -= 1
                by_endpoint[key.endpoint] -= 1

    # 7. Bounded stop ----------------------------------------------------------------------
    if cancel_event is not None and cancel_index is not None:
        assert isinstance(cancel_event, JobCancelled)
        limit_at = cancel_event.at + limits.cancel_grace + tolerance
        running: set[ExecutionKey] = set()
        for e in events[:cancel_index]:
            if isinstance(e, ExecutionStarted) and e.attempt == 1:
                running.add(e.key)
            elif isinstance(e, ExecutionFinished):
                running.discard(e.record.key)
        for e in events[cancel_index:]:
            if isinstance(e, ExecutionFinished) and e.record.key in running and e.at > limit_at:
                bad(
                    "bounded_stop",
                    f"{e.record.key} ended {e.at - cancel_event.at:.6f} s after cancellation, "
                    f"cancel_grace is {limits.cancel_grace:g} s",
                )
        if executor_log is not None:
            open_calls: set[tuple[ExecutionKey | None, int]] = set()
            for c in executor_log:
                if c.kind == "start":
                    open_calls.add((c.key, c.attempt))
                elif c.kind == "end":
                    open_calls.discard((c.key, c.attempt))
                    if c.at > limit_at:
                        bad(
                            "bounded_stop",
                            f"executor call {c.key} attempt {c.attempt} ended "
                            f"{c.at - cancel_event.at:.6f} s after cancellation",
                        )
            for left, attempt in sorted(open_calls, key=str):
                bad("bounded_stop", f"executor call {left} attempt {attempt} never ended")
    return out
