"""The progress display: rendering, plain lines, and the live display on a real terminal."""

from __future__ import annotations

import fcntl
import io
import os
import re
import select
import signal
import struct
import subprocess
import termios
import time
from pathlib import Path

import anyio
import pytest
from rich.console import Console

from beacon_orchestrator import (
    ExecutionFinished,
    ExecutionKey,
    ExecutionRecord,
    ExecutionStarted,
    ExecutionStatus,
    JobSpec,
    MemoryStore,
    ModelTarget,
    Progress,
    Question,
    start_job,
)
from beacon_orchestrator._demo import demo_data
from beacon_orchestrator.cli._live import JobView, resolve_mode
from beacon_orchestrator.cli._render import Glyphs, status_matrix
from beacon_orchestrator.cli._runner import _Interrupts
from beacon_orchestrator.testing import FakeExecutor, Step, run_virtual

from .support import BEACON, keys, subprocess_env

UNICODE = Glyphs.for_encoding("utf-8")
COMPLETED = ExecutionStatus.COMPLETED
CANCELLED = ExecutionStatus.CANCELLED
SKIPPED = ExecutionStatus.SKIPPED


def _progress(spec: JobSpec, done: int, in_flight: int, eta: float | None, **more: int) -> Progress:
    """A snapshot of a fresh run: ``done`` finished, ``in_flight`` running, the rest to run."""
    counts = {"kept": 0, "cancelled": 0, "skipped": 0, "waiting_to_retry": 0} | more
    to_run = spec.size - done - in_flight - sum(counts.values())
    return Progress(
        job_id=spec.id,
        total=spec.size,
        done=done + counts["kept"],
        in_flight=in_flight,
        counts={ExecutionStatus.COMPLETED: done + counts["kept"]},
        by_question={},
        by_region={},
        by_model={},
        by_endpoint={},
        elapsed=3.25,
        eta=eta,
        finished=done,
        to_run=to_run,
        kept=counts["kept"],
        cancelled=counts["cancelled"],
        skipped=counts["skipped"],
        waiting_to_retry=counts["waiting_to_retry"],
    )


def _terminal(width: int = 120, height: int = 40) -> Console:
    return Console(
        record=True, force_terminal=True, width=width, height=height, color_system="truecolor"
    )


def test_live_render_has_the_bar_eta_a_row_per_question_and_cell_states() -> None:
    spec = demo_data().spec
    console = _terminal()
    view = JobView(spec, console, UNICODE)
    done = ExecutionKey("math_basic", "llama3.2-1b", "us-east")
    empty = ExecutionKey("math_basic", "qwen2.5-1.5b", "eu-west")
    running = ExecutionKey("geography_basic", "mistral-7b", "asia-pacific")
    retrying = ExecutionKey("geography_basic", "llama3.2-1b", "eu-west")
    view.on_event(ExecutionStarted(spec.id, running, 1, 0.0))
    view.on_event(ExecutionStarted(spec.id, retrying, 2, 0.0))
    view.on_event(
        ExecutionFinished(spec.id, ExecutionRecord(key=done, status=ExecutionStatus.COMPLETED), 0)
    )
    view.on_event(
        ExecutionFinished(
            spec.id,
            ExecutionRecord(key=empty, status=ExecutionStatus.COMPLETED, text="", empty=True),
            0,
        )
    )
    console.print(view.render(_progress(spec, done=2, in_flight=2, eta=61.0)))
    text = console.export_text()
    lines = text.splitlines()
    assert lines[0].startswith("beacon-8q ")
    assert "━" in lines[0]  # the bar
    assert "2/64 done (3%)" in lines[0]
    assert "ETA 1:01" in lines[0]
    assert lines[1].strip() == "2 in flight, 60 to run"
    rows = {line.split()[0]: line for line in lines[3:] if line.strip()}
    assert all(q.id in rows for q in spec.questions)
    assert rows["math_basic"].split()[1:4] == ["2/8", "✓", "·"]
    assert "∅" in rows["math_basic"]
    assert "▸" in rows["geography_basic"]
    assert "↻" in rows["geography_basic"]
    assert "0/8" in rows["geography_basic"]
    assert "✓ completed" in text  # the legend


def test_live_render_windows_long_jobs_around_the_first_open_question() -> None:
    spec = JobSpec(
        id="long",
        questions=[Question(f"q{i:03d}", "?") for i in range(100)],
        models=[ModelTarget("m", ["us-east"])],
    )
    console = _terminal(height=20)
    view = JobView(spec, console, UNICODE)
    view.preload(
        ExecutionRecord(
            key=ExecutionKey(f"q{i:03d}", "m", "us-east"), status=ExecutionStatus.COMPLETED
        )
        for i in range(50)
    )
    console.print(view.render(_progress(spec, 50, 1, 10.0)))
    text = console.export_text()
    assert len(text.splitlines()) <= 20
    assert "q049" in text  # one finished row for context
    assert "q050" in text  # the first open question
    assert "q048" not in text
    assert "49 question(s) above" in text
    assert "more question(s)" in text


