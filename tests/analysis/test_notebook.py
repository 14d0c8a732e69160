"""notebook_progress: a progress line for on_event, in IPython or as plain text."""

from __future__ import annotations

import inspect
import io
import sys
import types
from pathlib import Path
from typing import Any

import pytest

import beacon_orchestrator.notebook as notebook
from beacon_orchestrator import (
    ExecutionFinished,
    ExecutionKey,
    ExecutionRecord,
    ExecutionStatus,
    JobCancelled,
    JobFinished,
    JobResult,
    JobSpec,
    JobStarted,
    JobStatus,
    ModelTarget,
    Question,
    UsageError,
    run_job,
)
from beacon_orchestrator.notebook import (
    NotebookProgress,
    ProgressDisplay,
    ProgressLine,
    notebook_progress,
)
from beacon_orchestrator.testing import FakeExecutor, run_virtual


class FakeDisplay:
    """A display that keeps every line it was asked to show."""

    def __init__(self) -> None:
        self.lines: list[ProgressLine] = []

    def update(self, line: ProgressLine) -> None:
        self.lines.append(line)


def finished(at: float, status: ExecutionStatus = ExecutionStatus.COMPLETED, **kw: Any) -> Any:
    key = ExecutionKey(f"q{at}", "m", "us-east")
    return ExecutionFinished("j", ExecutionRecord(key=key, status=status, **kw), at)


def verdict(at: float) -> JobFinished:
    result = JobResult("j", JobStatus.FAILED, "2 of 4 succeeded.", {}, 0.5, 4)
    return JobFinished("j", result, at)


def test_the_line_counts_what_the_events_say_and_ends_with_the_verdict() -> None:
    display = FakeDisplay()
    progress = notebook_progress(display=display, every=0)
    progress(JobStarted("j", 0.0, planned=4, to_run=4, strategy="endpoint"))
    progress(finished(1.0, text="fine"))
    progress(finished(2.0, text="", empty=True))
    progress(finished(3.0, ExecutionStatus.FAILED, error_code="X"))
    progress(finished(4.0, ExecutionStatus.TIMEOUT))
    progress(verdict(4.0))
    assert [line.done for line in display.lines] == [0, 1, 2, 3, 4, 4]
    last = display.lines[-1]
    assert last.finished
    assert str(last) == (
        "j: 4/4 (100%) - 1 completed, 1 empty, 1 failed, 1 timeout - FAILED: 2 of 4 succeeded."
    )
    assert progress.line == last
    html = last._repr_html_()
    assert '<progress value="4" max="4"' in html
    assert "FAILED: 2 of 4 succeeded." in html


def test_updates_come_at_most_once_per_interval_but_start_and_end_always_show() -> None:
    display = FakeDisplay()
    progress = notebook_progress(display=display, every=10.0)
    progress(JobStarted("j", 0.0, planned=100, to_run=100, strategy="endpoint"))
    for i in range(1, 101):
        progress(finished(i * 0.5, text="ok"))  # 50 s of job time
    progress(verdict(50.0))
    shown = [line.done for line in display.lines]
    # Start, one update per 10 s (every 20 executions), the last execution, the verdict.
    assert shown == [0, 20, 40, 60, 80, 100, 100]
    assert display.lines[-1].finished


def test_a_resumed_job_starts_at_what_was_done_before() -> None:
    display = FakeDisplay()
    progress = notebook_progress(display=display)
    progress(JobStarted("j", 0.0, planned=10, to_run=4, strategy="endpoint"))
    assert str(display.lines[0]) == "j: 6/10 (60%)"


def test_a_cancellation_shows_at_once() -> None:
    display = FakeDisplay()
    progress = notebook_progress(display=display, every=60)
    progress(JobStarted("j", 0.0, planned=4, to_run=4, strategy="endpoint"))
    progress(finished(1.0, text="ok"))
    progress(JobCancelled("j", "handle", "cancelled by the caller", 1.5))
    assert (
        str(display.lines[-1]) == "j: 1/4 (25%) - 1 completed - cancelling: cancelled by the caller"
    )


def test_events_before_a_start_are_ignored() -> None:
    display = FakeDisplay()
    progress = notebook_progress(display=display)
    progress(finished(1.0, text="ok"))
    assert display.lines == []
    assert progress.line is None


