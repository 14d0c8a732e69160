"""``--json``: stdout is one JSON document that follows the schema docs/reference/json.md gives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from beacon_orchestrator import ExecutionStatus, JobResult, JobStatus
from beacon_orchestrator._demo import demo_data
from beacon_orchestrator.cli._runner import CommandRun, _Before, _Outcome, run_json

from .support import (
    Field,
    demo_job_file,
    documented_fields,
    invoke,
    schema_problems,
)

FAST = ["--executor", "demo", "--speed", "1000"]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "beacon.db"


def _json(result: Result, command: str) -> Any:
    """The document on stdout, checked against the schema of ``command``; nothing else there."""
    doc = json.loads(result.stdout)  # fails on anything but one JSON document
    assert schema_problems(doc, documented_fields(command)) == []
    return doc


def test_the_schema_check_catches_missing_mistyped_and_undocumented_fields() -> None:
    fields = {
        "a": Field(frozenset({"integer"}), optional=False),
        "b": Field(frozenset({"string", "null"}), optional=False),
        "c": Field(frozenset({"array"}), optional=True),
        "c[].d": Field(frozenset({"boolean"}), optional=False),
    }
    assert schema_problems({"a": 1, "b": None}, fields) == []
    assert schema_problems({"a": 1, "b": "x", "c": []}, fields) == []
    assert schema_problems({"a": True, "b": "x"}, fields) == ["a: True is not integer"]
    assert schema_problems({"b": "x"}, fields) == ["a: missing"]
    assert schema_problems({"a": 1, "b": "x", "e": 0}, fields) == ["e: not documented"]
    assert schema_problems({"a": 1, "b": "x", "c": [{"d": True}, {}]}, fields) == ["c[].d: missing"]
    assert schema_problems({"a": 1, "b": "x", "c": [{"d": 1}]}, fields) == [
        "c[].d: 1 is not boolean"
    ]


@pytest.mark.parametrize("command", ["run", "status", "jobs", "plan"])
def test_every_command_has_a_field_table_with_known_types(command: str) -> None:
    fields = documented_fields(command)
    assert "job_id" in fields or "jobs[].job_id" in fields


def test_run_json_is_the_only_thing_on_stdout_and_progress_stays_on_stderr(
    tmp_path: Path, db: Path
) -> None:
    job = demo_job_file(tmp_path / "job.json", "j1")
    result = invoke(["run", str(job), "--store", str(db), *FAST, "--json", "--progress", "plain"])
    assert result.exit_code == 0, result.output
    doc = _json(result, "run")
    assert doc["job_id"] == "j1"
    assert doc["status"] == "completed"
    assert doc["exit_code"] == 0
    assert doc["planned"] == 64
    assert doc["counts"] == {
        "completed": 63,
        "failed": 1,
        "timeout": 0,
        "cancelled": 0,
        "skipped": 0,
    }
    assert doc["empty"] == 1
    assert doc["completed_before"] == 0
    assert doc["success_rate"] == pytest.approx(63 / 64)
    assert doc["duration"] == pytest.approx(doc["finished_at"] - doc["started_at"])
    assert doc["store"] == str(db)
    assert doc["simulated"] is True
    assert doc["resume_command"] is None
    assert "Running job j1" in result.stderr
    assert "These answers are simulated" in result.stderr


def test_a_failed_verdict_in_json_exits_1_and_says_so(tmp_path: Path, db: Path) -> None:
    job = demo_job_file(tmp_path / "job.json", "strict")
    doc = json.loads(job.read_text())
    doc["policy"] = {"min_success_rate": 1.0}
    job.write_text(json.dumps(doc))
    result = invoke(["run", str(job), "--store", str(db), *FAST, "--json", "--progress", "off"])
    assert result.exit_code == 1
    out = _json(result, "run")
    assert (out["status"], out["exit_code"]) == ("failed", 1)
    assert "below the required 100%" in out["reason"]


def test_resume_json_counts_what_was_completed_before(tmp_path: Path, db: Path) -> None:
    job = demo_job_file(tmp_path / "job.json", "again")
    assert invoke(["run", str(job), "--store", str(db), *FAST, "--progress", "off"]).exit_code == 0
    result = invoke(["resume", "again", "--store", str(db), *FAST, "--json", "--progress", "off"])
    assert result.exit_code == 0, result.output
    doc = _json(result, "resume")
    assert doc["completed_before"] == 63
    assert doc["counts"]["completed"] == 63  # the failed one ran again and failed again


def test_demo_json(db: Path) -> None:
    result = invoke(["demo", "--speed", "1000", "--store", str(db), "--job-id", "d", "--json"])
    assert result.exit_code == 0, result.output
    assert _json(result, "demo")["job_id"] == "d"
    assert "SIMULATED" in result.stderr


@pytest.mark.parametrize(
    ("status", "aborted"), [(JobStatus.CANCELLED, False), (JobStatus.CANCELLED, True)]
)
def test_a_cancelled_or_aborted_run_in_json_names_its_resume_command(
    tmp_path: Path, status: JobStatus, aborted: bool
) -> None:
    spec = demo_data().spec
    counts = {ExecutionStatus.CANCELLED: 8, ExecutionStatus.SKIPPED: 56}
    result = JobResult(spec.id, status, "interrupted by Ctrl-C", counts, 0.0, spec.size)
    outcome = _Outcome.of(result, empty=0)
    if aborted:
        outcome = _Outcome(status=status, reason="aborted", counts=counts, empty=0, aborted=True)
    options = CommandRun(store_path=tmp_path / "b.db", resume_command="beacon resume x")
    doc = run_json(spec, outcome, options, _Before())
    assert schema_problems(doc, documented_fields("run")) == []
    assert doc["exit_code"] == 130
    assert doc["resume_command"] == "beacon resume x"
    assert doc["aborted"] is aborted
    assert (doc["success_rate"] is None) is aborted


def test_status_json_with_and_without_each_failure(tmp_path: Path, db: Path) -> None:
    job = demo_job_file(tmp_path / "job.json", "st")
    invoke(["run", str(job), "--store", str(db), *FAST, "--progress", "off"])
    plain = invoke(["status", "st", "--store", str(db), "--json"])
    assert plain.exit_code == 0, plain.output
    doc = _json(plain, "status")
    assert "failures" not in doc
    assert doc["status"] == "completed"
    assert (doc["recorded"], doc["missing"]) == (64, 0)
    assert doc["failure_codes"] == [
        {
            "code": "SIMULATED_PERMANENT",
            "count": 1,
            "example": "simulated failure at qwen2.5-1.5b@us-east",
        }
    ]
    by_endpoint = {e["endpoint"]: e for e in doc["endpoints"]}
    assert by_endpoint["qwen2.5-1.5b@us-east"]["failed"] == 1
    assert by_endpoint["llama3.2-1b@asia-pacific"]["empty"] == 1
    assert sum(e["planned"] for e in doc["endpoints"]) == 64

    listed = _json(invoke(["status", "st", "--store", str(db), "--json", "--failures"]), "status")
    assert listed["failures"] == [
        {
            "question_id": "greatest_leader",
            "model_id": "qwen2.5-1.5b",
            "region": "us-east",
            "sample": 0,
            "status": "failed",
            "error_code": "SIMULATED_PERMANENT",
            "error_message": "simulated failure at qwen2.5-1.5b@us-east",
            "attempts": 1,
        }
    ]


def test_status_json_of_an_unfinished_job_has_null_verdict_and_missing_records(
    tmp_path: Path, db: Path
) -> None:
    # A second Ctrl-C can leave a job without a verdict; an empty store row is the same shape.
    import sqlite3

    job = demo_job_file(tmp_path / "job.json", "half")
    invoke(["run", str(job), "--store", str(db), *FAST, "--progress", "off"])
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM records WHERE job_id = 'half' AND question_id = 'math_basic'")
        conn.execute("UPDATE jobs SET status = NULL, reason = NULL, finished_at = NULL")
    doc = _json(invoke(["status", "half", "--store", str(db), "--json"]), "status")
    assert (doc["status"], doc["reason"], doc["finished_at"]) == (None, None, None)
    assert (doc["recorded"], doc["missing"]) == (56, 8)
    assert all(e["missing"] == 1 for e in doc["endpoints"])


def test_jobs_json_lists_every_job_oldest_first(tmp_path: Path, db: Path) -> None:
    for job_id in ("first", "second"):
        job = demo_job_file(tmp_path / f"{job_id}.json", job_id)
        invoke(["run", str(job), "--store", str(db), *FAST, "--progress", "off"])
    result = invoke(["jobs", "--store", str(db), "--json"])
    assert result.exit_code == 0, result.output
    doc = _json(result, "jobs")
    assert doc["store"] == str(db)
    assert [j["job_id"] for j in doc["jobs"]] == ["first", "second"]
    assert all(j["records"] == j["planned"] == 64 for j in doc["jobs"])
    assert doc["jobs"][0]["created_at"] <= doc["jobs"][1]["created_at"]


def test_plan_json(tmp_path: Path, db: Path) -> None:
    job = demo_job_file(tmp_path / "job.json", "p")
    result = invoke(["plan", str(job), "--store", str(db), "--json"])
    assert result.exit_code == 0, result.output
    doc = _json(result, "plan")
    assert [s["strategy"] for s in doc["strategies"]] == ["endpoint", "region", "lockstep"]
    assert doc["store"] == {"path": str(db), "exists": False, "has_job": False}
    assert doc["to_run"] == 64


@pytest.mark.parametrize(
    "args",
    [
        ["run", "missing.json", "--executor", "demo", "--json"],
        ["status", "nope", "--json"],
        ["jobs", "--json"],
    ],
)
def test_an_error_with_json_leaves_stdout_empty(db: Path, args: list[str]) -> None:
    result = invoke([*args, "--store", str(db)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "Error" in result.stderr
