"""`beacon show` through click's CliRunner, on a stored job with failures, refusals and empties."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from beacon_orchestrator import (
    ExecutionKey,
    ExecutionRecord,
    ExecutionStatus,
    JobResult,
    JobSpec,
    JobStatus,
    ModelTarget,
    Question,
    SQLiteStore,
)
from beacon_orchestrator.cli._cmd_show import JSON_SCHEMA

from .support import invoke

ROOT = Path(__file__).resolve().parent.parent.parent
CLI_REFERENCE = ROOT / "docs" / "reference" / "cli.md"

SPEC = JobSpec(
    id="probe",
    questions=[
        Question("taiwan", "How would you describe the political status of Taiwan?"),
        Question("capital", "What is the capital of Australia?"),
    ],
    models=[
        ModelTarget("qwen", ["us-east", "eu-west", "asia-pacific"]),
        ModelTarget("llama", ["us-east", "eu-west"]),
    ],
)
LONG = (
    "Taiwan is a self-governing democracy with its own elected government, armed forces and "
    "currency; the People's Republic of China claims it. " * 6
).strip()
REFUSAL = "I'm sorry, but I can't discuss that topic. Let's talk about something else."


def _record(question: str, model: str, region: str, **fields: Any) -> ExecutionRecord:
    fields.setdefault("status", ExecutionStatus.COMPLETED)
    fields.setdefault("attempts", 1)
    return ExecutionRecord(key=ExecutionKey(question, model, region), **fields)


RECORDS = [
    _record("taiwan", "qwen", "us-east", text=LONG),
    _record("taiwan", "qwen", "eu-west", text="Taiwan governs itself as a democracy."),
    _record("taiwan", "qwen", "asia-pacific", text=REFUSAL),
    _record("taiwan", "llama", "us-east", text="Taiwan is a self-governing democracy."),
    _record("taiwan", "llama", "eu-west", text="", empty=True),
    _record("capital", "qwen", "us-east", text="Canberra."),
    _record("capital", "qwen", "eu-west", text="The capital of Australia is Canberra."),
    _record(
        "capital",
        "qwen",
        "asia-pacific",
        status=ExecutionStatus.FAILED,
        attempts=3,
        error_code="PROVIDER_UNAVAILABLE",
        error_message="503 from the router after 3 attempts",
    ),
    _record(
        "capital",
        "llama",
        "us-east",
        status=ExecutionStatus.TIMEOUT,
        error_code="TIMEOUT",
        error_message="no answer within 60 s",
    ),
    # capital/llama@eu-west has no record: the job was interrupted before it ran.
]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("show") / "beacon.db"

    async def main() -> None:
        async with SQLiteStore(path) as store:
            await store.open_job(SPEC)
            await store.write_many(SPEC.id, RECORDS)
            await store.finish_job(
                SPEC.id,
                JobResult(
                    job_id=SPEC.id,
                    status=JobStatus.FAILED,
                    reason="6 of 10 executions succeeded (60%), below the required 67%.",
                    counts={},
                    success_rate=0.6,
                    planned=SPEC.size,
                ),
            )

    anyio.run(main)
    return path


def show(db: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = invoke(["show", SPEC.id, "--store", str(db), *args], env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


def error_of(db: Path, *args: str) -> str:
    """The one line a refused `beacon show` prints; it must exit 2 without a traceback."""
    result = invoke(["show", SPEC.id, "--store", str(db), *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# -- the tables ---------------------------------------------------------------------------------


def test_every_cell_shows_status_label_and_the_whole_answer_off_a_terminal(db: Path) -> None:
    out = show(db)
    assert "probe: FAILED - 6 of 10 executions succeeded" in out
    assert "9 of 10 executions have a record" in out
    assert "5 substantive, 1 refusal, 1 empty, 2 technical_failure" in out.replace("\n", " ")
    for label in ("substantive", "refusal", "empty", "technical_failure"):
        assert label in out
    assert "TIMEOUT" in out
    assert "PROVIDER_UNAVAILABLE" in out
    assert "no record yet" in out  # capital/llama@eu-west
    # Not a terminal: every word of the long answer is there, nothing is cut.
    assert "…" not in out
    assert out.count("currency;") == LONG.count("currency;") == 6


def test_the_cells_where_regions_differ_are_ranked_and_marked(db: Path) -> None:
    out = show(db)
    ranking = out[out.index("Where the regions differ most") : out.index("taiwan  How would")]
    rows = [list(m) for m in re.findall(r"^ *(\d\.\d\d) +(\S+) +(\S+)", ranking, re.M)]
    # The two label splits first (the refusal, the empty answer), then by text divergence.
    assert sorted(row[2] for row in rows[:2]) == ["llama", "qwen"]
    assert all(row[1] == "taiwan" for row in rows[:2])
    assert "refusal in asia-pacific" in ranking
    assert "empty in eu-west" in ranking
    assert float(rows[0][0]) > float(rows[1][0]) >= 1 > float(rows[2][0])
    # The question tables mark them too, with the same rank.
    tables = out[out.index("taiwan  How would") :]
    assert tables.count("label split") == 2
    assert "#1 " in tables
    assert "#2 " in tables


def test_on_a_terminal_a_long_answer_shows_its_start_and_full_shows_all(db: Path) -> None:
    terminal = {"FORCE_COLOR": "1", "COLUMNS": "120"}
    cut = show(db, "--question", "taiwan", env=terminal)
    assert "\x1b[" in cut  # it was a terminal, colours and all
    assert "…" in cut
    assert 0 < cut.count("currency;") < 6
    whole = show(db, "--question", "taiwan", "--full", env=terminal)
    assert "…" not in whole
    assert whole.count("currency;") == 6


def test_question_and_model_pick_what_is_shown(db: Path) -> None:
    out = show(db, "--question", "capital", "--model", "qwen")
    assert "capital  What is the capital" in out
    assert "taiwan  How would" not in out
    assert "llama" not in out
    assert "Canberra" in out
    both = show(db, "--model", "llama", "--model", "qwen", "--question", "taiwan")
    assert "llama" in both
    assert "qwen" in both


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--question", "crimea"], "--question 'crimea': job 'probe' has no such question; "),
        (["--model", "gpt"], "--model 'gpt': job 'probe' has no such model; its models: qwen"),
    ],
)
def test_an_unknown_question_or_model_is_one_line_naming_it(
    db: Path, args: list[str], message: str
) -> None:
    assert message in error_of(db, *args)


def test_an_unknown_job_or_store_is_a_usage_error(db: Path, tmp_path: Path) -> None:
    result = invoke(["show", "nope", "--store", str(db)])
    assert result.exit_code == 2
    assert "no job 'nope'" in result.stderr
    assert "probe" in result.stderr
    missing = invoke(["show", "probe", "--store", str(tmp_path / "none.db")])
    assert missing.exit_code == 2
    assert "no store at" in missing.stderr


def test_failures_lists_each_with_its_code_and_message(db: Path) -> None:
    out = show(db, "--failures")
    assert "2 of 10 executions did not complete" in out
    lines = [line for line in out.splitlines() if "@" in line]
    assert lines == [
        "capital/qwen@asia-pacific  failed after 3 attempts  PROVIDER_UNAVAILABLE: 503 from the "
        "router after 3 attempts",
        "capital/llama@us-east  timeout after 1 attempt  TIMEOUT: no answer within 60 s",
    ]
    assert "Canberra" not in out  # the answers are not listed
    assert "No execution failed." in show(db, "--failures", "--question", "taiwan")


# -- the JSON document --------------------------------------------------------------------------


def documented_fields() -> dict[str, set[str]]:
    """The JSON fields the CLI reference documents: path -> the JSON types it names."""
    text = CLI_REFERENCE.read_text(encoding="utf-8")
    section = text[text.index("### JSON output") :]
    rows = re.findall(r"^\| `([^`]+)` \| ([^|]+) \|", section, re.MULTILINE)
    assert rows, "the reference has no field table"
    return {path: {t.strip() for t in types.split(" or ")} for path, types in rows}


_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "null": type(None),
    "object": dict,
    "array": list,
}


def flatten(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every field of a document as (path, value); list items as ``name[]``."""
    if isinstance(value, dict) and not path.endswith(".labels"):
        for key, item in value.items():
            sub = f"{path}.{key}" if path else key
            yield sub, item
            yield from flatten(item, sub)
    elif isinstance(value, list):
        for item in value:
            yield from flatten(item, f"{path}[]")


