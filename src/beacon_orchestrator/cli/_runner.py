"""Running one job from the command line: store, progress, Ctrl-C, verdict and exit code."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from pathlib import Path

import anyio
from attrs import define, field, frozen
from rich.console import Console

from .._errors import StoreError
from .._executor import Executor
from .._scheduler import JobHandle, RunOptions, start_job
from .._spec import JobSpec
from .._status import JobResult, JobStatus
from ..stores import Store
from ._live import JobView, ProgressMode, resolve_mode
from ._render import Glyphs, format_seconds, verdict_style, verdict_table

__all__ = ["EXIT_CANCELLED", "EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "CommandRun", "run_cli_job"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 130
"""128 + SIGINT, what shells report for a command stopped with Ctrl-C."""

_EXIT_CODES = {
    JobStatus.COMPLETED: EXIT_OK,
    JobStatus.FAILED: EXIT_FAILED,
    JobStatus.CANCELLED: EXIT_CANCELLED,
}


@frozen(kw_only=True)
class CommandRun:
    """How the command line runs a job: the library's run options and what only a shell needs.

    Attributes:
        store_path: The SQLite file records go to.
        run: The run options, exactly as :func:`beacon_orchestrator.run_job` takes them.
        progress: How to show progress.
        interval: Seconds between plain progress lines.
        resume_command: The command that resumes this job, shown when it is interrupted.
        simulated: Whether the answers are simulated (said again under the verdict).
    """

    store_path: Path
    run: RunOptions = field(factory=RunOptions)
    progress: ProgressMode = "auto"
    interval: float = 10.0
    resume_command: str = ""
    simulated: bool = False


@define
class _Interrupts:
    """What Ctrl-C has done so far: the first press cancels the job, the second aborts."""

    view: JobView
    abort: anyio.CancelScope
    handle: JobHandle | None = None
    cancelling: bool = False
    aborted: bool = False
    _signals: Sequence[signal.Signals] = field(default=(signal.SIGINT, signal.SIGTERM))

    async def watch(self) -> None:
        try:
            receiver = anyio.open_signal_receiver(*self._signals)
        except NotImplementedError:  # pragma: no cover - Windows has no signal receivers
            await anyio.sleep_forever()
            return
        with receiver as signals:
            async for signum in signals:
                self.press(signum)
                if self.aborted:
                    return

    def press(self, signum: int) -> None:
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        if self.handle is not None and not self.cancelling:
            self.cancelling = True
            self.handle.cancel(reason=f"interrupted by {name}")
            self.view.say(
                f"{name}: cancelling. No new execution starts; the ones in flight are stopped "
                "and every execution gets a record. Press Ctrl-C again to abort at once.",
                style="bold yellow",
            )
        else:
            self.aborted = True
            again = " again" if self.cancelling else ""
            self.view.say(f"{name}{again}: aborting.", style="bold red")
            self.abort.cancel()


async def run_cli_job(
    spec: JobSpec,
    executor: Executor,
    store: Store,
    options: CommandRun,
    *,
    out: Console,
    err: Console,
) -> int:
    """Run ``spec`` with progress on ``err`` and the verdict on ``out``; return the exit code.

    Raises:
        BeaconError: When the job cannot start (spec conflicting with the stored one,
            failed preflight); the caller turns it into a message and an exit code.
    """
    glyphs = Glyphs.for_encoding(err.encoding)
    view = JobView(spec, err, glyphs)
    with contextlib.suppress(StoreError):  # a new job has nothing stored yet
        view.preload(await store.records(spec.id), rerun_failed=options.run.rerun_failed)
    mode = resolve_mode(options.progress, err)
    result: JobResult | None = None
    async with AsyncExitStack() as stack:
        if isinstance(executor, AbstractAsyncContextManager):
            await stack.enter_async_context(executor)
        with anyio.CancelScope() as abort:
            interrupts = _Interrupts(view, abort)
            async with anyio.create_task_group() as helpers:
                helpers.start_soon(interrupts.watch)
                async with anyio.create_task_group() as tg:
                    handle = await start_job(
                        tg,
                        spec,
                        executor,
                        store=store,
                        options=options.run,
                        on_event=view.on_event,
                    )
                    interrupts.handle = handle
                    if mode == "plain":
                        view.say(_start_line(spec, options))
                    helpers.start_soon(
                        lambda: view.follow(handle.progress, mode=mode, interval=options.interval)
                    )
                    result = await handle.wait()
                    if mode == "plain":
                        view.say(view.plain_line(handle.progress()))
                helpers.cancel_scope.cancel()
    if result is None:
        # Aborted by a second Ctrl-C: the scheduler still recorded every key on its way out.
        await _report_abort(spec, store, options, out)
        return EXIT_CANCELLED
    _report(spec, result, options, out)
    return _EXIT_CODES[result.status]


def _start_line(spec: JobSpec, options: CommandRun) -> str:
    return (
        f"Running job {spec.id}: {spec.size} executions ({len(spec.questions)} questions x "
        f"{len(spec.endpoints)} endpoints), strategy {options.run.strategy}, "
        f"store {options.store_path}"
    )


def _report(spec: JobSpec, result: JobResult, options: CommandRun, out: Console) -> None:
    out.print(verdict_table(spec, result.records, width=out.size.width))
    style = verdict_style(result.status)
    out.print(
        f"[{style}]{result.status.value.upper()}[/]: {result.reason} "
        f"({format_seconds(result.duration)})",
        soft_wrap=True,
    )
    if options.simulated:
        out.print("These answers are simulated: no model was called.", style="bold yellow")
    if result.status is JobStatus.CANCELLED:
        _print_resume(out, spec.id, options)
    else:
        out.print(
            f"Records: {options.store_path} (job {spec.id}). "
            f"See them with: beacon status {spec.id} --store {options.store_path}",
            highlight=False,
            soft_wrap=True,
        )


async def _report_abort(spec: JobSpec, store: Store, options: CommandRun, out: Console) -> None:
    stored = (await store.progress(spec.id)).stored
    out.print(
        f"[bold red]ABORTED[/]: {stored} of {spec.size} executions have a record.",
        soft_wrap=True,
    )
    _print_resume(out, spec.id, options)


def _print_resume(out: Console, job_id: str, options: CommandRun) -> None:
    command = options.resume_command or f"beacon resume {job_id} --store {options.store_path}"
    out.print(f"Resume it with: {command}", soft_wrap=True)
