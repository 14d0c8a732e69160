"""Records tell the truth: each record's status, attempts and error code follow from what the
executor did on each attempt and from the retry policy (an oracle computed independently)."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from beacon_orchestrator import (
    ExecutionRecord,
    ExecutionStatus,
    JobSpec,
    Limits,
    MemoryStore,
    RetryPolicy,
    Strategy,
    run_job,
)
from beacon_orchestrator.testing import (
    FakeExecutor,
    Step,
    fault_scripts,
    run_virtual,
    scheduling_specs,
)

BACKENDS = [pytest.param("asyncio", id="asyncio"), pytest.param("trio", id="trio")]


def expected(
    steps: list[Step], retry: RetryPolicy, timeout: float | None
) -> tuple[str, int, str | None]:
    """(status, attempts, error_code) the record of a key with these steps must have."""
    attempt = 1
    while True:
        step = steps[min(attempt, len(steps)) - 1]
        if timeout is not None and (step.outcome == "hang" or step.latency > timeout):
            status, code, transient = "timeout", "TIMEOUT", True
        elif step.outcome in ("ok", "empty"):
            return "completed", attempt, None
        elif step.outcome == "transient":
            status, code, transient = "failed", "SIMULATED_TRANSIENT", True
        elif step.outcome == "permanent":
            status, code, transient = "failed", "SIMULATED_PERMANENT", False
        else:  # crash: any other exception is a permanent failure
            status, code, transient = "failed", "EXECUTOR_ERROR", False
        if not transient or attempt >= retry.attempts:
            return status, attempt, code
        attempt += 1


@pytest.mark.parametrize("backend", BACKENDS)
@given(
    spec=scheduling_specs(max_questions=5, max_models=3, max_regions=3),
    strategy=st.sampled_from(["endpoint", "region", "lockstep"]),
    attempts=st.integers(1, 3),
    timeout=st.none() | st.sampled_from([2.5, 6.0]),
    data=st.data(),
)
def test_records_follow_the_executors_outcomes(
    backend: str,
    spec: JobSpec,
    strategy: Strategy,
    attempts: int,
    timeout: float | None,
    data: st.DataObject,
) -> None:
    """Every record's status, attempt count, error code and emptiness is exactly what the
    executor's per-attempt outcomes and the retry policy imply."""
    script = data.draw(fault_scripts(spec, hangs=timeout is not None))
    # A latency equal to the timeout is a tie with no defined winner.
    assume(all(s.latency != timeout for steps in script.values() for s in steps))
    retry = RetryPolicy(attempts=attempts, wait_initial=0.5, wait_jitter=0.0)

    async def main() -> list[ExecutionRecord]:
        store = MemoryStore()
        await run_job(
            spec,
            FakeExecutor(script),
            store=store,
            strategy=strategy,
            retry=retry,
            limits=Limits(attempt_timeout=timeout),
        )
        return await store.records(spec.id)

    records = run_virtual(main, backend=backend)
    assert len(records) == spec.size
    for record in records:
        steps = script[record.key]
        status, n, code = expected(steps, retry, timeout)
        assert (record.status.value, record.attempts, record.error_code) == (status, n, code)
        if record.status is ExecutionStatus.COMPLETED:
            last = steps[min(n, len(steps)) - 1]
            assert record.empty == (last.outcome == "empty")
            assert record.text == (
                "" if last.outcome == "empty" else f"answer to {record.key.question_id}"
            )
