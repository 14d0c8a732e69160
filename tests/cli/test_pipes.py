"""Output that is not a terminal (a pipe, a file) is never cut to fit 80 columns.

CliRunner's streams are not terminals, as with ``beacon jobs | cat``; COLUMNS=80 is what a CI
log often claims. Every id, name and message must come out whole.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .support import invoke, write_json

JOB_ID = "weekly-probe-" + "-".join(f"part{i:02d}" for i in range(20))  # 132 characters
MODEL = "organisation-name/a-very-long-model-name-with-many-parts-70b-instruct-v0.3"
NARROW = {"COLUMNS": "80"}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "beacon.db"


@pytest.fixture
def job(tmp_path: Path) -> Path:
    return write_json(
        tmp_path / "job.json",
        {
            "id": JOB_ID,
            "questions": [
                {"id": "a-question-whose-id-is-long-enough-to-be-cut", "prompt": "?"},
                {"id": "q2", "prompt": "?"},
            ],
            "models": [{"id": MODEL, "regions": ["us-east", "asia-pacific"]}],
        },
    )


def _run(job: Path, db: Path, *extra: str) -> str:
    result = invoke(
        ["run", str(job), "--store", str(db), "--executor", "demo", "--speed", "1000", *extra],
        env=NARROW,
    )
    assert result.exit_code == 0, result.output
    return result.stdout


def _line_with(text: str, needle: str) -> str:
    lines = [line for line in text.splitlines() if needle in line]
    assert lines, f"no line with {needle!r} in:\n{text}"
    return lines[0]


def test_the_run_summary_names_each_endpoint_whole(job: Path, db: Path) -> None:
    out = _run(job, db, "--progress", "off")
    for region in ("us-east", "asia-pacific"):
        row = _line_with(out, f"{MODEL}@{region}")
        assert row.split()[1:3] == ["2", "2"]  # planned and completed follow the whole name
    assert f"beacon status {JOB_ID} --store" in out


def test_jobs_keeps_every_column_of_a_long_id(job: Path, db: Path) -> None:
    _run(job, db, "--progress", "off")
    out = invoke(["jobs", "--store", str(db)], env=NARROW).stdout
    row = _line_with(out, JOB_ID).split()
    assert row[:3] == [JOB_ID, "completed", "4/4"]
    assert row[-3:] == ["of", "2", "regions."]  # the reason, to its last word
    assert "…" not in out


def test_status_shows_whole_question_model_and_endpoint_names(job: Path, db: Path) -> None:
    _run(job, db, "--progress", "off")
    out = invoke(["status", JOB_ID, "--store", str(db)], env=NARROW).stdout
    assert _line_with(out, "question").split() == ["question", MODEL]
    assert "a-question-whose-id-is-long-enough-to-be-cut" in out
    assert f"{MODEL}@asia-pacific" in out
    assert "…" not in out


def test_status_failures_show_each_whole_message(job: Path, db: Path) -> None:
    # A router that refuses connections: every execution fails with a long message.
    router = ["--executor", "hybrid-router", "--router-url", "http://127.0.0.1:9/" + "x" * 60]
    result = invoke(
        ["run", str(job), "--store", str(db), *router, "--attempts", "1", "--progress", "off"],
        env=NARROW,
    )
    assert result.exit_code == 1, result.output
    out = invoke(["status", JOB_ID, "--store", str(db), "--failures"], env=NARROW).stdout
    messages = [
        json.loads(line)["error_message"]
        for line in invoke(["export", JOB_ID, "--store", str(db)]).stdout.splitlines()
    ]
    assert len(messages) == 4
    assert all(len(m) > 150 for m in messages)
    lines = out.splitlines()
    # The example of the one error code, then each failure's row, each ending with its message.
    assert [line.rstrip().endswith(messages[0]) for line in lines].count(True) == 2
    assert all(any(line.rstrip().endswith(m) for line in lines) for m in messages)
    assert "…" not in out


def test_plan_names_each_endpoint_whole(job: Path, db: Path) -> None:
    out = invoke(["plan", str(job), "--store", str(db)], env=NARROW).stdout
    assert _line_with(out, f"{MODEL}@asia-pacific").split()[1:] == ["30.0s", "2", "0", "2"]
    assert JOB_ID in out


def test_plain_progress_lines_are_not_wrapped(job: Path, db: Path) -> None:
    result = invoke(
        [
            "run",
            str(job),
            "--store",
            str(db),
            "--executor",
            "demo",
            "--speed",
            "1000",
            "--progress",
            "plain",
        ],
        env=NARROW,
    )
    assert _line_with(result.stderr, "Running job").endswith(f"store {db}")
    assert JOB_ID in _line_with(result.stderr, "Running job")
