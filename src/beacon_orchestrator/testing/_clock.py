"""Virtual time for tests, on asyncio and on trio.

A job whose executions take minutes must be testable in milliseconds. On trio that is
``trio.testing.MockClock(autojump_threshold=0)``; asyncio has no such clock, so
:class:`VirtualClockEventLoop` provides one: whenever the loop would block waiting for a timer,
it jumps its clock to that timer instead. Everything that goes through the event loop's clock
(``anyio.sleep``, ``anyio.fail_after``, cancel scope deadlines, ``anyio.current_time``) then runs on
virtual time.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar, TypeVarTuple

import anyio

__all__ = ["VirtualClockEventLoop", "run_virtual", "virtual_clock"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class _JumpingSelector(selectors.BaseSelector):
    """Wraps a real selector; a wait with a timeout advances the virtual clock instead."""

    def __init__(self, inner: selectors.BaseSelector, loop: VirtualClockEventLoop) -> None:
        self._inner = inner
        self._loop = loop

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._inner.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            # No timer is pending: only I/O or another thread can wake the loop, so wait for real.
            return self._inner.select(None)
        self._loop.advance(timeout)
        return []

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.get_key(fileobj)

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._inner.get_map()

    def close(self) -> None:
        self._inner.close()


class VirtualClockEventLoop(asyncio.SelectorEventLoop):
    """An asyncio event loop whose clock jumps to the next timer whenever it would wait.

    Time starts at 0 and only moves when every task is blocked on a timer, so test outcomes
    depend on the schedule, not on the machine's speed. Real I/O still works (it is checked
    without waiting before each jump), but a test that waits on a real thread or socket while a
    timer is pending will see the timer fire first.
    """

    def __init__(self) -> None:
        self._virtual_now = 0.0
        super().__init__(selector=_JumpingSelector(selectors.DefaultSelector(), self))

    def time(self) -> float:
        """The virtual time, in seconds."""
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        """Move the clock forward (never backward)."""
        if seconds > 0:
            self._virtual_now += seconds


def virtual_clock(backend: str = "asyncio") -> dict[str, Any]:
    """Keyword arguments for :func:`anyio.run` that run ``backend`` on virtual time.

    Example:
        >>> anyio.run(main, **virtual_clock("trio"))

    With pytest's anyio plugin, return ``(backend, virtual_clock(backend)["backend_options"])``
    from an ``anyio_backend`` fixture.
    """
    if backend == "asyncio":
        return {"backend": "asyncio", "backend_options": {"loop_factory": VirtualClockEventLoop}}
    if backend == "trio":
        from trio.testing import MockClock

        return {"backend": "trio", "backend_options": {"clock": MockClock(autojump_threshold=0)}}
    raise ValueError(f"backend must be 'asyncio' or 'trio', got {backend!r}")


def run_virtual(fn: Callable[[*Ts], Awaitable[T]], *args: *Ts, backend: str = "asyncio") -> T:
    """Run ``fn(*args)`` on ``backend`` on virtual time and return its result."""
    return anyio.run(fn, *args, **virtual_clock(backend))
