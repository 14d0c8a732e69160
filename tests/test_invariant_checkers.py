"""Each invariant's checker on a tiny hand-made run log that breaks that invariant and no other.

The job: questions q0 and q1 asked of model m in regions r0 and r1 (four executions). ``clean``
is a run that keeps every invariant; each test changes it in one way and expects exactly one
checker to object, with the message users see.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import pytest
from attrs import evolve

from beacon_orchestrator import (
    Event,
    ExecutionFinished,
    ExecutionKey,
    ExecutionRecord,
    ExecutionStarted,
    ExecutionStatus,
    JobCancelled,
    JobFinished,
    JobSpec,
    JobStatus,
    Limits,
    ModelTarget,
    Question,
)
from beacon_orchestrator._status import JobResult
from beacon_orchestrator.testing import INVARIANTS, Call, InvariantName
from beacon_orchestrator.testing._checkers import CHECKERS
from beacon_orchestrator.testing._run_log import RunLog

SPEC = JobSpec(
    id="j",
    questions=[Question("q0", "p0"), Question("q1", "p1")],
    models=[ModelTarget("m", ("r0", "r1"))],
)
A, B = ExecutionKey("q0", "m", "r0"), ExecutionKey("q1", "m", "r0")
C, D = ExecutionKey("q0", "m", "r1"), ExecutionKey("q1", "m", "r1")
COMPLETED = ExecutionStatus.COMPLETED


def start(key: ExecutionKey, at: float, attempt: int = 1) -> ExecutionStarted:
    return ExecutionStarted("j", key, attempt, at)


def finish(key: ExecutionKey, at: float, status: ExecutionStatus = COMPLETED) -> ExecutionFinished:
    return ExecutionFinished("j", ExecutionRecord(key=key, status=status), at)


def verdict(records: Iterable[ExecutionRecord], at: float) -> JobFinished:
    kept = tuple(records)
    counts = Counter(r.status for r in kept)
    result = JobResult("j", JobStatus.COMPLETED, "all done", counts, 1.0, SPEC.size, kept)
    return JobFinished("j", result, at)


def run_of(events: Sequence[Event], **changes: Any) -> RunLog:
    """A run whose store holds what ``events`` finished, ending with the verdict on it."""
    records = [e.record for e in events if isinstance(e, ExecutionFinished)]
    run = RunLog(SPEC, [*events, verdict(records, 99.0)], records)
    return evolve(run, **changes)


def clean_events() -> list[Event]:
    """Question by question, one execution at a time, in the plan's order."""
    out: list[Event] = []
    for at, key in enumerate(SPEC.plan()):
        out += [start(key, float(at)), finish(key, at + 0.5)]
    return out


def objections(run: RunLog) -> dict[InvariantName, list[str]]:
    found = {name: list(check(run)) for name, check in CHECKERS.items()}
    return {name: messages for name, messages in found.items() if messages}


def test_every_invariant_has_one_checker_in_order() -> None:
    assert tuple(CHECKERS) == INVARIANTS
    assert len(set(INVARIANTS)) == 7


@pytest.mark.parametrize("strategy", ["endpoint", "region", "lockstep"])
def test_a_clean_run_keeps_every_invariant(strategy: str) -> None:
    log = [Call(0, "start", 0.0, A, 1), Call(1, "end", 0.5, A, 1, "ok")]
    assert objections(run_of(clean_events(), strategy=strategy, executor_log=log)) == {}


def test_no_start_after_cancel() -> None:
    a, b, c, d = SPEC.plan()
    events: list[Event] = [start(a, 0), finish(a, 1), start(b, 1), finish(b, 2)]
    events += [start(c, 2), finish(c, 3), JobCancelled("j", "handle", "test", 3.0)]
    events += [start(d, 3), finish(d, 3)]
    assert objections(run_of(events)) == {
        "no_start_after_cancel": ["q1/m@r1 attempt 1 started after JobCancelled"]
    }


def test_no_start_after_cancel_reads_the_executor_log() -> None:
    log = [Call(0, "mark", 0.0, outcome="cancel"), Call(1, "start", 0.0, A, 1)]
    log.append(Call(2, "end", 0.0, A, 1, "ok"))
    assert objections(run_of(clean_events(), executor_log=log)) == {
        "no_start_after_cancel": ["executor saw q0/m@r0 attempt 1 start after the cancel mark"]
    }


def test_everything_accounted_for() -> None:
    run = run_of(clean_events())
    lost = [r for r in run.records if r.key != D]
    last = run.events[-1]
    assert isinstance(last, JobFinished)
    # The verdict saw the row before the store lost it: it counts four, lists three.
    result = evolve(last.result, records=tuple(lost))
    run = evolve(run, records=lost, events=[*run.events[:-1], evolve(last, result=result)])
    assert objections(run) == {
        "everything_accounted_for": ["1 planned keys have no record: q1/m@r1"]
    }


def test_verdict_last() -> None:
    run = run_of(clean_events())
    *body, last = run.events
    assert objections(evolve(run, events=[*body[:-1], last, body[-1]])) == {
        "verdict_last": ["JobFinished is not the last event (last is ExecutionFinished)"]
    }


def test_no_duplicates() -> None:
    assert objections(run_of(clean_events(), resumed=[B])) == {
        "no_duplicates": ["q1/m@r0 was completed before the resume but ran again"]
    }


@pytest.mark.parametrize(
    ("strategy", "message"),
    [
        ("endpoint", "m@r0 started question #0 after question #1"),
        ("region", "q1/m@r0 started before q0/m@r0 was terminal"),
        ("lockstep", "q1/m@r0 started before q0/m@r0 was terminal"),
    ],
)
def test_order(strategy: str, message: str) -> None:
    events: list[Event] = [start(B, 0), finish(B, 1), start(A, 1), finish(A, 2)]
    events += [start(C, 2), finish(C, 3), start(D, 3), finish(D, 4)]
    assert objections(run_of(events, strategy=strategy)) == {"order": [message]}


def test_bounds() -> None:
    events: list[Event] = [start(A, 0), start(C, 0), finish(A, 1), finish(C, 1)]
    events += [start(B, 1), finish(B, 2), start(D, 2), finish(D, 3)]
    assert objections(run_of(events, limits=Limits(max_concurrency=1))) == {
        "bounds": ["2 in flight > max_concurrency"]
    }


def test_bounded_stop() -> None:
    skipped = ExecutionStatus.SKIPPED
    events: list[Event] = [start(A, 0), JobCancelled("j", "handle", "test", 1.0)]
    events += [finish(A, 6.0, ExecutionStatus.CANCELLED)]
    events += [finish(key, 6.0, skipped) for key in (B, C, D)]
    assert objections(run_of(events)) == {
        "bounded_stop": ["q0/m@r0 ended 5.000000 s after cancellation, cancel_grace is 0 s"]
    }
