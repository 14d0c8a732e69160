"""The scheduler's synchronous parts, driven directly: no event loop anywhere in this file.

The plan (endpoints, groups, resume cursors), the picker (ordering, parking under
``per_region``, the group gates of ``region`` and ``lockstep``) and the ledger (counts, records,
the verdict's input) are plain code; these tests pin them one decision at a time, where the
property tests of ``test_scheduler_invariants.py`` check the whole scheduler end to end.
"""

from __future__ import annotations

import pytest

from beacon_orchestrator import (
    ExecutionKey,
    ExecutionRecord,
    ExecutionStatus,
    JobSpec,
    JobStatus,
    MinSuccessRate,
    ModelTarget,
    PermanentError,
    Question,
    Response,
)
from beacon_orchestrator._scheduler._ledger import (
    AttemptTimeout,
    Ledger,
    StopReason,
    interrupted_message,
)
from beacon_orchestrator._scheduler._options import Strategy
from beacon_orchestrator._scheduler._picker import Picker
from beacon_orchestrator._scheduler._plan import EndpointState, Plan

QUESTIONS = tuple(Question(f"q{i}", f"question {i}?") for i in range(3))


def spec(models: dict[str, tuple[str, ...]]) -> JobSpec:
    return JobSpec(
        id="parts",
        questions=QUESTIONS,
        models=tuple(ModelTarget(m, regions) for m, regions in models.items()),
    )


def picker_for(
    job: JobSpec,
    strategy: Strategy = "endpoint",
    *,
    per_endpoint: int = 1,
    per_region: int | None = None,
    done: frozenset[ExecutionKey] = frozenset(),
) -> Picker:
    plan = Plan(job, strategy, done)
    return Picker(
        plan,
        per_endpoint=per_endpoint if strategy == "endpoint" else 1,
        per_region=per_region,
        unstarted=plan.size - len(done),
    )


def drain(picker: Picker) -> list[tuple[str, int]]:
    """Start everything that may start now; (endpoint label, question index) in pick order."""
    started = []
    while (e := picker.pick()) is not None:
        started.append((e.label, picker.start(e)))
    return started


def endpoint(picker: Picker, label: str) -> EndpointState:
    return next(e for e in picker.plan.endpoints if e.label == label)


def finish(picker: Picker, label: str, q: int) -> None:
    """What the runner does once an execution's record is stored."""
    e = endpoint(picker, label)
    picker.release(e)
    picker.finished(e, q)


# -- the plan -------------------------------------------------------------------------------


def test_plan_has_one_endpoint_per_model_and_region_in_spec_order() -> None:
    plan = Plan(spec({"a": ("us-east", "eu-west"), "b": ("eu-west",)}), "endpoint", frozenset())
    assert [e.label for e in plan.endpoints] == ["a@us-east", "a@eu-west", "b@eu-west"]
    assert sorted(plan.regions) == ["eu-west", "us-east"]
    assert plan.size == 9
    assert plan.groups == []


def test_plan_groups_per_region_or_one_for_lockstep() -> None:
    job = spec({"a": ("us-east", "eu-west"), "b": ("eu-west",)})
    by_region = Plan(job, "region", frozenset())
    assert sorted(len(g.members) for g in by_region.groups) == [1, 2]
    lockstep = Plan(job, "lockstep", frozenset())
    assert [len(g.members) for g in lockstep.groups] == [3]


def test_resume_cursors_skip_stored_keys() -> None:
    done = frozenset({ExecutionKey("q0", "a", "us-east"), ExecutionKey("q2", "a", "us-east")})
    plan = Plan(spec({"a": ("us-east",)}), "endpoint", done)
    e = plan.endpoints[0]
    assert e.cursor == 1  # q0 is stored
    assert plan.next_slot(e, 2) == 3  # q2 is stored too: nothing after q1
    assert [(k.question_id, q) for k, _, q in plan.unstarted()] == [("q1", 1)]
    assert e.cursor == 3  # unstarted() hands every remaining key out once


def test_locate_finds_planned_keys_only() -> None:
    plan = Plan(spec({"a": ("us-east",)}), "endpoint", frozenset())
    located = plan.locate(ExecutionKey("q1", "a", "us-east"))
    assert located is not None
    assert located[1] == 1
    assert plan.locate(ExecutionKey("q1", "a", "eu-west")) is None
    assert plan.locate(ExecutionKey("nope", "a", "us-east")) is None


