"""Every value the library refuses raises a SpecError (a BeaconError) that names the field."""

from __future__ import annotations

import math
from typing import Any

import pytest

from beacon_orchestrator import (
    BeaconError,
    Limits,
    MinSuccessRate,
    RegionTable,
    RetryPolicy,
    SpecError,
    SpecProblem,
)

NAN = math.nan
INF = math.inf

# (class, keyword arguments, the field the error names)
# fmt: off
REFUSED: list[tuple[type[Any], dict[str, Any], str]] = [
    (RetryPolicy, {"attempts": 0}, "attempts"),
    (RetryPolicy, {"attempts": -3}, "attempts"),
    (RetryPolicy, {"attempts": 2.5}, "attempts"),
    (RetryPolicy, {"attempts": "3"}, "attempts"),
    (RetryPolicy, {"attempts": True}, "attempts"),
    (RetryPolicy, {"wait_initial": -1.0}, "wait_initial"),
    (RetryPolicy, {"wait_initial": NAN}, "wait_initial"),
    (RetryPolicy, {"wait_max": INF}, "wait_max"),
    (RetryPolicy, {"wait_max": -0.5}, "wait_max"),
    (RetryPolicy, {"wait_jitter": "1"}, "wait_jitter"),
    (RetryPolicy, {"wait_jitter": -INF}, "wait_jitter"),
    (RetryPolicy, {"budget": -1}, "budget"),
    (RetryPolicy, {"budget": 1.5}, "budget"),
    (MinSuccessRate, {"rate": 2}, "rate"),
    (MinSuccessRate, {"rate": -0.1}, "rate"),
    (MinSuccessRate, {"rate": NAN}, "rate"),
    (MinSuccessRate, {"rate": INF}, "rate"),
    (MinSuccessRate, {"rate": "0.5"}, "rate"),
    (MinSuccessRate, {"rate": None}, "rate"),
    (MinSuccessRate, {"min_regions": -1}, "min_regions"),
    (MinSuccessRate, {"min_regions": 1.5}, "min_regions"),
    (MinSuccessRate, {"min_regions": "2"}, "min_regions"),
    (Limits, {"max_concurrency": 0}, "limits.max_concurrency"),
    (Limits, {"max_concurrency": True}, "limits.max_concurrency"),
    (Limits, {"per_region": -2}, "limits.per_region"),
    (Limits, {"per_endpoint": None}, "limits.per_endpoint"),
    (Limits, {"per_endpoint": 1.0}, "limits.per_endpoint"),
    (Limits, {"attempt_timeout": 0}, "limits.attempt_timeout"),
    (Limits, {"attempt_timeout": NAN}, "limits.attempt_timeout"),
    (Limits, {"job_timeout": INF}, "limits.job_timeout"),
    (Limits, {"job_timeout": "10m"}, "limits.job_timeout"),
    (Limits, {"cancel_grace": -1}, "limits.cancel_grace"),
    (Limits, {"cancel_grace": NAN}, "limits.cancel_grace"),
    (Limits, {"cancel_grace": None}, "limits.cancel_grace"),
    (RegionTable, {"regions": ["us-east", "eu-west", "asia-pacific", "sa east"]}, "regions[3]"),
    (RegionTable, {"aliases": {"BR": "sa-east"}}, "aliases['br']"),
    (RegionTable, {"strict": "yes"}, "strict"),
]
# fmt: on


@pytest.mark.parametrize(
    ("cls", "kwargs", "field"),
    [pytest.param(c, k, f, id=f"{c.__name__}-{k!r}") for c, k, f in REFUSED],
)
def test_a_refused_value_raises_a_spec_error_naming_the_field(
    cls: type[Any], kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(SpecError) as info:
        cls(**kwargs)
    error = info.value
    assert isinstance(error, BeaconError)
    assert isinstance(error, ValueError)
    (problem,) = error.problems
    assert problem.path == field
    ((_, value),) = kwargs.items()
    if isinstance(value, float) and math.isnan(value):
        assert math.isnan(problem.value)
    elif cls is not RegionTable:
        assert problem.value == value
        assert type(problem.value) is type(value)
    assert f"{field}: " in str(error)


def test_table_covers_every_validated_class() -> None:
    assert {cls for cls, _, _ in REFUSED} == {RetryPolicy, MinSuccessRate, Limits, RegionTable}


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (RetryPolicy, {"attempts": 3, "wait_initial": 2.0}),
        (MinSuccessRate, {"rate": 0.5, "min_regions": 2}),
    ],
)
def test_a_value_built_in_code_is_named_in_the_message(
    cls: type[Any], kwargs: dict[str, Any]
) -> None:
    bad = dict.fromkeys(kwargs, -1)
    with pytest.raises(SpecError, match=rf"^invalid {cls.__name__}: 1 problem\n"):
        cls(**bad)


@pytest.mark.parametrize(
    "make",
    [
        lambda: RetryPolicy(attempts=1, wait_initial=0, wait_max=0, wait_jitter=0, budget=0),
        lambda: RetryPolicy(budget=None),
        lambda: MinSuccessRate(rate=0, min_regions=0),
        lambda: MinSuccessRate(rate=1),
        lambda: Limits(max_concurrency=None, per_region=None, cancel_grace=0),
        lambda: Limits(attempt_timeout=0.001, job_timeout=30 * 24 * 3600),  # at most 30 days
    ],
)
def test_values_on_the_boundaries_are_accepted(make: Any) -> None:
    make()


def test_a_retry_budget_of_zero_means_no_retries_and_is_accepted() -> None:
    assert RetryPolicy(budget=0).budget == 0


def test_a_bool_rate_is_left_to_the_job_spec_to_refuse() -> None:
    # ``True`` is Python's 1; the JobSpec holding the policy refuses it at ``policy.rate``
    # (see test_constructed_spec_lists_every_problem).
    assert MinSuccessRate(rate=True).rate is True


def test_for_field_builds_a_one_problem_error() -> None:
    error = SpecError.for_field("RetryPolicy", "attempts", "expected a positive integer", 0)
    assert error.problems == (SpecProblem("attempts", "expected a positive integer", 0),)
    assert error.source is None
    assert str(error) == (
        "invalid RetryPolicy: 1 problem\n  - attempts: expected a positive integer (got 0)"
    )


def test_a_spec_error_still_says_job_spec_by_default() -> None:
    assert str(SpecError([SpecProblem("id", "expected a job id")])).startswith(
        "invalid job spec: 1 problem"
    )
