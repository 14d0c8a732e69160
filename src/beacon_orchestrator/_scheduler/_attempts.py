"""The attempt loop: one execution's attempts, retries and backoffs, to one record.

The loop asks the runner's ``may_start`` before every retry, and every backoff sleeps in a cancel
scope that cancellation cuts short, so no retry starts after the job was cancelled however long
the provider asked us to wait. A backoff that would end at or after the job's deadline is not
started at all: that retry could never happen, so the execution ends at once with its last
failure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import anyio
from anyio.lowlevel import checkpoint_if_cancelled

from .._compat import Deadline
from .._errors import ExecutionError
from .._events import EventHandler, ExecutionStarted
from .._executor import ExecutionRequest, Executor, Response
from .._retry import RetryPolicy
from .._served import verify_served_region
from .._types import ExecutionKey, ExecutionRecord, ExecutionStatus
from ._fleet import Fleet
from ._journal import JobLog
from ._ledger import AttemptTimeout, Ledger, StopReason, error_code
from ._plan import EndpointState
from ._watch import AttemptWatch, Carried, Handover, TimedOut, Worker

__all__ = ["AttemptLoop", "Interrupted"]

FAILED = ExecutionStatus.FAILED
TIMEOUT = ExecutionStatus.TIMEOUT
CANCELLED = ExecutionStatus.CANCELLED


class Interrupted:
    """An execution cut short by cancellation; its record is built when the job finishes.

    Cancellation interrupts every in-flight execution before the next task gets its turn, so
    this is the least that can be noted for each: built in ``_finish``, not here. ``at`` is
    where the caller said the key is in its plan (endpoint and slot), so the end need not
    look each key up again.
    """

    __slots__ = ("at", "attempts", "ended", "error", "key", "started")

    def __init__(
        self,
        key: ExecutionKey,
        error: BaseException | None,
        attempts: int,
        started: float,
        ended: float,
        at: tuple[EndpointState, int] | None = None,
    ) -> None:
        self.key = key
        self.at = at
        self.error = error
        self.attempts = attempts
        self.started = started
        self.ended = ended


def _state(carried: Carried | None, now: float) -> tuple[int, int, float, BaseException | None]:
    """Where an execution's attempts start: ``(attempt, calls, started, error)``."""
    if carried is None:
        return 1, 0, now, None
    assert isinstance(carried.outcome, Exception)  # an answer is taken by carry_on
    return carried.attempt, carried.calls, carried.started, carried.outcome


