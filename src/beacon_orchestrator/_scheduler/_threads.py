"""The thread that runs a job's event loop, and the one way in from other threads.

Cancelling a job changes state that only the event loop's thread may touch. A call from another
thread is refused before it changes anything; ``cancel_threadsafe`` hands the call to the event
loop with the backend's thread-safe call (an anyio event loop token captured when the job
started, so it works on asyncio and trio alike) and returns once the loop has applied it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import anyio
import anyio.from_thread
import anyio.lowlevel
from attrs import frozen

from .._errors import UsageError

__all__ = ["LoopThread"]


@frozen
class LoopThread:
    """The event loop a job runs in: its thread, and a token to call into it.

    Attributes:
        ident: The loop thread's identifier (``threading.get_ident()``).
        token: anyio's token for the loop.
    """

    ident: int
    token: anyio.lowlevel.EventLoopToken

    @classmethod
    def current(cls) -> LoopThread:
        """The loop running in this thread (call it from inside the job's event loop)."""
        return cls(threading.get_ident(), anyio.lowlevel.current_token())

    def check(self, what: str, instead: str) -> None:
        """Refuse a call from any other thread than the loop's.

        Raises:
            UsageError: Naming the calling thread and what to call instead.
        """
        if threading.get_ident() != self.ident:
            name = threading.current_thread().name
            raise UsageError(
                f"{what} was called from thread {name!r}, not the thread running the job's "
                f"event loop; from other threads call {instead}"
            )

    def call(self, fn: Callable[[], object], *, ended: Callable[[], bool]) -> None:
        """Run ``fn`` in the loop's thread and return once it has run.

        Args:
            fn: What to run.
            ended: Whether the job has ended; once it has, a loop that is gone is no error.

        Raises:
            RuntimeError: The event loop is gone although the job had not ended.
        """
        if threading.get_ident() == self.ident:
            fn()
            return
        if ended():
            return
        try:
            anyio.from_thread.run_sync(fn, token=self.token)
        except RuntimeError:  # anyio.RunFinishedError, or asyncio's "Event loop is closed"
            if not ended():
                raise
