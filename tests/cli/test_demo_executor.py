"""The demo job and its simulated executor, on virtual time (no real waiting)."""

from __future__ import annotations

import pytest

from beacon_orchestrator import (
    ExecutionKey,
    ExecutionRequest,
    ExecutionStatus,
    JobResult,
    JobSpec,
    ModelTarget,
    Question,
    run_job,
)
from beacon_orchestrator._demo import (
    DEMO_SECONDS,
    SIMULATED_NOTE,
    SimulatedScript,
    demo_data,
    demo_retry,
    simulated_executor,
)
from beacon_orchestrator.testing import run_virtual

pytestmark = pytest.mark.parametrize("backend", ["asyncio", "trio"])


def _run(spec: JobSpec, speed: float, backend: str) -> JobResult:
    async def main() -> JobResult:
        return await run_job(spec, simulated_executor(speed=speed), retry=demo_retry(speed))

    return run_virtual(main, backend=backend)


def test_demo_job_is_64_executions_taking_about_ten_seconds(backend: str) -> None:
    data = demo_data()
    assert data.spec.size == 64
    assert [q.id for q in data.spec.questions][:2] == ["math_basic", "geography_basic"]
    assert data.lower_bound == pytest.approx(1197.87)
    result = _run(data.spec, 1.0, backend)
    # The busiest endpoint (mistral-7b@asia-pacific) serves its questions back to back, so the
    # job lasts exactly its replayed service time; the faults sit on other endpoints.
    assert result.duration == pytest.approx(DEMO_SECONDS, rel=0.01)
    assert _run(data.spec, 10.0, backend).duration == pytest.approx(DEMO_SECONDS / 10, rel=0.01)


def test_demo_faults_one_permanent_one_empty_and_retried_transients(backend: str) -> None:
    result = _run(demo_data().spec, 1.0, backend)
    by_key = {r.key: r for r in result.records}
    assert len(by_key) == 64
    failed = [r for r in result.records if r.status is not ExecutionStatus.COMPLETED]
    assert [r.key for r in failed] == [ExecutionKey("greatest_leader", "qwen2.5-1.5b", "us-east")]
    empty = [r.key for r in result.records if r.empty]
    assert empty == [ExecutionKey("tiananmen_neutral", "llama3.2-1b", "asia-pacific")]
    retried = sorted(str(r.key) for r in result.records if r.attempts > 1)
    assert len(retried) == 3
    assert all(
        r.text is not None and SIMULATED_NOTE in r.text
        for r in result.records
        if r.status is ExecutionStatus.COMPLETED and not r.empty
    )
    assert result.ok


def test_first_request_per_endpoint_pays_the_cold_start(backend: str) -> None:
    del backend  # a pure function of the requests; one run is enough
    data = demo_data()
    script = SimulatedScript(
        service_s=data.service_s,
        demo_questions=[q.id for q in data.spec.questions],
        scale=1.0,
    )

    def latency(question: str, endpoint: tuple[str, str], attempt: int = 1) -> float:
        key = ExecutionKey(question, *endpoint)
        return script(ExecutionRequest("j", key, "?", {}, attempt)).latency

    us = ("llama3.2-1b", "us-east")
    # A resumed job starts an endpoint at a later question: that one is cold instead.
    cold = latency("identity_basic", us)
    warm = latency("identity_basic", us)
    assert cold > warm + 100
    assert warm == pytest.approx(data.service_s["llama3.2-1b@us-east"][2])
    # Questions of another job get the same shape from stable pseudo-random numbers.
    eu = ("other-model", "eu-west")
    first, second = latency("custom-1", eu), latency("custom-2", eu)
    assert first >= 8 + 150
    assert 8 <= second <= 70
    assert latency("custom-2", eu) == second


def test_other_jobs_run_on_the_simulated_executor_too(backend: str) -> None:
    spec = JobSpec(
        id="custom",
        questions=[Question(f"q{i}", f"prompt {i}") for i in range(20)],
        models=[ModelTarget("m", ["us-east", "eu-west"])],
    )
    result = _run(spec, 1.0, backend)
    assert len(result.records) == 40
    assert all(r.status is ExecutionStatus.COMPLETED for r in result.records)


def test_speed_must_be_positive(backend: str) -> None:
    del backend
    with pytest.raises(ValueError, match="speed must be a positive number"):
        simulated_executor(speed=0)