class AttemptLoop:
    """Runs the attempts of one execution at a time (one instance serves the whole job).

    Args:
        job_id: The job's id, for requests and events.
        executor: Sends each attempt.
        params: The job's generation parameters.
        retry: When to retry and how long to wait.
        attempt_timeout: Seconds one attempt may take (``None``: no limit).
        job_deadline: When the job's deadline passes, on the event loop's clock.
        hard_deadline: When an attempt is interrupted at the latest (deadline plus grace).
        ledger: Builds the records.
        stop: Why the job stopped, for the records of interrupted executions.
        may_start: The check that precedes every retry.
        now: The event loop's clock.
        emit: Receives an ``ExecutionStarted`` event per attempt.
        log: Where retries are logged.
        system_prompts: Region → the system prompt sent there (none for a region not in it).
        fleet: The endpoints' guards (adaptive limits, breakers, cold starts, cost), if the
            run uses any; its executions then take :meth:`_guarded`.
        deadline: Builds an attempt's cancel scope with its deadline (from
            ``_compat.deadline_factory``: trio's own on trio, one frame lighter than anyio's).
        watch: Times attempts out instead of a scope each, for the callers of :meth:`run`
            that pass their ``worker`` (see ``_watch``).
    """

    def __init__(
        self,
        *,
        job_id: str,
        executor: Executor,
        params: Mapping[str, Any],
        retry: RetryPolicy,
        attempt_timeout: float | None,
        job_deadline: float | None,
        hard_deadline: float | None,
        ledger: Ledger,
        stop: StopReason,
        may_start: Callable[[], bool],
        now: Callable[[], float],
        emit: EventHandler | None,
        log: JobLog,
        system_prompts: Mapping[str, str | None] | None = None,
        fleet: Fleet | None = None,
        deadline: Callable[[float | None], Deadline],
        watch: AttemptWatch | None = None,
    ) -> None:
        self.job_id = job_id
        self.executor = executor
        self.params = params
        self.retry = retry
        self.retries_left = retry.budget
        self.attempt_timeout = attempt_timeout
        self.job_deadline = job_deadline
        self.hard_deadline = hard_deadline
        self.ledger = ledger
        self.stop = stop
        self.may_start = may_start
        self.now = now
        self.emit = emit
        self.log = log
        self.system_prompts = system_prompts or {}
        self.fleet = fleet
        self.deadline = deadline
        self.watch = watch
        self.interrupted: list[Interrupted] = []
        # One scope per backoff in progress, so cancellation can cut every one short at once.
        self.sleepers: set[anyio.CancelScope] = set()
        # Executions between two attempts, waiting out a backoff (progress counts them apart).
        self.waiting = 0

    def wake_sleepers(self) -> None:
        """Cut every backoff short (cancellation: no retry will start)."""
        for scope in self.sleepers:
            scope.cancel()

    async def run(
        self,
        key: ExecutionKey,
        prompt: str,
        at: tuple[EndpointState, int] | None = None,
        worker: Worker | None = None,
        carried: Carried | None = None,
    ) -> ExecutionRecord:
        """Every attempt of the execution ``key``, to its record.

        ``at`` (the key's endpoint and slot in the caller's plan) is kept with the execution if
        it is interrupted. With ``worker`` (the calling task, as the loop's ``watch`` knows it)
        attempts are timed out by the watch rather than by a scope each; ``carried`` goes on
        with an execution whose attempt timed out in another worker.

        Raises:
            Handover: The attempt timed out under the watch: a new worker must go on.
            BaseException: The backend's cancellation exception, or what an ``emit`` callback
                (or any other code outside the executor) raised, after noting the execution as
                interrupted, with the attempts the executor was called for.
        """
        if self.fleet is not None:
            return await self._guarded(key, prompt, self.fleet, at)
        execute, timeout = self.executor.execute, self.attempt_timeout
        watch = self.watch if worker is not None and timeout is not None else None
        now = self.now()
        attempt, calls, started, err = _state(carried, now)
        try:
            while True:
                if err is not None:  # the last attempt failed: retry, or end with it
                    record = await self._after_failure(key, err, attempt, started)
                    if record is not None:
                        return record
                    attempt += 1
                    now = self.now()
                request = self._request(key, prompt, attempt, now)
                calls = attempt
                try:
                    # Timed inline, not in a helper coroutine: this is the hot path, and every
                    # frame here is one more for each of 10,000 cancellations to unwind.
                    if watch is None:
                        with self.deadline(None if timeout is None else now + timeout) as scope:
                            response = await execute(request)
                        if scope.cancelled_caught:
                            raise AttemptTimeout(timeout)  # type: ignore[arg-type]  # noqa: TRY301
                    else:
                        watch.arm(worker, now + timeout)  # type: ignore[arg-type, operator]
                        try:
                            response = await execute(request)
                        except BaseException as exc:
                            watch.ended(worker, exc)  # type: ignore[arg-type]
                            raise
                        watch.ended(worker, response)  # type: ignore[arg-type]
                    verify_served_region(key.region, response)  # WRONG_REGION is permanent
                except Exception as exc:
                    err = exc
                else:
                    return self.ledger.completed(key, response, attempt, started, self.now())
        except TimedOut as timed_out:  # the watch cut the attempt: a new worker goes on
            raise self._handover(key, prompt, at, attempt, calls, started, timed_out) from None
        except BaseException:
            # Cancelled mid-attempt or mid-backoff, or something outside the executor raised:
            # the job records this execution when it finishes.
            self.interrupted.append(Interrupted(key, err, calls, started, self.now(), at))
            raise

    def _request(
        self, key: ExecutionKey, prompt: str, attempt: int, now: float
    ) -> ExecutionRequest:
        """The request of one attempt starting ``now``; tells ``emit`` it starts."""
        timeout, hard = self.attempt_timeout, self.hard_deadline
        deadline = None if timeout is None else now + timeout
        if hard is not None:
            deadline = hard if deadline is None else min(deadline, hard)
        system_prompt = self.system_prompts.get(key.region)
        request = ExecutionRequest(
            self.job_id, key, prompt, self.params, attempt, deadline, system_prompt
        )
        if self.emit is not None:
            # A callback that raises here stops the job before this attempt starts.
            self.emit(ExecutionStarted(self.job_id, key, attempt, now))
        return request

    async def _after_failure(
        self, key: ExecutionKey, err: BaseException, attempt: int, started: float
    ) -> ExecutionRecord | None:
        """After attempt ``attempt`` failed with ``err``: its record, or ``None`` to retry."""
        wait = self._retry_wait(err, attempt)
        if wait is None:
            status = TIMEOUT if isinstance(err, AttemptTimeout) else FAILED
            return self._failed(key, status, err, attempt, started)
        if not await self._backoff(key, err, attempt, wait):
            return self._failed(key, CANCELLED, err, attempt, started)
        return None

    def _handover(
        self,
        key: ExecutionKey,
        prompt: str,
        at: tuple[EndpointState, int] | None,
        attempt: int,
        calls: int,
        started: float,
        timed_out: TimedOut,
    ) -> Handover:
        """The attempt timed out under the watch: what the next worker goes on from."""
        watch, timeout = self.watch, self.attempt_timeout
        if at is None or watch is None or timeout is None:
            raise AssertionError("a watched attempt has a place in the plan and a timeout")
        outcome = timed_out.outcome
        if not isinstance(outcome, Response | Exception):  # the cancellation: the timeout
            outcome = AttemptTimeout(timeout)
        carried = Carried(key, prompt, at, attempt, calls, started, outcome)
        watch.hold(carried)
        return Handover(carried)

    async def carry_on(self, carried: Carried, worker: Worker) -> ExecutionRecord:
        """Go on with an execution whose attempt timed out in another worker, to its record.

        Its attempt's outcome is the timeout, or what the executor answered or raised after
        all: an answer counts as it would have in that worker.

        Raises:
            Handover: Its next attempt timed out too.
        """
        record = self.answered(carried)
        if record is not None:
            return record
        return await self.run(carried.key, carried.prompt, carried.at, worker, carried)

    def answered(self, carried: Carried) -> ExecutionRecord | None:
        """The record of a carried execution whose executor answered after all, else ``None``.

        An answer from the wrong region becomes the outcome (``WRONG_REGION``) instead.
        """
        outcome = carried.outcome
        if not isinstance(outcome, Response):
            return None
        try:
            verify_served_region(carried.key.region, outcome)
        except Exception as exc:
            carried.outcome = exc
            return None
        return self.ledger.completed(
            carried.key, outcome, carried.attempt, carried.started, self.now()
        )

    async def _guarded(
        self,
        key: ExecutionKey,
        prompt: str,
        fleet: Fleet,
        at: tuple[EndpointState, int] | None,
    ) -> ExecutionRecord:
        """:meth:`run` for a run with fleet guards: each attempt asks the guard, then tells it.

        The same steps as :meth:`run`, plus: an attempt the endpoint's breaker refuses is not
        sent; an attempt sent before the endpoint first answered gets the cold-start timeout;
        every outcome goes to the guard; the record gets its cost.
        """
        e = fleet.endpoint(key)
        attempt = 1
        calls = 0
        busy = 0.0  # seconds the attempts took, the backoffs excluded (what per-second prices)
        started = now = self.now()
        err: BaseException | None = None
        try:
            while True:
                if attempt > 1 and fleet.full(e):
                    if not await self._slot(fleet, e):
                        rec = self._failed(key, CANCELLED, err, calls, started)
                        return fleet.priced(e, rec, busy)
                    now = self.now()  # the attempt starts now: the wait is not its latency
                refused = fleet.refusal(e, attempt)
                if refused is not None:
                    first = attempt == 1
                    rec = self._failed(key, FAILED, refused if first else err, calls, started)
                    return fleet.priced(e, rec, busy)
                calls = attempt
                outcome = await self._send(fleet, e, key, prompt, attempt, now)
                ended = self.now()
                busy += ended - now
                if isinstance(outcome, Response):
                    rec = self.ledger.completed(key, outcome, attempt, started, ended)
                    return fleet.priced(e, rec, busy)
                err = outcome
                wait = self._retry_wait(err, attempt)
                if wait is None:
                    status = TIMEOUT if isinstance(err, AttemptTimeout) else FAILED
                    return fleet.priced(e, self._failed(key, status, err, attempt, started), busy)
                if not await self._backoff(key, err, attempt, wait):
                    rec = self._failed(key, CANCELLED, err, attempt, started)
                    return fleet.priced(e, rec, busy)
                attempt += 1
                now = self.now()
        except BaseException:
            self.interrupted.append(Interrupted(key, err, calls, started, self.now(), at))
            raise

    async def _send(
        self,
        fleet: Fleet,
        e: EndpointState,
        key: ExecutionKey,
        prompt: str,
        attempt: int,
        now: float,
    ) -> Response | Exception:
        """Send one attempt with its timeout (maybe a cold start's); tell the guard how it went."""
        timeout = fleet.timeout(e, self.attempt_timeout)
        deadline = None if timeout is None else now + timeout
        hard = self.hard_deadline
        if hard is not None:
            deadline = hard if deadline is None else min(deadline, hard)
        request = ExecutionRequest(self.job_id, key, prompt, self.params, attempt, deadline)
        if self.emit is not None:
            self.emit(ExecutionStarted(self.job_id, key, attempt, now))
        fleet.sending(e)
        try:
            # The job's hard deadline is the workers' scope's (a cut there is CANCELLED).
            with self.deadline(None if timeout is None else now + timeout) as scope:
                response = await self.executor.execute(request)
            if scope.cancelled_caught:
                raise AttemptTimeout(timeout or 0.0)  # noqa: TRY301
        except Exception as exc:
            fleet.failed(e, exc, now, self.now())
            return exc
        fleet.answered(e, now, self.now(), response.usage)
        return response

    async def _slot(self, fleet: Fleet, e: EndpointState) -> bool:
        """Wait until ``e`` has room for a retry; whether it may start then (not cancelled)."""
        self.waiting += 1
        try:
            while fleet.full(e):
                with anyio.CancelScope() as scope:
                    self.sleepers.add(scope)  # cancellation cuts this wait short too
                    try:
                        await fleet.slot_freed()
                    finally:
                        self.sleepers.discard(scope)
                await checkpoint_if_cancelled()
                if not self.may_start():
                    return False
        finally:
            self.waiting -= 1
        return True

    def _failed(
        self,
        key: ExecutionKey,
        status: ExecutionStatus,
        err: BaseException | None,
        attempts: int,
        started: float,
    ) -> ExecutionRecord:
        return self.ledger.failed(key, status, err, attempts, started, self.now(), self.stop)

    def _retry_wait(self, exc: BaseException, attempt: int) -> float | None:
        """Seconds to wait before retrying after ``exc``, or ``None`` when no retry will come."""
        if not self.may_start():
            return None
        retryable = isinstance(exc, AttemptTimeout) or (
            isinstance(exc, ExecutionError) and exc.transient
        )
        if not retryable or attempt >= self.retry.attempts:
            return None
        wait = self.retry.wait(attempt, exc)
        deadline = self.job_deadline
        if deadline is not None and self.now() + wait >= deadline:
            # The retry could only start at or after the deadline, when nothing may start:
            # waiting for it would only hold the worker (and the job's end) for nothing.
            return None
        if self.retries_left is not None:
            if self.retries_left <= 0:
                return None
            self.retries_left -= 1
        return wait

    async def _backoff(
        self, key: ExecutionKey, err: BaseException, attempt: int, wait: float
    ) -> bool:
        """Wait ``wait`` seconds before the next attempt; whether it may start then."""
        self.log.retrying(key, error_code(err), attempt, wait)
        self.waiting += 1
        try:
            with anyio.CancelScope() as scope:
                self.sleepers.add(scope)
                try:
                    await anyio.sleep(wait)
                finally:
                    self.sleepers.discard(scope)
        finally:
            self.waiting -= 1
        # A backoff that ends at the instant the caller's scope is cancelled may still
        # return normally; the retry must not start then.
        await checkpoint_if_cancelled()
        deadline = self.job_deadline
        return self.may_start() and (deadline is None or self.now() < deadline)