def test_matrix_falls_back_to_counts_when_cells_do_not_fit() -> None:
    spec = JobSpec(
        id="wide",
        questions=[Question("q", "?")],
        models=[ModelTarget(f"model-{i}", ["us-east", "eu-west"]) for i in range(30)],
    )
    cells = {ExecutionKey("q", "model-0", "us-east"): ExecutionStatus.FAILED}
    console = _terminal(width=80)
    console.print(status_matrix(spec, cells, glyphs=UNICODE, width=80))
    text = console.export_text()
    assert "model-0" not in text
    assert "1/60" in text
    assert "✗1" in text
    assert "·59" in text


def test_plain_line_states_progress_counts_and_eta() -> None:
    spec = demo_data().spec
    view = JobView(spec, _terminal(), UNICODE)
    line = view.plain_line(_progress(spec, done=16, in_flight=8, eta=None))
    assert re.fullmatch(
        r"\[ +3\.2s\] beacon-8q: 16/64 done \(25%\), 8 in flight, 40 to run; completed 16; "
        r"ETA --",
        line,
    )
    resuming = view.plain_line(_progress(spec, 3, 8, 41.0, kept=8, waiting_to_retry=1))
    assert resuming.endswith(
        "beacon-8q: 3/56 done (5%), 8 kept, 8 in flight, 1 waiting to retry, 44 to run; "
        "completed 11; ETA 41.0s"
    )
    stopped = view.plain_line(_progress(spec, 8, 0, None, cancelled=12, skipped=44))
    assert stopped.endswith(
        "beacon-8q: 8/64 done (12%), 0 in flight, 12 cancelled, 44 skipped; completed 8"
    )


def test_progress_mode_auto_is_live_on_terminals_only() -> None:
    assert resolve_mode("auto", _terminal()) == "live"
    assert resolve_mode("auto", Console(file=io.StringIO())) == "plain"
    assert resolve_mode("off", _terminal()) == "off"


def test_ascii_glyphs_for_terminals_without_unicode() -> None:
    glyphs = Glyphs.for_encoding("ascii")
    assert all(c.isascii() for c in (glyphs.completed, glyphs.failed, glyphs.running))
    assert glyphs.of(ExecutionStatus.COMPLETED, empty=True).plain == "0"


# -- the truth after Ctrl-C and during a resume ---------------------------------------------


def _row(text: str, question: str) -> list[str]:
    return next(line.split() for line in text.splitlines() if line.startswith(question + " "))


def _follow(
    spec: JobSpec,
    view: JobView,
    *,
    store: MemoryStore,
    stop_at: float | None = None,
    look_at: float = 0.0,
) -> tuple[str, Progress]:
    """Run ``spec`` (every answer takes 10 s) with ``view`` following it, cancelled at
    ``stop_at`` as Ctrl-C does: the live display drawn at ``look_at``, and the final progress."""
    console = view.console

    async def main() -> tuple[str, Progress]:
        async with anyio.create_task_group() as tg:
            handle = await start_job(
                tg, spec, FakeExecutor(default=Step(latency=10.0)), store=store,
                on_event=view.on_event,
            )  # fmt: skip
            await anyio.sleep(look_at)
            console.print(view.render(handle.progress()))
            drawn = console.export_text()
            if stop_at is not None:
                await anyio.sleep(stop_at - look_at)
                handle.cancel("interrupted by Ctrl-C")
            await handle.wait()
        return drawn, handle.progress()

    return run_virtual(main)


def test_after_ctrl_c_the_display_shows_what_ran_was_cancelled_and_skipped() -> None:
    """The demo's 64 executions, interrupted after the first round (8 ran, 8 in flight):
    not 64/64 100%, and no question row full of cancelled and skipped keys shown as done."""
    spec = demo_data().spec
    console = _terminal()
    view = JobView(spec, console, UNICODE)
    _, end = _follow(spec, view, store=MemoryStore(), stop_at=15.0, look_at=15.0)
    console.print(view.render(end))  # the final frame, as follow() draws it
    text = console.export_text()
    head, counts = text.splitlines()[:2]
    assert "8/64 done (12%)" in head
    assert "100%" not in head
    assert "ETA" not in head  # nothing left to estimate
    assert counts.strip() == "0 in flight, 8 cancelled, 48 skipped"
    first, second, last = (
        _row(text, q.id) for q in (spec.questions[0], spec.questions[1], spec.questions[-1])
    )
    assert first[1] == "8/8"
    assert second[1] == "0/8"  # cancelled in flight: a record, but not done
    assert "⊘" in " ".join(second)
    assert last[1] == "0/8"
    assert "-" in " ".join(last)
    line = view.plain_line(end)
    assert "8/64 done (12%), 0 in flight, 8 cancelled, 48 skipped" in line


