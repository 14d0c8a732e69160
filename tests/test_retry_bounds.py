"""Every wait before a retry is bounded: by the policy's caps, and by the job's deadline."""

from __future__ import annotations

import math
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from beacon_orchestrator import (
    Event,
    ExecutionKey,
    ExecutionStarted,
    ExecutionStatus,
    JobSpec,
    Limits,
    ModelTarget,
    Question,
    RetryPolicy,
    SpecError,
    TransientError,
    run_job,
)
from beacon_orchestrator.testing import FakeExecutor, Step, run_virtual

BACKENDS = ["asyncio", "trio"]


def error(retry_after: Any) -> TransientError:
    return TransientError("throttled", code="HTTP_429", retry_after=retry_after)


# -- the policy's arithmetic (no event loop) ------------------------------------------------

asked = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.sampled_from([1e9, 4.1e9, -5.0, math.inf, -math.inf, math.nan]),
)
seconds = st.floats(min_value=0, max_value=1000)


@given(
    retry_after=asked,
    attempt=st.integers(min_value=1, max_value=50),
    wait_max=seconds,
    retry_after_max=seconds,
    jitter=st.floats(min_value=0, max_value=10),
)
def test_every_wait_is_bounded_whatever_the_provider_asks(
    retry_after: Any, attempt: int, wait_max: float, retry_after_max: float, jitter: float
) -> None:
    """Invariant: 0 <= wait <= max(wait_max, retry_after_max) + wait_jitter, for any Retry-After."""
    policy = RetryPolicy(
        attempts=100, wait_max=wait_max, retry_after_max=retry_after_max, wait_jitter=jitter
    )
    wait = policy.wait(attempt, error(retry_after))
    assert math.isfinite(wait)
    assert 0 <= wait <= max(wait_max, retry_after_max) + jitter + 1e-9


@given(retry_after=st.floats(min_value=0, max_value=1e12), cap=seconds)
def test_a_provider_asked_wait_is_honoured_up_to_the_cap(retry_after: float, cap: float) -> None:
    """Invariant: the wait is at least min(retry_after, retry_after_max)."""
    policy = RetryPolicy(wait_max=0, wait_jitter=0, retry_after_max=cap)
    assert policy.wait(1, error(retry_after)) == pytest.approx(min(retry_after, cap))


def test_provider_asked_waits_are_jittered() -> None:
    policy = RetryPolicy(wait_max=0.0, wait_jitter=2.0)
    waits = [policy.wait(1, error(30.0)) for _ in range(200)]
    assert all(30.0 <= w <= 32.0 for w in waits)
    # Executions throttled together come back spread out, not at one instant.
    assert max(waits) - min(waits) > 1.0


def test_the_default_cap_is_five_minutes() -> None:
    policy = RetryPolicy(wait_jitter=0)
    assert policy.retry_after_max == 300.0
    assert policy.wait(1, error(1e9)) == 300.0
    assert policy.wait(1, error(120.0)) == 120.0


@pytest.mark.parametrize("value", [-1, math.nan, math.inf, True, "5", None])
def test_a_bad_retry_after_max_is_refused_naming_the_field(value: Any) -> None:
    with pytest.raises(SpecError) as info:
        RetryPolicy(retry_after_max=value)
    (problem,) = info.value.problems
    assert problem.path == "retry_after_max"
    assert "expected a number of seconds >= 0" in str(info.value)
    assert "invalid RetryPolicy" in str(info.value)


def test_retry_policy_stays_keyword_only() -> None:
    with pytest.raises(TypeError):
        RetryPolicy(3)  # type: ignore[call-arg]


# -- the attempt loop never waits past the deadline ------------------------------------------

KEY = ExecutionKey("q0", "m0", "us-east")


def spec(n_questions: int = 1) -> JobSpec:
    return JobSpec(
        id="bounds",
        questions=[Question(f"q{i}", f"prompt {i}") for i in range(n_questions)],
        models=[ModelTarget("m0", ["us-east"])],
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_wait_past_the_deadline_ends_the_execution_now_with_its_last_failure(
    backend: str,
) -> None:
    async def main() -> None:
        fake = FakeExecutor({KEY: [Step(outcome="transient", retry_after=100.0), Step()]})
        t0 = anyio.current_time()
        result = await run_job(spec(), fake, limits=Limits(job_timeout=50.0))
        (record,) = result.records
        assert (record.status, record.error_code, record.attempts) == (
            ExecutionStatus.FAILED,
            "SIMULATED_TRANSIENT",
            1,
        )
        # Ended at once: no 50 s spent waiting for a retry that could not start.
        assert anyio.current_time() - t0 == pytest.approx(0.0)
        assert [c.kind for c in fake.log] == ["start", "end"]

    run_virtual(main, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_wait_that_ends_before_the_deadline_is_waited(backend: str) -> None:
    async def main() -> None:
        events: list[Event] = []
        fake = FakeExecutor({KEY: [Step(outcome="transient", retry_after=40.0), Step()]})
        retry = RetryPolicy(wait_jitter=0)
        await run_job(
            spec(), fake, retry=retry, limits=Limits(job_timeout=50.0), on_event=events.append
        )
        starts = [e.at for e in events if isinstance(e, ExecutionStarted)]
        assert starts[1] - starts[0] == pytest.approx(40.0)

    run_virtual(main, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_timed_out_attempt_that_cannot_be_retried_in_time_is_a_timeout(backend: str) -> None:
    async def main() -> None:
        fake = FakeExecutor(default=Step(outcome="hang"))
        retry = RetryPolicy(wait_initial=20.0, wait_max=20.0, wait_jitter=0)
        t0 = anyio.current_time()
        result = await run_job(
            spec(), fake, retry=retry, limits=Limits(attempt_timeout=30.0, job_timeout=45.0)
        )
        (record,) = result.records
        assert (record.status, record.attempts) == (ExecutionStatus.TIMEOUT, 1)
        # Timed out at 30 s; a 20 s backoff would end past 45 s, so it ends then.
        assert anyio.current_time() - t0 == pytest.approx(30.0)

    run_virtual(main, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_retry_that_cannot_happen_spends_no_budget(backend: str) -> None:
    second = ExecutionKey("q1", "m0", "us-east")

    async def main() -> None:
        fake = FakeExecutor(
            {
                KEY: [Step(outcome="transient", retry_after=1000.0)],
                second: [Step(outcome="transient"), Step()],
            }
        )
        retry = RetryPolicy(wait_initial=1.0, wait_max=1.0, wait_jitter=0, budget=1)
        # The first asks for 1000 s, capped at 300 s: still past the 200 s deadline.
        result = await run_job(spec(2), fake, retry=retry, limits=Limits(job_timeout=200.0))
        records = {r.key: r for r in result.records}
        assert (records[KEY].status, records[KEY].attempts) == (ExecutionStatus.FAILED, 1)
        # The budget's one retry was still there for the second question.
        assert (records[second].status, records[second].attempts) == (
            ExecutionStatus.COMPLETED,
            2,
        )

    run_virtual(main, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_without_a_deadline_a_far_retry_after_waits_the_cap(backend: str) -> None:
    async def main() -> None:
        events: list[Event] = []
        fake = FakeExecutor({KEY: [Step(outcome="transient", retry_after=1e9), Step()]})
        result = await run_job(spec(), fake, on_event=events.append)
        assert result[KEY].status is ExecutionStatus.COMPLETED
        starts = [e.at for e in events if isinstance(e, ExecutionStarted)]
        assert 300.0 <= starts[1] - starts[0] <= 301.0

    run_virtual(main, backend=backend)
