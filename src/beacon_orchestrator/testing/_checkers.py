"""One checker per scheduler invariant, each reading a :class:`RunLog`.

The invariants and why they hold are explained in ``docs/explanation/invariants.md``. A checker
yields one message per violation it finds and nothing when the invariant holds. To add an
invariant, add its name to :data:`InvariantName` and its checker to :data:`CHECKERS`: the
module refuses to import while the two disagree.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Literal, TypeAlias, get_args

from .._events import ExecutionFinished, ExecutionStarted, JobFinished
from .._types import Endpoint, ExecutionKey, ExecutionStatus
from ._run_log import RunLog

__all__ = ["CHECKERS", "INVARIANTS", "Checker", "InvariantName"]

InvariantName: TypeAlias = Literal[
    "no_start_after_cancel",
    "everything_accounted_for",
    "verdict_last",
    "no_duplicates",
    "order",
    "bounds",
    "bounded_stop",
]

INVARIANTS: tuple[InvariantName, ...] = get_args(InvariantName)
"""The invariants, in the order ``docs/explanation/invariants.md`` explains them."""

Checker: TypeAlias = Callable[[RunLog], Iterator[str]]
"""Yields a message for each way the run broke one invariant."""


# 1. No start after cancel ---------------------------------------------------------------------


def no_start_after_cancel(run: RunLog) -> Iterator[str]:
    """No execution starts once cancellation is requested, by the events or the executor's log."""
    if run.cancel_index is not None:
        for e in run.events[run.cancel_index + 1 :]:
            if isinstance(e, ExecutionStarted):
                yield f"{e.key} attempt {e.attempt} started after JobCancelled"
    mark = run.cancel_mark
    if mark is not None:
        for c in run.executor_log or ():
            if c.kind == "start" and c.seq > mark:
                yield f"executor saw {c.key} attempt {c.attempt} start after the cancel mark"


# 2. Everything accounted for ------------------------------------------------------------------


def everything_accounted_for(run: RunLog) -> Iterator[str]:
    """Every planned key has one terminal record and one ``ExecutionFinished`` event."""
    yield from _record_problems(run)
    finished = Counter(e.record.key for e in run.finishes())
    for key in run.spec.plan():
        n = finished[key]
        if key not in run.resumed and n != 1:
            yield f"{key} has {n} ExecutionFinished events, expected 1"


def _record_problems(run: RunLog) -> Iterator[str]:
    planned = run.planned
    for r in run.records:
        status: object = r.status  # a third-party store may hand back anything
        if not isinstance(status, ExecutionStatus):
            yield f"{r.key} has a non-terminal status {status!r}"
    seen = Counter(r.key for r in run.records)
    for key, n in seen.items():
        if n > 1:
            yield f"{key} has {n} records"
        if key not in planned:
            yield f"{key} has a record but is not planned"
    missing = planned - seen.keys()
    if missing:
        sample = ", ".join(sorted(map(str, missing))[:5])
        yield f"{len(missing)} planned keys have no record: {sample}"


# 3. Verdict last ------------------------------------------------------------------------------


def verdict_last(run: RunLog) -> Iterator[str]:
    """One ``JobFinished`` comes last, and it agrees with the plan and the store."""
    finals = [i for i, e in enumerate(run.events) if isinstance(e, JobFinished)]
    if len(finals) != 1:
        yield f"expected exactly one JobFinished, got {len(finals)}"
        return
    final = run.events[-1]
    if not isinstance(final, JobFinished):
        yield f"JobFinished is not the last event (last is {type(final).__name__})"
        return
    total = sum(final.result.counts.values())
    if total != run.spec.size:
        yield f"the verdict counts {total} records, the job plans {run.spec.size}"
    stored = {r.key: r.status for r in run.records}
    # One differing record says the verdict was taken from the wrong data; more say nothing new.
    differs = next((r for r in final.result.records if stored.get(r.key) is not r.status), None)
    if differs is not None:
        yield f"the result's record of {differs.key} differs from the store's"


# 4. No duplicates -----------------------------------------------------------------------------


def no_duplicates(run: RunLog) -> Iterator[str]:
    """Attempts of a key go 1, 2, ...; resumed keys do not run; the executor runs each once."""
    attempts: dict[ExecutionKey, list[int]] = defaultdict(list)
    for e in run.starts():
        attempts[e.key].append(e.attempt)
    for key, seq in attempts.items():
        if seq != list(range(1, len(seq) + 1)):
            yield f"{key} attempts went {seq}, expected 1, 2, ..."
        if key in run.resumed:
            yield f"{key} was completed before the resume but ran again"
    calls = Counter((c.key, c.attempt) for c in run.executor_log or () if c.kind == "start")
    for (called, attempt), n in calls.items():
        if n > 1:
            yield f"the executor ran {called} attempt {attempt} {n} times"


# 5. Order -------------------------------------------------------------------------------------


def order(run: RunLog) -> Iterator[str]:
    """Questions (and each question's samples) start in the job's order, as the strategy says."""
    if run.strategy == "endpoint":
        yield from _endpoint_order(run)
    else:
        yield from _barrier_order(run)


def _endpoint_order(run: RunLog) -> Iterator[str]:
    """Under ``"endpoint"``, each endpoint starts its questions in the job's order.

    With several samples per cell, a question's samples start one after another (0, 1, ...)
    before the next question's.
    """
    q_index = {q.id: i for i, q in enumerate(run.spec.questions)}
    last: dict[Endpoint, tuple[int, int]] = {}
    for kind, key in run.replay():
        if kind == "start":
            slot, prev = (q_index[key.question_id], key.sample), last.get(key.endpoint, (-1, 0))
            if slot <= prev:
                yield f"{key.endpoint} started {_slot_name(*slot)} after {_slot_name(*prev)}"
            last[key.endpoint] = slot


