"""RunOptions: one value for every entry point, checked once."""

from __future__ import annotations

import attrs
import pytest

from beacon_orchestrator import (
    FunctionExecutor,
    JobSpec,
    Limits,
    ModelTarget,
    Question,
    RegionQueue,
    Response,
    RetryPolicy,
    RunOptions,
    UsageError,
    run_job_sync,
)
from beacon_orchestrator._scheduler import RunOptionArgs


async def _echo(request: object) -> Response:
    return Response("ok")


SPEC = JobSpec(
    id="opts", questions=(Question("q1", "?"),), models=(ModelTarget("m", ("us-east",)),)
)
EXECUTOR = FunctionExecutor(_echo)


def test_keyword_arguments_are_exactly_the_options_fields() -> None:
    """The TypedDict that types the entry points' keywords names every field, and no other."""
    assert set(RunOptionArgs.__annotations__) == {f.name for f in attrs.fields(RunOptions)}


def test_defaults() -> None:
    opts = RunOptions()
    assert opts.strategy == "endpoint"
    assert opts.retry == RetryPolicy()
    assert (opts.early_stop, opts.rerun_failed, opts.preflight) == (False, True, False)


def test_retry_none_means_the_default_policy() -> None:
    assert RunOptions(retry=None).retry == RetryPolicy()


def test_keywords_override_the_options_value() -> None:
    base = RunOptions(strategy="region", early_stop=True)
    queue = RegionQueue(SPEC, EXECUTOR, options=base, strategy="lockstep")
    assert queue.options.strategy == "lockstep"
    assert queue.options.early_stop is True
    assert base.strategy == "region"  # the value given is not changed


def test_limits_and_policy_fall_back_to_the_spec() -> None:
    queue = RegionQueue(SPEC, EXECUTOR)
    assert queue.limits == SPEC.limits
    assert queue.policy == SPEC.policy
    limits = Limits(max_concurrency=3)
    assert RegionQueue(SPEC, EXECUTOR, limits=limits).limits == limits


def test_an_unknown_strategy_or_option_is_a_usage_error() -> None:
    with pytest.raises(
        UsageError, match="strategy must be one of 'endpoint', 'region', 'lockstep'"
    ):
        RunOptions(strategy="fastest")  # type: ignore[arg-type]
    with pytest.raises(
        UsageError, match="the run options are: adaptive, breaker, cost_model, early_stop"
    ):
        RegionQueue(SPEC, EXECUTOR, early_stopp=True)  # type: ignore[call-arg]
    with pytest.raises(UsageError, match="options must be a RunOptions"):
        RegionQueue(SPEC, EXECUTOR, options={"strategy": "region"})  # type: ignore[arg-type]


def test_run_job_sync_takes_the_options_value() -> None:
    result = run_job_sync(SPEC, EXECUTOR, options=RunOptions(strategy="lockstep"))
    assert result.ok
