"""Progress tells the truth: what ran, what was kept, cancelled, skipped, waiting, left to run.

Each planned execution is in exactly one of ``kept``, ``finished``, ``cancelled``, ``skipped``,
``in_flight``, ``waiting_to_retry`` and ``to_run``; the tests check that partition against the
events and the records, through cancellation, resume and retries.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Mapping
from typing import Any

import anyio
import pytest
from hypothesis import given

from beacon_orchestrator import (
    Counter,
    Event,
    ExecutionFinished,
    ExecutionKey,
    ExecutionRecord,
    ExecutionStarted,
    ExecutionStatus,
    JobFinished,
    JobSpec,
    MemoryStore,
    ModelTarget,
    Progress,
    Question,
    QuestionStarted,
    RegionQueue,
    RetryPolicy,
    start_job,
)
from beacon_orchestrator.testing import FakeExecutor, Step, run_virtual

from .scheduling_harness import Scenario, run_scenario, scenarios

BACKENDS = [pytest.param("asyncio", id="asyncio"), pytest.param("trio", id="trio")]
COMPLETED = ExecutionStatus.COMPLETED
CANCELLED = ExecutionStatus.CANCELLED
SKIPPED = ExecutionStatus.SKIPPED


def spec(n_questions: int = 4, regions: tuple[str, ...] = ("us-east", "eu-west")) -> JobSpec:
    return JobSpec(
        id="truth",
        questions=[Question(f"q{i}", f"prompt {i}") for i in range(n_questions)],
        models=[ModelTarget("m0", regions), ModelTarget("m1", regions)],
    )


def parts(p: Progress) -> dict[str, int]:
    return {
        "kept": p.kept,
        "finished": p.finished,
        "cancelled": p.cancelled,
        "skipped": p.skipped,
        "in_flight": p.in_flight,
        "waiting_to_retry": p.waiting_to_retry,
        "to_run": p.to_run,
    }


def sums(counters: Mapping[str, Counter]) -> dict[str, int]:
    return {
        "done": sum(c.done for c in counters.values()),
        "total": sum(c.total for c in counters.values()),
        "kept": sum(c.kept for c in counters.values()),
        "cancelled": sum(c.cancelled for c in counters.values()),
        "skipped": sum(c.skipped for c in counters.values()),
    }


def assert_consistent(p: Progress) -> None:
    """The counts partition the job, and every slice adds up to the whole."""
    assert all(n >= 0 for n in parts(p).values()), parts(p)
    assert sum(parts(p).values()) == p.total, parts(p)
    assert p.done == p.kept + p.finished
    assert p.recorded == p.kept + p.finished + p.cancelled + p.skipped
    assert p.planned_this_run == p.total - p.kept
    assert 0.0 <= p.fraction <= 1.0
    whole = {
        "done": p.done,
        "total": p.total,
        "kept": p.kept,
        "cancelled": p.cancelled,
        "skipped": p.skipped,
    }
    for counters in (p.by_question, p.by_region, p.by_model, p.by_endpoint):
        assert sums(counters) == whole


class _Witness:
    """Checks every progress snapshot against the events seen so far."""

    def __init__(self) -> None:
        self.queue: RegionQueue | None = None
        self.started: set[ExecutionKey] = set()
        self.ended: Tally[ExecutionStatus] = Tally()
        self.ended_keys: set[ExecutionKey] = set()
        self.snapshots: list[Progress] = []

    def on_event(self, event: Event) -> None:
        if isinstance(event, ExecutionStarted) and event.attempt == 1:
            self.started.add(event.key)
        elif isinstance(event, ExecutionFinished):
            self.ended[event.record.status] += 1
            self.ended_keys.add(event.record.key)
        assert self.queue is not None
        p = self.queue.progress()
        assert_consistent(p)
        if not isinstance(event, QuestionStarted):  # sent between a pick and its first attempt
            running = len(self.started - self.ended_keys)
            assert p.in_flight + p.waiting_to_retry == running
        finished = sum(n for status, n in self.ended.items() if status.finished)
        assert (p.finished, p.cancelled, p.skipped) == (
            finished,
            self.ended[CANCELLED],
            self.ended[SKIPPED],
        )
        if self.snapshots:
            before = self.snapshots[-1]
            assert p.kept == before.kept
            assert p.to_run <= before.to_run
            assert p.finished >= before.finished
        if isinstance(event, JobFinished):
            assert (p.to_run, p.in_flight, p.waiting_to_retry) == (0, 0, 0)
            assert p.eta == 0.0
            assert p.recorded == p.total
        self.snapshots.append(p)


@pytest.mark.parametrize("backend", BACKENDS)
@given(sc=scenarios(resume=None))
def test_progress_partitions_the_job_and_matches_the_events_at_every_event(
    backend: str, sc: Scenario
) -> None:
    """Property: at every event of any job (random shape, faults, limits, strategy, retries,
    cancellation from any source, a resume of a cancelled run), kept + finished + cancelled +
    skipped + in flight + waiting to retry + to run is the planned total; finished, cancelled and
    skipped are exactly what the ExecutionFinished events say; in flight plus waiting is exactly
    what started and has no record; every slice sums to the whole; nothing goes backwards; and
    at the end nothing is left to run."""
    witness = _Witness()

    class Witnessed(RegionQueue):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            inner = kwargs.pop("on_event")

            def both(event: Event) -> None:
                witness.on_event(event)
                inner(event)

            super().__init__(*args, on_event=both, **kwargs)
            witness.queue = self

    out = run_scenario(sc, backend, queue_cls=Witnessed)
    first = witness.snapshots[0]
    # The earlier run's CANCELLED and SKIPPED records run again: they are to run, not done.
    assert first.kept == len(out.resumed)
    assert (first.finished, first.cancelled, first.skipped) == (0, 0, 0)
    assert first.to_run + first.in_flight == first.total - first.kept
    assert out.result is None or witness.snapshots[-1].counts == out.result.counts


def test_a_cancelled_job_shows_what_ran_what_was_cancelled_and_what_was_skipped() -> None:
    job = spec(n_questions=8)  # 32 executions on 4 endpoints, 10 s each

    async def main() -> tuple[Progress, Any]:
        async with anyio.create_task_group() as tg:
            handle = await start_job(tg, job, FakeExecutor(default=Step(latency=10.0)))
            await anyio.sleep(25.0)  # two rounds done, the third in flight
            handle.cancel("enough")
            stopping = handle.progress()
            assert stopping.eta is None  # what is left is stopping, not running
            result = await handle.wait()
        return handle.progress(), result

    p, result = run_virtual(main)
    assert (p.finished, p.cancelled, p.skipped, p.to_run, p.in_flight) == (8, 4, 20, 0, 0)
    assert p.done == 8  # not 32: a cancelled or skipped execution is not done
    assert p.fraction == pytest.approx(8 / 32)
    assert p.recorded == 32
    assert p.counts[COMPLETED] == 8
    assert result.counts[CANCELLED] == 4
    q0, q2, q5 = p.by_question["q0"], p.by_question["q2"], p.by_question["q5"]
    assert (q0.done, q0.cancelled, q0.skipped) == (4, 0, 0)
    assert (q2.done, q2.cancelled, q2.skipped) == (0, 4, 0)
    assert (q5.done, q5.cancelled, q5.skipped, q5.fraction) == (0, 0, 4, 0.0)
    assert p.by_endpoint["m0@us-east"] == Counter(2, 8, kept=0, cancelled=1, skipped=5)
    assert p.by_region["eu-west"] == Counter(4, 16, kept=0, cancelled=2, skipped=10)
    assert p.by_model["m1"].done == 4


def _stored(key: ExecutionKey, status: ExecutionStatus) -> ExecutionRecord:
    return ExecutionRecord(key=key, status=status, text="x" if status is COMPLETED else None)


@pytest.mark.parametrize("rerun_failed", [True, False])
def test_a_resume_counts_kept_records_apart_and_reruns_the_rest_as_to_run(
    rerun_failed: bool,
) -> None:
    job = spec(n_questions=3, regions=("us-east",))  # 6 executions on 2 endpoints
    earlier = {
        ExecutionKey("q0", "m0", "us-east"): COMPLETED,
        ExecutionKey("q0", "m1", "us-east"): ExecutionStatus.FAILED,
        ExecutionKey("q1", "m0", "us-east"): CANCELLED,
        ExecutionKey("q1", "m1", "us-east"): SKIPPED,
        ExecutionKey("q2", "m0", "us-east"): SKIPPED,
    }
    kept = 1 if rerun_failed else 2

    async def main() -> tuple[Progress, Progress, Progress]:
        store = MemoryStore()
        await store.open_job(job)
        for key, status in earlier.items():
            await store.write(job.id, _stored(key, status))
        fake = FakeExecutor(default=Step(latency=1.0))
        async with anyio.create_task_group() as tg:
            handle = await start_job(tg, job, fake, store=store, rerun_failed=rerun_failed)
            at_start = handle.progress()
            await anyio.sleep(1.5)
            midway = handle.progress()
            await handle.wait()
        return at_start, midway, handle.progress()

    at_start, midway, end = run_virtual(main)
    for p in (at_start, midway, end):
        assert_consistent(p)
        assert p.kept == kept
        assert (p.cancelled, p.skipped) == (0, 0)  # the earlier run's are to run again
    assert (at_start.finished, at_start.done, at_start.fraction) == (0, kept, 0.0)
    assert at_start.to_run + at_start.in_flight == 6 - kept
    assert at_start.by_question["q1"] == Counter(0, 2)  # cancelled and skipped before: to run
    assert at_start.by_question["q0"] == Counter(kept, 2, kept=kept)
    assert at_start.by_endpoint["m0@us-east"] == Counter(1, 3, kept=1)
    assert midway.finished == 2
    assert midway.fraction == pytest.approx(2 / (6 - kept))
    assert (end.finished, end.done, end.fraction) == (6 - kept, 6, 1.0)


def test_executions_between_attempts_are_waiting_to_retry_not_in_flight() -> None:
    job = spec(n_questions=1)  # 4 executions, one per endpoint
    flaky = ExecutionKey("q0", "m0", "us-east")
    fake = FakeExecutor(
        {flaky: [Step(latency=1.0, outcome="transient"), Step(latency=1.0)]},
        default=Step(latency=5.0),
    )
    retry = RetryPolicy(attempts=2, wait_initial=10.0, wait_max=10.0, wait_jitter=0.0)

    async def main() -> list[Progress]:
        seen: list[Progress] = []
        async with anyio.create_task_group() as tg:
            handle = await start_job(tg, job, fake, retry=retry)
            for until in (0.5, 2.0, 6.0, 11.5):
                await anyio.sleep_until(until)
                seen.append(handle.progress())
            await handle.wait()
        return seen

    at_start, backing_off, others_done, retrying = run_virtual(main)
    assert (at_start.in_flight, at_start.waiting_to_retry) == (4, 0)
    assert (backing_off.in_flight, backing_off.waiting_to_retry) == (3, 1)
    assert (others_done.finished, others_done.in_flight, others_done.waiting_to_retry) == (3, 0, 1)
    assert (retrying.in_flight, retrying.waiting_to_retry, retrying.finished) == (1, 0, 3)
    for p in (at_start, backing_off, others_done, retrying):
        assert_consistent(p)


def test_a_job_cancelled_during_a_backoff_counts_the_waiting_execution_as_cancelled() -> None:
    job = spec(n_questions=1, regions=("us-east",))
    fake = FakeExecutor(default=Step(latency=1.0, outcome="transient"))
    retry = RetryPolicy(attempts=3, wait_initial=60.0, wait_max=60.0, wait_jitter=0.0)

    async def main() -> tuple[Progress, Progress]:
        async with anyio.create_task_group() as tg:
            handle = await start_job(tg, job, fake, retry=retry)
            await anyio.sleep(5.0)
            waiting = handle.progress()
            handle.cancel()
            await handle.wait()
        return waiting, handle.progress()

    waiting, end = run_virtual(main)
    assert (waiting.waiting_to_retry, waiting.in_flight) == (2, 0)
    assert (end.waiting_to_retry, end.cancelled, end.finished, end.fraction) == (0, 2, 0, 0.0)
