"""Bad job documents: every problem is reported at once, with its path, value and expectation."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from beacon_orchestrator import (
    JobSpec,
    Limits,
    MinSuccessRate,
    ModelTarget,
    Question,
    RegionTable,
    SpecError,
)

NO_VALUE = object()


def valid_doc() -> dict[str, Any]:
    return {
        "id": "probe",
        "questions": [
            {"id": "q1", "prompt": "Who are you?", "category": "control"},
            {"id": "q2", "prompt": "What is the status of Taiwan?"},
        ],
        "models": [
            {"id": "llama3.2-1b", "regions": ["us-east", "eu-west"]},
            {"id": "qwen2.5-1.5b", "regions": ["asia-pacific"]},
        ],
        "params": {"temperature": 0.1, "max_tokens": 500},
        "limits": {"max_concurrency": 10, "attempt_timeout": 300},
        "policy": {"min_success_rate": 0.67, "min_regions": 1},
        "metadata": {"owner": "lab"},
    }


def edit(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    doc = copy.deepcopy(valid_doc())
    change(doc)
    return doc


def setitem(*keys: Any, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        target: Any = doc
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return change


def delitem(*keys: Any) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        target: Any = doc
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]

    return change


# (case id, document, region table or None, [(path, message fragment, offending value)])
Expected = list[tuple[str, str, Any]]
# fmt: off
CASES: list[tuple[str, Any, RegionTable | None, Expected]] = [
    ("questions missing", edit(delitem("questions")), None,
     [("questions", "required field is missing", NO_VALUE)]),
    ("questions empty", edit(setitem("questions", value=[])), None,
     [("questions", "expected at least one question", NO_VALUE)]),
    ("questions not a list", edit(setitem("questions", value={"id": "q1"})), None,
     [("questions", "expected a list of {id, prompt}", {"id": "q1"})]),
    ("models missing", edit(delitem("models")), None,
     [("models", "required field is missing", NO_VALUE)]),
    ("models empty", edit(setitem("models", value=[])), None,
     [("models", "expected at least one model", NO_VALUE)]),
    ("duplicate question ids", edit(setitem("questions", 1, "id", value="q1")), None,
     [("questions[1].id", "duplicate question id; first used at questions[0].id", "q1")]),
    ("duplicate model ids", edit(setitem("models", 1, "id", value="llama3.2-1b")), None,
     [("models[1].id", "duplicate model id; first used at models[0].id", "llama3.2-1b")]),
    ("model with no regions", edit(setitem("models", 0, "regions", value=[])), None,
     [("models[0].regions", "expected at least one region", NO_VALUE)]),
    ("model without a regions field", edit(delitem("models", 1, "regions")), None,
     [("models[1].regions", "required field is missing", NO_VALUE)]),
    ("same region twice", edit(setitem("models", 0, "regions", value=["us-east", "us-east"])),
     None, [("models[0].regions[1]", "duplicate region 'us-east'", "us-east")]),
    ("same region after alias folding",
     edit(setitem("models", 0, "regions", value=["EU", "eu-west"])), None,
     [("models[0].regions[1]", "duplicate region 'eu-west'; already listed at "
       "models[0].regions[0] as 'EU'", "eu-west")]),
    ("two aliases of one region", edit(setitem("models", 1, "regions", value=["APAC", "asia"])),
     None, [("models[1].regions[1]", "duplicate region 'asia-pacific'", "asia")]),
    ("unknown region with a strict table",
     edit(setitem("models", 1, "regions", value=["asia-pacific", "mars-1"])),
     RegionTable.default(strict=True),
     [("models[1].regions[1]", "unknown region; expected one of 'us-east'", "mars-1")]),
    ("region that is not a slug", edit(setitem("models", 0, "regions", 1, value="eu west")),
     None, [("models[0].regions[1]", "not a valid region name", "eu west")]),
    ("regions as one string", edit(setitem("models", 0, "regions", value="us-east")), None,
     [("models[0].regions", "expected a list of region names", "us-east")]),
    ("region not a string", edit(setitem("models", 1, "regions", value=[7])), None,
     [("models[1].regions[0]", "expected a region name (a string)", 7)]),
    ("region read as a YAML boolean", edit(setitem("models", 1, "regions", value=[False])),
     None, [("models[1].regions[0]", "quote", False)]),
    ("min_success_rate above 1", edit(setitem("policy", "min_success_rate", value=1.5)), None,
     [("policy.min_success_rate", "expected a number between 0 and 1", 1.5)]),
    ("min_success_rate below 0", edit(setitem("policy", "min_success_rate", value=-0.1)), None,
     [("policy.min_success_rate", "expected a number between 0 and 1", -0.1)]),
    ("min_regions beyond the job's regions", edit(setitem("policy", "min_regions", value=9)), None,
     [("policy.min_regions", "could never have successes in more; expected at most", 9)]),
    ("min_success_rate as a string", edit(setitem("policy", "min_success_rate", value="67%")),
     None, [("policy.min_success_rate", "between 0 and 1", "67%")]),
    ("min_regions negative", edit(setitem("policy", "min_regions", value=-1)), None,
     [("policy.min_regions", "expected an integer >= 0", -1)]),
    ("empty_counts_as_success not a boolean",
     edit(setitem("policy", "empty_counts_as_success", value="yes")), None,
     [("policy.empty_counts_as_success", "expected true or false", "yes")]),
    ("attempt_timeout zero", edit(setitem("limits", "attempt_timeout", value=0)), None,
     [("limits.attempt_timeout", "expected a positive number of seconds", 0)]),
    ("job_timeout negative", edit(setitem("limits", "job_timeout", value=-5)), None,
     [("limits.job_timeout", "expected a positive number of seconds", -5)]),
    ("job_timeout as a string", edit(setitem("limits", "job_timeout", value="10m")), None,
     [("limits.job_timeout", "positive number of seconds", "10m")]),
    ("max_concurrency as a string", edit(setitem("limits", "max_concurrency", value="10")), None,
     [("limits.max_concurrency", "expected a positive integer", "10")]),
    ("max_concurrency as a boolean", edit(setitem("limits", "max_concurrency", value=True)),
     None, [("limits.max_concurrency", "expected a positive integer", True)]),
    ("max_concurrency as a float", edit(setitem("limits", "max_concurrency", value=10.0)), None,
     [("limits.max_concurrency", "expected a positive integer", 10.0)]),
    ("per_endpoint zero", edit(setitem("limits", "per_endpoint", value=0)), None,
     [("limits.per_endpoint", "expected a positive integer", 0)]),
    ("per_region negative", edit(setitem("limits", "per_region", value=-2)), None,
     [("limits.per_region", "expected a positive integer", -2)]),
    ("cancel_grace negative", edit(setitem("limits", "cancel_grace", value=-1)), None,
     [("limits.cancel_grace", "expected a number of seconds >= 0", -1)]),
    ("limits not an object", edit(setitem("limits", value=[10])), None,
     [("limits", "expected an object of limits", [10])]),
    ("typo in a top-level field",
     {("qestions" if k == "questions" else k): v for k, v in valid_doc().items()}, None,
     [("qestions", "unknown field; did you mean 'questions'?", NO_VALUE),
      ("questions", "required field is missing", NO_VALUE)]),
    ("unrelated top-level field", edit(setitem("owner", value="lab")), None,
     [("owner", "unknown field; expected one of id, questions, models", NO_VALUE)]),
    ("typo in a question field",
     edit(setitem("questions", 0, value={"id": "q1", "promt": "Who are you?"})), None,
     [("questions[0].promt", "did you mean 'prompt'?", NO_VALUE),
      ("questions[0].prompt", "required field is missing", NO_VALUE)]),
    ("typo in a model field",
     edit(setitem("models", 1, value={"id": "m2", "region": ["us-east"]})), None,
     [("models[1].region", "did you mean 'regions'?", NO_VALUE),
      ("models[1].regions", "required field is missing", NO_VALUE)]),
    ("typo in a limits field", edit(setitem("limits", "max_concurency", value=4)), None,
     [("limits.max_concurency", "did you mean 'max_concurrency'?", NO_VALUE)]),
    ("typo in a policy field", edit(setitem("policy", "min_sucess_rate", value=0.5)), None,
     [("policy.min_sucess_rate", "did you mean 'min_success_rate'?", NO_VALUE)]),
    ("job id missing", edit(delitem("id")), None,
     [("id", "required field is missing", NO_VALUE)]),
    ("job id empty", edit(setitem("id", value="  ")), None,
     [("id", "expected a non-empty job id", "  ")]),
    ("question id a number", edit(setitem("questions", 1, "id", value=2)), None,
     [("questions[1].id", "expected a question id (a non-empty string)", 2)]),
    ("model id with surrounding white space", edit(setitem("models", 0, "id", value=" m ")),
     None, [("models[0].id", "must not start or end with white space", " m ")]),
    ("blank prompt", edit(setitem("questions", 0, "prompt", value="   ")), None,
     [("questions[0].prompt", "expected a non-empty prompt", "   ")]),
    ("prompt not text", edit(setitem("questions", 0, "prompt", value=["Who?"])), None,
     [("questions[0].prompt", "expected the prompt text (a string)", ["Who?"])]),
    ("category not text", edit(setitem("questions", 0, "category", value=3)), None,
     [("questions[0].category", "expected a string or null", 3)]),
    ("question not an object", edit(setitem("questions", 1, value="q2")), None,
     [("questions[1]", "expected a question object with 'id' and 'prompt'", "q2")]),
    ("model not an object", edit(setitem("models", 0, value="llama3.2-1b")), None,
     [("models[0]", "expected a model object with 'id' and 'regions'", "llama3.2-1b")]),
    ("model name not text", edit(setitem("models", 0, "name", value=1)), None,
     [("models[0].name", "expected a string or null", 1)]),
    ("temperature not a number", edit(setitem("params", "temperature", value="hot")), None,
     [("params.temperature", "expected a number >= 0", "hot")]),
    ("max_tokens zero", edit(setitem("params", "max_tokens", value=0)), None,
     [("params.max_tokens", "expected a positive integer", 0)]),
    ("params not an object", edit(setitem("params", value=["temperature"])), None,
     [("params", "expected an object", ["temperature"])]),
    ("metadata not an object", edit(setitem("metadata", value="lab")), None,
     [("metadata", "expected an object", "lab")]),
    ("document not an object", [valid_doc()], None,
     [("", "expected a job document (an object)", [valid_doc()])]),
]
# fmt: on


@pytest.mark.parametrize(
    ("doc", "table", "expected"),
    [pytest.param(doc, table, expected, id=name) for name, doc, table, expected in CASES],
)
def test_bad_document_reports_each_problem_with_path_value_and_expectation(
    doc: Any, table: RegionTable | None, expected: Expected
) -> None:
    with pytest.raises(SpecError) as info:
        JobSpec.from_dict(doc, regions=table)
    problems = info.value.problems
    # Exactly the expected problems: nothing missing, nothing reported twice.
    assert sorted(p.path for p in problems) == sorted(path for path, _, _ in expected)
    for path, fragment, value in expected:
        problem = next(p for p in problems if p.path == path)
        assert fragment in problem.message, (path, problem.message)
        if value is NO_VALUE:
            assert not problem.has_value
        else:
            assert problem.value == value
            assert type(problem.value) is type(value)
        # The rendered error shows where, what and (when there is one) the value.
        assert f"{path or '<document>'}: {problem.message}" in str(info.value)


def test_table_has_enough_cases() -> None:
    assert len(CASES) >= 25


def test_a_document_with_many_problems_lists_them_all_in_one_error() -> None:
    doc = valid_doc()
    doc["qestions"] = doc.pop("questions")
    doc["models"][0]["regions"] = ["EU", "eu-west", "mars 1"]
    doc["models"][1]["id"] = "llama3.2-1b"
    doc["limits"] = {"max_concurrency": "10", "attempt_timeout": 0, "cancel_grace": -1}
    doc["policy"] = {"min_success_rate": 2, "min_regions": True}
    doc["params"] = {"max_tokens": "500"}
    with pytest.raises(SpecError) as info:
        JobSpec.from_dict(doc)
    assert [p.path for p in info.value.problems] == [
        "qestions",
        "questions",
        "models[0].regions[1]",
        "models[0].regions[2]",
        "models[1].id",
        "params.max_tokens",
        "limits.max_concurrency",
        "limits.attempt_timeout",
        "limits.cancel_grace",
        "policy.min_success_rate",
        "policy.min_regions",
    ]
    text = str(info.value)
    assert text.startswith("invalid job spec: 11 problems\n")
    assert "(got 'mars 1')" in text


def test_a_raw_value_error_never_escapes_from_bad_limits_or_policy() -> None:
    doc = valid_doc()
    doc["policy"] = {"min_success_rate": float("nan")}
    doc["limits"] = {"attempt_timeout": float("inf")}
    with pytest.raises(SpecError) as info:
        JobSpec.from_dict(doc)
    assert type(info.value) is SpecError
    assert {p.path for p in info.value.problems} == {
        "policy.min_success_rate",
        "limits.attempt_timeout",
    }


def test_regions_argument_must_be_a_table() -> None:
    from beacon_orchestrator import UsageError

    with pytest.raises(UsageError, match="RegionTable"):
        JobSpec.from_dict(valid_doc(), regions={"EU": "eu-west"})


# -- specs built in code ------------------------------------------------------------------------


def test_alias_in_a_constructed_spec_is_refused_naming_the_canonical_form() -> None:
    with pytest.raises(SpecError) as info:
        JobSpec("j", [Question("q", "p")], [ModelTarget("m", ["us-east", "EU", "Mars"])])
    assert [(p.path, p.value) for p in info.value.problems] == [
        ("models[0].regions[1]", "EU"),
        ("models[0].regions[2]", "Mars"),
    ]
    assert "use 'eu-west'" in info.value.problems[0].message
    assert "use 'mars'" in info.value.problems[1].message


def test_lower_case_alias_in_a_constructed_spec_is_refused_too() -> None:
    with pytest.raises(SpecError, match="use 'asia-pacific'"):
        JobSpec("j", [Question("q", "p")], [ModelTarget("m", ["asia-southeast"])])


def test_constructed_spec_with_one_region_string_is_refused_not_split_into_letters() -> None:
    with pytest.raises(SpecError) as info:
        JobSpec("j", [Question("q", "p")], [ModelTarget("m", "us-east")])
    (problem,) = info.value.problems
    assert problem.path == "models[0].regions"
    assert problem.value == "us-east"


def test_constructed_spec_lists_every_problem() -> None:
    with pytest.raises(SpecError) as info:
        JobSpec(
            "",
            [Question("q", "p"), Question("q", "")],
            [ModelTarget("m", []), ModelTarget("m", ["us-east", "us-east"])],
            params={"temperature": -1},
            policy=MinSuccessRate(rate=True),
        )
    assert [p.path for p in info.value.problems] == [
        "id",
        "questions[1].prompt",
        "questions[1].id",
        "models[0].regions",
        "models[1].regions[1]",
        "models[1].id",
        "params.temperature",
        "policy.rate",
    ]


def test_constructed_spec_refuses_wrong_component_types() -> None:
    with pytest.raises(SpecError) as info:
        JobSpec(
            "j",
            [{"id": "q", "prompt": "p"}],  # type: ignore[list-item]
            [ModelTarget("m", ["us-east"])],
            limits={"max_concurrency": 1},  # type: ignore[arg-type]
        )
    assert [(p.path, p.message) for p in info.value.problems] == [
        ("questions[0]", "expected a Question"),
        ("limits", "expected a Limits"),
    ]


def test_infinite_timeouts_are_refused_because_none_means_unbounded() -> None:
    with pytest.raises(SpecError, match=r"limits\.job_timeout"):
        Limits(job_timeout=float("inf"))


def test_an_entry_that_is_not_an_object_does_not_hide_the_problems_of_the_others() -> None:
    doc = valid_doc()
    doc["questions"] = ["q1", {"id": "q2"}]
    doc["models"] = [42, {"id": "m", "regions": []}]
    with pytest.raises(SpecError) as info:
        JobSpec.from_dict(doc)
    assert [p.path for p in info.value.problems] == [
        "questions[0]",
        "questions[1].prompt",
        "models[0]",
        "models[1].regions",
    ]
