"""load_jobspec: JSON and YAML files, syntax errors with line and column, unreadable files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from beacon_orchestrator import JobSpec, SpecError, UsageError, load_jobspec

SPECS = Path(__file__).parent / "data" / "specs"


def only_problem(path: Path, **kw: object) -> tuple[str, str]:
    with pytest.raises(SpecError) as info:
        load_jobspec(path, **kw)  # type: ignore[arg-type]
    assert info.value.source == str(path)
    assert str(path) in str(info.value)
    (problem,) = info.value.problems
    return problem.path, problem.message


def test_json_and_yaml_files_give_the_same_spec() -> None:
    from_json = load_jobspec(SPECS / "own.json")
    from_yaml = load_jobspec(str(SPECS / "own.yaml"))
    assert from_json == from_yaml
    assert from_json.id == "regional-probe"
    assert [m.regions for m in from_json.models] == [
        ("us-east", "eu-west", "asia-pacific"),
        ("eu-west",),
    ]
    assert from_json.limits.attempt_timeout == 300
    assert from_json.params == {"temperature": 0.1, "max_tokens": 500}


def test_yaml_timestamps_stay_text_as_in_json() -> None:
    spec = load_jobspec(SPECS / "own.yaml")
    assert spec.metadata["created_at"] == "2025-01-16T19:33:09Z"
    json.dumps(spec.to_dict())


@pytest.mark.parametrize("suffix", [".yml", ".YAML", ".Json"])
def test_suffixes_are_case_insensitive(tmp_path: Path, suffix: str) -> None:
    target = tmp_path / f"job{suffix}"
    source = SPECS / ("own.json" if suffix.lower() == ".json" else "own.yaml")
    target.write_text(source.read_text())
    assert load_jobspec(target).id == "regional-probe"


def test_json_syntax_error_names_line_and_column() -> None:
    path, message = only_problem(SPECS / "bad-syntax.json")
    assert path == ""
    assert message == "invalid JSON at line 4, column 3: Expecting ',' delimiter"


def test_yaml_syntax_error_names_line_and_column() -> None:
    path, message = only_problem(SPECS / "bad-syntax.yaml")
    assert path == ""
    assert message.startswith("invalid YAML at line 5, column 7: ")
    assert "expected ',' or ']'" in message


def test_yaml_bad_indentation(tmp_path: Path) -> None:
    target = tmp_path / "job.yaml"
    target.write_text("id: j\nquestions:\n  - id: q\n   prompt: p\n")
    _, message = only_problem(target)
    assert message.startswith("invalid YAML at line 4, column ")


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    target = tmp_path / "nope.json"
    with pytest.raises(SpecError) as info:
        load_jobspec(target)
    (problem,) = info.value.problems
    assert problem.message == "file not found"
    assert problem.value == str(target)
    assert str(target) in str(info.value)


def test_directory_is_not_a_job_file(tmp_path: Path) -> None:
    folder = tmp_path / "job.json"
    folder.mkdir()
    _, message = only_problem(folder)
    assert "is a directory" in message


def test_unsupported_suffix(tmp_path: Path) -> None:
    target = tmp_path / "job.toml"
    target.write_text("id = 'j'\n")
    _, message = only_problem(target)
    assert message == "unsupported file type; expected .json, .yaml or .yml"


def test_non_utf8_file(tmp_path: Path) -> None:
    target = tmp_path / "job.json"
    target.write_bytes(b'{"id": "\xff"}')
    _, message = only_problem(target)
    assert message == "not UTF-8 text (bad byte at offset 8)"


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    target = tmp_path / "job.json"
    target.write_bytes(b"\xef\xbb\xbf" + (SPECS / "own.json").read_bytes())
    assert load_jobspec(target).id == "regional-probe"


@pytest.mark.parametrize(("name", "text"), [("empty.yaml", ""), ("comment.yml", "# nothing\n")])
def test_empty_yaml_file(tmp_path: Path, name: str, text: str) -> None:
    target = tmp_path / name
    target.write_text(text)
    _, message = only_problem(target)
    assert "holds no document" in message


def test_empty_json_file(tmp_path: Path) -> None:
    target = tmp_path / "job.json"
    target.write_text("")
    _, message = only_problem(target)
    assert message.startswith("invalid JSON at line 1, column 1")


def test_top_level_list(tmp_path: Path) -> None:
    target = tmp_path / "job.json"
    target.write_text("[1, 2]")
    assert only_problem(target) == ("", "expected a job document (an object)")


def test_duplicate_json_keys_are_reported_with_the_other_problems(tmp_path: Path) -> None:
    doc = (SPECS / "own.json").read_text()
    target = tmp_path / "job.json"
    # A second "id" key and an invalid limit: both are reported.
    target.write_text(
        doc.replace('"id": "regional-probe",', '"id": "a", "id": "b",', 1).replace(
            '"max_concurrency": 10', '"max_concurrency": 0'
        )
    )
    with pytest.raises(SpecError) as info:
        load_jobspec(target)
    assert [(p.path, p.message) for p in info.value.problems] == [
        ("", "duplicate key 'id' in one object; only one value can be kept"),
        ("limits.max_concurrency", "expected a positive integer"),
    ]


def test_duplicate_yaml_keys_are_reported_with_line_and_column(tmp_path: Path) -> None:
    target = tmp_path / "job.yaml"
    text = (SPECS / "own.yaml").read_text()
    target.write_text(text + "params:\n  temperature: 0.5\n")
    line = text.count("\n") + 1
    with pytest.raises(SpecError) as info:
        load_jobspec(target)
    (problem,) = info.value.problems
    assert problem.message.startswith(f"duplicate key 'params' at line {line}, column 1;")


def test_yaml_merge_keys_still_work(tmp_path: Path) -> None:
    target = tmp_path / "job.yaml"
    target.write_text(
        "id: j\n"
        "questions: [{id: q, prompt: p}]\n"
        "base: &base {regions: [us-east]}\n"
        "models:\n"
        "  - <<: *base\n"
        "    id: m\n"
    )
    with pytest.raises(SpecError) as info:
        load_jobspec(target)
    # Only the anchor's holder is unknown; the merged model itself is fine.
    assert [p.path for p in info.value.problems] == ["base"]


def test_yaml_boolean_region_gets_a_quoting_hint(tmp_path: Path) -> None:
    target = tmp_path / "job.yaml"
    target.write_text(
        "id: j\nquestions: [{id: q, prompt: p}]\nmodels: [{id: m, regions: [us-east, NO]}]\n"
    )
    path, message = only_problem(target)
    assert path == "models[0].regions[1]"
    assert "quote it" in message


def test_invalid_document_in_a_file_names_the_file(tmp_path: Path) -> None:
    target = tmp_path / "job.json"
    target.write_text(json.dumps({"id": "j", "questions": [], "models": []}))
    with pytest.raises(SpecError) as info:
        load_jobspec(target)
    assert info.value.source == str(target)
    assert str(info.value).startswith(f"invalid job spec in {target}: 2 problems")


def test_beacon_file_is_detected_and_needs_a_catalogue() -> None:
    path, message = only_problem(SPECS / "beacon-portal.json")
    assert path == "jobspec.questions"
    assert "give the question catalogue" in message


def test_beacon_file_with_a_catalogue() -> None:
    catalogue = json.loads((SPECS / "catalogue.json").read_text())
    spec = load_jobspec(SPECS / "beacon-portal.json", questions=catalogue)
    expected = JobSpec.from_beacon(
        json.loads((SPECS / "beacon-portal.json").read_text()), questions=catalogue
    )
    assert spec == expected
    assert spec.limits.job_timeout == 600.0


def test_beacon_yaml_file(tmp_path: Path) -> None:
    target = tmp_path / "beacon.yaml"
    target.write_text(
        "jobspec_id: j\n"
        "questions: [identity_basic]\n"
        "constraints: {regions: [US, EU], provider_timeout: 120000000000}\n"
        "metadata: {models: [llama3.2-1b]}\n"
    )
    spec = load_jobspec(target, questions={"identity_basic": "Who are you?"})
    assert spec.regions == ("us-east", "eu-west")
    assert spec.limits.attempt_timeout == 120.0


def test_yaml_without_pyyaml_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)
    with pytest.raises(UsageError, match=r"pip install 'beacon-orchestrator\[yaml\]'"):
        load_jobspec(SPECS / "own.yaml")
    # JSON needs nothing extra.
    assert load_jobspec(SPECS / "own.json").id == "regional-probe"


# -- read_document: any JSON or YAML file, parsed as strictly as a job file -------------------


def test_read_document_parses_json_and_yaml_alike(tmp_path: Path) -> None:
    from beacon_orchestrator._spec import read_document

    as_json = tmp_path / "catalogue.json"
    as_json.write_text('{"q1": "Who are you?", "when": "2025-01-16T19:33:09Z"}')
    as_yaml = tmp_path / "catalogue.YML"
    as_yaml.write_text("q1: Who are you?\nwhen: 2025-01-16T19:33:09Z\n")
    expected = {"q1": "Who are you?", "when": "2025-01-16T19:33:09Z"}
    assert read_document(as_json) == expected
    assert read_document(as_yaml) == expected


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("dup.json", '{"q": "a", "q": "b"}', "duplicate key 'q' in one object"),
        ("dup.yaml", "q: a\nq: b\n", "duplicate key 'q' at line 2, column 1"),
        ("bad.json", '{"q": "a",\n  oops}', "invalid JSON at line 2, column 3"),
        ("bad.yaml", "q: [a\n", "invalid YAML at line 2, column 1"),
        ("empty.yaml", "", "the file holds no document"),
        ("notes.txt", "{}", "unsupported file type; expected .json, .yaml or .yml"),
    ],
)
def test_read_document_refuses_what_a_job_file_refuses(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    from beacon_orchestrator._spec import read_document

    target = tmp_path / name
    target.write_text(text)
    with pytest.raises(SpecError) as info:
        read_document(target)
    assert info.value.source == str(target)
    (problem,) = info.value.problems
    assert problem.message.startswith(message)


def test_read_document_of_a_missing_file(tmp_path: Path) -> None:
    from beacon_orchestrator._spec import read_document

    with pytest.raises(SpecError, match="file not found"):
        read_document(tmp_path / "nope.json")
