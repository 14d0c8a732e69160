"""The fleet guards in a running job, on virtual time, on asyncio and trio: the circuit breaker,
the spending budget, the cold-start timeout, adaptive limits in progress and events, and usage
and cost in the records."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from beacon_orchestrator import (
    ENDPOINT_DOWN,
    CircuitBreaker,
    CostModel,
    EndpointChanged,
    Event,
    ExecutionFinished,
    ExecutionRequest,
    ExecutionStarted,
    ExecutionStatus,
    JobSpec,
    Limits,
    ModelTarget,
    Price,
    Question,
    RegionQueue,
    Response,
    RetryPolicy,
    SQLiteStore,
    TransientError,
    Usage,
    UsageError,
    run_job,
)
from beacon_orchestrator.testing import FakeExecutor, Step, check_invariants, run_virtual

BACKENDS = [pytest.param("asyncio", id="asyncio"), pytest.param("trio", id="trio")]
FAILED = ExecutionStatus.FAILED
COMPLETED = ExecutionStatus.COMPLETED
SKIPPED = ExecutionStatus.SKIPPED


def _spec(n_q: int, models: int = 1, limits: Limits | None = None) -> JobSpec:
    return JobSpec(
        id="fleet",
        questions=[Question(f"q{i:03d}", f"prompt {i}") for i in range(n_q)],
        models=[ModelTarget(f"m{i}", ["us-east"]) for i in range(models)],
        params={"max_tokens": 100},
        limits=limits or Limits(),
    )


class _Priced:
    """Answers after ``latency`` seconds, reporting 100 tokens out and the seconds it ran."""

    def __init__(self, latency: float = 2.0, broken: str | None = None) -> None:
        self.latency = latency
        self.broken = broken
        self.sent: list[ExecutionRequest] = []

    async def execute(self, request: ExecutionRequest) -> Response:
        self.sent.append(request)
        await anyio.sleep(self.latency)
        if request.key.model_id == self.broken:
            raise TransientError("HTTP 500", code="HTTP_500")
        usage = Usage(tokens_in=10, tokens_out=100, inference_seconds=self.latency)
        return Response(text="ok", usage=usage)


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_endpoint_failing_everything_gets_few_requests_and_its_records_say_endpoint_down(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    spec = _spec(100, models=10)  # 1,000 executions, one endpoint broken

    async def main() -> None:
        executor = _Priced(broken="m3")
        events: list[Event] = []
        result = await run_job(
            spec, executor, breaker=True, limits=Limits(per_endpoint=2), on_event=events.append
        )
        to_broken = [r for r in executor.sent if r.key.model_id == "m3"]
        assert len(to_broken) <= 20
        mine = [r for r in result.records if r.key.model_id == "m3"]
        down = [r for r in mine if r.error_code == ENDPOINT_DOWN]
        assert len(down) >= 90
        assert all(r.status is FAILED and r.attempts == 0 for r in down)
        assert all("m3@us-east is down" in (r.error_message or "") for r in down)
        others = [r for r in result.records if r.key.model_id != "m3"]
        assert [r.status for r in others] == [COMPLETED] * 900
        assert result.cancelled_by is None  # the job went on; the policy decided
        states = [e.breaker for e in events if isinstance(e, EndpointChanged)]
        assert states[-1] == "down"
        check_invariants(spec, events, result.records, limits=Limits(per_endpoint=2))

    caplog.set_level("INFO", logger="beacon_orchestrator")
    run_virtual(main, backend=backend)
    said = [r.getMessage() for r in caplog.records if "endpoint m3@us-east" in r.getMessage()]
    assert "circuit breaker open (HTTP_500); one probe in 30 s" in said[0]
    assert "is down: its remaining executions end ENDPOINT_DOWN" in said[-1]
    assert len(said) == 4  # opened, opened again after each of two failed probes, down


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_probe_that_succeeds_closes_the_breaker_and_the_endpoint_recovers(backend: str) -> None:
    spec = _spec(30)
    # The first execution's three failed attempts open it; the probe finds it recovered.
    script = {next(iter(spec.plan())): Step(latency=1.0, outcome="transient")}

    async def main() -> None:
        fake = FakeExecutor(script, default=Step(latency=1.0))
        events: list[Event] = []
        breaker = CircuitBreaker(failures=3, cool_down=10.0, probes=2)
        retry = RetryPolicy(attempts=3, wait_initial=0.0, wait_jitter=0.0)
        result = await run_job(spec, fake, breaker=breaker, retry=retry, on_event=events.append)
        assert result.counts[COMPLETED] == 29
        changes = [(e.limit, e.breaker) for e in events if isinstance(e, EndpointChanged)]
        assert changes == [(0, "open"), (1, "half_open"), (0, "half_open"), (1, "closed")]
        # Opened after 3 attempts of 1 s, the probe sent once the 10 s cool-down passed.
        times = [e.at for e in events if isinstance(e, EndpointChanged)]
        assert times == [3.0, 13.0, 13.0, 14.0]
        assert not [r for r in result.records if r.error_code == ENDPOINT_DOWN]

    run_virtual(main, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_cost_stops_new_work_before_spend_and_in_flight_worst_cases_pass_it(
    backend: str,
) -> None:
    limits = Limits(max_cost=3.0, per_endpoint=3, attempt_timeout=10.0)
    spec = _spec(40, models=2, limits=limits)
    prices = CostModel(default=Price(per_second=0.01, per_1k_tokens_out=0.5))
    # The worst case of one execution: 3 attempts of 10 s and 100 tokens out.
    worst = 3 * 10.0 * 0.01 + 3 * 100 * 0.5 / 1000

    async def main() -> None:
        committed: list[float] = []
        state = {"spent": 0.0, "in_flight": 0}

        def watch(event: Event) -> None:
            if isinstance(event, ExecutionStarted) and event.attempt == 1:
                state["in_flight"] += 1
                committed.append(state["spent"] + state["in_flight"] * worst)
            elif isinstance(event, ExecutionFinished) and event.record.status.finished:
                state["in_flight"] -= 1
                state["spent"] += event.record.cost or 0.0

        result = await run_job(spec, _Priced(), cost_model=prices, on_event=watch)
        assert max(committed) <= 3.0 + 1e-9
        spent = sum(r.cost or 0.0 for r in result.records)
        assert 2.0 < spent <= 3.0  # it used most of the budget, never more
        assert len(result.records) == spec.size  # every key accounted for
        skipped = [r for r in result.records if r.status is SKIPPED]
        assert skipped
        assert all("max_cost 3" in (r.error_message or "") for r in skipped)
        assert result.cancelled_by == "budget"
        assert "Stopped early: the spending budget (max_cost 3)" in result.reason

    run_virtual(main, backend=backend)


def test_max_cost_without_a_cost_model_is_refused_before_anything_runs() -> None:
    spec = _spec(2, limits=Limits(max_cost=1.0))
    with pytest.raises(UsageError, match="max_cost 1 but the run has no cost model"):
        RegionQueue(spec, _Priced())


@pytest.mark.parametrize("backend", BACKENDS)
def test_attempts_get_the_cold_start_timeout_until_the_endpoint_first_answers(
    backend: str,
) -> None:
    spec = _spec(3, limits=Limits(attempt_timeout=30.0, cold_start_timeout=300.0))
    keys = list(spec.plan())
    # The cold start: 200 s. Later, an answer taking 50 s passes the ordinary 30 s timeout.
    script = {keys[0]: Step(latency=200.0), keys[2]: Step(latency=50.0)}

    async def main() -> None:
        fake = FakeExecutor(script, default=Step(latency=5.0))
        result = await run_job(spec, fake, retry=RetryPolicy.none())
        by_key = {r.key: r for r in result.records}
        assert by_key[keys[0]].status is COMPLETED
        assert by_key[keys[0]].attempts == 1  # not killed at 30 s into a second cold start
        assert by_key[keys[1]].status is COMPLETED
        assert by_key[keys[2]].status is ExecutionStatus.TIMEOUT

    run_virtual(main, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_adaptive_limits_show_in_progress_and_events_and_stay_within_per_endpoint(
    backend: str,
) -> None:
    spec = _spec(60, models=2)

    async def main() -> None:
        events: list[Event] = []
        fake = FakeExecutor(default=Step(latency=1.0))
        queue = RegionQueue(
            spec, fake, adaptive=True, limits=Limits(per_endpoint=4), on_event=events.append
        )
        seen: list[dict[str, int]] = []
        async with anyio.create_task_group() as tg:
            await tg.start(queue.run)
            for _ in range(5):
                await anyio.sleep(1.5)
                seen.append(dict(queue.progress().endpoint_limits))
        assert seen[0] == {"m0@us-east": 2, "m1@us-east": 2}
        assert seen[-1] == {"m0@us-east": 4, "m1@us-east": 4}  # grown to the ceiling
        limits = [e.limit for e in events if isinstance(e, EndpointChanged)]
        assert max(limits) == 4
        assert queue.result is not None
        check_invariants(spec, events, queue.result.records, limits=Limits(per_endpoint=4))

    run_virtual(main, backend=backend)


@pytest.mark.anyio
async def test_usage_and_cost_reach_the_records_progress_and_the_sqlite_store(
    tmp_path: Path,
) -> None:
    spec = _spec(3)
    prices = CostModel(default=Price(per_1k_tokens_out=2.0, per_request=0.01))
    async with SQLiteStore(tmp_path / "jobs.db") as store:
        queue = RegionQueue(spec, _Priced(latency=0.0), store=store, cost_model=prices)
        result = await queue.run()
        assert queue.progress().spent == pytest.approx(3 * 0.21)
        stored = await store.records(spec.id)
    assert {r.usage for r in stored} == {Usage(tokens_in=10, tokens_out=100, inference_seconds=0.0)}
    assert [r.cost for r in stored] == pytest.approx([0.21] * 3)
    assert stored == list(result.records)


@pytest.mark.anyio
async def test_without_guards_progress_has_no_limits_and_no_spend_and_records_no_cost() -> None:
    spec = _spec(3)
    queue = RegionQueue(spec, _Priced(latency=0.0))
    result = await queue.run()
    progress = queue.progress()
    assert progress.endpoint_limits == {}
    assert progress.spent is None
    assert {r.cost for r in result.records} == {None}
    assert {r.usage for r in result.records} == {
        Usage(tokens_in=10, tokens_out=100, inference_seconds=0.0)
    }
