"""Attempt timeouts, timed by the watch through each worker's scope (anyio's per-task scope on
asyncio, one the worker enters on trio), behave as a deadline scope per attempt did: a retry
goes on (in a new worker task: the watch cut the old one's scope), an executor's shielded section
runs to its end first, an answer the executor gives after all counts, and an execution that
times out while the job ends still gets its one record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from beacon_orchestrator import (
    ExecutionRequest,
    ExecutionStatus,
    JobHandle,
    JobResult,
    JobSpec,
    Limits,
    MemoryStore,
    ModelTarget,
    Question,
    Response,
    RetryPolicy,
    run_job,
    start_job,
)
from beacon_orchestrator._compat import task_scopes
from beacon_orchestrator._scheduler._watch import AttemptWatch, Worker
from beacon_orchestrator.testing import run_virtual

BACKENDS = [pytest.param("asyncio", id="asyncio"), pytest.param("trio", id="trio")]
TIMEOUT = 5.0
SPEC = JobSpec(
    id="watch",
    questions=(Question("q1", "one?"), Question("q2", "two?")),
    models=(ModelTarget("m", ("r1", "r2", "r3")),),
)


def _task() -> object:
    """The running task (asyncio's task, or trio's)."""
    try:
        return asyncio.current_task()
    except RuntimeError:
        import trio

        return trio.lowlevel.current_task()


class Script:
    """An executor whose attempts follow ``behave(attempt)``; notes each attempt's task."""

    def __init__(self, behave: Callable[[int], Awaitable[Response]]) -> None:
        self.behave = behave
        self.tasks: dict[tuple[Any, int], object] = {}
        self.running = 0
        self.most_running = 0

    async def execute(self, request: ExecutionRequest) -> Response:
        self.tasks[request.key, request.attempt] = _task()
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            return await self.behave(request.attempt)
        finally:
            self.running -= 1


async def _run(executor: Script, limits: dict[str, Any] | None = None) -> JobResult:
    retry = RetryPolicy(attempts=2, wait_initial=0.5, wait_jitter=0.0)
    return await run_job(
        SPEC,
        executor,
        store=MemoryStore(),
        limits=Limits(attempt_timeout=TIMEOUT, max_concurrency=4, **(limits or {})),
        retry=retry,
    )


async def _hang_then_answer(attempt: int) -> Response:
    if attempt == 1:
        await anyio.sleep_forever()
    return Response(text="ok")


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_timed_out_attempt_is_retried_and_completes_within_the_limits(backend: str) -> None:
    executor = Script(_hang_then_answer)
    result = run_virtual(_run, executor, backend=backend)
    records = list(result.records)
    assert {r.status for r in records} == {ExecutionStatus.COMPLETED}
    assert {r.attempts for r in records} == {2}
    assert executor.most_running <= 4
    # The watch cancelled the first attempt's worker: a new worker made the retry.
    assert all(executor.tasks[r.key, 1] is not executor.tasks[r.key, 2] for r in records)


async def _shielded_past_the_timeout(attempt: int) -> Response:
    with anyio.CancelScope(shield=True):
        await anyio.sleep(TIMEOUT + 3)
    await anyio.sleep_forever()
    raise AssertionError("unreachable")


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_timeout_waits_for_the_executors_shielded_section(backend: str) -> None:
    executor = Script(_shielded_past_the_timeout)
    result = run_virtual(_run, executor, backend=backend)
    records = list(result.records)
    assert {r.status for r in records} == {ExecutionStatus.TIMEOUT}
    for r in records:
        assert r.started_at is not None
        assert r.finished_at is not None
        # Two attempts, each cut at the end of its shielded 8 s (not at 5 s), 0.5 s apart.
        assert r.finished_at - r.started_at == pytest.approx(2 * (TIMEOUT + 3) + 0.5, abs=0.01)


