"""`beacon` as a real process: the demo, plain progress in logs, Ctrl-C and resume."""

from __future__ import annotations

import json
import re
import select
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from .support import BEACON, TERMINAL, demo_job_file, keys, statuses, subprocess_env

pytestmark = pytest.mark.slow

FAST_DEMO = ["--executor", "demo", "--speed", "100", "--progress", "off"]
PLAIN_LINE = re.compile(r"^\[ *[\d.:]+s?\] (\S+): (\d+)/64 done \(\d+%\), \d+ in flight")


def test_demo_subprocess_stores_64_records_and_logs_plain_progress(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    done = subprocess.run(
        [*BEACON, "demo", "--speed", "10", "--store", str(db), "--progress-interval", "0.15"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "SIMULATED" in done.stderr
    assert "no model is called" in done.stderr
    assert "These answers are simulated: no model was called." in done.stdout
    assert "COMPLETED" in done.stdout
    # Not a terminal: no live display, but periodic plain lines.
    assert "\x1b[" not in done.stderr
    progress = [m for line in done.stderr.splitlines() if (m := PLAIN_LINE.match(line))]
    assert len(progress) >= 3, done.stderr
    job_id = progress[0].group(1)
    assert job_id.startswith("demo-")
    counts = [int(m.group(2)) for m in progress]
    assert counts == sorted(counts)
    assert counts[-1] == 64
    with sqlite3.connect(db) as conn:
        (records,) = conn.execute("SELECT COUNT(*) FROM records").fetchone()
        (status,) = conn.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
    assert records == 64
    assert status == "completed"
    assert statuses(db, job_id)["failed"] == 1


def _wait_for_line(proc: subprocess.Popen[str], pattern: re.Pattern[str], timeout: float) -> str:
    """Read stderr lines until one matches; return everything read."""
    assert proc.stderr is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 0.05)
        if not ready:
            continue
        line = proc.stderr.readline()
        if not line:
            break
        seen += line
        if pattern.search(line):
            return seen
    raise AssertionError(f"no line matching {pattern.pattern!r} in:\n{seen}")


def test_sigint_records_every_key_exits_130_and_resume_completes(tmp_path: Path) -> None:
    db = tmp_path / "b.db"
    job = demo_job_file(tmp_path / "job.json", "interrupted")
    # At this pace the first answers take tens of seconds: the interrupt lands mid-flight.
    args = [*BEACON, "run", str(job), "--store", str(db), "--executor", "demo", "--speed", "0.05"]
    with subprocess.Popen(
        [*args, "--progress", "plain", "--progress-interval", "0.05"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    ) as proc:
        _wait_for_line(proc, re.compile(r"\b8 in flight"), timeout=30)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "Ctrl-C: cancelling" in stderr
    assert "Traceback" not in stderr
    assert "CANCELLED" in stdout
    hint = re.search(r"Resume it with: (.+)", stdout)
    assert hint is not None, stdout
    assert hint.group(1).split()[:3] == ["beacon", "resume", "interrupted"]
    assert "--executor demo --speed 0.05" in hint.group(1)

    # Every key has exactly one terminal record; nothing is left pending.
    stored = keys(db, "interrupted")
    assert len(stored) == 64 == len(set(stored))
    counts = statuses(db, "interrupted")
    assert set(counts) <= TERMINAL
    assert counts["cancelled"] == 8  # one in flight per endpoint, interrupted
    assert counts["skipped"] == 56  # never started
    with sqlite3.connect(db) as conn:
        (status,) = conn.execute("SELECT status FROM jobs WHERE id = 'interrupted'").fetchone()
    assert status == "cancelled"

    resumed = subprocess.run(
        [*BEACON, "resume", "interrupted", "--store", str(db), *FAST_DEMO],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=60,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "COMPLETED" in resumed.stdout
    counts = statuses(db, "interrupted")
    assert counts == {"completed": 63, "failed": 1}
    assert len(keys(db, "interrupted")) == 64


def test_a_second_sigint_aborts_without_waiting_for_the_grace_period(tmp_path: Path) -> None:
    db = tmp_path / "b.db"
    job = demo_job_file(tmp_path / "job.json", "aborted")
    doc = json.loads(job.read_text())
    doc["limits"]["cancel_grace"] = 600  # the first Ctrl-C would let executions run 10 minutes
    job.write_text(json.dumps(doc))
    args = [*BEACON, "run", str(job), "--store", str(db), "--executor", "demo", "--speed", "0.05"]
    with subprocess.Popen(
        [*args, "--progress", "plain", "--progress-interval", "0.05"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    ) as proc:
        _wait_for_line(proc, re.compile(r"\b8 in flight"), timeout=30)
        proc.send_signal(signal.SIGINT)
        _wait_for_line(proc, re.compile(r"Press Ctrl-C again"), timeout=30)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    assert time.monotonic() - started < 10
    assert proc.returncode == 130, stderr
    assert "again: aborting" in stderr
    assert "ABORTED: 64 of 64 executions have a record." in stdout
    assert "Resume it with: beacon resume aborted" in stdout
    counts = statuses(db, "aborted")
    assert counts == {"cancelled": 8, "skipped": 56}
