"""Hypothesis strategies for scheduling: job shapes, fault scripts, limits and cancellation plans.

They are meant for property tests of your own executors, policies and schedules:

    @given(spec=scheduling_specs(), data=st.data())
    def test_my_policy(spec, data):
        script = data.draw(fault_scripts(spec))
        ...
"""

from __future__ import annotations

from typing import Literal, TypeAlias

from attrs import frozen
from hypothesis import strategies as st

from .._retry import RetryPolicy
from .._spec import JobSpec, Limits, ModelTarget, Question
from .._types import ExecutionKey
from ._fake import Outcome, Step

__all__ = [
    "CancelPlan",
    "CancelPlanSource",
    "cancel_plans",
    "fault_scripts",
    "retry_policies",
    "scheduling_limits",
    "scheduling_specs",
    "steps",
]

CancelPlanSource: TypeAlias = Literal["none", "handle", "deadline", "scope", "early_stop"]

# A few round latencies make ties (two things happening at the same virtual instant) common:
# ties are where ordering bugs hide.
_LATENCIES = (0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0)


@st.composite
def scheduling_specs(
    draw: st.DrawFn,
    *,
    max_questions: int = 10,
    max_models: int = 6,
    max_regions: int = 6,
    min_samples: int = 1,
    max_samples: int = 1,
) -> JobSpec:
    """Job specs of random shape, for scheduling properties.

    1..max_questions questions, 1..max_models models, each served from a non-empty subset of
    1..max_regions regions, and min_samples..max_samples samples per cell. Ids are short and ASCII;
    ``job_specs`` stresses loading and validation instead.
    """
    n_q = draw(st.integers(1, max_questions))
    n_regions = draw(st.integers(1, max_regions))
    regions = [f"r{i}" for i in range(n_regions)]
    n_models = draw(st.integers(1, max_models))
    models = []
    for i in range(n_models):
        mine = draw(st.lists(st.sampled_from(regions), min_size=1, max_size=n_regions, unique=True))
        models.append(ModelTarget(f"m{i}", tuple(mine)))
    questions = [Question(f"q{i}", f"prompt {i}") for i in range(n_q)]
    # Drawn last, and only when asked for, so the shapes drawn without samples stay as they were.
    samples = draw(st.integers(min_samples, max_samples)) if max_samples > 1 else min_samples
    return JobSpec(id="job", questions=questions, models=models, samples=samples)


def steps(*, hangs: bool = True, crashes: bool = True) -> st.SearchStrategy[Step]:
    """One attempt's behaviour: mostly answers, sometimes empty, failures, crashes or hangs."""
    outcomes: list[tuple[int, Outcome]] = [
        (10, "ok"),
        (2, "empty"),
        (3, "transient"),
        (2, "permanent"),
    ]
    if crashes:
        outcomes.append((1, "crash"))
    if hangs:
        outcomes.append((1, "hang"))
    pool: list[Outcome] = [o for weight, o in outcomes for _ in range(weight)]
    return st.builds(
        Step,
        latency=st.sampled_from(_LATENCIES) | st.floats(0, 10, allow_nan=False),
        outcome=st.sampled_from(pool),
        retry_after=st.none() | st.sampled_from((0.0, 1.0, 4.0)),
    )


@st.composite
def fault_scripts(
    draw: st.DrawFn, spec: JobSpec, *, hangs: bool = True, crashes: bool = True
) -> dict[ExecutionKey, list[Step]]:
    """A script for :class:`FakeExecutor`: 1-3 steps (one per attempt) for every planned key."""
    step = steps(hangs=hangs, crashes=crashes)
    return {key: draw(st.lists(step, min_size=1, max_size=3)) for key in spec.plan()}


def scheduling_limits(*, with_attempt_timeout: bool | None = None) -> st.SearchStrategy[Limits]:
    """Limits with small bounds so that they bind: concurrency, per region, per endpoint, grace."""
    timeout = st.none() | st.sampled_from((1.0, 2.5, 6.0))
    if with_attempt_timeout is True:
        timeout = st.sampled_from((1.0, 2.5, 6.0))
    elif with_attempt_timeout is False:
        timeout = st.none()
    return st.builds(
        Limits,
        max_concurrency=st.none() | st.integers(1, 8),
        per_region=st.none() | st.integers(1, 4),
        per_endpoint=st.integers(1, 3),
        attempt_timeout=timeout,
        cancel_grace=st.sampled_from((0.0, 0.0, 0.5, 3.0)),
    )


def retry_policies() -> st.SearchStrategy[RetryPolicy]:
    """Retry policies with short, jitter-free waits and sometimes a budget."""
    return st.builds(
        RetryPolicy,
        attempts=st.integers(1, 3),
        wait_initial=st.sampled_from((0.0, 0.5, 1.0)),
        wait_max=st.just(4.0),
        wait_jitter=st.just(0.0),
        budget=st.none() | st.integers(0, 5),
    )


@frozen
class CancelPlan:
    """When and how a test cancels a job.

    Attributes:
        source: ``"none"``, ``JobHandle.cancel()`` (``"handle"``), the job deadline
            (``"deadline"``), the caller's cancel scope (``"scope"``), or the policy's early
            stop (``"early_stop"``).
        at: Seconds after the start (virtual time) for ``handle``, ``deadline`` and ``scope``.
    """

    source: CancelPlanSource
    at: float


def cancel_plans(
    *, sources: tuple[CancelPlanSource, ...] | None = None
) -> st.SearchStrategy[CancelPlan]:
    """Cancellation moments from every source, including at time 0 and on round instants."""
    chosen = sources or ("none", "handle", "deadline", "scope", "early_stop")
    return st.builds(
        CancelPlan,
        source=st.sampled_from(chosen),
        at=st.sampled_from((0.0, 0.5, 1.0, 2.0, 3.0, 5.0)) | st.floats(0.001, 30, allow_nan=False),
    )
