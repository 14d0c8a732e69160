"""Backend shortcuts: the running event loop's clock, checkpoint, deadlines and task group.

``anyio.current_time()`` and ``anyio.lowlevel.checkpoint()`` look the backend up on every call.
The scheduler uses both several times per execution, so it binds the backend's own functions
(the very ones anyio would call) once, when a job starts. This module is the one place that
knows asyncio's and trio's internals; a test pins its answers to anyio's own functions.

Two more keep cancelling 10,000 in-flight executions cheap on trio (see
``docs/performance.md``): an attempt's deadline is trio's own cancel scope, and the worker pool
is a trio nursery, whose tasks carry no cancel scope of their own (anyio's task groups give each
task one). Every nested scope is one more layer a cancellation unwinds in every task. The
scheduler times attempts out through a scope per worker task, not per attempt (``_watch``): on
asyncio anyio's own per-task scope (:func:`task_scopes`), on trio one the worker enters
(:func:`scope_factory`).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Protocol

import anyio

__all__ = [
    "Deadline",
    "backend_primitives",
    "deadline_factory",
    "in_event_loop",
    "scope_factory",
    "task_scopes",
    "worker_group",
]

Clock = Callable[[], float]
Checkpoint = Callable[[], Awaitable[None]]


class Deadline(Protocol):
    """A cancel scope with a deadline around one awaited call (anyio's or trio's own).

    ``with make(when) as scope: ...`` cancels the body at ``when`` (the event loop's clock;
    ``None``: never, and then no scope is entered at all); the body's cancellation stops there
    and ``scope.cancelled_caught`` says so. A cancellation from outside passes through, and a
    shielded section of the body runs to its end first.
    """

    @property
    def cancelled_caught(self) -> bool:
        """Whether the deadline passed and interrupted the body."""
        ...

    def __enter__(self) -> Any: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None: ...


def _running_trio() -> object | None:
    """The trio module when the current thread runs a trio event loop, else ``None``."""
    trio = sys.modules.get("trio")
    if trio is None:
        return None
    try:
        trio.lowlevel.current_trio_token()
    except RuntimeError:
        return None
    return trio


def backend_primitives() -> tuple[Clock, Checkpoint]:
    """The running backend's clock and checkpoint, looked up once.

    Returns:
        ``(now, checkpoint)``: ``now()`` is ``anyio.current_time()`` of the running loop, and
        ``await checkpoint()`` yields to the scheduler and raises if the task was cancelled.

    Raises:
        RuntimeError: Outside a running event loop.
    """
    trio = _running_trio()
    if trio is not None:
        return trio.current_time, trio.lowlevel.checkpoint  # type: ignore[attr-defined]

    def asyncio_checkpoint() -> Awaitable[None]:
        return asyncio.sleep(0)

    return asyncio.get_running_loop().time, asyncio_checkpoint


def deadline_factory() -> Callable[[float | None], Deadline]:
    """The running backend's cancel scope with a deadline, looked up once.

    On trio, trio's own ``CancelScope`` (anyio's wraps it in one more frame per enter and
    exit); elsewhere, anyio's. Not asyncio's ``Timeout``: it cancels the task through anyio's
    shields, and an executor's shielded clean-up must run to its end.

    Raises:
        RuntimeError: Outside a running event loop.
    """
    trio = _running_trio()
    if trio is not None:
        trio_scope = trio.CancelScope  # type: ignore[attr-defined]

        def trio_deadline(when: float | None) -> Deadline:
            return _NEVER if when is None else trio_scope(deadline=when)

        return trio_deadline
    asyncio.get_running_loop()  # raises outside a loop, as the trio branch's lookup does
    anyio_scope = anyio.CancelScope

    def anyio_deadline(when: float | None) -> Deadline:
        return _NEVER if when is None else anyio_scope(deadline=when)

    return anyio_deadline


class _NoDeadline:
    """A deadline that never passes: no scope at all, so nothing to unwind and nothing caught."""

    __slots__ = ()
    cancelled_caught = False

    def __enter__(self) -> _NoDeadline:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None


_NEVER = _NoDeadline()  # stateless, so one serves every caller


def worker_group() -> AbstractAsyncContextManager[Any]:
    """A task group for many long-lived tasks that end on their own when cancelled.

    On trio, a nursery (each task of an anyio task group carries a cancel scope of its own,
    one more layer for every cancellation to unwind); elsewhere, an anyio task group, whose
    per-task scopes are what keeps anyio's shields working on asyncio (asyncio's own task group
    cancels through them). Either has ``start_soon(fn)`` and is cancelled by the cancel scopes
    around it, shields included.
    """
    trio = _running_trio()
    if trio is not None:
        return trio.open_nursery()  # type: ignore[attr-defined, no-any-return]
    return anyio.create_task_group()


def scope_factory() -> Callable[[], Any]:
    """The running backend's plain cancel scope (no deadline): trio's own on trio, else anyio's.

    What a worker runs in where its task has no scope of its own (trio), so that the watch can
    cancel its attempt: the scope's ``cancel()`` is the handle the watch is given.
    """
    trio = _running_trio()
    if trio is not None:
        return trio.CancelScope  # type: ignore[attr-defined, no-any-return]
    return anyio.CancelScope


def task_scopes() -> bool:
    """Whether :func:`worker_group`'s ``start_soon`` returns a handle that cancels that task.

    True under asyncio: anyio's task group (4.14 and later) gives each task a cancel scope of
    its own, reached through the ``TaskHandle`` it returns. A trio nursery returns nothing.
    """
    return _running_trio() is None


def in_event_loop() -> bool:
    """Whether this thread is running an asyncio or a trio event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _running_trio() is not None
    return True
