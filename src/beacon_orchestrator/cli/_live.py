"""Progress of a running job: a live rich display on terminals, plain lines elsewhere."""

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
from ._render import Cell, Glyphs, format_seconds, legend, status_matrix

__all__ = ["JobView", "ProgressMode", "resolve_mode"]

ProgressMode: TypeAlias = Literal["auto", "live", "plain", "off"]
"""How progress is shown: ``auto`` picks ``live`` on a terminal and ``plain`` otherwise."""

_LIVE_REFRESH_S = 0.125
# Lines above and below the question rows of the live display (bar, header, caption, legend).
_LIVE_CHROME_LINES = 7


def resolve_mode(mode: ProgressMode, console: Console) -> Literal["live", "plain", "off"]:
    """The concrete mode for ``console``."""
    if mode == "auto":
        return "live" if console.is_terminal and not console.is_dumb_terminal else "plain"
    return mode


def _status_summary(progress: Progress) -> str:
    parts = [
        f"{status.value} {n}"
        for status in ExecutionStatus
        if (n := progress.counts.get(status, 0)) > 0
    ]
    return ", ".join(parts)


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

    def preload(self, records: Iterable[ExecutionRecord]) -> None:
        """Show the records a store already holds (when resuming)."""
        for record in records:
            self._set(record)

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
        pct = f"{progress.fraction * 100:.0f}%"
        summary = _status_summary(progress)
        return (
            f"[{format_seconds(progress.elapsed):>7}] {progress.job_id}: "
            f"{progress.done}/{progress.total} done ({pct}), {progress.in_flight} in flight"
            f"{f'; {summary}' if summary else ''}; ETA {format_seconds(progress.eta)}"
        )

    # -- live display ---------------------------------------------------------------------

    def _visible_questions(self, rows: int) -> tuple[list[int], int, int]:
        """Which question rows fit: a window starting near the first unfinished question."""
        n = len(self.spec.questions)
        if n <= rows:
            return list(range(n)), 0, 0
        per_question = len(self.spec.endpoints)
        first_open = n
        for i, q in enumerate(self.spec.questions):
            terminal = sum(
                1
                for e in self.spec.endpoints
                if isinstance(
                    self._cells.get(ExecutionKey(q.id, e.model_id, e.region)), ExecutionStatus
                )
            )
            if terminal < per_question:
                first_open = i
                break
        # Keep one finished row above for context; the rest shows what is running next.
        start = max(0, min(first_open - 1, n - rows))
        return list(range(start, start + rows)), start, n - start - rows

    def render(self, progress: Progress) -> RenderableType:
        """The live display: an overall bar with ETA and a row per question."""
        head = Table.grid(padding=(0, 1))
        head.add_column(no_wrap=True)
        head.add_column(no_wrap=True)
        head.add_column(no_wrap=True)
        bar = ProgressBar(total=max(progress.total, 1), completed=progress.done, width=30)
        head.add_row(
            Text(progress.job_id, style="bold"),
            bar,
            Text(
                f"{progress.done}/{progress.total} {progress.fraction * 100:3.0f}%  "
                f"{progress.in_flight} in flight  elapsed {format_seconds(progress.elapsed)}  "
                f"ETA {format_seconds(progress.eta)}"
            ),
        )
        rows = max(3, self.console.size.height - _LIVE_CHROME_LINES)
        shown, above, below = self._visible_questions(rows)
        parts: list[RenderableType] = [head]
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
