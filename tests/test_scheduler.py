"""Scheduler behaviour: the production failures of DESIGN §1 as regression tests, retries,
timeouts, deadlines, early stop, events, progress, resume and the entry points."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from beacon_orchestrator import (
    Event,
    ExecutionFinished,
    ExecutionKey,
    ExecutionRecord,
    ExecutionRequest,
    ExecutionStarted,
    ExecutionStatus,
    FunctionExecutor,
    JobCancelled,
    JobFinished,
    JobResult,
    JobSpec,
    JobStarted,
    JobStatus,
    Limits,
    MemoryStore,
    MinSuccessRate,
    ModelTarget,
    PreflightError,
    Question,
    QuestionFinished,
    QuestionStarted,
    Response,
    RetryPolicy,
    StoreError,
    Strategy,
    UsageError,
    run_job,
    run_job_sync,
    start_job,
)
from beacon_orchestrator.testing import FakeExecutor, Step, check_invariants, run_virtual

BACKENDS = [pytest.param("asyncio", id="asyncio"), pytest.param("trio", id="trio")]
NO_RETRY = RetryPolicy(attempts=1)
DATA = Path(__file__).parent / "data"


def make_spec(
    n_questions: int = 8,
    regions: tuple[str, ...] = ("us-east", "eu-west", "asia-pacific"),
    n_models: int = 3,
    **kw: Any,
) -> JobSpec:
    return JobSpec(
        id="job",
        questions=[Question(f"q{i}", f"prompt {i}") for i in range(n_questions)],
        models=[ModelTarget(f"m{i}", regions) for i in range(n_models)],
        **kw,
    )


def beacon_scenario() -> tuple[JobSpec, dict[ExecutionKey, Step], dict[str, float]]:
    data = json.loads((DATA / "beacon-8q.json").read_text())
    spec = JobSpec.from_dict(data["job"])
    script = {}
    for endpoint, times in data["service_s"].items():
        model, region = endpoint.split("@")
        for question, t in zip(spec.questions, times, strict=True):
            script[ExecutionKey(question.id, model, region)] = Step(latency=t)
    return spec, script, data["reference_makespans_s"]


# -- the Beacon scenario --------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("strategy", ["endpoint", "region", "lockstep"])
def test_beacon_scenario_makespan_matches_reference(backend: str, strategy: Strategy) -> None:
    """Each strategy's virtual-clock makespan is within 0.5% of the scenario's reference."""
    spec, script, reference = beacon_scenario()

    async def main() -> float:
        fake = FakeExecutor(script, endpoint_capacity=1)
        events: list[Event] = []
        store = MemoryStore()
        t0 = anyio.current_time()
        result = await run_job(spec, fake, store=store, strategy=strategy, on_event=events.append)
        makespan = anyio.current_time() - t0
        assert result.status is JobStatus.COMPLETED
        check_invariants(
            spec, events, await store.records(spec.id), strategy=strategy, executor_log=fake.log
        )
        return makespan

    makespan = run_virtual(main, backend=backend)
    assert makespan == pytest.approx(reference[strategy], rel=0.005)


# -- DESIGN §1 regressions ----------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("strategy", ["endpoint", "region", "lockstep"])
def test_cancel_during_question_2_stops_every_region(backend: str, strategy: Strategy) -> None:
    """Zombie requests: after a cancel during question 2 in one region, no region starts anything,
    not even minutes later, and every in-flight request was closed at the cancel."""
    spec = make_spec()

    async def main() -> None:
        fake = FakeExecutor(default=Step(latency=10.0))
        store = MemoryStore()
        seen_q2 = anyio.Event()

        def on_event(event: Event) -> None:
            if (
                isinstance(event, ExecutionStarted)
                and event.key.question_id == "q1"
                and event.key.region == "eu-west"
            ):
                seen_q2.set()

        async with anyio.create_task_group() as tg:
            handle = await start_job(
                tg, spec, fake, store=store, on_event=on_event, strategy=strategy
            )
            await seen_q2.wait()
            await anyio.sleep(3.0)
            fake.mark("cancel")
            cancelled_at = anyio.current_time()
            handle.cancel()
            result = await handle.wait()
        calls_at_end = len(fake.log)
        await anyio.sleep(300.0)  # the production bug sent requests 2.5 minutes later
        assert len(fake.log) == calls_at_end
        mark = next(c.seq for c in fake.log if c.kind == "mark")
        assert [c for c in fake.log if c.kind == "start" and c.seq > mark] == []
        ends = [c for c in fake.log if c.kind == "end" and c.seq > mark]
        assert ends
        assert all(c.at == cancelled_at and c.outcome == "cancelled" for c in ends)
        assert result.status is JobStatus.CANCELLED
        records = await store.records(spec.id)
        assert len(records) == spec.size
        assert {r.status for r in records} <= {
            ExecutionStatus.COMPLETED,
            ExecutionStatus.CANCELLED,
            ExecutionStatus.SKIPPED,
        }
        assert result.counts[ExecutionStatus.SKIPPED] > 0

    run_virtual(main, backend=backend)


class TracingStore(MemoryStore):
    """Logs every write into a shared trace, so events and writes can be ordered."""

    def __init__(self, trace: list[tuple[str, object]]) -> None:
        super().__init__()
        self.trace = trace

    async def write(self, job_id: str, record: ExecutionRecord) -> None:
        await anyio.sleep(0.01)  # a write that takes time, as a real store's does
        await super().write(job_id, record)
        self.trace.append(("write", record.key))

    async def write_many(self, job_id: str, records: Any) -> None:
        await super().write_many(job_id, records)
        self.trace.extend(("write", r.key) for r in records)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cancel", [False, True])
def test_verdict_is_emitted_after_the_last_record(backend: str, cancel: bool) -> None:
    """Premature verdicts: JobFinished comes after every record is written to the store."""
    spec = make_spec(n_questions=4)

    async def main() -> None:
        trace: list[tuple[str, object]] = []
        store = TracingStore(trace)
        fake = FakeExecutor.random(7, latency=(1.0, 20.0), p_transient=0.2)
        async with anyio.create_task_group() as tg:
            handle = await start_job(
                tg,
                spec,
                fake,
                store=store,
                on_event=lambda e: trace.append(("event", e)),
                retry=RetryPolicy(attempts=2, wait_initial=1.0, wait_jitter=0.0),
            )
            if cancel:
                await anyio.sleep(15.0)
                handle.cancel()
            await handle.wait()
        verdict_at = next(i for i, (kind, e) in enumerate(trace) if isinstance(e, JobFinished))
        writes = [i for i, (kind, _) in enumerate(trace) if kind == "write"]
        assert len(writes) == spec.size
        assert max(writes) < verdict_at == len(trace) - 1

    run_virtual(main, backend=backend)


@pytest.mark.anyio
async def test_empty_answer_counts_as_success_by_default() -> None:
    """False failures: an empty answer is a COMPLETED record flagged empty, and a success."""
    spec = make_spec(n_questions=2)
    result = await run_job(spec, FakeExecutor(default=Step(outcome="empty")))
    assert result.status is JobStatus.COMPLETED
    assert result.success_rate == 1.0
    assert all(
        r.status is ExecutionStatus.COMPLETED and r.empty and r.text == "" for r in result.records
    )


@pytest.mark.anyio
async def test_empty_answer_counts_as_failure_when_the_policy_says_so() -> None:
    spec = make_spec(n_questions=2)
    policy = MinSuccessRate(empty_counts_as_success=False)
    result = await run_job(spec, FakeExecutor(default=Step(outcome="empty")), policy=policy)
    assert result.status is JobStatus.FAILED
    assert result.success_rate == 0.0
    assert result.reason == "0 of 18 executions succeeded (0%), below the required 67%."


@pytest.mark.anyio
async def test_an_arbitrary_executor_exception_fails_one_execution_not_the_job() -> None:
    spec = make_spec(n_questions=3)
    bad = ExecutionKey("q1", "m1", "eu-west")

    async def executor(request: ExecutionRequest) -> Response:
        if request.key == bad:
            raise KeyError("model_registry")
        return Response(text="fine")

    result = await run_job(spec, FunctionExecutor(executor), retry=RetryPolicy(attempts=3))
    by_key = {r.key: r for r in result.records}
    assert by_key[bad].status is ExecutionStatus.FAILED
    assert by_key[bad].error_code == "EXECUTOR_ERROR"
    assert by_key[bad].error_message == "KeyError: 'model_registry'"
    assert by_key[bad].attempts == 1  # an executor bug is permanent: no retries
    assert result.counts[ExecutionStatus.COMPLETED] == spec.size - 1
    assert result.status is JobStatus.COMPLETED


# -- retries, timeouts, deadlines ---------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_transient_failure_is_retried_honouring_retry_after(backend: str) -> None:
    spec = make_spec(n_questions=1, regions=("us-east",), n_models=1)
    key = ExecutionKey("q0", "m0", "us-east")

    async def main() -> None:
        events: list[Event] = []
        fake = FakeExecutor({key: [Step(outcome="transient", retry_after=30.0), Step(latency=1.0)]})
        retry = RetryPolicy(attempts=3, wait_initial=1.0, wait_jitter=0.0)
        result = await run_job(spec, fake, retry=retry, on_event=events.append)
        (record,) = result.records
        assert record.status is ExecutionStatus.COMPLETED
        assert record.attempts == 2
        starts = [e for e in events if isinstance(e, ExecutionStarted)]
        assert [s.attempt for s in starts] == [1, 2]
        assert starts[1].at - starts[0].at == pytest.approx(30.0)

    run_virtual(main, backend=backend)


@pytest.mark.anyio
async def test_retry_budget_caps_retries_across_the_job() -> None:
    spec = make_spec(n_questions=4)
    fake = FakeExecutor(default=Step(outcome="transient"))
    retry = RetryPolicy(attempts=5, wait_initial=0.0, wait_jitter=0.0, budget=3)
    result = await run_job(spec, fake, retry=retry)
    assert sum(r.attempts for r in result.records) == spec.size + 3
    assert all(r.status is ExecutionStatus.FAILED for r in result.records)
    assert {r.error_code for r in result.records} == {"SIMULATED_TRANSIENT"}


@pytest.mark.anyio
async def test_permanent_failure_is_not_retried() -> None:
    spec = make_spec(n_questions=1)
    fake = FakeExecutor(default=Step(outcome="permanent"))
    result = await run_job(spec, fake, retry=RetryPolicy(attempts=3, wait_initial=0.0))
    assert all(r.attempts == 1 and r.error_code == "SIMULATED_PERMANENT" for r in result.records)
    assert result.status is JobStatus.FAILED


@pytest.mark.parametrize("backend", BACKENDS)
def test_attempt_timeout_records_timeout_after_retries(backend: str) -> None:
    spec = make_spec(n_questions=1, regions=("us-east",), n_models=1)

    async def main() -> None:
        fake = FakeExecutor(default=Step(outcome="hang"))
        limits = Limits(attempt_timeout=200.0)
        t0 = anyio.current_time()
        result = await run_job(
            spec,
            fake,
            limits=limits,
            retry=RetryPolicy(attempts=2, wait_initial=5.0, wait_jitter=0),
        )
        (record,) = result.records
        assert record.status is ExecutionStatus.TIMEOUT
        assert record.error_code == "TIMEOUT"
        assert record.attempts == 2
        assert anyio.current_time() - t0 == pytest.approx(405.0)
        # Every attempt saw the deadline it would be interrupted at.
        assert [c.outcome for c in fake.log if c.kind == "end"] == ["cancelled", "cancelled"]

    run_virtual(main, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_request_deadline_is_the_attempt_timeout(backend: str) -> None:
    spec = make_spec(n_questions=1, regions=("us-east",), n_models=1)
    seen: list[float | None] = []

    async def executor(request: ExecutionRequest) -> Response:
        seen.append(request.time_left())
        return Response(text="ok")

    async def main() -> None:
        await run_job(spec, FunctionExecutor(executor), limits=Limits(attempt_timeout=300.0))

    run_virtual(main, backend=backend)
    assert seen == [pytest.approx(300.0)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_job_deadline_cancels_and_decides_by_policy(backend: str) -> None:
    spec = make_spec(n_questions=4)

    async def main() -> None:
        events: list[Event] = []
        fake = FakeExecutor(default=Step(latency=10.0))
        t0 = anyio.current_time()
        result = await run_job(spec, fake, limits=Limits(job_timeout=25.0), on_event=events.append)
        assert anyio.current_time() - t0 == pytest.approx(25.0)
        cancelled = [e for e in events if isinstance(e, JobCancelled)]
        assert [c.source for c in cancelled] == ["deadline"]
        assert result.cancelled_by == "deadline"
        assert result.status is JobStatus.FAILED  # 2 of 4 questions done: 50% < 67%
        assert result.reason.startswith("The job deadline of 25 s passed; 18 of 36 executions")
        assert result.counts[ExecutionStatus.CANCELLED] == 9

    run_virtual(main, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cancel_grace_lets_in_flight_work_finish(backend: str) -> None:
    spec = make_spec(n_questions=3, regions=("us-east",), n_models=2)

    async def main() -> None:
        fake = FakeExecutor(default=Step(latency=10.0))
        async with anyio.create_task_group() as tg:
            handle = await start_job(tg, spec, fake, limits=Limits(cancel_grace=20.0))
            await anyio.sleep(5.0)
            handle.cancel()
            result = await handle.wait()
        statuses = sorted(r.status.value for r in result.records)
        # The two in flight finish within the grace; nothing new starts.
        assert statuses == ["completed", "completed", "skipped", "skipped", "skipped", "skipped"]

    run_virtual(main, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_early_stop_skips_work_once_the_verdict_is_final(backend: str) -> None:
    spec = make_spec(n_questions=10)

    async def main() -> None:
        fake = FakeExecutor(default=Step(outcome="permanent", latency=1.0))
        result = await run_job(spec, fake, early_stop=True, limits=Limits(max_concurrency=3))
        assert result.status is JobStatus.FAILED
        assert result.cancelled_by == "early_stop"
        assert result.reason == (
            "0 of 90 executions succeeded (0%), below the required 67%. "
            "Stopped early: the verdict could no longer change."
        )
        # 67% of 90 is out of reach after 30 failures; at most the two executions that were in
        # flight beside the 30th were started on top (and interrupted).
        assert 30 <= len(fake.starts()) <= 32
        assert result.counts[ExecutionStatus.SKIPPED] == 90 - len(fake.starts())

    run_virtual(main, backend=backend)


# -- events, progress, entry points --------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_events_and_progress(backend: str) -> None:
    spec = make_spec(n_questions=3, regions=("us-east", "eu-west"), n_models=2)

    async def main() -> None:
        events: list[Event] = []
        fake = FakeExecutor(default=Step(latency=10.0))
        async with anyio.create_task_group() as tg:
            handle = await start_job(tg, spec, fake, on_event=events.append)
            await anyio.sleep(15.0)
            progress = handle.progress()
            assert (progress.total, progress.done, progress.in_flight) == (12, 4, 4)
            assert progress.by_question["q0"].done == 4
            assert progress.by_question["q1"].done == 0
            assert progress.by_region["us-east"].total == 6
            assert progress.by_endpoint["m0@eu-west"].done == 1
            assert progress.eta == pytest.approx(30.0 - 15.0)  # the job ends at 30 s
            result = await handle.wait()
        kinds = [type(e) for e in events]
        assert kinds[0] is JobStarted
        assert kinds[-1] is JobFinished
        assert kinds.count(QuestionStarted) == kinds.count(QuestionFinished) == 3
        assert kinds.count(ExecutionFinished) == 12
        assert result.ok
        assert handle.done

    run_virtual(main, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_resume_runs_only_what_is_not_completed(backend: str) -> None:
    spec = make_spec(n_questions=4)

    async def main() -> None:
        store = MemoryStore()
        first = FakeExecutor.random(3, latency=(1.0, 3.0), p_permanent=0.2)
        async with anyio.create_task_group() as tg:
            handle = await start_job(tg, spec, first, store=store, retry=NO_RETRY)
            await anyio.sleep(5.0)
            handle.cancel()
            await handle.wait()
        completed = set(await store.completed_keys(spec.id))
        failed = {r.key for r in await store.records(spec.id) if r.status is ExecutionStatus.FAILED}
        assert completed
        assert failed
        assert len(completed) + len(failed) < spec.size
        second = FakeExecutor()
        result = await run_job(spec, second, store=store)
        ran = {c.key for c in second.starts()}
        assert ran.isdisjoint(completed)
        assert failed <= ran  # FAILED keys run again by default
        assert result.counts[ExecutionStatus.COMPLETED] == spec.size
        assert len(result.records) == spec.size

    run_virtual(main, backend=backend)


@pytest.mark.anyio
async def test_resume_can_keep_failed_records() -> None:
    spec = make_spec(n_questions=2)
    store = MemoryStore()
    await run_job(spec, FakeExecutor(default=Step(outcome="permanent")), store=store)
    second = FakeExecutor()
    result = await run_job(spec, second, store=store, rerun_failed=False)
    assert second.starts() == []
    assert result.counts[ExecutionStatus.FAILED] == spec.size


@pytest.mark.anyio
async def test_on_event_errors_propagate_after_everything_is_stored() -> None:
    spec = make_spec(n_questions=3)
    store = MemoryStore()

    def on_event(event: Event) -> None:
        if isinstance(event, ExecutionFinished):
            raise ValueError("dashboard is down")

    with pytest.raises(ValueError, match="dashboard is down"):
        await run_job(
            spec, FakeExecutor(default=Step(latency=0.001)), store=store, on_event=on_event
        )
    records = await store.records(spec.id)
    assert len(records) == spec.size
    (job,) = await store.jobs()
    assert job.status is JobStatus.FAILED


@pytest.mark.parametrize("backend", BACKENDS)
def test_caller_scope_cancel_accounts_for_every_key(backend: str) -> None:
    spec = make_spec(n_questions=5)

    async def main() -> None:
        store = MemoryStore()
        with anyio.move_on_after(50.0):
            await run_job(spec, FakeExecutor(default=Step(latency=20.0)), store=store)
        records = await store.records(spec.id)
        assert len(records) == spec.size
        assert sorted({r.status.value for r in records}) == ["cancelled", "completed", "skipped"]
        (job,) = await store.jobs()
        assert job.status is JobStatus.CANCELLED

    run_virtual(main, backend=backend)


class HealthyButFor:
    def __init__(self, bad: str) -> None:
        self.bad = bad

    async def execute(self, request: ExecutionRequest) -> Response:
        return Response(text="x")

    async def preflight(self, regions: Any) -> None:
        if self.bad in regions:
            raise PreflightError(f"no healthy provider in region {self.bad!r}")


@pytest.mark.anyio
async def test_preflight_fails_before_anything_starts() -> None:
    spec = make_spec(n_questions=1)
    store = MemoryStore()
    with pytest.raises(PreflightError, match="eu-west"):
        await run_job(spec, HealthyButFor("eu-west"), store=store, preflight=True)
    assert await store.jobs() == []
    result = await run_job(spec, HealthyButFor("eu-west"), store=store)  # preflight is opt-in
    assert result.ok


def test_bad_arguments_raise_usage_errors() -> None:
    spec = make_spec(n_questions=1)
    with pytest.raises(UsageError, match="strategy must be one of"):
        run_job_sync(spec, FakeExecutor(), strategy="fastest")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="FunctionExecutor"):
        run_job_sync(spec, object())  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="must be a JobSpec"):
        run_job_sync({"id": "x"}, FakeExecutor())  # type: ignore[arg-type]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_run_job_sync_runs_a_job_from_a_script(backend: str) -> None:
    result = run_job_sync(make_spec(n_questions=2), FakeExecutor(), backend=backend)
    assert isinstance(result, JobResult)
    assert result.ok


def test_run_job_inside_an_already_running_loop_like_jupyter() -> None:
    """Jupyter already runs an asyncio loop: `await run_job(...)` works there, and the blocking
    wrapper says what to do instead of failing obscurely."""
    spec = make_spec(n_questions=2)

    async def cell() -> JobResult:
        with pytest.raises(UsageError, match="await run_job"):
            run_job_sync(spec, FakeExecutor())
        return await run_job(spec, FakeExecutor())

    assert asyncio.run(cell()).ok


class FailingStore(MemoryStore):
    """A store whose disk fills up while the job is being wound down."""

    async def write_many(self, job_id: str, records: Any) -> None:
        raise StoreError("disk full")


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_store_failure_while_accounting_reaches_the_waiter(backend: str) -> None:
    """wait() raises the store's error instead of hanging when accounting fails."""
    spec = make_spec(n_questions=3)

    async def main() -> list[str]:
        seen: list[str] = []
        fake = FakeExecutor(default=Step(latency=5.0))
        with pytest.raises(ExceptionGroup) as info:  # noqa: PT012 - the job runs in this group
            async with anyio.create_task_group() as tg:
                handle = await start_job(tg, spec, fake, store=FailingStore())

                async def waiter() -> None:
                    try:
                        await handle.wait()
                    except StoreError as exc:
                        seen.append(str(exc))

                tg.start_soon(waiter)
                await anyio.sleep(1.0)
                handle.cancel()
        assert info.group_contains(StoreError, match="disk full")
        return seen

    assert run_virtual(main, backend=backend) == ["disk full"]