# -- the picker -----------------------------------------------------------------------------


def test_endpoint_strategy_starts_each_endpoint_in_question_order() -> None:
    picker = picker_for(spec({"a": ("us-east",), "b": ("us-east",)}))
    assert drain(picker) == [("a@us-east", 0), ("b@us-east", 0)]
    assert drain(picker) == []  # per_endpoint=1: both are busy
    finish(picker, "b@us-east", 0)
    assert drain(picker) == [("b@us-east", 1)]  # b does not wait for a
    assert picker.in_flight == 2
    assert picker.unstarted == 6 - 3


def test_per_endpoint_allows_several_in_order() -> None:
    picker = picker_for(spec({"a": ("us-east",)}), per_endpoint=2)
    assert drain(picker) == [("a@us-east", 0), ("a@us-east", 1)]
    finish(picker, "a@us-east", 1)
    assert drain(picker) == [("a@us-east", 2)]


def test_full_region_parks_endpoints_until_a_slot_frees() -> None:
    picker = picker_for(spec({"a": ("us-east",), "b": ("us-east",), "c": ("eu-west",)}),
                        per_region=1)  # fmt: skip
    assert drain(picker) == [("a@us-east", 0), ("c@eu-west", 0)]
    b = endpoint(picker, "b@us-east")
    assert b in b.region.parked
    finish(picker, "a@us-east", 0)
    assert b.region.parked == []
    # Queued in release order: the parked b first, then a itself, which parks in turn.
    assert drain(picker) == [("b@us-east", 0)]
    assert b.region.parked == [endpoint(picker, "a@us-east")]


def test_region_strategy_gates_each_region_on_its_current_question() -> None:
    picker = picker_for(spec({"a": ("us-east",), "b": ("us-east",), "c": ("eu-west",)}), "region")
    assert drain(picker) == [("a@us-east", 0), ("b@us-east", 0), ("c@eu-west", 0)]
    finish(picker, "a@us-east", 0)
    assert drain(picker) == []  # b's q0 is still running in us-east
    finish(picker, "c@eu-west", 0)
    assert drain(picker) == [("c@eu-west", 1)]  # eu-west does not wait for us-east
    finish(picker, "b@us-east", 0)
    # The group moved on: both start q1 (b first: its release queued it before the gate opened).
    assert drain(picker) == [("b@us-east", 1), ("a@us-east", 1)]


def test_lockstep_gates_every_region_together() -> None:
    picker = picker_for(spec({"a": ("us-east",), "c": ("eu-west",)}), "lockstep")
    assert drain(picker) == [("a@us-east", 0), ("c@eu-west", 0)]
    finish(picker, "c@eu-west", 0)
    assert drain(picker) == []  # us-east has not finished q0
    finish(picker, "a@us-east", 0)
    assert drain(picker) == [("a@us-east", 1), ("c@eu-west", 1)]


def test_resumed_group_starts_at_the_earliest_question_left() -> None:
    done = frozenset({ExecutionKey("q0", "a", "us-east"), ExecutionKey("q0", "b", "us-east")})
    picker = picker_for(spec({"a": ("us-east",), "b": ("us-east",)}), "region", done=done)
    assert drain(picker) == [("a@us-east", 1), ("b@us-east", 1)]


def test_release_while_stopping_queues_nothing() -> None:
    picker = picker_for(spec({"a": ("us-east",)}))
    drain(picker)
    picker.release(endpoint(picker, "a@us-east"), requeue=False)
    assert picker.in_flight == 0
    assert picker.pick() is None


# -- the ledger -----------------------------------------------------------------------------


def ledger_for(job: JobSpec) -> Ledger:
    return Ledger(Plan(job, "endpoint", frozenset()), wall_offset=1000.0)


