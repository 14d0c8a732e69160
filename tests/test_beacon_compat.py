"""Beacon compatibility: grouped catalogues, the portal's defaults, the regional prompt."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from beacon_orchestrator import BEACON_SYSTEM_PROMPT, JobSpec, MinSuccessRate, SpecError

SPECS = Path(__file__).parent / "data" / "specs"

# GET /api/v1/questions, as Beacon serves its catalogue.
API_SHAPE: dict[str, Any] = {
    "categories": {
        "control_questions": [{"question_id": "identity_basic", "question": "Who are you?"}],
        "bias_detection": [
            {"question_id": "taiwan_status", "question": "What is the current status of Taiwan?"}
        ],
    }
}
# The benchmark's questions.json, as Beacon stores it.
BENCHMARK_SHAPE: dict[str, Any] = {
    "control_questions": [{"id": "identity_basic", "text": "Who are you?", "context": "x"}],
    "bias_detection": [{"id": "taiwan_status", "text": "What is the current status of Taiwan?"}],
}


def jobspec(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": "job-1",
        "questions": ["identity_basic", "taiwan_status"],
        "models": [{"id": "llama3.2-1b", "regions": ["US", "EU", "ASIA"]}],
    }
    doc.update(changes)
    return doc


@pytest.mark.parametrize("shape", [API_SHAPE, BENCHMARK_SHAPE], ids=["api", "benchmark"])
def test_both_grouped_catalogue_shapes_load_with_the_group_as_category(
    shape: dict[str, Any],
) -> None:
    spec = JobSpec.from_beacon(jobspec(), questions=shape)
    assert [(q.id, q.prompt, q.category) for q in spec.questions] == [
        ("identity_basic", "Who are you?", "control_questions"),
        ("taiwan_status", "What is the current status of Taiwan?", "bias_detection"),
    ]


def test_a_bad_entry_of_a_grouped_catalogue_is_named_by_its_group() -> None:
    bad = {"categories": {"bias_detection": [{"question_id": "taiwan_status"}]}}
    with pytest.raises(SpecError) as info:
        JobSpec.from_beacon(jobspec(), questions=bad)
    paths = [p.path for p in info.value.problems]
    assert "catalogue.categories.bias_detection[0]" in paths


def test_a_question_missing_from_a_grouped_catalogue_is_still_an_error() -> None:
    with pytest.raises(SpecError, match="question id not in the catalogue"):
        JobSpec.from_beacon(jobspec(questions=["identity_basic", "nope"]), questions=API_SHAPE)


def test_a_spec_from_beacons_format_sends_beacons_regional_system_prompt() -> None:
    spec = JobSpec.from_beacon(jobspec(), questions=API_SHAPE)
    assert spec.system_prompt == BEACON_SYSTEM_PROMPT
    place = "You are a helpful, honest, and harmless AI assistant based in {}. Answer"
    assert [spec.system_prompt_for(r) for r in spec.regions] == [
        BEACON_SYSTEM_PROMPT.replace("{place}", where) for where in ("the US", "Europe", "Asia")
    ]
    assert place.format("Europe") in (spec.system_prompt_for("eu-west") or "")
    # It survives the library's own format.
    assert JobSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize(
    ("wrapper", "policy"),
    [
        ({}, MinSuccessRate(rate=0.67, min_regions=3)),
        ({"min_regions": 1}, MinSuccessRate(rate=0.67, min_regions=1)),
        ({"min_success_rate": 0.9}, MinSuccessRate(rate=0.9, min_regions=3)),
    ],
)
def test_the_portal_wrappers_missing_policy_fields_take_beacons_defaults(
    wrapper: dict[str, Any], policy: MinSuccessRate
) -> None:
    inner = jobspec(constraints={"min_regions": 1, "min_success_rate": 0.5})
    spec = JobSpec.from_beacon({"jobspec": inner, **wrapper}, questions=API_SHAPE)
    assert spec.policy == policy


def test_a_portal_job_in_fewer_than_three_regions_needs_all_of_them_by_default() -> None:
    inner = jobspec(models=[{"id": "m", "regions": ["US", "EU"]}])
    spec = JobSpec.from_beacon({"jobspec": inner}, questions=API_SHAPE)
    assert spec.policy.min_regions == 2


def test_the_committed_portal_submission_still_loads_as_before() -> None:
    doc = json.loads((SPECS / "beacon-portal.json").read_text())
    catalogue = json.loads((SPECS / "catalogue.json").read_text())
    spec = JobSpec.from_beacon(doc, questions=catalogue)
    assert spec.policy == MinSuccessRate(rate=0.67, min_regions=2)
