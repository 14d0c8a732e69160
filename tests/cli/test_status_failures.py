"""``beacon status``: failures counted by error code, and each one with ``--failures``."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from beacon_orchestrator import (
    ExecutionKey,
    ExecutionRecord,
    ExecutionStatus,
    JobSpec,
    ModelTarget,
    Question,
)
from beacon_orchestrator.cli._cmd_store import codes_table, failure_codes, failures

from .support import demo_job_file, invoke

SPEC = JobSpec(
    id="f",
    questions=[Question("q1", "?"), Question("q2", "?")],
    models=[ModelTarget("m", ["us-east", "eu-west"])],
)


def _record(
    q: str, region: str, status: ExecutionStatus, code: str | None = None
) -> ExecutionRecord:
    return ExecutionRecord(
        key=ExecutionKey(q, "m", region),
        status=status,
        error_code=code,
        error_message=None if code is None else f"{code} at {q}/{region}",
        attempts=1,
    )


# Written in the order a resume leaves them: q2 first, then q1.
RECORDS = [
    _record("q2", "eu-west", ExecutionStatus.TIMEOUT, "TIMEOUT"),
    _record("q2", "us-east", ExecutionStatus.FAILED, "HTTP_503"),
    _record("q1", "eu-west", ExecutionStatus.FAILED, "HTTP_503"),
    _record("q1", "us-east", ExecutionStatus.FAILED),
    _record("q1", "us-east", ExecutionStatus.COMPLETED),
    _record("q1", "us-east", ExecutionStatus.CANCELLED, "CANCELLED"),
]


def test_failures_are_the_failed_and_timed_out_records_in_the_jobs_order() -> None:
    found = failures(SPEC, RECORDS)
    assert [(r.key.question_id, r.key.region) for r in found] == [
        ("q1", "us-east"),
        ("q1", "eu-west"),
        ("q2", "us-east"),
        ("q2", "eu-west"),
    ]
    assert {r.status for r in found} == {ExecutionStatus.FAILED, ExecutionStatus.TIMEOUT}


def test_codes_are_counted_most_frequent_first_with_the_first_message_as_example() -> None:
    codes = failure_codes(failures(SPEC, RECORDS))
    assert [(c.code, c.count, c.example) for c in codes] == [
        ("HTTP_503", 2, "HTTP_503 at q1/eu-west"),  # q1 comes before q2 in the job
        (None, 1, ""),
        ("TIMEOUT", 1, "TIMEOUT at q2/eu-west"),
    ]


def test_the_codes_table_names_a_missing_code_and_keeps_messages_on_one_line() -> None:
    codes = failure_codes(
        [
            ExecutionRecord(
                key=ExecutionKey("q1", "m", "us-east"),
                status=ExecutionStatus.FAILED,
                error_message="first line\nsecond line",
            )
        ]
    )
    console = Console(record=True, width=200)
    console.print(codes_table(codes))
    row = [line for line in console.export_text().splitlines() if "(none)" in line]
    assert row[0].split() == ["(none)", "1", "first", "line", "second", "line"]


def test_status_counts_failures_by_code_and_lists_each_with_failures(tmp_path: Path) -> None:
    db = tmp_path / "b.db"
    job = demo_job_file(tmp_path / "job.json", "st")
    ran = ["--executor", "demo", "--speed", "1000", "--progress", "off"]
    assert invoke(["run", str(job), "--store", str(db), *ran]).exit_code == 0

    summary = invoke(["status", "st", "--store", str(db)]).stdout
    lines = summary.splitlines()
    at = lines.index("Failures by error code")
    assert lines[at + 2].split() == ["error", "code", "count", "example", "message"]
    assert lines[at + 4].split() == [
        "SIMULATED_PERMANENT",
        "1",
        "simulated",
        "failure",
        "at",
        "qwen2.5-1.5b@us-east",
    ]
    assert "List each with: beacon status st --failures" in summary
    assert "Failed and timed-out executions" not in summary

    each = invoke(["status", "st", "--store", str(db), "--failures"]).stdout
    rows = [line.split() for line in each.splitlines() if line.startswith(" greatest_leader")]
    assert rows == [
        [
            "greatest_leader",
            "qwen2.5-1.5b@us-east",
            "failed",
            "SIMULATED_PERMANENT",
            "1",
            "simulated",
            "failure",
            "at",
            "qwen2.5-1.5b@us-east",
        ]
    ]


def test_status_of_a_job_without_failures_says_so(tmp_path: Path) -> None:
    db = tmp_path / "b.db"
    job = demo_job_file(tmp_path / "job.json", "clean")
    # math_basic alone: the demo's permanent failure is on another question.
    import json

    doc = json.loads(job.read_text())
    doc["questions"] = doc["questions"][:1]
    job.write_text(json.dumps(doc))
    ran = ["--executor", "demo", "--speed", "1000", "--progress", "off"]
    assert invoke(["run", str(job), "--store", str(db), *ran]).exit_code == 0
    out = invoke(["status", "clean", "--store", str(db)]).stdout
    assert "No execution failed or timed out." in out
    assert "Failures by error code" not in out
