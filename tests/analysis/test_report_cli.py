"""``beacon report``: from the store to the HTML file, and its errors in one line each."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import anyio
import pytest

from beacon_orchestrator import JobResult, JobStatus, SQLiteStore
from beacon_orchestrator.analysis import render_report

from ..cli.support import invoke
from .test_report import Page
from .test_report_job import JOB_ID, small_records, small_spec

CLASSIFIERS = """
from beacon_orchestrator.analysis import Classification, Label, label_record


class Shouting:
    name = "shouting"
    version = "2"

    def classify(self, record):
        return label_record(record, self.classify_text)

    def classify_text(self, text):
        return Classification(Label.REFUSAL if text.isupper() else Label.SUBSTANTIVE, 0.9)


instance = Shouting()


def make():
    return Shouting()


def broken():
    raise LookupError("no judge configured\\nsecond line")


class Crashes(Shouting):
    def classify(self, record):
        raise ZeroDivisionError("the judge divided by zero")


not_a_classifier = 42
"""


async def _store_small_job(db: Path, *, finished: bool) -> None:
    spec = small_spec()
    async with SQLiteStore(db) as store:
        await store.open_job(spec)
        await store.write_many(spec.id, list(small_records()))
        if finished:
            result = JobResult(
                job_id=spec.id,
                status=JobStatus.COMPLETED,
                reason="11 of 12 executions succeeded",
                counts={},
                success_rate=11 / 12,
                planned=12,
            )
            await store.finish_job(spec.id, result)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "beacon.db"
    anyio.run(partial(_store_small_job, path, finished=True))
    return path


@pytest.fixture
def classifiers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A module of classifiers, good and bad, in the working directory (not installed)."""
    (tmp_path / "my_labels.py").write_text(CLASSIFIERS, encoding="utf-8")
    (tmp_path / "explodes.py").write_text("raise RuntimeError('import-time bug')\n")
    monkeypatch.chdir(tmp_path)
    yield "my_labels"
    for name in ("my_labels", "explodes"):
        sys.modules.pop(name, None)


def test_report_writes_the_stored_job_with_its_verdict(tmp_path: Path, db: Path) -> None:
    out = tmp_path / "report.html"
    result = invoke(["report", JOB_ID, "-o", str(out), "--store", str(db)])
    assert result.exit_code == 0, result.output
    assert result.stderr == f"Wrote the report of {JOB_ID} (12 records) to {out}.\n"
    assert result.stdout == ""
    html = out.read_text(encoding="utf-8")
    assert "COMPLETED</span> &mdash; 11 of 12 executions succeeded" in html
    assert Page(html).rows("region")["asia-pacific"]["refusal"] == 1
    # The store's records make the same report as the records themselves.
    assert html.replace("11 of 12 executions succeeded", "") == render_report(
        small_spec(), small_records(), result=_verdict()
    ).replace("enough", "")


def _verdict() -> JobResult:
    return JobResult(
        job_id=JOB_ID,
        status=JobStatus.COMPLETED,
        reason="enough",
        counts={},
        success_rate=1.0,
        planned=12,
    )


def test_an_unfinished_job_says_it_has_no_verdict_yet(tmp_path: Path) -> None:
    db = tmp_path / "beacon.db"
    anyio.run(partial(_store_small_job, db, finished=False))
    out = tmp_path / "report.html"
    assert invoke(["report", JOB_ID, "-o", str(out), "--store", str(db)]).exit_code == 0
    assert "none yet: the job has not finished" in out.read_text(encoding="utf-8")


def test_the_demo_job_makes_a_report(tmp_path: Path) -> None:
    db = tmp_path / "beacon.db"
    demo = invoke(["demo", "--job-id", "d", "--speed", "1000", "--store", str(db)])
    assert demo.exit_code == 0, demo.output
    out = tmp_path / "d.html"
    assert invoke(["report", "d", "-o", str(out), "--store", str(db)]).exit_code == 0
    rows = Page(out.read_text(encoding="utf-8")).rows("region")
    assert sum(row["planned"] for row in rows.values()) == 64
    assert sum(row["failed"] for row in rows.values()) == 1  # the demo's permanent failure
    assert sum(row["empty"] for row in rows.values()) == 1  # and its empty answer


@pytest.mark.parametrize("attr", ["instance", "Shouting", "make"])
def test_a_classifier_by_import_path_an_object_a_class_or_a_factory(
    tmp_path: Path, db: Path, classifiers: str, attr: str
) -> None:
    out = tmp_path / "report.html"
    args = ["report", JOB_ID, "-o", str(out), "--store", str(db)]
    result = invoke([*args, "--classifier", f"{classifiers}:{attr}"])
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    assert "<dd>shouting, version 2</dd>" in html
    # No answer of the small job is in capitals: the refusal is substantive to this one.
    assert Page(html).rows("region")["asia-pacific"]["refusal"] == 0


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("my_labels", "--classifier 'my_labels': expected MODULE:ATTR"),
        (":make", "--classifier ':make': expected MODULE:ATTR"),
        ("not_there:x", "--classifier 'not_there:x': no module named 'not_there'"),
        ("my_labels:nothing", "--classifier 'my_labels:nothing': 'my_labels' has no attribute"),
        (
            "explodes:x",
            "--classifier 'explodes:x': importing it raised RuntimeError: import-time bug",
        ),
        (
            "my_labels:broken",
            "--classifier 'my_labels:broken': calling broken() raised LookupError: no judge",
        ),
        (
            "my_labels:not_a_classifier",
            "--classifier 'my_labels:not_a_classifier': expected a Classifier (name, version and "
            "classify(record)) or a zero-argument factory of one, got 42",
        ),
        (
            "my_labels:Crashes",
            "--classifier 'my_labels:Crashes' raised ZeroDivisionError: the judge divided by zero "
            "on capital/llama3.2-1b@us-east",
        ),
    ],
)
def test_a_bad_classifier_is_one_line_naming_it(
    tmp_path: Path, db: Path, classifiers: str, path: str, message: str
) -> None:
    out = tmp_path / "report.html"
    result = invoke(["report", JOB_ID, "-o", str(out), "--store", str(db), "--classifier", path])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {message}")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.output
    assert not out.exists()


def test_a_failed_report_leaves_the_earlier_one(tmp_path: Path, db: Path, classifiers: str) -> None:
    out = tmp_path / "report.html"
    out.write_text("the earlier report", encoding="utf-8")
    args = ["report", JOB_ID, "-o", str(out), "--store", str(db)]
    assert invoke([*args, "--classifier", "my_labels:Crashes"]).exit_code == 2
    assert out.read_text(encoding="utf-8") == "the earlier report"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "nope", "-o", "r.html"], "Error: no job 'nope' in"),
        (["report", JOB_ID, "-o", "missing-dir/r.html"], "Error: cannot write the report to"),
    ],
)
def test_an_unknown_job_or_an_unwritable_path_is_a_usage_error(
    tmp_path: Path, db: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke([*args, "--store", str(db)])
    assert result.exit_code == 2
    assert result.stderr.startswith(message)
    assert "Traceback" not in result.output


def test_report_needs_an_output_and_an_existing_store(tmp_path: Path) -> None:
    assert invoke(["report", JOB_ID]).exit_code == 2
    missing = invoke(["report", JOB_ID, "-o", "r.html", "--store", str(tmp_path / "none.db")])
    assert missing.exit_code == 2
    assert "no store at" in missing.stderr
    assert not (tmp_path / "none.db").exists()
