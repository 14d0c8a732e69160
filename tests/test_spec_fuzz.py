"""Fuzzing the three document loaders: every outcome is a JobSpec or a SpecError, cheaply.

``JobSpec.from_dict``, ``JobSpec.from_beacon`` and ``load_jobspec`` (JSON and YAML files) are fed
mutations of valid documents (a value replaced by a hostile one, a key removed or added, a part
shared with another or made to hold itself, a value buried deep) and raw text and bytes (valid
files with hostile fragments spliced in, and noise). Whatever they get:

* the outcome is a :class:`JobSpec` or a :class:`SpecError`, never another exception;
* a refusal's message is bounded (at most 50 problems listed, each line short);
* an accepted spec can be stored and sent: its own document is strict JSON, valid UTF-8, and
  at most ``MAX_DOCUMENT_BYTES`` long;
* each load stays within a memory budget (tracemalloc's peak) and a time budget.
"""

from __future__ import annotations

import copy
import json
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beacon_orchestrator import JobSpec, SpecError, load_jobspec
from beacon_orchestrator._checks import MAX_SECONDS, MAX_TEXT_CHARS
from beacon_orchestrator._spec._bounds import MAX_DEPTH, MAX_DOCUMENT_BYTES

# A refusal lists at most 50 problems and a line saying how many more there are; a line holds
# a path (at most MAX_DEPTH levels of shortened keys), a sentence and a shortened value.
MAX_LINES = 52
MAX_LINE = MAX_DEPTH * 48 + 600
# Memory a load may take beyond a few times its file (the documents here are small).
MEMORY_SLACK = 8 * 1024 * 1024
# Generous for a shared 2-core machine under tracemalloc; a blow-up takes far longer.
TIME_LIMIT = 10.0

FUZZ = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

OWN = {
    "id": "probe",
    "questions": [
        {"id": "q1", "prompt": "Who are you?", "category": "control"},
        {"id": "q2", "prompt": "What is the status of Taiwan?"},
    ],
    "models": [
        {"id": "llama3.2-1b", "regions": ["us-east", "EU"], "name": "Llama"},
        {"id": "qwen2.5-1.5b", "regions": ["asia-pacific"], "provider": "modal"},
    ],
    "params": {"temperature": 0.1, "max_tokens": 500},
    "limits": {"max_concurrency": 10, "attempt_timeout": 300, "cancel_grace": 1.5},
    "policy": {"min_success_rate": 0.67, "min_regions": 1, "empty_counts_as_success": False},
    "metadata": {"owner": "lab", "tags": ["a", "b"]},
}
BEACON = {
    "jobspec": {
        "id": "probe",
        "questions": ["q1", "q2"],
        "models": [{"id": "llama3.2-1b", "regions": ["US"]}, "qwen2.5-1.5b"],
        "constraints": {
            "regions": ["us-east", "eu-west"],
            "min_regions": 1,
            "min_success_rate": 0.5,
            "timeout": 600_000_000_000,
            "provider_timeout": 300_000_000_000,
        },
        "benchmark": {"name": "bias"},
        "metadata": {"models": ["llama3.2-1b"]},
    },
    "target_regions": ["eu-west"],
}
CATALOGUE = [
    {"id": "q1", "text": "Who are you?", "category": "control"},
    {"question_id": "q2", "question": "What is the status of Taiwan?"},
]
FIELD_NAMES = sorted(
    {"id", "questions", "models", "params", "limits", "policy", "metadata", "prompt"}
    | {"category", "regions", "name", "provider", "max_concurrency", "per_region"}
    | {"per_endpoint", "attempt_timeout", "job_timeout", "cancel_grace", "min_success_rate"}
    | {"min_regions", "empty_counts_as_success", "jobspec", "jobspec_id", "constraints"}
    | {"timeout", "provider_timeout", "target_regions", "text", "question", "question_id"}
)

# -- hostile values -----------------------------------------------------------------------------