def _slot_name(question: int, sample: int) -> str:
    return f"question #{question}" + (f" sample #{sample}" if sample else "")


def _barrier_order(run: RunLog) -> Iterator[str]:
    """A question starts once the questions before it are terminal in its group.

    The group is the key's region under ``"region"``, every region under ``"lockstep"``. With
    several samples per cell, each sample is a step of its own: sample n + 1 of a question
    starts once sample n is terminal in the group.
    """
    terminal = set(run.resumed)
    for kind, key in run.replay():
        if kind == "finish":
            terminal.add(key)
            continue
        waited_for = next((k for k in _earlier_in_group(run, key) if k not in terminal), None)
        if waited_for is not None:
            yield f"{key} started before {waited_for} was terminal"


def _earlier_in_group(run: RunLog, key: ExecutionKey) -> Iterator[ExecutionKey]:
    """The keys that must be terminal before ``key`` starts: each earlier slot of its group.

    A slot is a sample of a question: the questions before it, every sample; then the samples
    of its own question before its own.
    """
    q_index = [q.id for q in run.spec.questions].index(key.question_id)
    group = [e for e in run.spec.endpoints if run.strategy != "region" or e.region == key.region]
    samples = run.spec.samples
    for q in run.spec.questions[:q_index]:
        for e in group:
            for s in range(samples):
                yield ExecutionKey(q.id, e.model_id, e.region, s)
    for s in range(key.sample):
        for e in group:
            yield ExecutionKey(key.question_id, e.model_id, e.region, s)


# 6. Bounds ------------------------------------------------------------------------------------


def bounds(run: RunLog) -> Iterator[str]:
    """What is in flight stays within ``max_concurrency``, ``per_region`` and per endpoint."""
    limits = run.limits
    per_endpoint = limits.per_endpoint if run.strategy == "endpoint" else 1
    in_flight: set[ExecutionKey] = set()
    by_region: Counter[str] = Counter()
    by_endpoint: Counter[Endpoint] = Counter()
    for kind, key in run.replay():
        if kind == "finish":
            if key in in_flight:
                in_flight.discard(key)
                by_region[key.region] -= 1
                by_endpoint[key.endpoint] -= 1
            continue
        in_flight.add(key)
        by_region[key.region] += 1
        by_endpoint[key.endpoint] += 1
        if limits.max_concurrency is not None and len(in_flight) > limits.max_concurrency:
            yield f"{len(in_flight)} in flight > max_concurrency"
        if limits.per_region is not None and by_region[key.region] > limits.per_region:
            yield f"{by_region[key.region]} in flight in {key.region} > per_region"
        if by_endpoint[key.endpoint] > per_endpoint:
            yield f"{by_endpoint[key.endpoint]} in flight on {key.endpoint} > {per_endpoint}"


# 7. Bounded stop ------------------------------------------------------------------------------


def bounded_stop(run: RunLog) -> Iterator[str]:
    """After cancellation, what was in flight ends within ``cancel_grace``."""
    index = run.cancel_index
    if index is None:
        return
    cancel_at = run.events[index].at
    limit_at = cancel_at + run.limits.cancel_grace + run.tolerance
    yield from _late_finishes(run, index, limit_at)
    yield from _late_executor_calls(run, cancel_at, limit_at)


def _late_finishes(run: RunLog, index: int, limit_at: float) -> Iterator[str]:
    """Executions in flight when the job was cancelled (event ``index``) that ended too late."""
    cancel_at = run.events[index].at
    running: set[ExecutionKey] = set()
    for kind, key in run.replay(run.events[:index]):
        if kind == "start":
            running.add(key)
        else:
            running.discard(key)
    for e in run.events[index:]:
        if isinstance(e, ExecutionFinished) and e.record.key in running and e.at > limit_at:
            yield (
                f"{e.record.key} ended {e.at - cancel_at:.6f} s after cancellation, "
                f"cancel_grace is {run.limits.cancel_grace:g} s"
            )


def _late_executor_calls(run: RunLog, cancel_at: float, limit_at: float) -> Iterator[str]:
    """Executor calls that ended after the grace, or never ended."""
    if run.executor_log is None:
        return
    open_calls: set[tuple[ExecutionKey | None, int]] = set()
    for c in run.executor_log:
        if c.kind == "start":
            open_calls.add((c.key, c.attempt))
        elif c.kind == "end":
            open_calls.discard((c.key, c.attempt))
            if c.at > limit_at:
                yield (
                    f"executor call {c.key} attempt {c.attempt} ended "
                    f"{c.at - cancel_at:.6f} s after cancellation"
                )
    for left, attempt in sorted(open_calls, key=str):
        yield f"executor call {left} attempt {attempt} never ended"


# The registry ---------------------------------------------------------------------------------

CHECKERS: Mapping[InvariantName, Checker] = MappingProxyType(
    {
        "no_start_after_cancel": no_start_after_cancel,
        "everything_accounted_for": everything_accounted_for,
        "verdict_last": verdict_last,
        "no_duplicates": no_duplicates,
        "order": order,
        "bounds": bounds,
        "bounded_stop": bounded_stop,
    }
)
"""The checker of each invariant, in the order of :data:`INVARIANTS`."""

if tuple(CHECKERS) != INVARIANTS:  # pragma: no cover - fails the first import after a mistake
    raise ImportError(f"invariants {INVARIANTS} and their checkers {tuple(CHECKERS)} disagree")
