"""The lines a run starts and ends with: what it will run, and how every execution ended."""

from __future__ import annotations

from pathlib import Path

from beacon_orchestrator import (
    ExecutionKey,
    ExecutionRecord,
    ExecutionStatus,
    JobSpec,
    ModelTarget,
    Question,
    RunOptions,
)
from beacon_orchestrator.cli._runner import CommandRun, _Before, outcome_line, start_line

SPEC = JobSpec(
    id="s",
    questions=[Question(f"q{i}", "?") for i in range(4)],
    models=[ModelTarget("m", ["us-east"])],
)
C, F, T, X, S = (
    ExecutionStatus.COMPLETED,
    ExecutionStatus.FAILED,
    ExecutionStatus.TIMEOUT,
    ExecutionStatus.CANCELLED,
    ExecutionStatus.SKIPPED,
)


def _records(*statuses: ExecutionStatus) -> list[ExecutionRecord]:
    return [
        ExecutionRecord(key=ExecutionKey(f"q{i}", "m", "us-east"), status=status)
        for i, status in enumerate(statuses)
    ]


def test_what_a_resume_keeps_follows_rerun_failed() -> None:
    stored = _records(C, F, T, X)
    again = _Before.of(stored, RunOptions())
    assert (again.completed, again.kept, again.to_run(SPEC)) == (1, 0, 3)
    assert [again.keeps(r) for r in stored] == [True, False, False, False]
    keep = _Before.of(stored, RunOptions(rerun_failed=False))
    assert (keep.completed, keep.kept, keep.to_run(SPEC)) == (1, 2, 1)
    assert [keep.keeps(r) for r in stored] == [True, True, True, False]


def test_an_interrupted_run_is_not_summed_up_as_all_done() -> None:
    counts = {C: 1, X: 1, S: 2}
    assert outcome_line(SPEC, counts, _Before()) == (
        "Executions: 1 of 4 completed, 1 cancelled (started, interrupted), "
        "2 skipped (never started)."
    )


def test_a_resumed_run_says_what_was_done_before_it() -> None:
    counts = {C: 3, F: 1}
    before = _Before(completed=2)
    assert outcome_line(SPEC, counts, before, empty=1) == (
        "Executions: 3 of 4 completed (2 before this run, 1 empty), 1 failed."
    )


def test_keys_without_a_record_are_counted_too() -> None:
    assert outcome_line(SPEC, {C: 1, T: 1}, _Before()) == (
        "Executions: 1 of 4 completed, 1 timed out, 2 without a record."
    )


def test_the_start_line_of_a_new_run_and_of_a_resume(tmp_path: Path) -> None:
    options = CommandRun(store_path=tmp_path / "b.db")
    assert start_line(SPEC, options, _Before()) == (
        f"Running job s: 4 executions (4 questions x 1 endpoints), strategy endpoint, "
        f"store {tmp_path / 'b.db'}"
    )
    resumed = start_line(SPEC, options, _Before(completed=1))
    assert resumed.startswith("Resuming job s: 1 of 4 executions already completed; 3 to run")
    kept = start_line(SPEC, options, _Before(completed=1, kept=2, rerun_failed=False))
    assert "1 of 4 executions already completed, 2 failed kept (--keep-failed); 1 to run" in kept