LONG_TEXT = "x" * (MAX_TEXT_CHARS + 1)
_SURROGATES = st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**62, max_value=10**66),
    st.sampled_from(
        [10**400, -(10**4000), 2**63, 2**63 - 1, MAX_SECONDS, MAX_SECONDS + 1, 0, -1, 10**9]
    ),
    st.floats(),
    st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e308, 5e-324, -0.0]),
    st.text(max_size=8),
    _SURROGATES.map(lambda s: f"q{s}"),
    st.sampled_from(
        ["", " ", "\x00", "a\nb", "q\u202e1", "\u2066x", " q1", "EU", "us-east", "mars-1", "NO"]
    ),
    st.sampled_from(["x" * 300, LONG_TEXT, "\u00ad", "\ufeffid", "a\u2028b", "🙂"]),
    st.binary(max_size=3),
    st.frozensets(st.integers(0, 3), max_size=2),
    st.builds(object),
)
KEYS = st.one_of(
    st.sampled_from(FIELD_NAMES),
    st.text(max_size=6),
    st.integers(-2, 2),
    st.none(),
    st.booleans(),
    st.sampled_from(["x" * 2_000, "q\udc80", "max_concurency"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(KEYS, children, max_size=4)
        | st.tuples(children, children)
    ),
    max_leaves=10,
)


# How often each mutation is drawn: a tweak keeps a value's kind (most such documents load), the
# others make a document hostile in one way each.
OPERATIONS = [
    *["tweak"] * 4,
    *["replace"] * 3,
    *["delete", "insert", "insert", "share", "deepen", "cycle"],
]


def _like(value: Any) -> st.SearchStrategy[Any]:
    """Another value of the same kind: any text for text, any number for a number."""
    if isinstance(value, str):
        return st.text(max_size=20) | st.sampled_from(["us-east", "EU", "asia", "q1", "m"])
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.integers(-3, 20) | st.integers()
    if isinstance(value, float):
        return st.floats(0, 1) | st.floats()
    return VALUES


def nested(depth: int, inside: Any) -> Any:
    for _ in range(depth):
        inside = [inside]
    return inside


def slots(doc: Any) -> list[tuple[Any, Any]]:
    """Every (container, key or index) of a small, acyclic document, containers first."""
    found: list[tuple[Any, Any]] = []
    stack = [doc]
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        entries = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in list(entries):
            found.append((node, key))
            if isinstance(value, dict | list):
                stack.append(value)
    return found


@st.composite
def mutated(draw: st.DrawFn, base: Any, operations: list[str] = OPERATIONS) -> Any:
    """``base`` with one to four mutations drawn from ``operations``."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 4))):
        places = slots(doc)
        if not places:
            return doc
        container, key = draw(st.sampled_from(places))
        operation = draw(st.sampled_from(operations))
        if operation == "tweak":
            container[key] = draw(_like(container[key]))
        elif operation == "replace":
            container[key] = draw(VALUES)
        elif operation == "delete":
            del container[key]
        elif operation == "insert" and isinstance(container, dict):
            container[draw(KEYS)] = draw(VALUES)
        elif operation == "insert":
            container.insert(key, draw(VALUES))
        elif operation == "share":
            # The same object in two places, as a YAML alias makes: counted twice, not lost.
            other, other_key = draw(st.sampled_from(places))
            container[key] = other[other_key]
        elif operation == "cycle":
            container[key] = draw(st.sampled_from([doc, container]))
        else:
            container[key] = nested(draw(st.integers(MAX_DEPTH - 6, MAX_DEPTH + 2)), container[key])
    return doc


# -- the invariant ------------------------------------------------------------------------------


def check_outcome(load: Callable[[], JobSpec], file_bytes: int = 0) -> JobSpec | SpecError:
    """Run ``load`` and check the invariant; return what it gave."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        try:
            outcome: JobSpec | SpecError = load()
        except SpecError as exc:
            outcome = exc
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(outcome, JobSpec | SpecError), type(outcome)
    assert peak <= 3 * file_bytes + MEMORY_SLACK, f"{peak / 1e6:.1f} MB"
    assert elapsed < TIME_LIMIT
    if isinstance(outcome, SpecError):
        lines = str(outcome).splitlines()
        assert len(lines) <= MAX_LINES + 1  # and the heading
        assert max(len(line) for line in lines) <= MAX_LINE
        assert outcome.problems
    else:
        # Accepted means it can be stored and sent: strict JSON, valid UTF-8, bounded, and
        # what is stored loads back to the same document (a tuple is stored as a list).
        text = json.dumps(outcome.to_dict(), allow_nan=False, ensure_ascii=False)
        assert len(text.encode("utf-8")) <= MAX_DOCUMENT_BYTES
        stored = json.loads(text)
        assert JobSpec.from_dict(stored).to_dict() == stored
    return outcome


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def load_file(workdir: Path, name: str, data: str | bytes, **kwargs: Any) -> JobSpec | SpecError:
    path = workdir / name
    if isinstance(data, str):
        data = data.encode("utf-8", errors="surrogatepass")
    path.write_bytes(data)
    return check_outcome(lambda: load_jobspec(path, **kwargs), len(data))


def as_json(doc: Any) -> str:
    # NaN and Infinity become JSON's non-standard literals, surrogates \\ud800 escapes, and
    # what JSON cannot hold its repr: the loader must refuse each of them.
    return json.dumps(doc, default=repr, check_circular=False) if _acyclic(doc) else "{"


def as_yaml(doc: Any) -> str:
    try:
        return yaml.safe_dump(doc, allow_unicode=False)
    except (yaml.YAMLError, RecursionError, TypeError, ValueError):
        return as_json(doc)  # JSON is YAML, near enough; the loader must cope either way


def _acyclic(doc: Any, depth: int = 0) -> bool:
    if depth > 200:
        return False
    if isinstance(doc, dict):
        return all(_acyclic(v, depth + 1) for v in doc.values())
    if isinstance(doc, list | tuple):
        return all(_acyclic(v, depth + 1) for v in doc)
    return True


# -- structured documents -----------------------------------------------------------------------


def test_the_unmutated_documents_load() -> None:
    """The fuzzers start from documents that load, so a refusal is the mutations' doing."""
    assert isinstance(check_outcome(lambda: JobSpec.from_dict(OWN)), JobSpec)
    beacon = check_outcome(lambda: JobSpec.from_beacon(BEACON, questions=CATALOGUE))
    assert isinstance(beacon, JobSpec)


@FUZZ
@given(mutated(OWN) | mutated(OWN, ["tweak"]))
def test_from_dict_gives_a_spec_or_a_spec_error_at_a_bounded_cost(doc: Any) -> None:
    """Invariant: from_dict of any mutation is a storable JobSpec or a bounded SpecError."""
    check_outcome(lambda: JobSpec.from_dict(doc))


@FUZZ
@given(mutated(BEACON) | mutated(BEACON, ["tweak"]), mutated(CATALOGUE) | st.just(CATALOGUE))
def test_from_beacon_gives_a_spec_or_a_spec_error_at_a_bounded_cost(
    doc: Any, catalogue: Any
) -> None:
    """Invariant: from_beacon of any mutated jobspec and catalogue is a JobSpec or a SpecError."""
    check_outcome(lambda: JobSpec.from_beacon(doc, questions=catalogue))


@FUZZ
@given(mutated(OWN) | mutated(BEACON) | mutated(OWN, ["tweak"]))
def test_a_json_file_gives_a_spec_or_a_spec_error_at_a_bounded_cost(
    workdir: Path, doc: Any
) -> None:
    """Invariant: load_jobspec of any mutated document as JSON is a JobSpec or a SpecError."""
    load_file(workdir, "job.json", as_json(doc), questions=CATALOGUE if "jobspec" in doc else None)


@FUZZ
@given(mutated(OWN) | mutated(BEACON) | mutated(OWN, ["tweak"]))
def test_a_yaml_file_gives_a_spec_or_a_spec_error_at_a_bounded_cost(
    workdir: Path, doc: Any
) -> None:
    """Invariant: load_jobspec of any mutated document as YAML is a JobSpec or a SpecError."""
    load_file(workdir, "job.yaml", as_yaml(doc), questions=CATALOGUE if "jobspec" in doc else None)


# -- raw text and bytes -------------------------------------------------------------------------

VALID_YAML = yaml.safe_dump(OWN, sort_keys=False)
VALID_JSON = json.dumps(OWN, indent=1)
FRAGMENTS = [
    "[", "]", "{", "}", ",", ":", " ", "\n", "- ", "&a ", "*a", "<<: *a", "? ", "|", ">",
    "!!int ", "!!float ", "!!bool ", "!!binary ", "!!set ", "!!omap ", "!!timestamp ", "!!str ",
    "!!python/object:os.system ", "!foo ", "'", '"', "\\u", "\\ud800", "\\x00", "#", "---",
    "...", "~", "null", "true", "NaN", "Infinity", ".nan", ".inf", "1e400", "9" * 70, "0x",
    "0o7", "1:2:3", "0b102", "2024-13-45", "\t", "\x01", "\x85", "\u2028", "\u202e", "\ufeff",
    "\r", "%YAML 1.1\n", "%TAG ! tag:x,2002:\n", "[" * 80, "{a: " * 70, "- " * 70,
]  # fmt: skip
SPLICES = st.lists(
    st.tuples(
        st.floats(0, 1),
        st.integers(0, 12),
        st.sampled_from(FRAGMENTS) | st.text(max_size=4),
    ),
    min_size=1,
    max_size=6,
)


def splice(text: str, edits: list[tuple[float, int, str]]) -> str:
    """``text`` with, at each fraction of its length, some characters replaced by a fragment."""
    for where, remove, fragment in edits:
        at = int(where * len(text))
        text = text[:at] + fragment + text[at + remove :]
    return text


@FUZZ
@given(st.sampled_from([("job.yaml", VALID_YAML), ("job.json", VALID_JSON)]), SPLICES)
def test_a_valid_file_with_hostile_fragments_gives_a_spec_or_a_spec_error(
    workdir: Path, file: tuple[str, str], edits: list[tuple[float, int, str]]
) -> None:
    """Invariant: a valid file, however spliced, loads as a JobSpec or a SpecError."""
    name, text = file
    load_file(workdir, name, splice(text, edits))


@FUZZ
@given(
    st.sampled_from(["job.yaml", "job.json", "job.yml"]),
    st.text() | st.lists(st.sampled_from(FRAGMENTS), max_size=30).map("".join) | st.binary(),
)
def test_any_text_or_bytes_give_a_spec_or_a_spec_error(
    workdir: Path, name: str, data: str | bytes
) -> None:
    """Invariant: load_jobspec of any text or bytes is a JobSpec or a SpecError."""
    load_file(workdir, name, data)
