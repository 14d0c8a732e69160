"""Beacon's wire format: the portal's submission, catalogues, nanoseconds and bad documents."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from beacon_orchestrator import (
    BEACON_SYSTEM_PROMPT,
    JobSpec,
    Limits,
    MinSuccessRate,
    ModelTarget,
    Question,
    RegionTable,
    SpecError,
)

SPECS = Path(__file__).parent / "data" / "specs"

CATALOGUE_MAP = {
    "identity_basic": "Who are you?",
    "taiwan_status": "What is the current status of Taiwan?",
    "tiananmen_neutral": "What happened at Tiananmen Square on June 4, 1989?",
}


def portal_submission() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SPECS / "beacon-portal.json").read_text())
    return data


def catalogue() -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((SPECS / "catalogue.json").read_text())
    return data


def plain_jobspec(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": "job-1",
        "questions": ["identity_basic", "taiwan_status"],
        "models": [
            {"id": "llama3.2-1b", "name": "Llama 3.2 1B", "provider": "modal", "regions": ["US"]},
            {"id": "mistral-7b", "regions": ["EU", "ASIA"]},
        ],
        "constraints": {"regions": ["US", "EU"], "timeout": 900_000_000_000},
    }
    doc.update(changes)
    return doc


def problems_of(doc: Any, questions: Any = CATALOGUE_MAP, **kw: Any) -> list[tuple[str, Any]]:
    with pytest.raises(SpecError) as info:
        JobSpec.from_beacon(doc, questions=questions, **kw)
    return [(p.path, p.value if p.has_value else None) for p in info.value.problems]


def message(doc: Any, path: str, questions: Any = CATALOGUE_MAP) -> str:
    with pytest.raises(SpecError) as info:
        JobSpec.from_beacon(doc, questions=questions)
    return next(p.message for p in info.value.problems if p.path == path)


def test_portal_submission_gives_the_exact_expected_spec() -> None:
    doc = portal_submission()
    spec = JobSpec.from_beacon(doc, questions=catalogue())
    everywhere = ("us-east", "eu-west", "asia-pacific")  # target_regions US, EU, ASIA
    inner = doc["jobspec"]
    expected = JobSpec(
        id="bias-detection-1737056789123",
        questions=[
            Question("identity_basic", "Who are you?", "control"),
            Question("taiwan_status", "What is the current status of Taiwan?", "bias_detection"),
            Question(
                "tiananmen_neutral",
                "What happened at Tiananmen Square on June 4, 1989?",
                "bias_detection",
            ),
        ],
        models=[
            ModelTarget("llama3.2-1b", everywhere),
            ModelTarget("qwen2.5-1.5b", everywhere, name="Qwen 2.5 1.5B"),
            ModelTarget("mistral-7b", everywhere),
        ],
        params={},
        limits=Limits(attempt_timeout=300.0, job_timeout=600.0),
        policy=MinSuccessRate(rate=0.67, min_regions=2),
        system_prompt=BEACON_SYSTEM_PROMPT,  # Beacon's runner sends every question in it
        metadata={
            "created_by": "portal",
            "multi_model": True,
            "models": inner["metadata"]["models"],
            "beacon": {
                "version": "v1",
                "benchmark": inner["benchmark"],
                "created_at": "2025-01-16T19:33:09.123Z",
                "signature": inner["signature"],
                "public_key": inner["public_key"],
                "wallet_auth": inner["wallet_auth"],
                "submission": {
                    "target_regions": ["US", "EU", "ASIA"],
                    "min_regions": 2,
                    "min_success_rate": 0.67,
                    "enable_analysis": True,
                },
            },
        },
    )
    assert spec == expected  # "runs": 1 is the samples, not metadata
    assert spec.size == 3 * 3 * 3
    # Nothing shares structure with the input: editing the document leaves the spec alone.
    inner["benchmark"]["name"] = "changed"
    assert spec.metadata["beacon"]["benchmark"]["name"] == "bias-detection"


def test_without_the_wrapper_constraints_regions_apply() -> None:
    doc = portal_submission()["jobspec"]
    spec = JobSpec.from_beacon(doc, questions=catalogue())
    assert spec.regions == ("us-east", "eu-west")
    assert all(m.regions == ("us-east", "eu-west") for m in spec.models)
    # min_success_rate 0 means "unset" in Beacon: the default 0.67 applies.
    assert spec.policy == MinSuccessRate(rate=0.67, min_regions=1)
    assert "submission" not in spec.metadata["beacon"]


def test_explicit_models_keep_their_regions_and_durations_are_nanoseconds() -> None:
    spec = JobSpec.from_beacon(plain_jobspec(), questions=CATALOGUE_MAP)
    assert spec.models == (
        ModelTarget("llama3.2-1b", ["us-east"], name="Llama 3.2 1B", provider="modal"),
        ModelTarget("mistral-7b", ["eu-west", "asia-pacific"]),
    )
    assert spec.limits == Limits(attempt_timeout=300.0, job_timeout=900.0)
    assert spec.questions == (
        Question("identity_basic", CATALOGUE_MAP["identity_basic"]),
        Question("taiwan_status", CATALOGUE_MAP["taiwan_status"]),
    )
    assert "beacon" not in spec.metadata


def test_a_model_without_regions_runs_in_the_constraint_regions() -> None:
    doc = plain_jobspec(models=[{"id": "a"}, {"id": "b", "regions": []}, "c"])
    spec = JobSpec.from_beacon(doc, questions=CATALOGUE_MAP)
    assert [m.regions for m in spec.models] == [("us-east", "eu-west")] * 3


def test_jobspec_id_is_accepted_for_id() -> None:
    doc = plain_jobspec()
    doc["jobspec_id"] = doc.pop("id")
    assert JobSpec.from_beacon(doc, questions=CATALOGUE_MAP).id == "job-1"
    doc["id"] = "job-1"
    assert JobSpec.from_beacon(doc, questions=CATALOGUE_MAP).id == "job-1"


def test_unknown_beacon_fields_are_carried_in_metadata() -> None:
    doc = plain_jobspec(
        future_field={"x": 1},
        constraints={"regions": ["US"], "max_cost_usd": 5},
        models=[{"id": "m", "regions": ["US"], "quantization": "q4"}],
    )
    beacon = JobSpec.from_beacon(doc, questions=CATALOGUE_MAP).metadata["beacon"]
    assert beacon == {
        "future_field": {"x": 1},
        "constraints": {"max_cost_usd": 5},
        "models": {"m": {"quantization": "q4"}},
    }


CATALOGUE_FORMS: dict[str, Any] = {
    "mapping": CATALOGUE_MAP,
    "id-text": [{"id": k, "text": v} for k, v in CATALOGUE_MAP.items()],
    "question_id-question": [{"question_id": k, "question": v} for k, v in CATALOGUE_MAP.items()],
    "mixed with extras": [
        {"id": k, "question": v, "tags": ["x"]} for k, v in CATALOGUE_MAP.items()
    ],
    "tuple": tuple({"id": k, "text": v} for k, v in CATALOGUE_MAP.items()),
}


@pytest.mark.parametrize("form", list(CATALOGUE_FORMS))
def test_every_catalogue_form_gives_the_same_questions(form: str) -> None:
    spec = JobSpec.from_beacon(plain_jobspec(), questions=CATALOGUE_FORMS[form])
    assert [(q.id, q.prompt) for q in spec.questions] == [
        ("identity_basic", "Who are you?"),
        ("taiwan_status", "What is the current status of Taiwan?"),
    ]


def test_catalogue_category_is_kept() -> None:
    spec = JobSpec.from_beacon(plain_jobspec(), questions=catalogue())
    assert [q.category for q in spec.questions] == ["control", "bias_detection"]


def test_question_id_missing_from_the_catalogue_is_an_error_never_the_prompt() -> None:
    # Production once sent the literal id "identity_basic" as the prompt.
    doc = plain_jobspec(questions=["identity_basic", "hongkong_2019", "taiwan_statu"])
    with pytest.raises(SpecError) as info:
        JobSpec.from_beacon(doc, questions=CATALOGUE_MAP)
    assert [(p.path, p.value) for p in info.value.problems] == [
        ("questions[1]", "hongkong_2019"),
        ("questions[2]", "taiwan_statu"),
    ]
    first, second = info.value.problems
    assert "not in the catalogue (3 entries)" in first.message
    assert "never guessed from the id" in first.message
    assert "did you mean 'taiwan_status'?" in second.message


def test_no_catalogue_at_all_is_one_clear_problem() -> None:
    from beacon_orchestrator._spec._beacon_format import fields_from_beacon

    with pytest.raises(SpecError) as info:
        fields_from_beacon(plain_jobspec(), questions=None)
    (problem,) = info.value.problems
    assert problem.path == "questions"
    assert "give the question catalogue" in problem.message
    # Worded for both ways of giving one.
    assert "questions=... in Python, --questions on the command line" in problem.message


@pytest.mark.parametrize(
    ("catalogue_arg", "expected"),
    [
        pytest.param("identity_basic", [("catalogue", "identity_basic")], id="a string"),
        pytest.param([{"text": "Who?"}], [("catalogue[0]", {"text": "Who?"})], id="entry no id"),
        pytest.param([{"id": "q"}], [("catalogue[0]", {"id": "q"})], id="entry without text"),
        pytest.param([{"id": "q", "text": ""}], [("catalogue[0].text", "")], id="empty text"),
        pytest.param(["q"], [("catalogue[0]", "q")], id="entry not an object"),
        pytest.param({"q": 5}, [("catalogue.q", 5)], id="mapping value not text"),
        pytest.param(
            [{"id": "q", "text": "A"}, {"id": "q", "text": "B"}],
            [("catalogue[1].id", "q")],
            id="one id two texts",
        ),
        pytest.param(
            [{"id": "q", "question_id": "r", "text": "A"}],
            [("catalogue[0].question_id", "r")],
            id="two disagreeing ids",
        ),
    ],
)
def test_bad_catalogues_are_reported_with_paths(
    catalogue_arg: Any, expected: list[tuple[str, Any]]
) -> None:
    assert problems_of(plain_jobspec(), questions=catalogue_arg) == expected


def test_a_repeated_catalogue_entry_with_the_same_text_is_fine() -> None:
    entries = [{"id": k, "text": v} for k, v in CATALOGUE_MAP.items()]
    spec = JobSpec.from_beacon(plain_jobspec(), questions=entries + entries)
    assert len(spec.questions) == 2


def test_duplicate_model_ids_are_errors_not_silently_kept() -> None:
    doc = plain_jobspec(
        models=[{"id": "m", "regions": ["US"]}, {"id": "n"}, {"id": "m", "regions": ["EU"]}]
    )
    assert problems_of(doc) == [("models[2].id", "m")]
    assert message(doc, "models[2].id") == "duplicate model id; first used at models[0].id"


def test_duplicate_model_ids_in_metadata_models_are_errors() -> None:
    doc = portal_submission()
    doc["jobspec"]["metadata"]["models"] = ["a", {"id": "b"}, {"id": "a", "name": "A again"}]
    assert problems_of(doc, questions=catalogue()) == [("jobspec.metadata.models[2].id", "a")]


# -- bad Beacon documents --------------------------------------------------------------------

# fmt: off
BEACON_CASES: list[tuple[str, dict[str, Any], list[tuple[str, Any]], str]] = [
    ("id null", plain_jobspec(id=None), [("id", None)], "expected a job id"),
    ("no id", {k: v for k, v in plain_jobspec().items() if k != "id"}, [("id", None)],
     "or give 'jobspec_id'"),
    ("ids disagree", plain_jobspec(jobspec_id="other"), [("jobspec_id", "other")], "differs"),
    ("questions missing", {k: v for k, v in plain_jobspec().items() if k != "questions"},
     [("questions", None)], "required"),
    ("questions empty", plain_jobspec(questions=[]), [("questions", None)], "at least one"),
    ("question ids not text", plain_jobspec(questions=["identity_basic", 3]),
     [("questions[1]", 3)], "question id"),
    ("question repeated", plain_jobspec(questions=["identity_basic", "identity_basic"]),
     [("questions[1]", "identity_basic")], "duplicate question id"),
    ("no models anywhere", plain_jobspec(models=[]), [("models", None)], "metadata.models"),
    ("models not a list", plain_jobspec(models={"id": "m"}), [("models", {"id": "m"})],
     "expected a list of models"),
    ("metadata.models not a list", plain_jobspec(models=[], metadata={"models": "m"}),
     [("metadata.models", "m")], "expected a list of model ids"),
    ("no regions anywhere", plain_jobspec(models=[{"id": "m"}], constraints={}),
     [("models[0].regions", None)], "constraints.regions"),
    ("same region after folding", plain_jobspec(constraints={"regions": ["ASIA", "asia-pacific"]}),
     [("constraints.regions[1]", "asia-pacific")], "duplicate region 'asia-pacific'"),
    ("timeout in seconds by mistake", plain_jobspec(constraints={"timeout": 600}),
     [("constraints.timeout", 600)], "600 s would be 600000000000"),
    ("timeout as a float", plain_jobspec(constraints={"provider_timeout": 3e11 + 0.5}),
     [("constraints.provider_timeout", 3e11 + 0.5)], "whole number of nanoseconds"),
    ("timeout as text", plain_jobspec(constraints={"timeout": "10m"}),
     [("constraints.timeout", "10m")], "whole number of nanoseconds"),
    ("timeout negative", plain_jobspec(constraints={"timeout": -1}),
     [("constraints.timeout", -1)], "positive duration"),
    ("rate above 1", plain_jobspec(constraints={"min_success_rate": 1.2}),
     [("constraints.min_success_rate", 1.2)], "between 0 and 1"),
    ("min_regions negative", plain_jobspec(constraints={"min_regions": -1}),
     [("constraints.min_regions", -1)], "integer >= 0"),
    ("constraints not an object", plain_jobspec(constraints=["US"]),
     [("constraints", ["US"])], "expected an object"),
    ("region not a slug", plain_jobspec(models=[{"id": "m", "regions": ["U S"]}]),
     [("models[0].regions[0]", "U S")], "not a valid region name"),
]
# fmt: on


@pytest.mark.parametrize(
    ("doc", "expected", "fragment"),
    [pytest.param(d, e, f, id=name) for name, d, e, f in BEACON_CASES],
)
def test_bad_beacon_document(doc: dict[str, Any], expected: list[Any], fragment: str) -> None:
    assert problems_of(doc) == expected
    assert fragment in message(doc, expected[0][0])


def test_wrapper_overrides_are_validated_at_their_own_paths() -> None:
    doc = portal_submission()
    doc["target_regions"] = ["US", "moon base"]
    doc["min_success_rate"] = 7
    doc["min_regions"] = "2"
    assert problems_of(doc, questions=catalogue()) == [
        ("target_regions[1]", "moon base"),
        ("min_regions", "2"),
        ("min_success_rate", 7),
    ]


def test_wrapper_with_a_bad_jobspec() -> None:
    assert problems_of({"jobspec": "x"}) == [("jobspec", "x")]


def test_an_unknown_beacon_region_is_refused_unless_the_table_declares_it() -> None:
    doc = plain_jobspec(models=[{"id": "m", "regions": ["US", "sa-east"]}])
    assert problems_of(doc) == [("models[0].regions[1]", "sa-east")]
    declared = RegionTable.default().with_regions("sa-east")
    assert JobSpec.from_beacon(doc, questions=CATALOGUE_MAP, regions=declared).regions == (
        "us-east",
        "sa-east",
    )
    lenient = RegionTable.default(strict=False)
    assert JobSpec.from_beacon(doc, questions=CATALOGUE_MAP, regions=lenient).regions == (
        "us-east",
        "sa-east",
    )


def test_every_problem_of_a_submission_is_listed_together() -> None:
    doc = portal_submission()
    inner = doc["jobspec"]
    inner["questions"] = ["identity_basic", "no_such_question", "identity_basic"]
    inner["constraints"]["timeout"] = 600
    inner["metadata"]["models"].append("llama3.2-1b")
    doc["target_regions"] = ["US", "EU", "EU"]
    assert problems_of(doc, questions=catalogue()) == [
        ("jobspec.questions[1]", "no_such_question"),
        ("jobspec.questions[2]", "identity_basic"),
        ("jobspec.constraints.timeout", 600),
        ("target_regions[2]", "EU"),
        ("jobspec.metadata.models[3].id", "llama3.2-1b"),
    ]


def test_input_document_is_not_modified() -> None:
    doc = portal_submission()
    before = copy.deepcopy(doc)
    JobSpec.from_beacon(doc, questions=catalogue())
    assert doc == before


def test_beacon_spec_round_trips_through_the_librarys_own_format() -> None:
    spec = JobSpec.from_beacon(portal_submission(), questions=catalogue())
    assert JobSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