def test_a_resume_shows_kept_to_run_and_done_never_a_key_to_run_as_done_or_skipped() -> None:
    """An earlier run completed one question, was cancelled in the second and skipped the rest;
    a resume shows the completed ones kept, and every other key pending until it runs."""
    spec = demo_data().spec
    store = MemoryStore()
    _follow(spec, JobView(spec, _terminal(), UNICODE), store=store, stop_at=15.0)

    async def earlier() -> list[ExecutionRecord]:
        return list(await store.records(spec.id))

    records = run_virtual(earlier)
    assert {r.status for r in records} == {COMPLETED, CANCELLED, SKIPPED}
    view = JobView(spec, _terminal(), UNICODE)
    view.preload(records)
    text, end = _follow(spec, view, store=store)
    head, counts = text.splitlines()[:2]
    assert "0/56 done (0%)" in head
    assert counts.strip() == "8 kept, 8 in flight, 48 to run"
    first, second, last = (
        _row(text, q.id) for q in (spec.questions[0], spec.questions[1], spec.questions[-1])
    )
    assert first[1] == "8/8"  # kept
    assert second[1] == "0/8"  # cancelled before: running again now, not done
    assert "⊘" not in text.split("regions in each cell")[0]
    assert last[1] == "0/8"
    assert last[2:] == ["·"] * len(last[2:])  # skipped before: pending, not skipped
    assert (end.kept, end.finished, end.fraction) == (8, 56, 1.0)


def test_only_the_records_a_resume_keeps_are_preloaded() -> None:
    spec = demo_data().spec
    keys = [ExecutionKey(spec.questions[0].id, e.model_id, e.region) for e in spec.endpoints]
    statuses = [COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.TIMEOUT, CANCELLED, SKIPPED]
    records = [ExecutionRecord(key=k, status=s) for k, s in zip(keys, statuses, strict=False)]
    cells = [ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.TIMEOUT]
    for rerun_failed, shown in ((True, cells[:1]), (False, cells)):
        console = _terminal()
        view = JobView(spec, console, UNICODE)
        view.preload(records, rerun_failed=rerun_failed)
        console.print(status_matrix(spec, view._cells, glyphs=UNICODE, width=120, bars=True))
        row = _row(console.export_text(), spec.questions[0].id)
        assert row[1] == f"{len(shown)}/8"
        glyphs = "".join(row[2:])
        assert glyphs.count("·") == 8 - len(shown)
        assert "⊘" not in glyphs
        assert "-" not in glyphs


class _Handle:
    def __init__(self) -> None:
        self.reasons: list[str | None] = []

    def cancel(self, reason: str | None = None) -> None:
        self.reasons.append(reason)


@pytest.mark.anyio
async def test_first_interrupt_cancels_the_job_and_the_second_aborts() -> None:
    console = _terminal()
    with anyio.CancelScope() as abort:
        interrupts = _Interrupts(JobView(demo_data().spec, console, UNICODE), abort)
        handle = _Handle()
        interrupts.handle = handle  # type: ignore[assignment]
        interrupts.press(signal.SIGINT)
        assert handle.reasons == ["interrupted by Ctrl-C"]
        assert not abort.cancel_called
        interrupts.press(signal.SIGINT)
        assert handle.reasons == ["interrupted by Ctrl-C"]  # not cancelled twice
        assert abort.cancel_called
    assert "Press Ctrl-C again to abort" in console.export_text()


@pytest.mark.anyio
async def test_an_interrupt_before_the_job_started_aborts() -> None:
    with anyio.CancelScope() as abort:
        interrupts = _Interrupts(JobView(demo_data().spec, _terminal(), UNICODE), abort)
        interrupts.press(signal.SIGTERM)
        assert abort.cancel_called


# -- on a real pseudo-terminal --------------------------------------------------------------------


def _read_all(fd: int, proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the other side closed (Linux raises EIO)
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    return out


@pytest.mark.slow
def test_demo_on_a_terminal_shows_the_live_display(tmp_path: Path) -> None:
    primary, secondary = os.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    db = tmp_path / "pty.db"
    args = [*BEACON, "demo", "--speed", "10", "--store", str(db), "--job-id", "pty"]
    with subprocess.Popen(
        args,
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env=subprocess_env(TERM="xterm-256color"),
    ) as proc:
        os.close(secondary)
        try:
            raw = _read_all(primary, proc, timeout=60)
        finally:
            os.close(primary)
        assert proc.wait(timeout=30) == 0
    text = raw.decode("utf-8", errors="replace")
    assert "\x1b[?25l" in text  # the live display hides the cursor while it redraws
    assert "\x1b[?25h" in text  # and shows it again at the end
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    frames = re.findall(r"pty ━*[━╸╺ ]*\s*(\d+)/64", plain)
    assert len(frames) >= 3, plain[:2000]  # redrawn while the job ran
    assert frames[0] != frames[-1]
    assert frames[-1] == "64"
    assert "regions in each cell" in plain
    assert "COMPLETED" in plain
    assert "These answers are simulated" in plain
    assert len(keys(db, "pty")) == 64