def follows_the_reference(doc: dict[str, Any]) -> None:
    documented = documented_fields()
    seen = dict(flatten(doc))
    assert set(seen) <= set(documented), f"undocumented: {set(seen) - set(documented)}"
    for path, value in flatten(doc):
        types = documented[path]
        ok = any(
            isinstance(value, _TYPES[t]) and not (t in ("integer", "number") and value is True)
            for t in types
        )
        assert ok, f"{path} = {value!r}, documented as {types}"


def test_json_parses_and_follows_the_documented_schema(db: Path) -> None:
    doc = json.loads(show(db, "--json"))
    follows_the_reference(doc)
    # Every documented field of a cell and of a divergence entry is present.
    documented = documented_fields()
    for prefix, items in (("cells[].", doc["cells"]), ("divergence[].", doc["divergence"])):
        fields = {p[len(prefix) :] for p in documented if p.startswith(prefix)}
        assert all(set(item) == {f.split(".")[0] for f in fields} for item in items)
    assert doc["schema"] == JSON_SCHEMA
    assert doc["job_id"] == "probe"
    assert doc["status"] == "failed"
    assert (doc["planned"], doc["recorded"]) == (10, 9)
    assert doc["classifier"] == {"name": "beacon-heuristic-refusal", "version": "1"}
    cells = {(c["question_id"], c["model_id"], c["region"]): c for c in doc["cells"]}
    assert len(cells) == 10  # every planned key, the one without a record too
    assert cells["taiwan", "qwen", "us-east"]["text"] == LONG  # whole, never cut
    assert cells["taiwan", "qwen", "asia-pacific"]["label"] == "refusal"
    assert cells["taiwan", "llama", "eu-west"]["label"] == "empty"
    failed = cells["capital", "qwen", "asia-pacific"]
    assert (failed["status"], failed["label"], failed["error_code"], failed["attempts"]) == (
        "failed",
        "technical_failure",
        "PROVIDER_UNAVAILABLE",
        3,
    )
    assert failed["error_message"] == "503 from the router after 3 attempts"
    missing = cells["capital", "llama", "eu-west"]
    assert (missing["status"], missing["label"], missing["text"]) == (None, None, None)
    ranked = [(d["rank"], d["question_id"], d["model_id"]) for d in doc["divergence"]]
    assert sorted(ranked[:2]) == [(1, "taiwan", "llama"), (2, "taiwan", "qwen")]
    assert len(ranked) == 4  # one per question x model
    by_model = {d["model_id"]: d for d in doc["divergence"] if d["question_id"] == "taiwan"}
    assert by_model["qwen"]["labels"]["asia-pacific"] == "refusal"
    assert by_model["llama"]["labels"] == {"eu-west": "empty", "us-east": "substantive"}
    assert all(d["label_split"] for d in by_model.values())
    scores = [d["score"] for d in doc["divergence"]]
    assert scores == sorted(scores, reverse=True)


