"""Cancelling from another thread: refused by ``cancel()``, done right by ``cancel_threadsafe()``.

``cancel()`` called from a thread other than the event loop's used to raise ``RuntimeError``
half-way: nothing new started, yet the in-flight executions were not interrupted. Now it is
refused with a ``UsageError`` before it changes anything, and ``cancel_threadsafe()`` hands the
cancellation to the event loop (anyio's thread-safe call, with a token taken when the job
started) and returns once it took effect. Both backends, from real ``threading.Thread``s.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import anyio
import anyio.to_thread
import pytest

from beacon_orchestrator import (
    Event,
    JobCancelled,
    JobHandle,
    JobStatus,
    Limits,
    MemoryStore,
    RegionQueue,
    UsageError,
    start_job,
)
from beacon_orchestrator.testing import FakeExecutor, Step, check_invariants

from .stores.support import make_spec

pytestmark = pytest.mark.anyio

SAFETY = 10.0  # seconds; the jobs here end in milliseconds unless a test is broken


def in_a_thread(fn: Callable[[], object]) -> BaseException | None:
    """Run ``fn`` in a new ``threading.Thread`` (not an anyio worker) and return what it raised."""
    raised: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=target, name="ui-thread")
    thread.start()
    thread.join(SAFETY)
    assert not thread.is_alive(), "the thread hung"
    return raised[0] if raised else None


async def until_in_flight(handle: JobHandle, n: int) -> None:
    with anyio.fail_after(SAFETY):
        while handle.progress().in_flight < n:
            await anyio.sleep(0.001)


async def test_cancel_from_another_thread_is_refused_and_changes_nothing() -> None:
    spec = make_spec(questions=2, models=1)
    fake = FakeExecutor(default=Step(latency=0.005))
    events: list[Event] = []
    with anyio.fail_after(SAFETY):
        async with anyio.create_task_group() as tg:
            handle = await start_job(tg, spec, fake, on_event=events.append)
            queue = handle._queue
            for cancel in (handle.cancel, queue.cancel):
                raised = await anyio.to_thread.run_sync(in_a_thread, lambda c=cancel: c("no"))
                assert isinstance(raised, UsageError)
                assert "thread 'ui-thread'" in str(raised)
                assert "cancel_threadsafe()" in str(raised)
            result = await handle.wait()
    assert result.status is JobStatus.COMPLETED
    assert not any(isinstance(e, JobCancelled) for e in events)
    assert len(fake.starts()) == spec.size


async def test_cancel_threadsafe_from_a_thread_stops_starts_interrupts_and_accounts() -> None:
    """From a real thread: when cancel_threadsafe returns nothing starts any more, the
    executions in flight are interrupted, and every key has one record."""
    spec = make_spec(questions=4, models=2)  # 24 keys on 6 endpoints, one at a time each
    limits = Limits(per_endpoint=1)
    fake = FakeExecutor(default=Step(outcome="hang"))
    events: list[Event] = []
    store = MemoryStore()
    with anyio.fail_after(SAFETY):
        async with anyio.create_task_group() as tg:
            handle = await start_job(
                tg, spec, fake, store=store, limits=limits, on_event=events.append
            )
            await until_in_flight(handle, 6)
            token = anyio.lowlevel.current_token()

            def from_the_thread() -> None:
                handle.cancel_threadsafe("stopped from the UI")
                # Returned: the cancellation has taken effect. Mark the executor's log in the
                # loop, so any start after this point would show after the mark.
                anyio.from_thread.run_sync(fake.mark, "cancel", token=token)

            raised = await anyio.to_thread.run_sync(in_a_thread, from_the_thread)
            assert raised is None
            result = await handle.wait()
    assert result.status is JobStatus.CANCELLED
    assert result.cancelled_by == "handle"
    assert "stopped from the UI" in result.reason
    records = await store.records(spec.id)
    # On the real clock "at once" is the event loop's next turns: a few ms of slack.
    check_invariants(spec, events, records, limits=limits, executor_log=fake.log, tolerance=0.05)
    assert sum(1 for r in records if r.status.value == "cancelled") == 6
    assert sum(1 for r in records if r.status.value == "skipped") == spec.size - 6
    ends = [c for c in fake.log if c.kind == "end"]
    assert len(ends) == 6
    assert {c.outcome for c in ends} == {"cancelled"}


async def test_cancel_threadsafe_in_the_loop_thread_is_cancel() -> None:
    spec = make_spec(questions=2, models=1)
    async with anyio.create_task_group() as tg:
        handle = await start_job(tg, spec, FakeExecutor(default=Step(outcome="hang")))
        handle.cancel_threadsafe("from the loop itself")
        # Synchronous, as cancel(): nothing in flight will be resumed.
        assert handle._queue._stopping
        result = await handle.wait()
    assert result.status is JobStatus.CANCELLED


async def test_cancel_threadsafe_after_the_job_ended_does_nothing() -> None:
    spec = make_spec(questions=1, models=1)
    async with anyio.create_task_group() as tg:
        handle = await start_job(tg, spec, FakeExecutor())
        result = await handle.wait()
    raised = await anyio.to_thread.run_sync(in_a_thread, lambda: handle.cancel_threadsafe())
    assert raised is None
    assert result.status is JobStatus.COMPLETED
    assert handle._queue.result is result


def test_cancel_threadsafe_after_the_event_loop_is_gone_does_nothing(anyio_backend: str) -> None:
    spec = make_spec(questions=1, models=1)
    queue = RegionQueue(spec, FakeExecutor())
    result = anyio.run(queue.run, backend=anyio_backend)
    JobHandle(queue).cancel_threadsafe("too late")  # this thread's loop has closed
    assert queue.result is result


def test_cancel_before_the_job_started_is_a_usage_error() -> None:
    queue = RegionQueue(make_spec(questions=1, models=1), FakeExecutor())
    with pytest.raises(UsageError, match="has not started"):
        queue.cancel()
    with pytest.raises(UsageError, match="has not started"):
        queue.cancel_threadsafe()
