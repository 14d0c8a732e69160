"""The backend shortcuts are anyio's own clock and checkpoint, bound once."""

from __future__ import annotations

import anyio
import pytest

from beacon_orchestrator._compat import backend_primitives, in_event_loop
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