def test_ledger_builds_records_on_wall_time() -> None:
    ledger = ledger_for(spec({"a": ("us-east",)}))
    key = ExecutionKey("q0", "a", "us-east")
    rec = ledger.completed(key, Response("  "), attempts=2, started=1.0, ended=3.0)
    assert (rec.status, rec.empty, rec.attempts) == (ExecutionStatus.COMPLETED, True, 2)
    assert (rec.started_at, rec.finished_at) == (1001.0, 1003.0)
    timeout = ledger.failed(key, ExecutionStatus.TIMEOUT, AttemptTimeout(5), 1, 0.0, 5.0,
                            StopReason())  # fmt: skip
    assert timeout.error_code == "TIMEOUT"
    assert "5 s" in (timeout.error_message or "")
    crash = ledger.failed(key, ExecutionStatus.FAILED, KeyError("x"), 1, 0.0, 1.0, StopReason())
    assert crash.error_code == "EXECUTOR_ERROR"
    stop = StopReason()
    stop.reason = "cancelled by the caller"
    cut = ledger.failed(key, ExecutionStatus.CANCELLED, PermanentError("boom", code="X"), 1,
                        0.0, 1.0, stop)  # fmt: skip
    assert cut.error_code == "CANCELLED"
    assert cut.error_message == "interrupted: cancelled by the caller (last failure: boom)"
    skipped = ledger.skipped(key, "the job ended", 2.0)
    assert (skipped.status, skipped.attempts, skipped.finished_at) == (
        ExecutionStatus.SKIPPED,
        0,
        1002.0,
    )


@pytest.mark.parametrize("reason", ["cancelled by the caller", None])
def test_ledger_builds_an_interrupted_record_in_bulk_as_failed_builds_it(
    reason: str | None,
) -> None:
    """The end of a job's shortcut for an execution interrupted before any failure."""
    ledger = ledger_for(spec({"a": ("us-east",)}))
    key = ExecutionKey("q0", "a", "us-east")
    stop = StopReason()
    stop.reason = reason
    bulk = ledger.interrupted(key, interrupted_message(stop), 2, 1.0, 3.0)
    assert bulk == ledger.failed(key, ExecutionStatus.CANCELLED, None, 2, 1.0, 3.0, stop)
    assert bulk.error_message == f"interrupted: {reason or 'cancelled'}"
    assert (bulk.status, bulk.attempts, bulk.started_at, bulk.finished_at) == (
        ExecutionStatus.CANCELLED,
        2,
        1001.0,
        1003.0,
    )


def test_ledger_tallies_per_region_and_says_when_a_question_is_done() -> None:
    job = spec({"a": ("us-east", "eu-west")})
    ledger = ledger_for(job)
    us, eu = ledger.plan.endpoints

    def record(e: EndpointState, status: ExecutionStatus, text: str | None = None) -> bool:
        rec = ExecutionRecord(key=ledger.plan.key(e, 0), status=status, text=text, empty=text == "")
        return ledger.account(rec, e, 0)

    assert record(us, ExecutionStatus.COMPLETED, "yes") is False
    assert record(eu, ExecutionStatus.COMPLETED, "") is True  # the last of q0
    tally = ledger.tally()
    assert tally.regions["us-east"].completed == 1
    assert tally.regions["eu-west"].empty == 1
    assert tally.regions["eu-west"].planned == 3
    assert ledger.counts[ExecutionStatus.COMPLETED] == 2
    progress = ledger.progress("parts", elapsed=1.0, unstarted=4, waiting=0, eta=None)
    assert progress.by_question["q0"].done == 2
    assert progress.by_endpoint["a@us-east"].done == 1


def test_ledger_verdict_names_the_cancellation() -> None:
    ledger = ledger_for(spec({"a": ("us-east",)}))
    stop = StopReason()
    stop.source, stop.reason = "handle", "cancelled by the caller"
    verdict = ledger.verdict(MinSuccessRate(), stop, None)
    assert verdict.status is JobStatus.CANCELLED
    assert "cancelled by the caller" in verdict.reason
    stop.source = "deadline"
    assert "deadline of 5 s" in ledger.verdict(MinSuccessRate(), stop, 5.0).reason


@pytest.mark.parametrize("source", [None, "early_stop"])
def test_ledger_verdict_is_the_policys_otherwise(source: str | None) -> None:
    ledger = ledger_for(spec({"a": ("us-east",)}))
    stop = StopReason()
    stop.source = source  # type: ignore[assignment]
    verdict = ledger.verdict(MinSuccessRate(rate=0.0), stop, None)
    assert verdict.status is JobStatus.FAILED or verdict.status is JobStatus.COMPLETED
    assert ("Stopped early" in verdict.reason) == (source == "early_stop")
