"""Running one job from the command line: store, progress, Ctrl-C, verdict and exit code."""

from __future__ import annotations

import contextlib
import math
import shlex
import signal
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any

import anyio
from attrs import define, field, frozen
from rich.console import Console
from rich.markup import escape

from .._errors import BeaconError, StoreError
from .._executor import Executor
from .._scheduler import JobHandle, RunOptions, start_job
from .._spec import JobSpec
from .._status import JobResult, JobStatus
from .._types import Endpoint, ExecutionRecord, ExecutionStatus
from ..stores import EndpointKeys, Store
from ._counts import endpoint_counts
from ._live import JobView, ProgressMode, resolve_mode
from ._locations import StoreLocation
from ._output import EXIT_CANCELLED, EXIT_FAILED, EXIT_OK, EXIT_USAGE, print_json_to
from ._render import Glyphs, format_seconds, samples_factor, verdict_style, verdict_table

__all__ = [
    "EXIT_CANCELLED",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CommandRun",
    "finite",
    "outcome_line",
    "print_json_to",
    "run_cli_job",
    "run_json",
    "start_line",
]

_EXIT_CODES = {
    JobStatus.COMPLETED: EXIT_OK,
    JobStatus.FAILED: EXIT_FAILED,
    JobStatus.CANCELLED: EXIT_CANCELLED,
}

_FAILURES = frozenset({ExecutionStatus.FAILED, ExecutionStatus.TIMEOUT})
_OUTCOME_WORDS = {
    ExecutionStatus.FAILED: "failed",
    ExecutionStatus.TIMEOUT: "timed out",
    ExecutionStatus.CANCELLED: "cancelled (started, interrupted)",
    ExecutionStatus.SKIPPED: "skipped (never started)",
}
_SIMULATED = "These answers are simulated: no model was called."


@frozen(kw_only=True)
class CommandRun:
    """How the command line runs a job: the library's run options and what only a shell needs.

    Attributes:
        store_path: The SQLite file (or PostgreSQL DSN) records go to.
        run: The run options, exactly as :func:`beacon_orchestrator.run_job` takes them.
        progress: How to show progress.
        interval: Seconds between plain progress lines.
        resume_command: The command that resumes this job, shown when it is interrupted.
        simulated: Whether the answers are simulated (said again under the verdict).
        as_json: Whether the verdict is printed as JSON (everything else goes to stderr).
    """

    store_path: StoreLocation
    run: RunOptions = field(factory=RunOptions)
    progress: ProgressMode = "auto"
    interval: float = 10.0
    resume_command: str = ""
    simulated: bool = False
    as_json: bool = False


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


