"""Hostile documents: each is refused with a SpecError naming where, at a bounded cost.

Every row was found by an attacker: before, each one was accepted and then exhausted memory or
failed every execution later, or escaped as a raw traceback. Each row asserts the path the
problem names, a message of bounded length, and the memory and time the refusal took.

The limits themselves are tested at their boundaries below: the last value allowed passes, the
next is refused.
"""

from __future__ import annotations

import json
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from attrs import frozen

from beacon_orchestrator import (
    JobSpec,
    Limits,
    ModelTarget,
    Question,
    RetryPolicy,
    SpecError,
    load_jobspec,
)
from beacon_orchestrator._checks import MAX_ID_CHARS, MAX_INT, MAX_SECONDS, MAX_TEXT_CHARS
from beacon_orchestrator._spec import _yaml
from beacon_orchestrator._spec._bounds import (
    MAX_ALIASES,
    MAX_DEPTH,
    MAX_DOCUMENT_BYTES,
    MAX_INT_DIGITS,
    MAX_YAML_BYTES,
)

# A refusal is one screenful at most, whatever the document holds.
MESSAGE_LIMIT = 1_000
# Memory a refusal may take beyond the document's own text (the file's bytes and text, and
# what the parser builds from them).
MEMORY_SLACK = 8 * 1024 * 1024
# Generous for a shared 2-core machine; an expanded alias bomb takes minutes and gigabytes.
TIME_LIMIT = 10.0

QUESTION = {"id": "q1", "prompt": "Who are you?"}
MODEL = {"id": "llama3.2-1b", "regions": ["us-east"]}
CATALOGUE = {"q1": "Who are you?"}


def own(**fields: Any) -> dict[str, Any]:
    """A valid document in the library's own format, with ``fields`` replaced."""
    return {"id": "probe", "questions": [QUESTION], "models": [MODEL], **fields}


def beacon(**constraints: Any) -> dict[str, Any]:
    """A valid Beacon jobspec with these constraints."""
    return {
        "id": "probe",
        "questions": ["q1"],
        "models": ["llama3.2-1b"],
        "constraints": {"regions": ["us-east"], **constraints},
    }


YAML_HEAD = "questions: [{id: q1, prompt: Who are you}]\nmodels: [{id: m, regions: [us-east]}]\n"


