"""The backend shortcuts are anyio's own clock and checkpoint, bound once."""

from __future__ import annotations

import anyio
import pytest

from beacon_orchestrator._compat import (
    backend_primitives,
    deadline_factory,
    in_event_loop,
    worker_group,
)
from beacon_orchestrator.testing import run_virtual

pytestmark = pytest.mark.anyio


async def test_clock_is_anyios_clock() -> None:
    now, _ = backend_primitives()
    before = anyio.current_time()
    ours = now()
    after = anyio.current_time()
    assert before <= ours <= after


async def test_checkpoint_sees_cancellation(anyio_backend: str) -> None:
    _, checkpoint = backend_primitives()
    if anyio_backend == "trio":
        import trio

        # The very function anyio's trio backend calls for a checkpoint.
        assert checkpoint is trio.lowlevel.checkpoint
    with anyio.CancelScope() as scope:
        scope.cancel()
        await checkpoint()
        pytest.fail("a checkpoint in a cancelled scope must raise")
    assert scope.cancelled_caught


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_clock_follows_a_virtual_clock(backend: str) -> None:
    async def main() -> tuple[float, float]:
        now, _ = backend_primitives()
        start = now()
        await anyio.sleep(3600)
        return now() - start, anyio.current_time() - start

    ours, anyios = run_virtual(main, backend=backend)
    assert ours == anyios == pytest.approx(3600)


async def test_in_event_loop_inside_a_loop() -> None:
    assert in_event_loop()


def test_not_in_event_loop_outside() -> None:
    assert not in_event_loop()


# -- an attempt's deadline and the worker group -----------------------------------------------


async def test_a_deadline_ends_its_body_quietly_and_says_so() -> None:
    """At the deadline the body is cancelled, the cancellation stops there, and it says so."""
    make = deadline_factory()
    reached = False
    with make(anyio.current_time() + 0.001) as scope:
        await anyio.sleep(5)
        reached = True
    assert not reached
    assert scope.cancelled_caught


async def test_a_deadline_not_reached_leaves_the_body_alone() -> None:
    make = deadline_factory()
    with make(anyio.current_time() + 60) as scope:
        await anyio.sleep(0)
    assert not scope.cancelled_caught
    with make(None) as never:
        await anyio.sleep(0)
    assert not never.cancelled_caught


async def test_an_outer_cancellation_passes_through_a_deadline() -> None:
    """Cancelling the scope around it is not the deadline's: it propagates past it."""
    make = deadline_factory()
    with anyio.CancelScope() as outer:
        with make(anyio.current_time() + 60) as scope:
            outer.cancel()
            await anyio.sleep(5)
        pytest.fail("the outer cancellation must not be swallowed by the deadline")
    assert outer.cancelled_caught
    assert not scope.cancelled_caught


async def test_a_deadline_is_the_backends_own_scope(anyio_backend: str) -> None:
    """trio's own cancel scope on trio (one frame lighter than anyio's), anyio's elsewhere."""
    scope = deadline_factory()(anyio.current_time() + 60)
    if anyio_backend == "trio":
        import trio

        assert isinstance(scope, trio.CancelScope)
    else:
        assert isinstance(scope, anyio.CancelScope)
    assert scope.deadline == pytest.approx(anyio.current_time() + 60, abs=1)


async def test_no_deadline_enters_no_scope_and_lets_every_cancellation_through(
    anyio_backend: str,
) -> None:
    """``None`` is no scope at all: nothing caught, and an outer cancellation passes through."""
    never = deadline_factory()(None)
    assert not isinstance(never, anyio.CancelScope)
    with anyio.CancelScope() as outer:
        with never as scope:
            outer.cancel()
            await anyio.sleep(1)
        raise AssertionError("the outer cancellation did not pass through")
    assert outer.cancelled_caught
    assert scope.cancelled_caught is False


async def test_the_worker_group_is_cancelled_by_the_scope_around_it_and_keeps_shields(
    anyio_backend: str,
) -> None:
    """Its tasks see the surrounding scope's cancellation, and a shielded section finishes.

    The second half is why asyncio's own TaskGroup is not used: its cancellation reaches a
    task through anyio's shields.
    """
    ended: list[str] = []
    cancelled_exc = anyio.get_cancelled_exc_class()

    async def hang(name: str) -> None:
        try:
            await anyio.sleep_forever()
        except cancelled_exc:
            ended.append(name)

    async def shielded() -> None:
        with anyio.CancelScope(shield=True):
            await anyio.sleep(0.001)
            ended.append("shielded")

    with anyio.CancelScope() as scope:
        async with worker_group() as group:
            group.start_soon(hang, "a")
            group.start_soon(hang, "b")
            group.start_soon(shielded)
            await anyio.sleep(0)
            scope.cancel()
    assert sorted(ended) == ["a", "b", "shielded"]
    if anyio_backend == "trio":
        import trio

        assert isinstance(group, trio.Nursery)


async def test_a_deadline_waits_for_a_shielded_section_of_the_body() -> None:
    """An executor's shielded clean-up (httpcore shields closing a connection) runs to its end.

    The deadline passes while the body is inside an anyio shield: the shielded part finishes,
    and the body is cut at its next checkpoint after it. asyncio's own ``Timeout`` would cancel
    the task through the shield, which is why it is not used.
    """
    make = deadline_factory()
    steps: list[str] = []
    with make(anyio.current_time() + 0.001) as scope:
        with anyio.CancelScope(shield=True):
            await anyio.sleep(0.005)
            steps.append("shielded part finished")
        await anyio.sleep(5)
        steps.append("after the deadline")
    assert steps == ["shielded part finished"]
    assert scope.cancelled_caught
