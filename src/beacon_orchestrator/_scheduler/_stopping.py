"""How a run stops taking work: cancellation, a crash, a lost lease.

Every start and every retry is preceded by one check, :meth:`Stopping._may_start`; everything
here that stops a job sets the flag it reads first, synchronously, and then interrupts what is
in flight. A bug outside the executor (an ``on_event`` callback that raises, a store that fails)
stops the job like a cancellation, and the run raises it once every key has its record. A run
whose lease passed to another runner stops at once, whatever the grace, and stores nothing more.

:class:`Stopping` is mixed into :class:`~beacon_orchestrator.RegionQueue`, which owns the state
declared on it.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio

from .._errors import LeaseLostError, UsageError
from .._events import CancelSource, Event, EventHandler, JobCancelled
from .._spec import JobSpec, Limits
from .._status import JobResult
from ._ledger import StopReason
from ._threads import LoopThread

if TYPE_CHECKING:
    from ._attempts import AttemptLoop
    from ._journal import JobLog

__all__ = ["Stopping"]

# The collector's thresholds while a job ends: a first threshold of 0 turns automatic passes off.
_NO_PASSES = (0, 0, 0)


class Stopping:
    """Cancellation, crashes and a lost lease, for the runner that owns this state."""

    spec: JobSpec
    limits: Limits
    _ran: bool
    _stopping: bool
    _stop: StopReason
    _result: JobResult | None
    _emit: EventHandler | None
    _now: Callable[[], float]
    _attempts: AttemptLoop
    _log: JobLog
    _workers_scope: anyio.CancelScope | None
    _wake: anyio.Event
    _interrupt: anyio.Event
    _gc_threshold: tuple[int, int, int] | None
    _loop: LoopThread | None
    _finished_event: anyio.Event | None

    def cancel(self, reason: str | None = None) -> None:
        """Request cancellation. When this returns, no execution or retry will start.

        Raises:
            UsageError: The job has not started, or this is not the thread running the job's
                event loop (nothing is changed then; use :meth:`cancel_threadsafe`).
        """
        self._started_loop().check("cancel()", "cancel_threadsafe()")
        self._request_cancel("handle", reason or "cancelled by the caller")

    def cancel_threadsafe(self, reason: str | None = None) -> None:
        """:meth:`cancel` from any thread: returns once the event loop has applied it.

        Blocks until the event loop gets to it; cancelling a job that has ended does nothing.

        Raises:
            UsageError: The job has not started.
        """
        self._started_loop().call(
            lambda: self._request_cancel("handle", reason or "cancelled by the caller"),
            ended=lambda: self._finished_event is not None and self._finished_event.is_set(),
        )

    def _started_loop(self) -> LoopThread:
        if self._loop is None:
            raise UsageError("the job has not started yet; there is nothing to cancel")
        return self._loop

    def _may_start(self) -> bool:
        """The check that precedes every start and every retry: has cancellation been asked?"""
        return not self._stopping

    def _request_cancel(self, source: CancelSource, reason: str) -> None:
        """Stop all new work, synchronously, and interrupt what is in flight."""
        if self._stopping or not self._ran or self._result is not None:
            return
        self._stopping = True
        self._stop.source = source
        self._stop.reason = reason
        now = self._now()
        self._log.cancelled(source, reason)
        self._emit_safely(JobCancelled(self.spec.id, source, reason, now))
        self._attempts.wake_sleepers()
        self._wake_idle()
        workers = self._workers_scope
        if workers is not None:
            grace = self.limits.cancel_grace
            if grace <= 0:
                # Interrupting 10,000 executions is 10,000 deliveries (trio makes them inside
                # cancel()): a task of the run's does it on the loop's next turn, so that this
                # call stays O(1). Nothing can start meanwhile: the flag above is set.
                self._pause_gc()
                self._interrupt.set()
            else:
                workers.deadline = min(workers.deadline, now + grace)

    async def _interrupt_when_asked(self) -> None:
        """Cancel the workers' scope once cancellation asks for it (see ``_request_cancel``)."""
        await self._interrupt.wait()
        if self._workers_scope is not None:
            self._workers_scope.cancel()

    def _pause_gc(self) -> None:
        """Keep the collector out of the end of the job, until :meth:`_resume_gc`.

        Unwinding thousands of interrupted executions and storing a record for every key
        allocates a great deal: each allocation burst triggered a pass over a heap of
        thousands of suspended tasks, two thirds of cancel -> verdict (see
        ``docs/performance.md``), and it is only churn: what the end allocates is freed by
        reference counting or lives on in the store. The passes resume after the verdict,
        with the thresholds as they were (only if nothing else changed them meanwhile).
        """
        if self._gc_threshold is None and gc.isenabled():
            young, middle, old = gc.get_threshold()
            self._gc_threshold = (young, middle, old)
            gc.set_threshold(*_NO_PASSES)

    def _resume_gc(self) -> None:
        saved, self._gc_threshold = self._gc_threshold, None
        if saved is not None and gc.get_threshold() == _NO_PASSES:
            gc.set_threshold(*saved)

    def _deadline_reason(self) -> str:
        return f"the job deadline of {self.limits.job_timeout:g} s passed"

    def _crashed(self, exc: Exception) -> None:
        """A bug outside the executor (an ``on_event`` callback, the store): stop the job.

        Everything is still accounted for, then ``run()`` re-raises the first ``exc``. Events
        still go to ``on_event`` (what it raises again is dropped), so its log stays complete.
        """
        stop = self._stop
        if stop.crash is None:
            stop.crash = exc
        if stop.reason is None:
            stop.reason = f"the job stopped on an unexpected error ({type(exc).__name__})"
        if not self._stopping:
            self._stopping = True
            self._wake_idle()
            if self._workers_scope is not None:
                self._workers_scope.cancel()

    def _emit_safely(self, event: Event) -> None:
        """Send an event to ``on_event``; what it raises stops the job, after the accounting."""
        emit = self._emit
        if emit is not None:
            try:
                emit(event)
            except Exception as exc:
                self._crashed(exc)

    def _lease_lost(self, exc: LeaseLostError) -> None:
        """Another runner took the job over: stop at once, and store nothing more."""
        if self._stop.crash is None:
            self._stop.crash = exc
        self._request_cancel("lease", str(exc))
        # Whatever the grace: the new holder runs these executions again.
        if self._workers_scope is not None:
            self._workers_scope.cancel()

    def _wake_idle(self) -> None:
        self._wake.set()
        self._wake = anyio.Event()
