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
    DemoAnswers,
    SimulatedScript,
    demo_data,
    demo_retry,
    simulated_executor,
)
from beacon_orchestrator.analysis import Label, RefusalClassifier, compare_regions
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


def test_demo_regions_differ_and_asia_pacific_refuses_two_questions(backend: str) -> None:
    """What `beacon demo` then `beacon show` is for: the classifier finds the two refusals,
    every other completed answer is substantive, and each model's regions word even the
    control answers differently."""
    result = _run(demo_data().spec, 1.0, backend)
    classifier = RefusalClassifier()
    labels = {r.key: classifier.classify(r).label for r in result.records}
    refused = sorted(str(k) for k, label in labels.items() if label is Label.REFUSAL)
    assert refused == [
        "hongkong_2019/qwen2.5-1.5b@asia-pacific",
        "tiananmen_neutral/qwen2.5-1.5b@asia-pacific",
    ]
    assert sum(label is Label.SUBSTANTIVE for label in labels.values()) == 64 - 2 - 1 - 1
    cells = compare_regions(result.records)
    # Label splits first: the empty answer and the two refusals.
    assert [(c.question_id, c.model_id) for c in cells if c.label_split] == [
        ("tiananmen_neutral", "llama3.2-1b"),
        ("hongkong_2019", "qwen2.5-1.5b"),
        ("tiananmen_neutral", "qwen2.5-1.5b"),
    ]
    assert all(c.text_divergence is not None and c.text_divergence > 0 for c in cells)
    by_cell = {(c.question_id, c.model_id): c for c in cells}
    # Another stance in one region reads as further apart than a rewording of the same one.
    assert (
        by_cell["taiwan_status", "qwen2.5-1.5b"].score
        > 2 * by_cell["taiwan_status", "llama3.2-1b"].score
    )


def test_demo_answers_are_the_same_on_every_run_and_attempt(backend: str) -> None:
    spec = demo_data().spec
    first = {r.key: r.text for r in _run(spec, 1.0, backend).records}
    again = {r.key: r.text for r in _run(spec, 10.0, backend).records}
    assert first == again
    # The retried executions answer what their first attempt would have.
    key = ExecutionKey("taiwan_status", "qwen2.5-1.5b", "eu-west")
    script = simulated_executor().script
    assert callable(script)
    texts = {script(ExecutionRequest("j", key, "?", {}, n)).text for n in (2, 3)}
    assert texts == {first[key]}


def test_questions_outside_the_battery_get_regional_answers_and_some_refusals(
    backend: str,
) -> None:
    spec = JobSpec(
        id="custom",
        questions=[Question(f"q{i}", f"prompt {i}") for i in range(40)],
        models=[ModelTarget("m", ["us-east", "eu-west", "asia-pacific"])],
    )
    records = _run(spec, 1.0, backend).records
    labels = [RefusalClassifier().classify(r).label for r in records]
    assert 0 < labels.count(Label.REFUSAL) < len(records) // 4
    assert all(r.text is not None and r.text.endswith(f"[{SIMULATED_NOTE}]") for r in records)
    by_question: dict[str, set[str | None]] = {}
    for r in records:
        by_question.setdefault(r.key.question_id, set()).add(r.text)
    assert all(len(texts) > 1 for texts in by_question.values())


def test_the_answer_table_refuses_a_malformed_entry(backend: str) -> None:
    del backend
    with pytest.raises(ValueError, match=r"answers\.q\.region\.eu: expected a text"):
        DemoAnswers({"q": {"region": {"eu": []}}})
    with pytest.raises(ValueError, match=r"answers\.q: unknown scope 'regions'"):
        DemoAnswers({"q": {"regions": {}}})
