"""Attempt timeouts without a cancel scope per attempt, where each task has a scope of its own.

A cancel scope around every attempt is one more layer that every interrupted execution unwinds
when a job is cancelled: with 10,000 in flight on asyncio, about a sixth of cancel -> verdict
(``docs/performance.md``). Where the workers run in an anyio task group, each worker task
already has a cancel scope of its own (anyio 4.14's ``TaskHandle``), so one watchdog times the
attempts out instead: each worker arms it with its attempt's deadline and disarms it when the
attempt ends; the watchdog cancels the task of an attempt still armed at its deadline. anyio
delivers that cancellation as it delivers any other, so an executor's shielded sections run to
their end first.

A cancelled task scope stays cancelled, so the worker cannot go on: its attempt loop raises
:class:`Handover` with where the execution stands, and the runner starts a new worker that
carries on with the retry (or the ``TIMEOUT`` record). Until the new worker has taken it, the
execution is held here, so a job that ends meanwhile still records it (:meth:`leftovers`).

On trio the workers run in a bare nursery, whose tasks have no scope of their own; there, and
for runs with fleet guards (per-endpoint timeouts), each attempt keeps its own deadline scope.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import anyio

from .._executor import Response
from .._types import ExecutionKey
from ._plan import EndpointState

__all__ = ["AttemptWatch", "Carried", "Handover", "TimedOut", "Worker"]


class Carried:
    """Where an execution stands when its attempt timed out: what the next worker goes on from.

    ``outcome`` is the attempt's: its ``AttemptTimeout``, or what the executor answered or
    raised after all; ``attempt`` the attempt that timed out, ``calls`` how many attempts the
    executor was called for, ``at`` the execution's endpoint and slot in the plan.
    """

    __slots__ = ("at", "attempt", "calls", "key", "outcome", "prompt", "started")

    def __init__(
        self,
        key: ExecutionKey,
        prompt: str,
        at: tuple[EndpointState, int],
        attempt: int,
        calls: int,
        started: float,
        outcome: Response | Exception,
    ) -> None:
        self.key = key
        self.prompt = prompt
        self.at = at
        self.attempt = attempt
        self.calls = calls
        self.started = started
        self.outcome = outcome


class Worker:
    """One worker task, as the watchdog knows it: its handle, and whether it timed out."""

    __slots__ = ("fired", "handle")

    def __init__(self) -> None:
        self.handle: Any = None  # the task's anyio TaskHandle, set once it is started
        self.fired = False


class Handover(BaseException):
    """Raised out of a worker whose attempt timed out: a new worker goes on from ``carried``.

    A ``BaseException``, so that no ``except Exception`` between the attempt loop and the
    worker takes it for the executor's failure.
    """

    def __init__(self, carried: Carried) -> None:
        super().__init__(carried.key)
        self.carried = carried


class TimedOut(BaseException):
    """The watch timed an attempt out (raised out of the executor's call, not by it).

    ``outcome`` is what the call ended with: the cancellation (the timeout itself), or what the
    executor returned or raised after all. The task cannot go on (its scope is cancelled), so
    the next worker takes that outcome as the attempt's, as a deadline scope would have (its
    ``cancelled_caught`` is false when the body does not end by its cancellation).
    """

    def __init__(self, outcome: Response | BaseException) -> None:
        super().__init__()
        self.outcome = outcome


class AttemptWatch:
    """Cancels the task of every attempt still armed at its deadline.

    Deadlines are armed in the order attempts start and every attempt has the same timeout, so
    they come due in the order they were armed: the watchdog only ever looks at the first.

    Args:
        now: The event loop's clock.
    """

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self._due: dict[Worker, float] = {}  # insertion order is deadline order
        self._armed = anyio.Event()
        self._idle = False
        self._carried: dict[ExecutionKey, Carried] = {}

    def arm(self, worker: Worker, deadline: float) -> None:
        """``worker``'s attempt must end by ``deadline`` (the event loop's clock)."""
        self._due[worker] = deadline
        if self._idle:
            self._armed.set()

    def ended(self, worker: Worker, outcome: Response | BaseException) -> None:
        """``worker``'s attempt ended with ``outcome``: disarm it.

        Raises:
            TimedOut: The watch cut it first (``outcome`` is its cancellation, or what the
                executor gave even so).
        """
        self._due.pop(worker, None)
        if worker.fired:
            raise TimedOut(outcome) from None

    async def run(self) -> None:
        """Time attempts out until cancelled (the runner cancels it once the workers end)."""
        while True:
            if not self._due:
                self._idle = True
                await self._armed.wait()
                self._armed = anyio.Event()
                self._idle = False
                continue
            worker, deadline = next(iter(self._due.items()))
            if self._now() < deadline:
                await anyio.sleep_until(deadline)
                continue
            del self._due[worker]
            worker.fired = True
            worker.handle.cancel()

    def hold(self, carried: Carried) -> None:
        """Keep ``carried`` until a new worker takes it (see :meth:`take`)."""
        self._carried[carried.key] = carried

    def take(self, carried: Carried) -> None:
        """A new worker goes on with ``carried``: it accounts for it from now on."""
        del self._carried[carried.key]

    def leftovers(self) -> Iterator[Carried]:
        """The executions handed over that no worker took before the job ended."""
        carried, self._carried = self._carried, {}
        return iter(carried.values())
