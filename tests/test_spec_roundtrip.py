"""The library's own format: ``to_dict`` -> ``from_dict`` gives back an equal spec."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from beacon_orchestrator import JobSpec, Limits, MinSuccessRate, SpecError, UsageError
from beacon_orchestrator.testing._spec_strategies import job_specs

DATA = Path(__file__).parent / "data"


@given(job_specs())
def test_any_valid_spec_survives_to_dict_then_from_dict_unchanged(spec: JobSpec) -> None:
    """Invariant: from_dict(to_dict(spec)) == spec, and to_dict is stable."""
    doc = spec.to_dict()
    again = JobSpec.from_dict(doc)
    assert again == spec
    assert again.to_dict() == doc


@given(job_specs())
def test_any_valid_spec_survives_json_unchanged(spec: JobSpec) -> None:
    """Invariant: the own format is plain JSON (no NaN/Infinity) and loads back equal."""
    text = json.dumps(spec.to_dict(), allow_nan=False, ensure_ascii=False)
    assert JobSpec.from_dict(json.loads(text)) == spec


@given(job_specs(max_questions=4, max_models=3))
def test_any_valid_spec_survives_yaml_unchanged(spec: JobSpec) -> None:
    """Invariant: the own format written as YAML loads back equal."""
    # allow_unicode=False: PyYAML emits a raw NEL (U+0085) in keys and then reads it as a line
    # break; escaped output avoids that emitter bug, which is not ours to test.
    text = yaml.safe_dump(spec.to_dict(), allow_unicode=False, sort_keys=False)
    assert JobSpec.from_dict(yaml.safe_load(text)) == spec


@given(job_specs(max_questions=3, max_models=2, max_samples=5))
def test_samples_survive_the_document_and_json_and_one_is_left_out(spec: JobSpec) -> None:
    """Invariant: a spec of any number of samples round-trips through its document and JSON;
    the document names samples only when there are several."""
    doc = json.loads(json.dumps(spec.to_dict()))
    assert JobSpec.from_dict(doc) == spec
    assert doc.get("samples", 1) == spec.samples
    assert ("samples" in doc) == (spec.samples > 1)
    assert spec.size == spec.cells * spec.samples


@given(job_specs())
def test_to_dict_is_detached_from_the_spec(spec: JobSpec) -> None:
    """Invariant: editing the output of to_dict never changes the spec it came from."""
    before = spec.to_dict()
    doc = spec.to_dict()
    doc["metadata"]["added"] = [1]
    doc["params"]["added"] = {"x": 1}
    doc["models"][0]["regions"].append("elsewhere")
    assert spec.to_dict() == before


@given(
    job_specs(
        min_questions=2,
        max_questions=3,
        min_models=2,
        max_models=2,
        max_regions=2,
        regions=["us-east", "sa-east"],
        with_limits=False,
    )
)
def test_strategy_honours_its_shape_arguments(spec: JobSpec) -> None:
    """Invariant: job_specs stays within the bounds it was given."""
    assert 2 <= len(spec.questions) <= 3
    assert len(spec.models) == 2
    assert set(spec.regions) <= {"us-east", "sa-east"}
    assert spec.limits == Limits()
    assert spec.policy.min_regions <= len(spec.regions)


@given(st.data())
def test_strategy_draws_up_to_max_regions(data: st.DataObject) -> None:
    """Invariant: a job never has more distinct regions than max_regions asks for."""
    max_regions = data.draw(st.integers(1, 10))
    spec = data.draw(job_specs(max_regions=max_regions, max_questions=2, max_models=3))
    assert 1 <= len(spec.regions) <= max_regions


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_questions": 0},
        {"min_questions": 5, "max_questions": 4},
        {"min_models": 0},
        {"max_regions": 0},
        {"regions": ["EU"]},
        {"regions": []},
    ],
)
def test_strategy_refuses_inconsistent_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        job_specs(**kwargs)


def test_beacon_8q_job_loads_and_round_trips() -> None:
    job = json.loads((DATA / "beacon-8q.json").read_text())["job"]
    spec = JobSpec.from_dict(job)
    assert spec.id == "beacon-8q"
    assert len(spec.questions) == 8
    assert [(m.id, m.regions) for m in spec.models] == [
        ("llama3.2-1b", ("us-east", "eu-west", "asia-pacific")),
        ("qwen2.5-1.5b", ("us-east", "eu-west", "asia-pacific")),
        ("mistral-7b", ("eu-west", "asia-pacific")),
    ]
    assert spec.size == 64
    assert spec.policy == MinSuccessRate(rate=0.67)
    assert spec.limits == Limits(max_concurrency=10)
    assert JobSpec.from_dict(spec.to_dict()) == spec


def test_to_dict_shape() -> None:
    job = json.loads((DATA / "beacon-8q.json").read_text())["job"]
    doc = JobSpec.from_dict(job).to_dict()
    assert list(doc) == ["id", "questions", "models", "params", "limits", "policy", "metadata"]
    assert doc["limits"] == {
        "max_concurrency": 10,
        "per_region": None,
        "per_endpoint": 1,
        "attempt_timeout": 600.0,
        "job_timeout": None,
        "cancel_grace": 0.0,
        "max_cost": None,
        "cold_start_timeout": None,
    }
    assert doc["policy"] == {
        "min_success_rate": 0.67,
        "min_regions": 1,
        "empty_counts_as_success": True,
    }
    assert doc["models"][2] == {"id": "mistral-7b", "regions": ["eu-west", "asia-pacific"]}


def test_aliases_in_a_document_are_normalised() -> None:
    spec = JobSpec.from_dict(
        {
            "id": "j",
            "questions": [{"id": "q", "prompt": "p"}],
            "models": [{"id": "m", "regions": ["US", "Europe", "asia-southeast", "SA-East"]}],
            "regions": ["sa-east"],  # a region of one's own is declared
        }
    )
    assert spec.models[0].regions == ("us-east", "eu-west", "asia-pacific", "sa-east")


def test_optional_sections_may_be_null() -> None:
    spec = JobSpec.from_dict(
        {
            "id": "j",
            "questions": [{"id": "q", "prompt": "p", "category": None}],
            "models": [{"id": "m", "regions": ["us-east"], "name": None}],
            "params": None,
            "limits": None,
            "policy": None,
            "metadata": None,
        }
    )
    assert spec.limits == Limits()
    assert spec.policy == MinSuccessRate()


def test_from_dict_does_not_share_nested_data_with_the_document() -> None:
    doc = {
        "id": "j",
        "questions": [{"id": "q", "prompt": "p"}],
        "models": [{"id": "m", "regions": ["us-east"]}],
        "metadata": {"tags": ["a"]},
    }
    spec = JobSpec.from_dict(doc)
    doc["metadata"]["tags"].append("b")  # type: ignore[index]
    assert spec.metadata == {"tags": ["a"]}


def test_spec_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="invalid job spec"):
        JobSpec.from_dict({})
    assert issubclass(SpecError, ValueError)
