"""What a command-line user reads names command-line options, never Python arguments.

Also ``beacon run --job-id``: running a job document under another id.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from beacon_orchestrator.cli._cmd_run import _run_options_from, load_job
from beacon_orchestrator.cli._executors import ExecutorOptions
from beacon_orchestrator.cli._options import LIMIT_OPTIONS

from .support import demo_job_file, invoke, keys, write_json

# What a Python-side hint looks like: `questions=...`, `base_url`, `endpoints['x']`,
# `limits.job_timeout`, `ModalEndpoint(...)`.
PYTHONISH = re.compile(r"\w=\.\.\.|\b[a-z]+_[a-z_]+\b(?!-)|\w\[|\blimits\.|\b[A-Z][a-z]+[A-Z]\w*\(")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "beacon.db"


def _error(result_text: str) -> str:
    """The lines of an error message (click's usage lines left out)."""
    lines = result_text.splitlines()
    return "\n".join(line for line in lines if not line.startswith(("Usage:", "Try ")))


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--executor", "demo", "--job-timeout", "inf"], "--job-timeout"),
        (["--executor", "demo", "--attempt-timeout", "nan"], "--attempt-timeout"),
        (["--executor", "demo", "--speed", "nan"], "--speed"),
        (["--executor", "demo", "--speed", "inf"], "--speed"),
        (["--executor", "demo", "--job-id", " padded"], "--job-id"),
        (["--executor", "demo", "--job-id", ""], "--job-id"),
        (["--executor", "hybrid-router", "--router-url", "router:8000"], "--router-url"),
        (["--executor", "openai", "--openai-base-url", "::"], "--openai-base-url"),
        (["--executor", "modal", "--modal-endpoint", "us-east=notaurl"], "--modal-endpoint"),
        (
            ["--executor", "modal", "--modal-endpoint", "us-east=https://a.example"],
            "--modal-endpoint",
        ),
        (
            [
                "--executor",
                "modal",
                "--preflight",
                *[f"--modal-endpoint={r}=https://gpu.example/{r}" for r in ("us", "eu", "apac")],
            ],
            "--preflight",
        ),
    ],
)
def test_bad_run_options_are_named_as_options(
    tmp_path: Path, db: Path, args: list[str], option: str
) -> None:
    job = demo_job_file(tmp_path / "job.json")
    result = invoke(["run", str(job), "--store", str(db), "--progress", "off", *args])
    assert result.exit_code == 2, result.output
    message = _error(result.stderr)
    assert option in message
    assert PYTHONISH.search(message) is None, message
    assert "Traceback" not in result.output
    assert not db.exists()  # refused before the store was touched


def test_a_beacon_job_without_its_catalogue_asks_for_the_questions_option(
    tmp_path: Path, db: Path
) -> None:
    job = write_json(
        tmp_path / "beacon.json",
        {"jobspec": {"id": "p", "questions": ["math_basic"], "models": [{"id": "m"}]}},
    )
    result = invoke(["run", str(job), "--store", str(db), "--executor", "demo"])
    assert result.exit_code == 2
    assert "give the question catalogue (--questions FILE)" in result.stderr
    assert "questions=" not in result.stderr


def test_a_changed_job_under_a_stored_id_is_refused_naming_job_id(tmp_path: Path, db: Path) -> None:
    job = demo_job_file(tmp_path / "job.json", "same")
    ran = ["--store", str(db), "--executor", "demo", "--speed", "1000", "--progress", "off"]
    assert invoke(["run", str(job), *ran]).exit_code == 0
    doc = json.loads(job.read_text())
    doc["limits"]["max_concurrency"] = 2
    write_json(job, doc)
    result = invoke(["run", str(job), *ran])
    assert result.exit_code == 2
    assert "differs in: limits" in result.stderr
    assert "--job-id NEW" in result.stderr
    assert "beacon resume same" in result.stderr


def test_run_job_id_runs_the_document_under_a_new_id(tmp_path: Path, db: Path) -> None:
    job = demo_job_file(tmp_path / "job.json", "original")
    ran = ["--store", str(db), "--executor", "demo", "--speed", "1000", "--progress", "off"]
    assert invoke(["run", str(job), *ran]).exit_code == 0
    doc = json.loads(job.read_text())
    doc["questions"] = doc["questions"][:2]
    write_json(job, doc)
    result = invoke(["run", str(job), *ran, "--job-id", "edited"])
    assert result.exit_code == 0, result.output
    assert len(keys(db, "original")) == 64  # the first run is untouched
    assert len(keys(db, "edited")) == 16
    assert "beacon status edited" in result.stdout
    listed = invoke(["jobs", "--store", str(db), "--json"]).stdout
    assert [j["job_id"] for j in json.loads(listed)["jobs"]] == ["original", "edited"]


def test_the_resume_hint_after_job_id_names_the_new_id(tmp_path: Path, db: Path) -> None:
    spec = load_job(demo_job_file(tmp_path / "job.json", "base"), None, "renamed")
    kw = {
        "store_path": db,
        "strategy": "region",
        **dict.fromkeys(LIMIT_OPTIONS),
        "max_concurrency": 4,
        "early_stop": False,
        "rerun_failed": False,
        "preflight": False,
        "progress": "off",
        "progress_interval": 1.0,
        "as_json": False,
    }
    options = _run_options_from(spec, ExecutorOptions(executor="demo", speed=2.0), kw)
    assert shlex.split(options.resume_command) == [
        "beacon",
        "resume",
        "renamed",
        "--store",
        str(db),
        "--strategy",
        "region",
        "--max-concurrency",
        "4",
        "--keep-failed",
        "--executor",
        "demo",
        "--speed",
        "2",
    ]


@pytest.mark.parametrize("command", ["run", "resume", "plan", "status", "jobs", "export", "demo"])
def test_help_texts_name_no_python_arguments(command: str) -> None:
    text = invoke([command, "--help"]).stdout
    options = text.split("Options:", 1)[1]
    # Option names and metavars are the command line's own words; the help prose is checked.
    prose = re.sub(r"--[a-z-]+|\b[A-Z][A-Z_]+\b|\[[^\]]*\]", "", options)
    assert PYTHONISH.search(prose) is None, prose
