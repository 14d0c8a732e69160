"""The entry points: :func:`run_job`, :func:`start_job`, :func:`run_job_sync` and the handle."""

from __future__ import annotations

from functools import partial
from typing import Any, Unpack

import anyio
import anyio.abc
from attrs import define

from .._compat import in_event_loop
from .._errors import UsageError
from .._events import Progress
from .._executor import Executor
from .._spec import JobSpec
from .._status import JobResult
from ..stores import Store
from ._options import RunOptionArgs, RunOptions, resolve_options
from ._runner import RegionQueue
from ._shared import run_shared, shares_jobs

__all__ = ["JobHandle", "run_job", "run_job_sync", "start_job"]


@define(eq=False)
class JobHandle:
    """A job running in the caller's task group (see :func:`start_job`)."""

    _queue: RegionQueue

    @property
    def job_id(self) -> str:
        """The job's id."""
        return self._queue.job_id

    @property
    def done(self) -> bool:
        """Whether the job has reached its verdict."""
        return self._queue.result is not None

    def cancel(self, reason: str | None = None) -> None:
        """Request cancellation; synchronous.

        When this returns, no execution and no retry will start. In-flight executions are
        interrupted at once, or after ``Limits.cancel_grace`` seconds. The job still stores a
        record for every key and then its verdict, ``CANCELLED``.

        Call it from the thread running the job's event loop (any task of the job's event loop
        will do); from any other thread, call :meth:`cancel_threadsafe`.

        Raises:
            UsageError: Called from another thread; nothing is changed.
        """
        self._queue.cancel(reason)

    def cancel_threadsafe(self, reason: str | None = None) -> None:
        """Request cancellation from any thread: a GUI, a signal handler's thread, a watchdog.

        The job's event loop applies :meth:`cancel` (through anyio's thread-safe call, on
        asyncio and trio alike) and this returns once it has: from then on no execution and no
        retry will start. It blocks until the event loop gets to it, so do not call it from
        code the event loop itself waits on synchronously. Cancelling a job that has ended
        does nothing. From the event loop's own thread it is :meth:`cancel`.
        """
        self._queue.cancel_threadsafe(reason)

    def progress(self) -> Progress:
        """A snapshot of done/total per question, region, model and endpoint, and an ETA."""
        return self._queue.progress()

    async def wait(self) -> JobResult:
        """Wait for the verdict and return the result."""
        return await self._queue.wait()


async def run_job(
    spec: JobSpec,
    executor: Executor,
    *,
    store: Store | None = None,
    options: RunOptions | None = None,
    **overrides: Unpack[RunOptionArgs],
) -> JobResult:
    """Run a job to its end and return its :class:`JobResult`.

    Resumes transparently: keys already ``COMPLETED`` in ``store`` are never executed again.
    Cancelled from outside (the calling task's cancel scope), it still stores a record for every
    key and the verdict ``CANCELLED`` before the cancellation propagates.

    Args:
        spec: The job.
        executor: Sends each attempt (see :class:`Executor`, :class:`FunctionExecutor`).
        store: Where records go (default: a new :class:`MemoryStore`).
        options: How the run behaves; see :class:`RunOptions` for every option and its default.
        **overrides: Any field of :class:`RunOptions` by keyword (``strategy="region"``,
            ``limits=...``, ``retry=...``, ``on_event=...``, ``early_stop=True``,
            ``rerun_failed=False``, ``preflight=True``, ``wall_clock=...``), replacing that
            field of ``options``.

    Raises:
        UsageError: For a bad argument (unknown strategy or option, not an executor).
        StoreError: When the store cannot open the job.
        PreflightError: When ``preflight`` finds a region unusable.
    """
    if shares_jobs(store):  # many workers may share the job: claim endpoints
        return await run_shared(spec, executor, store, resolve_options(options, overrides))
    queue = RegionQueue(spec, executor, store=store, options=options, **overrides)
    return await queue.run()


async def start_job(
    task_group: anyio.abc.TaskGroup,
    spec: JobSpec,
    executor: Executor,
    *,
    store: Store | None = None,
    options: RunOptions | None = None,
    **overrides: Unpack[RunOptionArgs],
) -> JobHandle:
    """Start a job in ``task_group`` and return its handle once it is running.

    The job's tasks belong to ``task_group``: cancelling that group cancels the job (which still
    accounts for every key). Arguments are those of :func:`run_job`.

    Example:
        >>> async def main(spec, executor):
        ...     async with anyio.create_task_group() as tg:
        ...         handle = await start_job(tg, spec, executor)
        ...         handle.cancel()
        ...         result = await handle.wait()
    """
    queue = RegionQueue(spec, executor, store=store, options=options, **overrides)
    await task_group.start(_run_started, queue)
    return JobHandle(queue)


async def _run_started(
    queue: RegionQueue,
    *,
    task_status: anyio.abc.TaskStatus[RegionQueue] = anyio.TASK_STATUS_IGNORED,
) -> None:
    await queue.run(task_status=task_status)


def run_job_sync(
    spec: JobSpec,
    executor: Executor,
    *,
    store: Store | None = None,
    options: RunOptions | None = None,
    backend: str = "asyncio",
    backend_options: dict[str, Any] | None = None,
    **overrides: Unpack[RunOptionArgs],
) -> JobResult:
    """Run a job from synchronous code (a script): :func:`run_job` in a new event loop.

    In a notebook, where an event loop is already running, ``await run_job(...)`` in a cell
    instead; this function refuses to nest event loops.

    Args:
        spec: The job.
        executor: Sends each attempt.
        store: Where records go (default: a new :class:`MemoryStore`).
        options: How the run behaves (see :class:`RunOptions`).
        backend: ``"asyncio"`` (default) or ``"trio"``.
        backend_options: Passed to :func:`anyio.run`.
        **overrides: Any field of :class:`RunOptions` by keyword, as for :func:`run_job`.

    Raises:
        UsageError: When called from inside a running event loop, or for a bad argument.
    """
    if in_event_loop():
        raise UsageError(
            "run_job_sync() was called inside a running event loop (a notebook?); "
            "use 'await run_job(...)' there instead"
        )
    # Built here so that a bad argument is reported before an event loop starts.
    queue = RegionQueue(spec, executor, store=store, options=options, **overrides)
    return anyio.run(partial(queue.run), backend=backend, backend_options=backend_options)