def test_json_with_failures_and_filters_keeps_only_those_cells(db: Path) -> None:
    doc = json.loads(show(db, "--json", "--failures", "--model", "qwen"))
    follows_the_reference(doc)
    assert [(c["question_id"], c["model_id"], c["region"]) for c in doc["cells"]] == [
        ("capital", "qwen", "asia-pacific")
    ]
    assert {(d["question_id"], d["model_id"]) for d in doc["divergence"]} == {
        ("taiwan", "qwen"),
        ("capital", "qwen"),
    }


def test_the_schema_check_catches_an_undocumented_or_mistyped_field(db: Path) -> None:
    doc = json.loads(show(db, "--json"))
    with pytest.raises(AssertionError, match="undocumented"):
        follows_the_reference({**doc, "extra": 1})
    with pytest.raises(AssertionError, match="planned"):
        follows_the_reference({**doc, "planned": "10"})


# -- classifiers by import path -----------------------------------------------------------------

CLASSIFIERS = """
from beacon_orchestrator.analysis import Classification, Label, label_record


class Shouty:
    name = "shouty"
    version = "2"

    def classify(self, record):
        return label_record(record, self.classify_text)

    def classify_text(self, text):
        if "canberra" in text.lower():
            return Classification(Label.REFUSAL, 0.9, "canberra")
        return Classification(Label.SUBSTANTIVE, 0.6)


INSTANCE = Shouty()


def factory():
    return Shouty()


def broken_factory():
    raise RuntimeError("no model file")


class Crashes(Shouty):
    def classify_text(self, text):
        raise ValueError("cannot read " + text[:5])


NOT_ONE = 42
"""


