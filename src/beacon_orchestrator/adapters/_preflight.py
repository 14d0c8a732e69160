"""Checking many regions at once before a job, and reporting every one that is not usable."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import anyio

from .._errors import ExecutionError, PreflightError

__all__ = ["check_regions"]


async def check_regions(
    regions: Sequence[str], probe: Callable[[str], Awaitable[str | None]], service: str
) -> None:
    """Probe every region concurrently; raise one error naming each region's problem.

    Args:
        regions: The regions to check (a repeated one is probed once).
        probe: Says what is wrong with a region, or ``None`` when it is usable; an
            :class:`~beacon_orchestrator.ExecutionError` it raises is that region's problem.
        service: Names the service in the error (``"Modal"``).

    Raises:
        PreflightError: ``"<service> regions not usable: 'r1': why; 'r2': why"``, in the
            order of ``regions``.
    """
    problems: dict[str, str] = {}

    async def check(region: str) -> None:
        try:
            problem = await probe(region)
        except ExecutionError as exc:
            problem = exc.message
        if problem is not None:
            problems[region] = problem

    async with anyio.create_task_group() as tg:
        for region in dict.fromkeys(regions):
            tg.start_soon(check, region)
    if problems:
        lines = "; ".join(f"{r!r}: {problems[r]}" for r in regions if r in problems)
        raise PreflightError(f"{service} regions not usable: {lines}")
