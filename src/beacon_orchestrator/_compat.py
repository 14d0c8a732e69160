"""Backend shortcuts: the running event loop's clock and checkpoint, and "is a loop running?".

``anyio.current_time()`` and ``anyio.lowlevel.checkpoint()`` look the backend up on every call.
The scheduler uses both several times per execution, so it binds the backend's own functions
(the very ones anyio would call) once, when a job starts. This module is the one place that
knows asyncio's and trio's internals; a test pins its answers to anyio's own functions.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

__all__ = ["backend_primitives", "in_event_loop"]

Clock = Callable[[], float]
Checkpoint = Callable[[], Awaitable[None]]


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


def in_event_loop() -> bool:
    """Whether this thread is running an asyncio or a trio event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _running_trio() is not None
    return True
