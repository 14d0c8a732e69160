"""Progress of a running job: a live rich display on terminals, plain lines elsewhere.

Both say what the job's :class:`~beacon_orchestrator.Progress` says, and nothing more: what
this run finished of the work it had (the bar and the percentage), what is in flight, waiting
to retry and still to run, what an earlier run left that this one keeps, and, once the job
stopped, how many executions were cancelled and skipped. A key that still has to run is shown
pending, whatever an earlier run recorded for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal, TypeAlias

import anyio
from attrs import define, field
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from .._events import Event, ExecutionFinished, ExecutionStarted, Progress
from .._spec import JobSpec
from .._types import ExecutionKey, ExecutionRecord, ExecutionStatus
from ..stores import EndpointKeys
from ._render import Cell, Glyphs, format_seconds, legend, sample_states, status_matrix

__all__ = ["JobView", "ProgressMode", "resolve_mode", "run_counts"]

ProgressMode: TypeAlias = Literal["auto", "live", "plain", "off"]
"""How progress is shown: ``auto`` picks ``live`` on a terminal and ``plain`` otherwise."""

_LIVE_REFRESH_S = 0.125
# Lines above and below the question rows of the live display (bar, counts, header, caption,
# legend).
_LIVE_CHROME_LINES = 8


def resolve_mode(mode: ProgressMode, console: Console) -> Literal["live", "plain", "off"]:
    """The concrete mode for ``console``."""
    if mode == "auto":
        return "live" if console.is_terminal and not console.is_dumb_terminal else "plain"
    return mode


def _outcomes(progress: Progress) -> str:
    """Records per outcome (this run's and the kept ones): ``completed 12, failed 1``."""
    parts = [
        f"{status.value} {n}"
        for status in ExecutionStatus
        if status.finished and (n := progress.counts.get(status, 0)) > 0
    ]
    return ", ".join(parts)


def run_counts(progress: Progress) -> list[str]:
    """What this run has done and has left, in words, leaving out counts that are zero.

    The run's own work comes first, and what is in flight is always said:
    ``["3/56 done (5%)", "8 kept", "8 in flight", "1 waiting to retry", "44 to run"]`` during
    a resume; ``["8/64 done (12%)", "0 in flight", "12 cancelled", "44 skipped"]`` after
    Ctrl-C.
    """
    p = progress
    counts = [f"{p.finished}/{p.planned_this_run} done ({p.fraction * 100:.0f}%)"]
    if p.kept:
        counts.append(f"{p.kept} kept")
    counts.append(f"{p.in_flight} in flight")
    for n, what in (
        (p.waiting_to_retry, "waiting to retry"),
        (p.to_run, "to run"),
        (p.cancelled, "cancelled"),
        (p.skipped, "skipped"),
    ):
        if n:
            counts.append(f"{n} {what}")
    if p.spent is not None:
        counts.append(f"spent {p.spent:.4g}")
    return counts


def _eta(progress: Progress) -> str:
    if progress.to_run + progress.in_flight + progress.waiting_to_retry == 0:
        return ""  # nothing left: no estimate to give
    return f"ETA {format_seconds(progress.eta)}"


@define
class JobView:
    """Follows one job's events and shows its progress.

    ``on_event`` is the job's event callback: it only updates a dictionary, so the scheduler
    is not slowed down by drawing; drawing happens in :meth:`follow`, at a fixed pace.

    Args:
        spec: The job being run.
        console: Where progress goes.
        glyphs: The glyphs of the matrix cells.
    """

    spec: JobSpec
    console: Console
    glyphs: Glyphs
    _cells: dict[ExecutionKey, Cell] = field(factory=dict, init=False)
    _empties: set[ExecutionKey] = field(factory=set, init=False)

    def preload(self, records: Iterable[ExecutionRecord], *, rerun_failed: bool = True) -> None:
        """Show the records of an earlier run that this run keeps (when resuming).

        The others stay pending, since the run executes them again: ``CANCELLED`` and
        ``SKIPPED`` ones always, ``FAILED`` and ``TIMEOUT`` ones unless ``rerun_failed`` is
        off (the same rule as :class:`~beacon_orchestrator.RunOptions`).
        """
        for record in records:
            status = record.status
            if status is ExecutionStatus.COMPLETED or (status.finished and not rerun_failed):
                self._set(record)

    def preload_keys(self, stored: Iterable[EndpointKeys], *, rerun_failed: bool = True) -> None:
        """:meth:`preload`, from a store's keys (``Store.keys``) rather than its records."""
        completed = ExecutionStatus.COMPLETED
        for found in stored:
            model, region = found.model_id, found.region
            for qid, sample, status, empty in zip(
                found.question_ids, found.samples, found.statuses, found.empty, strict=True
            ):
                if status is completed or (status.finished and not rerun_failed):
                    key = ExecutionKey(qid, model, region, sample)
                    self._cells[key] = status
                    if empty and status is completed:
                        self._empties.add(key)

    def _set(self, record: ExecutionRecord) -> None:
        self._cells[record.key] = record.status
        if record.status is ExecutionStatus.COMPLETED and record.empty:
            self._empties.add(record.key)
        else:
            self._empties.discard(record.key)

    def on_event(self, event: Event) -> None:
        """The ``on_event`` callback for the job."""
        if isinstance(event, ExecutionStarted):
            self._cells[event.key] = "running" if event.attempt == 1 else "retrying"
        elif isinstance(event, ExecutionFinished):
            self._set(event.record)

    def say(self, message: str, *, style: str | None = None) -> None:
        """Print a message (above the live display, when there is one)."""
        self.console.print(message, style=style, highlight=False, soft_wrap=True)

    # -- plain lines ----------------------------------------------------------------------

    def plain_line(self, progress: Progress) -> str:
        """One line of progress for logs."""
        parts = [", ".join(run_counts(progress)), _outcomes(progress), _eta(progress)]
        return f"[{format_seconds(progress.elapsed):>7}] {progress.job_id}: " + "; ".join(
            part for part in parts if part
        )

    # -- live display ---------------------------------------------------------------------

    def _visible_questions(self, rows: int) -> tuple[list[int], int, int]:
        """Which question rows fit: a window starting near the first unfinished question."""
        n = len(self.spec.questions)
        if n <= rows:
            return list(range(n)), 0, 0
        spec = self.spec
        per_question = len(spec.endpoints) * spec.samples
        first_open = n
        for i, q in enumerate(spec.questions):
            terminal = sum(
                1
                for e in spec.endpoints
                for state in sample_states(spec, self._cells, q.id, e.model_id, e.region)
                if isinstance(state, ExecutionStatus)
            )
            if terminal < per_question:
                first_open = i
                break
        # Keep one finished row above for context; the rest shows what is running next.
        start = max(0, min(first_open - 1, n - rows))
        return list(range(start, start + rows)), start, n - start - rows

    def render(self, progress: Progress) -> RenderableType:
        """The live display: a bar of this run's work, its counts, and a row per question."""
        head = Table.grid(padding=(0, 1))
        head.add_column(no_wrap=True)
        head.add_column(no_wrap=True)
        head.add_column(no_wrap=True)
        # The bar is this run's work: a resume starts empty, a cancelled job never fills it.
        bar = ProgressBar(
            total=max(progress.planned_this_run, 1), completed=progress.finished, width=30
        )
        done, *counts = run_counts(progress)
        words = (done, f"elapsed {format_seconds(progress.elapsed)}", _eta(progress))
        head.add_row(
            Text(progress.job_id, style="bold"), bar, Text("  ".join(w for w in words if w))
        )
        rows = max(3, self.console.size.height - _LIVE_CHROME_LINES)
        shown, above, below = self._visible_questions(rows)
        parts: list[RenderableType] = [head, Text("  " + ", ".join(counts))]
        if above:
            parts.append(Text(f"  ... {above} question(s) above", style="dim"))
        parts.append(
            status_matrix(
                self.spec,
                self._cells,
                empties=self._empties,
                glyphs=self.glyphs,
                width=self.console.size.width,
                questions=shown,
                bars=True,
            )
        )
        if below:
            parts.append(Text(f"  ... {below} more question(s)", style="dim"))
        parts.append(legend(self.glyphs))
        return Group(*parts)

    # -- following a job ------------------------------------------------------------------

    async def follow(
        self,
        progress: Callable[[], Progress],
        *,
        mode: Literal["live", "plain", "off"],
        interval: float,
    ) -> None:
        """Show progress until cancelled; the live display ends showing the final state.

        Args:
            progress: Returns the job's current snapshot (``JobHandle.progress``).
            mode: ``live``, ``plain`` or ``off``.
            interval: Seconds between plain lines.
        """
        if mode == "off":
            await anyio.sleep_forever()
        elif mode == "plain":
            while True:
                await anyio.sleep(interval)
                self.say(self.plain_line(progress()))
        else:
            # auto_refresh would start a thread; drawing from this task keeps to one loop.
            with Live(
                console=self.console,
                auto_refresh=False,
                redirect_stdout=False,
                redirect_stderr=False,
                transient=False,
            ) as live:
                try:
                    while True:
                        live.update(self.render(progress()), refresh=True)
                        await anyio.sleep(_LIVE_REFRESH_S)
                finally:
                    live.update(self.render(progress()), refresh=True)
