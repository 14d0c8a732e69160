"""On a real terminal: Ctrl-C in the middle of a run, then its resume, tell the truth.

After Ctrl-C, what the command prints must not claim that everything ran: the final lines
count the completed executions apart from the cancelled and skipped ones. On resume, the
executions still to run are not shown as done. The assertions are on the lines the ``run``
and ``resume`` commands print (start line, verdict, ``Executions:`` summary); only
``test_the_live_display_after_ctrl_c_does_not_claim_all_done`` reads the live display itself.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .support import BEACON, demo_job_file, statuses, subprocess_env

pytestmark = pytest.mark.slow

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
JOB = "interrupted"
FRAME = re.compile(rf"{JOB} ━*[━╸╺ ]*\s*(\d+)/(\d+) done \((\d+)%\)")


def _frames(text: str) -> list[tuple[int, int, int]]:
    """(done, this run's work, percent) of every redraw of the live display's head line."""
    return [(int(done), int(of), int(pct)) for done, of, pct in FRAME.findall(text)]


def _on_a_terminal(
    args: list[str], *, interrupt_when: Callable[[str], bool] | None = None, timeout: float = 60
) -> tuple[int, str]:
    """Run ``beacon ARGS`` on a 120x40 pseudo-terminal; send SIGINT once ``interrupt_when``
    holds for the output so far (without escape sequences). Return the exit code and output."""
    primary, secondary = os.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    with subprocess.Popen(
        [*BEACON, *args],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env=subprocess_env(TERM="xterm-256color"),
    ) as proc:
        os.close(secondary)
        raw, sent = b"", False
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([primary], [], [], 0.05)
                if not ready:
                    if proc.poll() is not None:
                        break
                    continue
                try:
                    chunk = os.read(primary, 65536)
                except OSError:  # the other side closed (Linux raises EIO)
                    break
                if not chunk:
                    break
                raw += chunk
                plain = ANSI.sub("", raw.decode("utf-8", errors="replace"))
                if interrupt_when is not None and not sent and interrupt_when(plain):
                    proc.send_signal(signal.SIGINT)
                    sent = True
        finally:
            os.close(primary)
        code = proc.wait(timeout=30)
    if interrupt_when is not None:
        assert sent, "the run ended before it could be interrupted"
    return code, ANSI.sub("", raw.decode("utf-8", errors="replace"))


def _some_but_not_all_done(plain: str) -> bool:
    frames = _frames(plain)
    return bool(frames) and frames[-1][1] == 64 and 16 <= frames[-1][0] < 48


def _interrupt(tmp_path: Path) -> tuple[Path, str]:
    db = tmp_path / "b.db"
    job = demo_job_file(tmp_path / "job.json", JOB)
    # At this pace the 64 executions take about 5 s: Ctrl-C lands with some done, most not.
    args = ["run", str(job), "--store", str(db), "--executor", "demo", "--speed", "2"]
    code, text = _on_a_terminal(args, interrupt_when=_some_but_not_all_done)
    assert code == 130, text[-3000:]
    return db, text


def _tail_after(text: str, marker: str) -> str:
    at = text.rfind(marker)
    assert at >= 0, f"no {marker!r} in:\n{text[-3000:]}"
    return text[at:]


def test_after_ctrl_c_and_on_resume_the_summary_counts_only_what_ran(tmp_path: Path) -> None:
    db, text = _interrupt(tmp_path)
    counts = statuses(db, JOB)
    done = counts["completed"] + counts["failed"] + counts["timeout"]
    assert sum(counts.values()) == 64
    assert 0 < done < 64
    assert counts["cancelled"] > 0
    assert counts["skipped"] > 0

    summary = _tail_after(text, "CANCELLED:")
    assert f"with {counts['completed']} of 64 executions completed" in summary
    parts = [f"Executions: {counts['completed']} of 64 completed"]
    if counts["failed"]:
        parts.append(f"{counts['failed']} failed")
    parts += [
        f"{counts['cancelled']} cancelled (started, interrupted)",
        f"{counts['skipped']} skipped (never started).",
    ]
    assert ", ".join(parts) in summary
    assert "64 of 64" not in summary
    assert "100%" not in summary
    assert f"Resume it with: beacon resume {JOB}" in summary

    # The resume starts by saying what is left; its bar is the work left, starting empty.
    resume = ["resume", JOB, "--store", str(db), "--executor", "demo", "--speed", "5"]
    code, resumed = _on_a_terminal(resume)
    assert code == 0, resumed[-3000:]
    completed = counts["completed"]
    assert (
        f"Resuming job {JOB}: {completed} of 64 executions already completed; "
        f"{64 - completed} to run" in resumed
    )
    assert _frames(resumed)[0] == (0, 64 - completed, 0)
    assert f"{completed} kept" in resumed
    final = _tail_after(resumed, "COMPLETED:")
    assert (
        f"Executions: 63 of 64 completed ({completed} before this run, 1 empty), 1 failed." in final
    )
    assert statuses(db, JOB) == {"completed": 63, "failed": 1}


def test_the_live_display_after_ctrl_c_does_not_claim_all_done(tmp_path: Path) -> None:
    _, text = _interrupt(tmp_path)
    after = text[text.index("Ctrl-C: cancelling") :]
    last_done, of, last_pct = _frames(after)[-1]
    assert of == 64
    assert last_done < 64
    assert last_pct < 100
