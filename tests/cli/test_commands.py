"""Every `beacon` command through click's CliRunner: output, stored records and exit codes."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from beacon_orchestrator import JobSpec
from beacon_orchestrator.cli._shell import leaf

from .support import TERMINAL, demo_job_file, invoke, keys, statuses, write_json

FAST = ["--executor", "demo", "--speed", "1000", "--progress", "plain"]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "beacon.db"


def test_run_completes_and_stores_every_key_once(tmp_path: Path, db: Path) -> None:
    job = demo_job_file(tmp_path / "job.json")
    result = invoke(["run", str(job), "--store", str(db), *FAST])
    assert result.exit_code == 0, result.output
    assert "COMPLETED" in result.stdout
    assert "These answers are simulated" in result.stdout
    # The plain progress mode said what it runs and where records go.
    assert "Running job demo-job: 64 executions" in result.stderr
    stored = keys(db, "demo-job")
    assert len(stored) == 64 == len(set(stored))
    counts = statuses(db, "demo-job")
    assert set(counts) <= TERMINAL
    assert counts["failed"] == 1  # the one permanent failure; the transient ones recovered
    assert counts["completed"] == 63


def test_run_yaml_with_region_aliases_and_failed_verdict_exits_1(tmp_path: Path, db: Path) -> None:
    # greatest_leader on qwen2.5-1.5b@us-east is the demo executor's permanent failure, and a
    # rate of 1.0 tolerates none.
    job = tmp_path / "job.yaml"
    job.write_text(
        "id: strict\n"
        "questions:\n"
        "  - id: greatest_leader\n"
        "    prompt: Who was the greatest political leader of the twentieth century?\n"
        "  - id: math_basic\n"
        "    prompt: What is 17 multiplied by 23?\n"
        "models:\n"
        "  - {id: qwen2.5-1.5b, regions: [US, EU]}\n"
        "policy: {min_success_rate: 1.0}\n",
        encoding="utf-8",
    )
    result = invoke(["run", str(job), "--store", str(db), *FAST])
    assert result.exit_code == 1, result.output
    assert "FAILED" in result.stdout
    assert "below the required 100%" in result.stdout
    # The aliases were normalised before anything was stored.
    assert {r for _, _, r in keys(db, "strict")} == {"us-east", "eu-west"}


def test_invalid_job_exits_2_with_one_line_per_problem_and_no_traceback(
    tmp_path: Path, db: Path
) -> None:
    job = write_json(
        tmp_path / "bad.json",
        {
            "id": "bad",
            "questions": [{"id": "q1", "prompt": "?"}, {"id": "q1", "prompt": "again?"}],
            "models": [{"id": "m", "regions": ["us-east"]}],
            "limits": {"max_concurrency": 0},
        },
    )
    result = invoke(["run", str(job), "--store", str(db), *FAST])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.splitlines()
    assert lines[0].startswith("Error: invalid job spec in ")
    problems = [line for line in lines if line.startswith("  - ")]
    assert len(problems) == 2
    assert any("questions[1].id" in p and "'q1'" in p for p in problems)
    assert any("limits.max_concurrency" in p and "(got 0)" in p for p in problems)
    assert not db.exists()  # nothing was run, nothing was created


def test_run_without_an_executor_is_a_usage_error(tmp_path: Path, db: Path) -> None:
    job = demo_job_file(tmp_path / "job.json")
    result = invoke(["run", str(job), "--store", str(db)])
    assert result.exit_code == 2
    assert "--executor" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--executor", "hybrid-router"], "needs --router-url"),
        (["--executor", "modal"], "needs --modal-endpoint"),
        (["--executor", "modal", "--modal-endpoint", "nowhere"], "expects REGION=URL"),
        (["--executor", "openai"], "needs --openai-base-url"),
        (["--executor", "demo", "--speed", "0"], "--speed"),
        (["--executor", "demo", "--max-concurrency", "0"], "--max-concurrency"),
    ],
)
def test_bad_executor_options_exit_2_naming_the_option(
    tmp_path: Path, db: Path, args: list[str], message: str
) -> None:
    job = demo_job_file(tmp_path / "job.json")
    result = invoke(["run", str(job), "--store", str(db), "--progress", "off", *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_a_router_that_is_down_fails_every_execution_and_exits_1(tmp_path: Path, db: Path) -> None:
    # Port 9 (discard) is closed on test machines: every connection is refused at once.
    job = demo_job_file(tmp_path / "job.json", "down")
    router = ["--executor", "hybrid-router", "--router-url", "http://127.0.0.1:9"]
    result = invoke(
        ["run", str(job), "--store", str(db), *router, "--attempts", "1", "--progress", "off"],
        env={"BEACON_ROUTER_API_KEY": "sk-do-not-print"},
    )
    assert result.exit_code == 1, result.output
    assert "FAILED" in result.stdout
    assert "sk-do-not-print" not in result.output
    assert statuses(db, "down") == {"failed": 64}
    export = invoke(["export", "down", "--store", str(db)])
    assert "CONNECT_ERROR" in export.stdout
    assert "sk-do-not-print" not in export.stdout


def test_beacon_format_with_catalogue(tmp_path: Path, db: Path) -> None:
    job = write_json(
        tmp_path / "beacon.json",
        {
            "jobspec": {
                "id": "portal-1",
                "questions": ["math_basic", "identity_basic"],
                "models": [{"id": "llama3.2-1b", "regions": ["US", "APAC"]}],
                "constraints": {"regions": ["US", "APAC"], "min_success_rate": 0.5},
            }
        },
    )
    catalogue = write_json(
        tmp_path / "questions.json",
        [
            {"id": "math_basic", "text": "What is 17 multiplied by 23?"},
            {"question_id": "identity_basic", "question": "Who are you?"},
        ],
    )
    result = invoke(["run", str(job), "--questions", str(catalogue), "--store", str(db), *FAST])
    assert result.exit_code == 0, result.output
    assert len(keys(db, "portal-1")) == 4


def test_beacon_format_with_a_question_missing_from_the_catalogue_exits_2(
    tmp_path: Path, db: Path
) -> None:
    job = write_json(
        tmp_path / "beacon.json",
        {
            "id": "portal-2",
            "questions": ["math_basic", "identity_basic"],
            "models": [{"id": "llama3.2-1b", "regions": ["us-east"]}],
        },
    )
    catalogue = write_json(tmp_path / "questions.json", {"math_basic": "What is 17 x 23?"})
    result = invoke(["run", str(job), "--questions", str(catalogue), "--store", str(db), *FAST])
    assert result.exit_code == 2
    assert "identity_basic" in result.stderr
    assert "Traceback" not in result.output


def test_broken_catalogue_file_exits_2_with_its_line(tmp_path: Path, db: Path) -> None:
    job = demo_job_file(tmp_path / "job.json")
    catalogue = tmp_path / "questions.json"
    catalogue.write_text('{"math_basic": "x",\n  oops}', encoding="utf-8")
    result = invoke(["run", str(job), "--questions", str(catalogue), "--store", str(db), *FAST])
    assert result.exit_code == 2
    assert "questions.json" in result.stderr
    assert "line 2" in result.stderr


def test_rerunning_a_changed_job_under_the_same_id_is_refused(tmp_path: Path, db: Path) -> None:
    job = demo_job_file(tmp_path / "job.json", "same-id")
    assert invoke(["run", str(job), "--store", str(db), *FAST]).exit_code == 0
    doc = json.loads(job.read_text())
    doc["questions"] = doc["questions"][:2]
    write_json(job, doc)
    result = invoke(["run", str(job), "--store", str(db), *FAST])
    assert result.exit_code == 2
    assert "same-id" in result.stderr
    assert "different spec" in result.stderr


def test_resume_finishes_a_job_from_the_store(tmp_path: Path, db: Path) -> None:
    job = demo_job_file(tmp_path / "job.json", "r1")
    # --job-timeout ends the first run long before the slow first questions can answer.
    first = invoke(
        ["run", str(job), "--store", str(db), *FAST[:2], "--speed", "0.5", "--job-timeout", "0.05"]
    )
    assert first.exit_code == 1, first.output
    assert sum(statuses(db, "r1").values()) == 64
    assert statuses(db, "r1")["completed"] == 0
    second = invoke(["resume", "r1", "--store", str(db), *FAST])
    assert second.exit_code == 0, second.output
    counts = statuses(db, "r1")
    assert counts["completed"] == 63
    assert counts["failed"] == 1
    assert len(keys(db, "r1")) == 64


def test_resume_of_an_unknown_job_names_the_jobs_there(tmp_path: Path, db: Path) -> None:
    job = demo_job_file(tmp_path / "job.json", "known")
    invoke(["run", str(job), "--store", str(db), *FAST])
    result = invoke(["resume", "unknown", "--store", str(db), *FAST])
    assert result.exit_code == 2
    assert "no job 'unknown'" in result.stderr
    assert "known" in result.stderr


@pytest.mark.parametrize("command", [["status", "x"], ["export", "x"], ["jobs"], ["resume", "x"]])
def test_reading_commands_do_not_create_a_store(db: Path, command: list[str]) -> None:
    extra = ["--executor", "demo"] if command[0] == "resume" else []
    result = invoke([*command, "--store", str(db), *extra])
    assert result.exit_code == 2
    assert "no store at" in result.stderr
    assert not db.exists()


def test_status_shows_the_matrix_the_counts_and_the_verdict(tmp_path: Path, db: Path) -> None:
    job = demo_job_file(tmp_path / "job.json", "st")
    invoke(["run", str(job), "--store", str(db), *FAST])
    result = invoke(["status", "st", "--store", str(db)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "st: COMPLETED" in out
    assert "64 of 64 executions have a record." in out
    assert "regions in each cell: us-east eu-west asia-pacific" in out
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    # qwen2.5-1.5b@us-east failed greatest_leader; llama3.2-1b@asia-pacific answered empty.
    assert "✗" in rows["greatest_leader"]
    assert "∅" in rows["tiananmen_neutral"]
    assert rows["math_basic"].count("✓") == 8
    assert "total" in out


def test_export_jsonl_to_stdout_and_csv_to_a_file(tmp_path: Path, db: Path) -> None:
    job = demo_job_file(tmp_path / "job.json", "ex")
    invoke(["run", str(job), "--store", str(db), *FAST])

    jsonl = invoke(["export", "ex", "--store", str(db)])
    assert jsonl.exit_code == 0, jsonl.output
    lines = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert len(lines) == 64
    assert {(d["question_id"], d["model_id"], d["region"]) for d in lines} == set(keys(db, "ex"))

    out = tmp_path / "ex.csv"
    result = invoke(["export", "ex", "--store", str(db), "--format", "csv", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "Wrote 64 records" in result.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert len(rows) == 64
    assert sum(r["empty"] == "true" for r in rows) == 1


def test_export_of_an_unknown_job_exits_2(tmp_path: Path, db: Path) -> None:
    job = demo_job_file(tmp_path / "job.json", "present")
    invoke(["run", str(job), "--store", str(db), *FAST])
    result = invoke(["export", "absent", "--store", str(db)])
    assert result.exit_code == 2
    assert "no job 'absent'" in result.stderr
    assert result.stdout == ""


def test_jobs_lists_every_job_with_its_verdict(tmp_path: Path, db: Path) -> None:
    for job_id in ("first", "second"):
        invoke(
            [
                "run",
                str(demo_job_file(tmp_path / f"{job_id}.json", job_id)),
                "--store",
                str(db),
                *FAST,
            ]
        )
    result = invoke(["jobs", "--store", str(db)])
    assert result.exit_code == 0, result.output
    listed = [line.split() for line in result.stdout.splitlines() if line.strip()]
    ids = [row[0] for row in listed if row[0] in ("first", "second")]
    assert ids == ["first", "second"]  # oldest first
    assert all("completed" in row and "64/64" in row for row in listed if row[0] in ids)


def test_demo_runs_the_shipped_job_and_says_it_is_simulated(db: Path) -> None:
    result = invoke(["demo", "--speed", "1000", "--store", str(db), "--job-id", "d1"])
    assert result.exit_code == 0, result.output
    assert "SIMULATED" in result.stderr
    assert "These answers are simulated" in result.stdout
    assert "COMPLETED" in result.stdout
    assert len(keys(db, "d1")) == 64


def test_demo_on_trio(db: Path) -> None:
    result = invoke(
        ["demo", "--speed", "1000", "--store", str(db), "--job-id", "t1", "--backend", "trio"]
    )
    assert result.exit_code == 0, result.output
    assert sum(statuses(db, "t1").values()) == 64


def test_help_and_version() -> None:
    result = invoke(["--help"])
    assert result.exit_code == 0
    for command in ("run", "resume", "plan", "status", "export", "jobs", "demo"):
        assert command in result.stdout
    run_help = invoke(["run", "--help"]).stdout
    assert "130 cancelled" in run_help
    assert invoke(["--version"]).stdout.startswith("beacon, version ")


def test_spec_round_trip_of_the_demo_job_file(tmp_path: Path) -> None:
    """The job file the tests write is the shipped demo job under another id."""
    from beacon_orchestrator import load_jobspec
    from beacon_orchestrator._demo import demo_data

    spec = load_jobspec(demo_job_file(tmp_path / "job.json", "copy"))
    assert isinstance(spec, JobSpec)
    assert spec.questions == demo_data().spec.questions
    assert spec.size == 64


def test_leaf_unwraps_single_exception_groups() -> None:
    inner = ValueError("x")
    assert leaf(BaseExceptionGroup("g", [ExceptionGroup("h", [inner])])) is inner
    pair = ExceptionGroup("g", [ValueError("a"), ValueError("b")])
    assert leaf(pair) is pair


def test_status_of_a_large_job_draws_its_first_questions_and_counts_them_all(
    tmp_path: Path, db: Path
) -> None:
    import re

    import anyio

    from beacon_orchestrator import SQLiteStore, run_job
    from beacon_orchestrator.cli._stored import MATRIX_QUESTIONS
    from beacon_orchestrator.testing import FakeExecutor

    from ..stores.support import make_spec

    spec = make_spec("big", questions=MATRIX_QUESTIONS + 5, models=1)

    async def main() -> None:
        async with SQLiteStore(db) as store:
            await run_job(spec, FakeExecutor.random(seed=2, latency=(0.0, 0.0)), store=store)

    anyio.run(main)
    result = invoke(["status", "big", "--store", str(db)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    drawn = [line.split()[0] for line in out.splitlines() if re.match(r"q\d+ ", line)]
    assert drawn == [f"q{i}" for i in range(MATRIX_QUESTIONS)]
    assert "... and 5 more questions; the counts below cover them all" in out
    assert f"{spec.size} of {spec.size} executions have a record." in out
    total = next(line for line in out.splitlines() if line.strip().startswith("total"))
    assert total.split()[1] == str(spec.size)  # planned, every question counted
