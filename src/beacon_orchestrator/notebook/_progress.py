"""A job's progress in a notebook cell: one line that updates in place, or plain lines."""

from __future__ import annotations

import importlib
import sys
from collections import Counter
from collections.abc import Callable, Mapping
from html import escape
from typing import Any, Protocol, TextIO, runtime_checkable

from attrs import define, evolve, field, frozen

from .._errors import UsageError
from .._events import Event, ExecutionFinished, JobCancelled, JobFinished, JobStarted

__all__ = ["NotebookProgress", "ProgressDisplay", "ProgressLine", "notebook_progress"]

_ORDER = ("completed", "empty", "failed", "timeout", "cancelled", "skipped")


@frozen
class ProgressLine:
    """One state of the progress line: what a display shows.

    Attributes:
        job_id: The job.
        done: Executions with a terminal record (those done before a resume included).
        total: Planned executions.
        counts: Terminal records this run, by status (``"empty"`` apart from ``"completed"``).
        note: ``"cancelling: ..."`` after a cancellation, the verdict at the end, else ``""``.
        finished: Whether the job has its verdict.
    """

    job_id: str
    done: int
    total: int
    counts: Mapping[str, int] = field(factory=dict)
    note: str = ""
    finished: bool = False

    @property
    def fraction(self) -> float:
        """Done over planned (1 for a job with nothing to do)."""
        return self.done / self.total if self.total else 1.0

    def __str__(self) -> str:
        counts = ", ".join(f"{self.counts[k]} {k}" for k in _ORDER if self.counts.get(k))
        line = f"{self.job_id}: {self.done}/{self.total} ({self.fraction:.0%})"
        line += f" - {counts}" if counts else ""
        return f"{line} - {self.note}" if self.note else line

    def _repr_html_(self) -> str:
        return (
            f'<div><progress value="{self.done}" max="{max(self.total, 1)}" '
            f'style="width:16em;vertical-align:middle"></progress> '
            f"<code>{escape(str(self))}</code></div>"
        )


@runtime_checkable
class ProgressDisplay(Protocol):
    """Where a :class:`NotebookProgress` sends each state of its line.

    ``update`` replaces what the display showed before (in a notebook, the cell's output
    line); IPython's display handles are adapted to it.
    """

    def update(self, line: ProgressLine) -> None:
        """Show ``line`` in place of the previous one."""
        ...


@define
class _TextDisplay:
    """Plain lines on a stream, for a terminal, a log or a notebook without IPython."""

    stream: TextIO

    def update(self, line: ProgressLine) -> None:
        print(line, file=self.stream, flush=True)


@define
class _IPythonDisplay:
    """One output that each update replaces (IPython's ``display(..., display_id=True)``)."""

    display: Callable[..., Any]
    _handle: Any = field(default=None, init=False)

    def update(self, line: ProgressLine) -> None:
        if self._handle is None:
            self._handle = self.display(line, display_id=True)
        else:
            self._handle.update(line)


def _ipython_display() -> ProgressDisplay | None:
    """IPython's display, when this code runs inside IPython; ``None`` otherwise.

    IPython is never imported here: if it is not loaded already, no notebook is running.
    """
    ipython = sys.modules.get("IPython")
    if ipython is None or getattr(ipython, "get_ipython", lambda: None)() is None:
        return None
    return _IPythonDisplay(importlib.import_module("IPython.display").display)


@define
class NotebookProgress:
    """An ``on_event`` handler that shows how far a job is, on one line that updates in place.

    It counts what the events say (no store, no clock of its own) and sends a
    :class:`ProgressLine` to its display when the job starts, at most once per ``every``
    seconds of the job's time while it runs, after a cancellation and at the end (with the
    verdict). Build it with :func:`notebook_progress`.

    Attributes:
        display: Where the line goes.
        every: Seconds of the job's time between two updates while it runs.
    """

    display: ProgressDisplay
    every: float = 0.5
    line: ProgressLine | None = field(default=None, init=False)
    _counts: Counter[str] = field(factory=Counter, init=False)
    _shown_at: float = field(default=0.0, init=False)

    def __call__(self, event: Event) -> None:
        """Take one event (pass the handler itself as ``on_event``)."""
        line = self.line
        if isinstance(event, JobStarted):
            self._counts.clear()
            already = event.planned - event.to_run
            self._show(ProgressLine(event.job_id, already, event.planned), event.at)
        elif line is None:
            return  # events of a job whose start this handler did not see
        elif isinstance(event, ExecutionFinished):
            record = event.record
            self._counts["empty" if record.empty else record.status.value] += 1
            line = evolve(line, done=line.done + 1, counts=dict(self._counts))
            if line.done >= line.total or event.at - self._shown_at >= self.every:
                self._show(line, event.at)
            else:
                self.line = line
        elif isinstance(event, JobCancelled):
            self._show(evolve(line, note=f"cancelling: {event.reason}"), event.at)
        elif isinstance(event, JobFinished):
            result = event.result
            note = f"{result.status.value.upper()}: {result.reason}"
            self._show(evolve(line, note=note, finished=True), event.at)

    def _show(self, line: ProgressLine, at: float) -> None:
        self.line = line
        self._shown_at = at
        self.display.update(line)


def notebook_progress(
    *, display: ProgressDisplay | None = None, stream: TextIO | None = None, every: float = 0.5
) -> NotebookProgress:
    """A progress line for ``run_job(..., on_event=notebook_progress())``.

    In a notebook (IPython running) the line is a bar and a count that update in place in the
    cell's output. Anywhere else it prints plain lines (to ``stream``, standard output by
    default), at most one per ``every`` seconds. Neither IPython nor ipywidgets is needed.

    Args:
        display: Where the line goes, instead of IPython or plain text (any object with
            ``update(line)``; see :class:`ProgressDisplay`).
        stream: Where plain lines go when there is no IPython (default: ``sys.stdout``).
        every: Seconds of the job's time between two updates while it runs.

    Returns:
        The handler to pass as ``on_event``; its ``line`` is the last state it showed.

    Raises:
        UsageError: ``every`` is not a number of seconds >= 0, or ``display`` has no
            ``update(line)``.
    """
    seconds: object = every  # typed as object: callers need not respect the annotation
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds >= 0:
        raise UsageError(f"notebook_progress: every: expected seconds >= 0, got {every!r}")
    if display is not None and not isinstance(display, ProgressDisplay):
        raise UsageError(
            f"notebook_progress: display: expected an object with update(line), got {display!r}"
        )
    chosen = display or _ipython_display() or _TextDisplay(stream or sys.stdout)
    return NotebookProgress(chosen, every)