async def _answers_when_cancelled(attempt: int) -> Response:
    try:
        await anyio.sleep_forever()
    except anyio.get_cancelled_exc_class():
        return Response(text="late but here")
    raise AssertionError("unreachable")


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_answer_given_after_the_timeout_counts_on_both_backends(backend: str) -> None:
    # The executor swallows the cancellation (it should not): a deadline scope then sees no
    # cancellation caught and the answer counts; the watch must agree.
    executor = Script(_answers_when_cancelled)
    result = run_virtual(_run, executor, backend=backend)
    records = list(result.records)
    assert {(r.status, r.attempts, r.text) for r in records} == {
        (ExecutionStatus.COMPLETED, 1, "late but here")
    }


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("job_timeout", [TIMEOUT - 0.001, TIMEOUT, TIMEOUT + 0.001])
def test_an_execution_timing_out_as_the_job_ends_gets_exactly_one_record(
    backend: str, job_timeout: float
) -> None:
    async def hang(attempt: int) -> Response:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    executor = Script(hang)
    result = run_virtual(
        _run, executor, {"job_timeout": job_timeout, "cancel_grace": 0.0}, backend=backend
    )
    records = list(result.records)
    assert len(records) == len({r.key for r in records}) == SPEC.size
    ended = {ExecutionStatus.TIMEOUT, ExecutionStatus.CANCELLED}
    started = [r for r in records if r.status in ended]
    assert len(started) >= len(SPEC.endpoints)  # the first of each endpoint, at least
    assert all(r.attempts == 1 for r in started)
    assert all(r.status is ExecutionStatus.SKIPPED for r in records if r not in started)


def test_the_watch_is_used_where_tasks_have_scopes_of_their_own() -> None:
    async def main() -> bool:
        return task_scopes()

    assert anyio.run(main, backend="asyncio") is True
    assert anyio.run(main, backend="trio") is False


def test_the_watch_cancels_only_attempts_still_armed_at_their_deadline() -> None:
    """Deadlines come due in the order they were armed; a disarmed attempt is never cut."""
    cancelled: list[str] = []

    class Handle:
        def __init__(self, name: str) -> None:
            self.name = name

        def cancel(self) -> None:
            cancelled.append(self.name)

    async def main() -> None:
        watch = AttemptWatch(anyio.current_time)
        workers = {name: Worker() for name in "abc"}
        for name, worker in workers.items():
            worker.handle = Handle(name)
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch.run)
            t0 = anyio.current_time()
            watch.arm(workers["a"], t0 + 1)
            watch.arm(workers["b"], t0 + 2)
            watch.arm(workers["c"], t0 + 3)
            await anyio.sleep(1.5)
            watch.ended(workers["b"], Response(text="in time"))  # before its deadline
            await anyio.sleep(2)
            tg.cancel_scope.cancel()
        assert cancelled == ["a", "c"]
        assert [w.fired for w in workers.values()] == [True, False, True]

    run_virtual(main)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_job_cancelled_as_its_attempt_times_out_still_records_the_execution(
    backend: str,
) -> None:
    """The cancel lands between the timeout and the retry's new worker: one record a key."""

    async def main() -> JobResult:
        handle: JobHandle | None = None

        async def cancel_on_timeout(attempt: int) -> Response:
            try:
                await anyio.sleep_forever()
            finally:
                assert handle is not None
                handle.cancel("cancelled as the attempt timed out")
            raise AssertionError("unreachable")

        executor = Script(cancel_on_timeout)
        retry = RetryPolicy(attempts=2, wait_initial=0.5, wait_jitter=0.0)
        async with anyio.create_task_group() as tg:
            handle = await start_job(
                tg,
                SPEC,
                executor,
                store=MemoryStore(),
                limits=Limits(attempt_timeout=TIMEOUT, cancel_grace=0.0),
                retry=retry,
            )
        assert handle is not None
        return await handle.wait()  # the group ended with the job: at once

    result = run_virtual(main, backend=backend)
    records = list(result.records)
    assert len(records) == len({r.key for r in records}) == SPEC.size
    started = [r for r in records if r.attempts]
    assert len(started) == len(SPEC.endpoints)
    assert {r.status for r in started} <= {ExecutionStatus.TIMEOUT, ExecutionStatus.CANCELLED}
    assert {r.status for r in records if not r.attempts} == {ExecutionStatus.SKIPPED}


def test_an_execution_handed_over_is_held_until_a_worker_takes_it() -> None:
    """What no worker took when the job ends is given back once, for its record."""
    from beacon_orchestrator import ExecutionKey
    from beacon_orchestrator._scheduler._watch import Carried

    watch = AttemptWatch(lambda: 0.0)
    taken, left = (
        Carried(ExecutionKey("q", "m", r, 0), "?", (None, 0), 1, 1, 0.0, TimeoutError())  # type: ignore[arg-type]
        for r in ("r1", "r2")
    )
    watch.hold(taken)
    watch.hold(left)
    watch.take(taken)
    assert list(watch.leftovers()) == [left]
    assert list(watch.leftovers()) == []