def alias_bomb(indent: str) -> str:
    """Nine levels of nine aliases each: a few hundred bytes that stand for 9**9 strings."""
    lines = [f'{indent}- &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for before, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{indent}- &{name} [{','.join([f'*{before}'] * 9)}]")
    return "\n".join(lines) + "\n"


def nested(depth: int) -> Any:
    doc: Any = "bottom"
    for _ in range(depth):
        doc = [doc]
    return doc


@frozen
class written:  # lower case: in the table it reads as a verb
    """Loads ``text`` from a file called ``name``, written in the test's tmp_path."""

    name: str
    text: str | bytes

    def __call__(self, tmp_path: Path) -> object:
        path = tmp_path / self.name
        if isinstance(self.text, bytes):
            path.write_bytes(self.text)
        else:
            path.write_text(self.text, encoding="utf-8", errors="surrogatepass")
        return load_jobspec(path, questions=CATALOGUE if "beacon" in self.name else None)


def from_dict(doc: Any) -> Callable[[Path], object]:
    return lambda _: JobSpec.from_dict(doc)


def from_beacon(doc: Any) -> Callable[[Path], object]:
    return lambda _: JobSpec.from_beacon(doc, questions=CATALOGUE)


def in_code(build: Callable[[], object]) -> Callable[[Path], object]:
    return lambda _: build()


@frozen
class Bomb:
    """A hostile document, how it is loaded, and what the refusal must say where."""

    name: str
    load: Callable[[Path], object]
    path: str
    fragment: str


TEN_MB_KEY = "k" * 10_000_000
TEN_MB_KEY_PATH = f"['{'k' * 20}...' (10000000 characters)]"
# fmt: off
BOMBS = [
    Bomb("alias bomb in metadata",
         written("bomb.yaml", f"id: probe\n{YAML_HEAD}metadata:\n  laughs:\n"
                 f"{alias_bomb('    ')}"),
         "metadata.laughs", "too large: a job document is at most 16 MiB"),
    Bomb("alias bomb as the id",
         written("bomb.yaml", f"{YAML_HEAD}id:\n{alias_bomb('  ')}"),
         "id[6]", "too large"),
    Bomb("more aliases than allowed",
         written("aliases.yaml", f"id: probe\n{YAML_HEAD}metadata:\n  a: &a x\n  b: ["
                 f"{', '.join(['*a'] * (MAX_ALIASES + 1))}]\n"),
         "", f"more than {MAX_ALIASES} aliases"),
    Bomb("10,000-deep nesting in JSON",
         written("deep.json", '{"id": "probe", "metadata": {"x": ' + "[" * 10_000 + "]" * 10_000
                 + "}}"),
         "", "nested too deeply"),
    Bomb("10,000-deep nesting in YAML",
         written("deep.yaml", f"id: probe\n{YAML_HEAD}metadata: {'[' * 10_000}{']' * 10_000}\n"),
         "", "nested too deeply"),
    Bomb("10,000-deep block nesting in YAML",
         written("deep.yaml", f"id: probe\n{YAML_HEAD}metadata:\n  x:\n  {'- ' * 10_000}bottom\n"),
         "", "nested too deeply"),
    Bomb("a YAML anchor that holds itself",
         written("cycle.yaml", f"id: probe\n{YAML_HEAD}metadata: &m {{me: *m}}\n"),
         "metadata.me", "the same object as a container it is inside"),
    Bomb("10,000-deep nesting from Python",
         from_dict(own(metadata={"x": nested(10_000)})), "metadata.x" + "[0]" * (MAX_DEPTH - 2),
         "nested too deeply"),
    Bomb("a document that holds itself",
         from_dict((lambda d: d["metadata"].update(me=d) or d)(own(metadata={}))),
         "metadata.me", "the same object as a container it is inside"),
    Bomb("control character in YAML",
         written("control.yaml", f"id: pro\x01be\n{YAML_HEAD}"), "", "line 1, column 8: U+0001"),
    Bomb("5,000-digit integer in JSON",
         written("long.json", json.dumps(own(limits={"max_concurrency": 0})).replace(
             '"max_concurrency": 0', '"max_concurrency": ' + "9" * 5_000)),
         "limits.max_concurrency", "at most 64 digits"),
    Bomb("5,000-digit integer in YAML",
         written("long.yaml", f"id: probe\n{YAML_HEAD}metadata: {{n: -{'9' * 5_000}}}\n"),
         "metadata.n", "at most 64 digits"),
    Bomb("5,000-digit integer from Python",
         from_dict(own(metadata={"n": 10**5_000})), "metadata.n", "at most 64 digits"),
    Bomb("overflowing Beacon timeout",
         from_beacon(beacon(timeout=10**400)), "constraints.timeout", "at most 64 digits"),
    Bomb("Beacon timeout over 30 days",
         from_beacon(beacon(provider_timeout=10**30)), "constraints.provider_timeout",
         "at most 30 days"),
    Bomb("overflowing Beacon timeout in a file",
         written("beacon.json", json.dumps(beacon(timeout=0)).replace(
             '"timeout": 0', '"timeout": 1' + "0" * 400)),
         "constraints.timeout", "at most 64 digits"),
    Bomb("10 MB unknown key", from_dict(own(**{TEN_MB_KEY: 1})),
         TEN_MB_KEY_PATH, "too long"),
    Bomb("10 MB unknown key in a file", written("key.json", json.dumps(own(**{TEN_MB_KEY: 1}))),
         TEN_MB_KEY_PATH, "too long"),
    Bomb("file over 16 MiB", written("huge.json", b" " * (MAX_DOCUMENT_BYTES + 1)),
         "", "too large: a job file is at most 16 MiB"),
    Bomb("YAML file over 2 MiB", written("huge.yaml", b"#" * (MAX_YAML_BYTES + 1)),
         "", "too large: a YAML job file is at most 2 MiB"),
    Bomb("NaN in params", from_dict(own(params={"top_p": float("nan")})), "params.top_p",
         "expected a finite number"),
    Bomb("Infinity in params in a file",
         written("inf.json", '{"id": "probe", "params": {"temperature": Infinity}}'),
         "params.temperature", "expected a finite number"),
    Bomb("NaN in metadata from YAML", written("nan.yaml", f"id: p\n{YAML_HEAD}metadata: "
                                                          "{x: [.nan]}\n"),
         "metadata.x[0]", "expected a finite number"),
    Bomb("infinity in the policy", from_dict(own(policy={"min_success_rate": float("inf")})),
         "policy.min_success_rate", "expected a finite number"),
    Bomb("lone surrogate in the id", from_dict(own(id="probe\udc80")), "id", "lone surrogate"),
    Bomb("lone surrogate escaped in a JSON file",
         written("surrogate.json", json.dumps(own(id="probe\ud800"))), "id", "lone surrogate"),
    Bomb("NUL in a question id",
         from_dict(own(questions=[{"id": "q\x001", "prompt": "Who?"}])), "questions[0].id",
         "U+0000 at index 1 is a control character"),
    Bomb("newline in a model id",
         from_dict(own(models=[{"id": "llama\nsystem", "regions": ["us-east"]}])),
         "models[0].id", "U+000A at index 5"),
    Bomb("right-to-left override in the id", from_dict(own(id="probe\u202egpj.exe")), "id",
         "U+202E RIGHT-TO-LEFT OVERRIDE at index 5 is an invisible formatting character"),
    Bomb("bidirectional control in a Beacon question id",
         lambda _: JobSpec.from_beacon({**beacon(), "questions": ["q\u20661"]},
                                       questions=CATALOGUE),
         "questions[0]", "U+2066"),
    Bomb("10**400 seconds timeout", from_dict(own(limits={"job_timeout": 10**400})),
         "limits.job_timeout", "at most 64 digits"),
    Bomb("1e308 seconds timeout", from_dict(own(limits={"attempt_timeout": 1e308})),
         "limits.attempt_timeout", "at most 30 days (2592000 seconds)"),
    Bomb("10**400 seconds timeout in code", in_code(lambda: Limits(job_timeout=10**400)),
         "limits.job_timeout", "at most 30 days"),
    Bomb("10**400 concurrency in code", in_code(lambda: Limits(max_concurrency=10**400)),
         "limits.max_concurrency", "a 64-bit integer"),
    Bomb("an absurd retry wait in code", in_code(lambda: RetryPolicy(wait_max=1e308)),
         "wait_max", "at most 30 days"),
    Bomb("bidirectional override in a spec built in code",
         in_code(lambda: JobSpec(id="probe", questions=[Question("q\u202e1", "Who?")],
                                 models=[ModelTarget("m", ["us-east"])])),
         "questions[0].id", "U+202E"),
    Bomb("bytes in metadata from YAML",
         written("binary.yaml", f"id: probe\n{YAML_HEAD}metadata: {{b: !!binary aGk=}}\n"),
         "metadata.b", "expected a JSON value"),
    Bomb("a tag the value does not fit",
         written("tag.yaml", f"id: probe\n{YAML_HEAD}metadata: {{n: !!int abc}}\n"),
         "", "line 4, column 15: cannot read this value as tag:yaml.org,2002:int"),
    Bomb("a 1 MiB region name",
         from_dict(own(models=[{"id": "m", "regions": ["r" * (MAX_TEXT_CHARS // 2)]}])),
         "models[0].regions[0]", f"at most {MAX_ID_CHARS} characters"),
]
# fmt: on


def bomb_params() -> list[Any]:
    """Each bomb; a YAML one twice, on LibYAML's parser and on PyYAML's own."""
    params = []
    for bomb in BOMBS:
        if isinstance(bomb.load, written) and bomb.load.name.endswith(".yaml"):
            params.append(pytest.param(bomb, "libyaml", id=f"{bomb.name}-libyaml"))
            params.append(pytest.param(bomb, "python", id=f"{bomb.name}-python"))
        else:
            params.append(pytest.param(bomb, "", id=bomb.name))
    return params


@pytest.fixture
def yaml_parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Read YAML with the parser the test names: ``libyaml`` (the default) or ``python``."""
    parser: str = request.param
    if parser == "python":
        monkeypatch.setattr(_yaml, "StrictLoader", _yaml.PythonLoader)
    elif parser == "libyaml" and not yaml.__with_libyaml__:
        pytest.skip("this machine's PyYAML is built without LibYAML")
    return parser


@pytest.mark.parametrize(("bomb", "yaml_parser"), bomb_params(), indirect=["yaml_parser"])
def test_a_hostile_document_is_refused_naming_where_at_a_bounded_cost(
    bomb: Bomb, yaml_parser: str, tmp_path: Path
) -> None:
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(SpecError) as info:
            bomb.load(tmp_path)
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    problems = info.value.problems
    assert [p.path for p in problems if bomb.fragment in p.message] == [bomb.path], problems
    message = str(info.value)
    assert len(message) <= MESSAGE_LIMIT, message[:MESSAGE_LIMIT]
    assert bomb.fragment in message
    files = [f.stat().st_size for f in tmp_path.iterdir()]
    # A file is read once as bytes, decoded once, and parsed: a few times its size at most.
    assert peak <= 3 * sum(files) + MEMORY_SLACK, f"{peak / 1e6:.1f} MB"
    assert elapsed < TIME_LIMIT


def test_the_table_covers_every_reported_attack() -> None:
    names = " ".join(b.name for b in BOMBS)
    for attack in (
        "alias bomb in metadata",
        "alias bomb as the id",
        "10,000-deep nesting in JSON",
        "10,000-deep nesting in YAML",
        "control character in YAML",
        "5,000-digit integer",
        "overflowing Beacon timeout",
        "10 MB unknown key",
        "NaN in params",
        "lone surrogate",
        "NUL",
        "newline",
        "right-to-left override",
        "10**400 seconds timeout",
    ):
        assert attack in names


# -- the limits, at their boundaries -----------------------------------------------------------


def refused_at(load: Callable[[], object]) -> list[str]:
    """The paths of the problems ``load`` is refused with ([] if it is accepted)."""
    try:
        load()
    except SpecError as exc:
        return [p.path for p in exc.problems]
    return []


def test_nesting_up_to_the_limit_is_accepted_and_one_more_level_is_not() -> None:
    # The document is level 1 and metadata level 2: MAX_DEPTH - 2 more lists reach the limit.
    assert refused_at(lambda: JobSpec.from_dict(own(metadata={"x": nested(MAX_DEPTH - 2)}))) == []
    assert refused_at(lambda: JobSpec.from_dict(own(metadata={"x": nested(MAX_DEPTH - 1)}))) == [
        "metadata.x" + "[0]" * (MAX_DEPTH - 2)
    ]


def test_yaml_nesting_is_bounded_like_json(tmp_path: Path) -> None:
    def load(levels: int) -> list[str]:
        path = tmp_path / "deep.yaml"
        path.write_text(f"id: probe\n{YAML_HEAD}metadata: {{x: {'[' * levels}{']' * levels}}}\n")
        return refused_at(lambda: load_jobspec(path))

    # The document, metadata and x's value are three levels.
    assert load(MAX_DEPTH - 2) == []
    assert load(MAX_DEPTH - 1) == [""]


def test_integers_up_to_64_digits_are_accepted_and_longer_ones_are_not(tmp_path: Path) -> None:
    longest = int("9" * MAX_INT_DIGITS)
    assert JobSpec.from_dict(own(metadata={"n": longest})).metadata["n"] == longest
    assert refused_at(lambda: JobSpec.from_dict(own(metadata={"n": longest + 1}))) == ["metadata.n"]
    for suffix, text in (
        (".json", json.dumps(own(metadata={"n": 0})).replace('"n": 0', f'"n": -{longest}')),
        (".yaml", f"id: probe\n{YAML_HEAD}metadata: {{n: -{longest}}}\n"),
    ):
        path = tmp_path / f"doc{suffix}"
        path.write_text(text)
        assert load_jobspec(path).metadata["n"] == -longest
        path.write_text(text.replace(f"-{longest}", f"-{longest}9"))
        assert refused_at(lambda p=path: load_jobspec(p)) == ["metadata.n"]  # type: ignore[misc]


def test_up_to_the_alias_limit_yaml_aliases_still_work(tmp_path: Path) -> None:
    path = tmp_path / "aliases.yaml"
    path.write_text(
        f"id: probe\n{YAML_HEAD}metadata:\n  a: &a x\n  b: [{', '.join(['*a'] * MAX_ALIASES)}]\n"
    )
    assert load_jobspec(path).metadata["b"] == ["x"] * MAX_ALIASES


def test_a_document_just_under_the_size_limit_is_accepted_and_one_over_is_not() -> None:
    # Sixteen strings of 1 MiB: the document counts a little over 16 MiB with its keys.
    chunk = "x" * MAX_TEXT_CHARS
    assert refused_at(lambda: JobSpec.from_dict(own(metadata={"s": [chunk] * 15}))) == []
    assert refused_at(lambda: JobSpec.from_dict(own(metadata={"s": [chunk] * 16}))) == [
        "metadata.s"
    ]


def test_text_up_to_the_limit_is_accepted_and_longer_is_not() -> None:
    prompt = "?" * MAX_TEXT_CHARS
    spec = JobSpec.from_dict(own(questions=[{"id": "q1", "prompt": prompt}]))
    assert spec.questions[0].prompt == prompt
    with pytest.raises(SpecError) as info:
        JobSpec(id="p", questions=[Question("q1", prompt + "?")], models=[ModelTarget("m", ["x"])])
    assert [(p.path, p.message) for p in info.value.problems] == [
        ("questions[0].prompt", f"too long: a text is at most {MAX_TEXT_CHARS} characters")
    ]


def test_ids_up_to_the_limit_are_accepted_and_longer_ones_are_not() -> None:
    assert JobSpec.from_dict(own(id="j" * MAX_ID_CHARS)).id == "j" * MAX_ID_CHARS
    assert refused_at(lambda: JobSpec.from_dict(own(id="j" * (MAX_ID_CHARS + 1)))) == ["id"]


def test_durations_up_to_30_days_are_accepted_and_longer_ones_are_not() -> None:
    assert Limits(job_timeout=MAX_SECONDS, cancel_grace=MAX_SECONDS).job_timeout == MAX_SECONDS
    with pytest.raises(SpecError) as info:
        Limits(attempt_timeout=MAX_SECONDS + 0.5, cancel_grace=MAX_SECONDS + 1)
    assert [(p.path, p.message) for p in info.value.problems] == [
        (
            "limits.attempt_timeout",
            "expected at most 30 days (2592000 seconds); leave it out (null) for no bound",
        ),
        ("limits.cancel_grace", "expected at most 30 days (2592000 seconds)"),
    ]
    thirty_days_ns = MAX_SECONDS * 1_000_000_000
    spec = JobSpec.from_beacon(beacon(timeout=thirty_days_ns), questions=CATALOGUE)
    assert spec.limits.job_timeout == MAX_SECONDS
    assert refused_at(
        lambda: JobSpec.from_beacon(beacon(timeout=thirty_days_ns + 1), questions=CATALOGUE)
    ) == ["constraints.timeout"]


def test_counts_fit_in_64_bits() -> None:
    assert Limits(max_concurrency=MAX_INT).max_concurrency == MAX_INT
    assert refused_at(lambda: Limits(per_region=MAX_INT + 1)) == ["limits.per_region"]


def test_an_ordinary_mistake_keeps_its_short_message() -> None:
    # The bound's message is for values beyond it; a wrong value is told what was expected.
    with pytest.raises(SpecError) as info:
        Limits(job_timeout=-1, max_concurrency=0)
    assert [p.message for p in info.value.problems] == [
        "expected a positive integer",
        "expected a positive number of seconds",
    ]


# -- ids, in code and in documents alike --------------------------------------------------------


@pytest.mark.parametrize(
    ("bad_id", "fragment"),
    [
        ("a\x00b", "U+0000 at index 1 is a control character"),
        ("a\tb", "U+0009 at index 1 is a control character"),
        ("a\u2028b", "U+2028 LINE SEPARATOR at index 1 is a line separator"),
        ("a\u200bb", "U+200B ZERO WIDTH SPACE at index 1 is an invisible formatting character"),
        ("a\u00a0b", "U+00A0 NO-BREAK SPACE at index 1 is a space other than ' '"),
        ("a\ue000b", "U+E000 at index 1 is a private-use character"),
        ("a\udfffb", "lone surrogate U+DFFF at index 1"),
    ],
)
def test_an_id_is_printable_text_in_code_and_in_documents(bad_id: str, fragment: str) -> None:
    in_code = refused_message(
        lambda: JobSpec(
            id="j", questions=[Question("q", "p")], models=[ModelTarget(bad_id, ["us-east"])]
        )
    )
    in_document = refused_message(
        lambda: JobSpec.from_dict(own(models=[{"id": bad_id, "regions": ["us-east"]}]))
    )
    assert fragment in in_code
    assert in_code == in_document


def refused_message(load: Callable[[], object]) -> str:
    with pytest.raises(SpecError) as info:
        load()
    (problem,) = info.value.problems
    assert problem.path == "models[0].id"
    return problem.message


def test_ids_with_inner_spaces_and_any_script_are_still_fine() -> None:
    for ok in ("capital city", "вопрос-1", "質問", "q\u00e9", "🙂"):
        assert JobSpec.from_dict(own(id=ok)).id == ok


def test_prompts_may_hold_line_breaks_and_tabs() -> None:
    prompt = "Line one.\n\tLine two.\r\n"
    spec = JobSpec.from_dict(own(questions=[{"id": "q1", "prompt": prompt}]))
    assert spec.questions[0].prompt == prompt


def test_params_and_metadata_built_in_code_are_held_to_a_documents_bounds() -> None:
    with pytest.raises(SpecError) as info:
        JobSpec(
            id="j",
            questions=[Question("q", "p")],
            models=[ModelTarget("m", ["us-east"])],
            params={"top_p": float("nan")},
            metadata={"at": object(), "nested": {1: "x"}},
        )
    assert [(p.path, p.message.split(":")[0]) for p in info.value.problems] == [
        ("params.top_p", "expected a finite number"),
        (
            "metadata.at",
            "expected a JSON value (an object, a list, a string, a number, true, false or null)",
        ),
        ("metadata.nested", "expected an object with string keys"),
    ]


def test_the_job_documents_page_states_the_limits_the_code_enforces() -> None:
    page = (Path(__file__).parent.parent / "docs" / "reference" / "job-documents.md").read_text()
    mib = 1024 * 1024
    for stated in (
        f"{MAX_DOCUMENT_BYTES // mib} MiB",
        f"{MAX_YAML_BYTES // mib} MiB",
        f"{MAX_DEPTH} levels",
        f"{MAX_ALIASES} per file",
        f"1 to {MAX_ID_CHARS} characters",
        f"at most {MAX_TEXT_CHARS:,} characters",
        f"at most {MAX_INT_DIGITS} digits",
        f"at most 30 days ({MAX_SECONDS:,} s)",
        f"({MAX_SECONDS * 10**9:,} ns)",
    ):
        assert stated in page, stated
    assert MAX_SECONDS == 30 * 24 * 3600