def test_without_ipython_it_prints_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    out = io.StringIO()
    progress = notebook_progress(stream=out, every=0)
    progress(JobStarted("j", 0.0, planned=2, to_run=2, strategy="endpoint"))
    progress(finished(1.0, text="ok"))
    assert out.getvalue().splitlines() == ["j: 0/2 (0%)", "j: 1/2 (50%) - 1 completed"]
    # And IPython was not imported to find that out.
    assert "IPython" not in sys.modules


def fake_ipython(monkeypatch: pytest.MonkeyPatch, shell: object | None) -> list[tuple[str, Any]]:
    """Install a stand-in IPython whose display() and handles log what they are given."""
    calls: list[tuple[str, Any]] = []

    class Handle:
        def update(self, obj: Any) -> None:
            calls.append(("update", obj))

    def display(obj: Any, *, display_id: bool = False) -> Handle:
        calls.append(("display", (obj, display_id)))
        return Handle()

    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: shell  # type: ignore[attr-defined]
    shown = types.ModuleType("IPython.display")
    shown.display = display  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", shown)
    return calls


def test_in_ipython_one_output_is_updated_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_ipython(monkeypatch, shell=object())
    out = io.StringIO()
    progress = notebook_progress(stream=out, every=0)
    progress(JobStarted("j", 0.0, planned=2, to_run=2, strategy="endpoint"))
    progress(finished(1.0, text="ok"))
    progress(finished(2.0, text="ok"))
    assert [kind for kind, _ in calls] == ["display", "update", "update"]
    first, display_id = calls[0][1]
    assert display_id is True
    assert isinstance(first, ProgressLine)
    assert calls[-1][1].done == 2
    assert out.getvalue() == ""  # nothing printed besides


def test_ipython_loaded_but_not_running_is_plain_text(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_ipython(monkeypatch, shell=None)
    out = io.StringIO()
    progress = notebook_progress(stream=out)
    progress(JobStarted("j", 0.0, planned=1, to_run=1, strategy="endpoint"))
    assert calls == []
    assert out.getvalue() == "j: 0/1 (0%)\n"


@pytest.mark.parametrize("every", [-1, "1", True, float("nan")])
def test_a_bad_interval_is_refused_naming_it(every: Any) -> None:
    with pytest.raises(UsageError, match=r"notebook_progress: every: expected seconds >= 0"):
        notebook_progress(every=every)


def test_a_display_without_update_is_refused() -> None:
    with pytest.raises(UsageError, match=r"display: expected an object with update\(line\)"):
        notebook_progress(display=object())  # type: ignore[arg-type]
    assert isinstance(FakeDisplay(), ProgressDisplay)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_real_job_drives_the_line_to_its_verdict(backend: str) -> None:
    spec = JobSpec(
        id="nb",
        questions=[Question(f"q{i}", "?") for i in range(6)],
        models=[ModelTarget("m", ["us-east", "eu-west"])],
    )
    display = FakeDisplay()

    async def main() -> JobResult:
        progress = notebook_progress(display=display, every=1.0)
        assert isinstance(progress, NotebookProgress)
        executor = FakeExecutor.random(2, latency=(0.5, 1.5), p_permanent=0.2)
        return await run_job(spec, executor, on_event=progress)

    result = run_virtual(main, backend=backend)
    done = [line.done for line in display.lines]
    assert done == sorted(done)
    assert done[0] == 0
    last = display.lines[-1]
    assert last.done == last.total == 12
    assert last.finished
    assert result.status.value.upper() in last.note
    assert sum(last.counts.values()) == 12
    assert last.counts.get("failed", 0) == result.counts[ExecutionStatus.FAILED]
    # Throttled: fewer updates than executions, on a job of about 9 s of virtual time.
    assert len(display.lines) < 12


def test_every_public_name_has_a_docstring_and_a_reference_entry() -> None:
    reference = Path(__file__).resolve().parents[2] / "docs" / "reference" / "analysis.md"
    text = reference.read_text(encoding="utf-8")
    for name in notebook.__all__:
        assert inspect.getdoc(getattr(notebook, name)), name
        assert f"::: beacon_orchestrator.notebook.{name}\n" in text, name