@frozen
class _Before:
    """What the store held for the job before this run: what the run will not do again."""

    completed: int = 0
    kept: int = 0
    rerun_failed: bool = True

    @classmethod
    def of(cls, records: Sequence[ExecutionRecord], run: RunOptions) -> _Before:
        # The scheduler's resume rule (RunOptions.rerun_failed): completed keys never run again;
        # failed and timed-out ones run again unless --keep-failed.
        before = cls(rerun_failed=run.rerun_failed)
        completed = sum(1 for r in records if r.status is ExecutionStatus.COMPLETED)
        kept = sum(1 for r in records if before.keeps(r)) - completed
        return cls(completed, kept, run.rerun_failed)

    @classmethod
    def of_keys(cls, stored: Iterable[EndpointKeys], run: RunOptions) -> _Before:
        """:meth:`of`, from a store's keys (``Store.keys``) rather than its records."""
        completed = kept = 0
        for found in stored:
            for status in found.statuses:
                if status is ExecutionStatus.COMPLETED:
                    completed += 1
                elif not run.rerun_failed and status in _FAILURES:
                    kept += 1
        return cls(completed, kept, run.rerun_failed)

    def keeps(self, record: ExecutionRecord) -> bool:
        """Whether this run keeps ``record`` (else it runs its key again)."""
        if record.status is ExecutionStatus.COMPLETED:
            return True
        return not self.rerun_failed and record.status in _FAILURES

    def to_run(self, spec: JobSpec) -> int:
        """Executions this run starts or skips."""
        return spec.size - self.completed - self.kept


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

    With ``options.as_json`` the verdict is one JSON document (see the "JSON output" page of
    the documentation) and every other line goes to ``err``.

    Raises:
        BeaconError: When the job cannot start (spec conflicting with the stored one,
            failed preflight); the caller turns it into a message and an exit code.
    """
    glyphs = Glyphs.for_encoding(err.encoding)
    view = JobView(spec, err, glyphs)
    stored: list[EndpointKeys] = []
    with contextlib.suppress(StoreError):  # a new job has nothing stored yet
        # Keys and outcomes, endpoint by endpoint (Store.keys), never every record.
        stored = [found async for found in store.keys(spec.id)]
    before = _Before.of_keys(stored, options.run)
    # Only what this run keeps: a key it runs again shows as pending, not as done before.
    view.preload_keys(stored, rerun_failed=options.run.rerun_failed)
    del stored
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
                    if mode != "off":
                        view.say(escape(start_line(spec, options, before)))
                    helpers.start_soon(
                        lambda: view.follow(handle.progress, mode=mode, interval=options.interval)
                    )
                    # What stopped the job (a lost lease, a failing store) is raised by the
                    # job's own task in this group too: one copy reaches the shell, not a
                    # group of two that it would show as a traceback.
                    with contextlib.suppress(BeaconError):
                        result = await handle.wait()
                    if mode == "plain":
                        view.say(view.plain_line(handle.progress()))
                helpers.cancel_scope.cancel()
    if result is None:
        # Aborted by a second Ctrl-C: the scheduler still recorded every key on its way out.
        await _report_abort(spec, store, options, before, out=out, err=err)
        return EXIT_CANCELLED
    # Counted from the store's keys, not by reading every record of a large job again.
    counted, spent = await endpoint_counts(store, spec.id)
    _report(spec, result, options, before, counted, spent, out=out, err=err)
    return _EXIT_CODES[result.status]


def start_line(spec: JobSpec, options: CommandRun, before: _Before) -> str:
    """What a run is about to do: a new job, or the rest of one the store holds."""
    shape = (
        f"({len(spec.questions)} questions x {len(spec.endpoints)} endpoints{samples_factor(spec)})"
    )
    where = f"strategy {options.run.strategy}, store {options.store_path}"
    if not before.completed and not before.kept:
        return f"Running job {spec.id}: {spec.size} executions {shape}, {where}"
    kept = f", {before.kept} failed kept (--keep-failed)" if before.kept else ""
    return (
        f"Resuming job {spec.id}: {before.completed} of {spec.size} executions already "
        f"completed{kept}; {before.to_run(spec)} to run {shape}, {where}"
    )


def _all_counts(counts: Mapping[ExecutionStatus, int]) -> dict[ExecutionStatus, int]:
    return {status: counts.get(status, 0) for status in ExecutionStatus}


def outcome_line(
    spec: JobSpec, counts: Mapping[ExecutionStatus, int], before: _Before, *, empty: int = 0
) -> str:
    """Every planned execution accounted for: completed first, then the others that occurred."""
    counts = _all_counts(counts)
    completed = counts[ExecutionStatus.COMPLETED]
    notes = [f"{before.completed} before this run"] if before.completed else []
    if empty:
        notes.append(f"{empty} empty")
    parts = [f"{completed} of {spec.size} completed" + (f" ({', '.join(notes)})" if notes else "")]
    parts += [
        f"{n} {_OUTCOME_WORDS[status]}"
        for status, n in counts.items()
        if n and status is not ExecutionStatus.COMPLETED
    ]
    missing = spec.size - sum(counts.values())
    if missing > 0:
        parts.append(f"{missing} without a record")
    return "Executions: " + ", ".join(parts) + "."


def _empty(stored: Iterable[EndpointKeys]) -> int:
    completed = ExecutionStatus.COMPLETED
    return sum(
        1
        for found in stored
        for status, empty in zip(found.statuses, found.empty, strict=True)
        if empty and status is completed
    )


def _report(
    spec: JobSpec,
    result: JobResult,
    options: CommandRun,
    before: _Before,
    counted: Mapping[Endpoint, Mapping[str, int]],
    spent: Mapping[Endpoint, float],
    *,
    out: Console,
    err: Console,
) -> None:
    cancelled = result.status is JobStatus.CANCELLED
    empty = sum(tally.get("empty", 0) for tally in counted.values())
    if options.as_json:
        doc = run_json(spec, _Outcome.of(result, empty), options, before)
        if options.simulated:
            err.print(_SIMULATED, style="bold yellow")
        if cancelled:
            _print_resume(err, spec.id, options)
        print_json_to(out, doc)
        return
    out.print(verdict_table(spec, width=out.size.width, counted=counted, spent=spent))
    style = verdict_style(result.status)
    out.print(
        f"[{style}]{result.status.value.upper()}[/]: {escape(result.reason)} "
        f"({format_seconds(result.duration)})",
        soft_wrap=True,
    )
    out.print(
        outcome_line(spec, result.counts, before, empty=empty),
        soft_wrap=True,
        highlight=False,
    )
    if options.simulated:
        out.print(_SIMULATED, style="bold yellow")
    if cancelled:
        _print_resume(out, spec.id, options)
    else:
        job, store = shlex.quote(spec.id), shlex.quote(str(options.store_path))
        out.print(
            f"Records: {options.store_path} (job {spec.id}). "
            f"See them with: beacon status {job} --store {store}",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )


@frozen(kw_only=True)
class _Outcome:
    """How a run ended, as the ``--json`` document reports it."""

    status: JobStatus
    reason: str
    counts: Mapping[ExecutionStatus, int]
    empty: int
    success_rate: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    aborted: bool = False

    @classmethod
    def of(cls, result: JobResult, empty: int) -> _Outcome:
        return cls(
            status=result.status,
            reason=result.reason,
            counts=result.counts,
            empty=empty,
            success_rate=result.success_rate,
            started_at=result.started_at,
            finished_at=result.finished_at,
        )


def run_json(
    spec: JobSpec, outcome: _Outcome, options: CommandRun, before: _Before
) -> dict[str, Any]:
    """The ``--json`` document of a run."""
    started, finished = outcome.started_at, outcome.finished_at
    duration = None if started is None or finished is None else finished - started
    cancelled = outcome.status is JobStatus.CANCELLED
    return {
        "job_id": spec.id,
        "status": outcome.status.value,
        "reason": outcome.reason,
        "exit_code": _EXIT_CODES[outcome.status],
        "aborted": outcome.aborted,
        "planned": spec.size,
        "counts": {s.value: n for s, n in _all_counts(outcome.counts).items()},
        "empty": outcome.empty,
        "completed_before": before.completed,
        "success_rate": finite(outcome.success_rate),
        "started_at": finite(started),
        "finished_at": finite(finished),
        "duration": finite(duration),
        "store": str(options.store_path),
        "simulated": options.simulated,
        "resume_command": _resume_command(spec.id, options) if cancelled else None,
    }


async def _report_abort(
    spec: JobSpec,
    store: Store,
    options: CommandRun,
    before: _Before,
    *,
    out: Console,
    err: Console,
) -> None:
    progress = await store.progress(spec.id)
    if options.as_json:
        outcome = _Outcome(
            status=JobStatus.CANCELLED,
            reason=f"aborted before the verdict; {progress.stored} of {spec.size} executions "
            "have a record",
            counts=progress.counts,
            empty=_empty([found async for found in store.keys(spec.id)]),
            aborted=True,
        )
        doc = run_json(spec, outcome, options, before)
        _print_resume(err, spec.id, options)
        print_json_to(out, doc)
        return
    out.print(
        f"[bold red]ABORTED[/]: {progress.stored} of {spec.size} executions have a record.",
        soft_wrap=True,
    )
    out.print(outcome_line(spec, progress.counts, before), soft_wrap=True, highlight=False)
    _print_resume(out, spec.id, options)


def _resume_command(job_id: str, options: CommandRun) -> str:
    return options.resume_command or shlex.join(
        ["beacon", "resume", job_id, "--store", str(options.store_path)]
    )


def _print_resume(console: Console, job_id: str, options: CommandRun) -> None:
    console.print(
        f"Resume it with: {_resume_command(job_id, options)}",
        soft_wrap=True,
        markup=False,
        highlight=False,
    )


def finite(value: float | None) -> float | None:
    """``value`` if it is a finite number, else ``None`` (JSON has no NaN or infinity)."""
    return value if value is not None and math.isfinite(value) else None