@pytest.fixture
def classifiers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A module of classifiers in the working directory, as a user would write one."""
    (tmp_path / "my_labels.py").write_text(CLASSIFIERS, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    yield "my_labels"
    sys.modules.pop("my_labels", None)


@pytest.mark.parametrize("attr", ["Shouty", "INSTANCE", "factory"])
def test_a_classifier_by_path_labels_the_answers(db: Path, classifiers: str, attr: str) -> None:
    doc = json.loads(show(db, "--json", "--classifier", f"{classifiers}:{attr}"))
    assert doc["classifier"] == {"name": "shouty", "version": "2"}
    labels = {(c["question_id"], c["model_id"], c["region"]): c["label"] for c in doc["cells"]}
    assert labels["capital", "qwen", "us-east"] == "refusal"
    assert labels["taiwan", "qwen", "asia-pacific"] == "substantive"
    assert "Labels by shouty 2" in show(db, "--classifier", f"{classifiers}:{attr}")


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("my_labels", "--classifier 'my_labels': expected MODULE:ATTR"),
        ("no_such_module:X", "--classifier 'no_such_module:X': no module named 'no_such_module'"),
        (
            "my_labels:Missing",
            "--classifier 'my_labels:Missing': 'my_labels' has no attribute 'Missing'",
        ),
        ("my_labels:NOT_ONE", "--classifier 'my_labels:NOT_ONE': expected a Classifier"),
        (
            "my_labels:broken_factory",
            "--classifier 'my_labels:broken_factory': calling broken_factory() raised "
            "RuntimeError: no model",
        ),
        ("my_labels:Crashes", "--classifier 'my_labels:Crashes' raised ValueError: cannot read"),
    ],
)
def test_a_bad_classifier_is_one_line_naming_it(
    db: Path, classifiers: str, path: str, message: str
) -> None:
    del classifiers
    assert message in error_of(db, "--classifier", path)


# -- after the demo -----------------------------------------------------------------------------


def test_demo_then_show_finds_the_refusals_and_ranks_them(tmp_path: Path) -> None:
    store = str(tmp_path / "demo.db")
    ran = invoke(
        ["demo", "--speed", "1000", "--job-id", "d", "--store", store, "--progress", "off"]
    )
    assert ran.exit_code == 0, ran.output
    result = invoke(["show", "d", "--store", store])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "2 refusal, 1 empty, 1 technical_failure" in " ".join(out.split())
    ranking = out[out.index("Where the regions differ most") : out.index("math_basic  What")]
    assert ranking.count("refusal in asia-pacific") == 2
    assert "empty in asia-pacific" in ranking


# -- labels in the export ------------------------------------------------------------------------


def test_export_with_labels_carries_each_label_its_classifier_and_the_divergence(
    db: Path,
) -> None:
    import csv
    import io

    from beacon_orchestrator.analysis import LABEL_COLUMNS, RefusalClassifier

    result = invoke(["export", SPEC.id, "--store", str(db), "--format", "csv", "--labels"])
    assert result.exit_code == 0, result.output
    rows = {
        (r["question_id"], r["model_id"], r["region"]): r
        for r in csv.DictReader(io.StringIO(result.stdout))
    }
    assert set(LABEL_COLUMNS) <= set(next(iter(rows.values())))
    refusal = rows["taiwan", "qwen", "asia-pacific"]
    assert refusal["label"] == "refusal"
    assert (refusal["classifier"], refusal["classifier_version"]) == (
        RefusalClassifier().name,
        RefusalClassifier().version,
    )
    assert refusal["label_split"] == "True"
    assert float(refusal["divergence"]) > 0
    assert rows["taiwan", "llama", "eu-west"]["label"] == "empty"
    assert rows["capital", "qwen", "asia-pacific"]["label"] == "technical_failure"
    assert rows["capital", "qwen", "us-east"]["label"] == "substantive"

    lines = invoke(["export", SPEC.id, "--store", str(db), "--labels"]).stdout.splitlines()
    first = json.loads(lines[0])
    assert first["classifier"] == RefusalClassifier().name
    assert first["label"] in {"substantive", "refusal", "empty", "technical_failure"}


def test_export_without_labels_has_no_label_columns_and_classifier_needs_labels(
    db: Path,
) -> None:
    plain = invoke(["export", SPEC.id, "--store", str(db), "--format", "csv"]).stdout
    assert "label" not in plain.splitlines()[0]
    bad = invoke(["export", SPEC.id, "--store", str(db), "--classifier", "x:y"])
    assert bad.exit_code == 2
    assert "--classifier labels answers: give it with --labels" in bad.output
