"""Ordinary failures on the command line: one line on stderr, the right exit code, no traceback.

A full disk, a read-only directory and an export to a path that cannot be written are the
user's environment, not bugs: each ends ``beacon`` with one ``Error:`` line that names the file
and says what the operating system said (``No space left on device``, ``Read-only file
system``), exit code 1, and nothing already stored lost.

Real file systems: a small tmpfs is mounted for each test that needs one. Permission bits do
not stop root (``chmod`` is no test when the tests run as root), so a read-only directory is a
tmpfs mounted read-only, or remounted read-only once a store is in it. Mounting needs root
(CAP_SYS_ADMIN): where it is not allowed, those tests are skipped and say so.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from beacon_orchestrator import BeaconError, SpecError, StoreError
from beacon_orchestrator.cli._shell import library_error
from beacon_orchestrator.stores.sqlite import _store, _tallies

from .support import BEACON, demo_job_file, invoke, keys, subprocess_env

pytestmark = pytest.mark.slow

RUN = ["--executor", "demo", "--speed", "100", "--progress", "off"]
NO_SPACE = os.strerror(28)  # ENOSPC: "No space left on device"
READ_ONLY = os.strerror(30)  # EROFS: "Read-only file system"


# -- file systems ---------------------------------------------------------------------------


def _mount(where: Path, *options: str) -> None:
    if shutil.which("mount") is None:
        pytest.skip("this machine has no mount command, which the tmpfs tests need")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not allowed here (it needs root): {done.stderr.strip()}")


def _remount(where: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(where)], check=True)


def _unmount(where: Path) -> None:
    if subprocess.run(["umount", str(where)], check=False).returncode != 0:
        subprocess.run(["umount", "-l", str(where)], check=True)  # busy: detach it now


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A directory on a 4 MiB tmpfs of its own (room for the demo job and its WAL)."""
    where = tmp_path / "disk"
    where.mkdir()
    _mount(where, "size=4m")
    try:
        yield where
    finally:
        _unmount(where)


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """An empty directory on a tmpfs mounted read-only."""
    where = tmp_path / "ro"
    where.mkdir()
    _mount(where, "ro", "size=64k")
    try:
        yield where
    finally:
        _unmount(where)


def fill(where: Path, leave: int) -> Path:
    """Fill ``where``'s file system with one file, leaving about ``leave`` bytes free."""
    stats = os.statvfs(where)
    free = stats.f_bavail * stats.f_frsize
    filler = where / "filler"
    with filler.open("wb") as fp:
        fp.write(b"\0" * max(0, free - leave))
    return filler


# -- running beacon ---------------------------------------------------------------------------


def beacon(*args: str | Path, stdout: Any = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BEACON, *map(str, args)],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
        timeout=120,
        check=False,
    )


def one_line_failure(done: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """The one line ``beacon`` failed with, after checking it is all stderr holds."""
    assert done.returncode == code, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


def stored(db: Path, job_id: str) -> tuple[str | None, int]:
    """The job's stored status and its number of records, read straight from the file."""
    with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True) as conn:
        row = conn.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
        (count,) = conn.execute(
            "SELECT COUNT(*) FROM records WHERE job_id = ?", (job_id,)
        ).fetchone()
    return (None if row is None else row[0]), count


@pytest.fixture
def job(tmp_path: Path) -> Path:
    """The demo job (64 executions) as a job file, id ``job``."""
    return demo_job_file(tmp_path / "job.json", "job")


@pytest.fixture
def finished_store(tmp_path: Path, job: Path) -> Path:
    """A store on an ordinary disk holding the finished job ``job``."""
    db = tmp_path / "done.db"
    assert beacon("run", job, "--store", db, *RUN).returncode == 0
    return db


# -- a full disk ------------------------------------------------------------------------------


def test_a_disk_that_fills_during_a_run_is_one_line_and_loses_nothing(
    disk: Path, job: Path
) -> None:
    db = disk / "jobs.db"
    filler = fill(disk, leave=72 * 1024)  # room for the store and a few records, not 64
    line = one_line_failure(beacon("run", job, "--store", db, *RUN))
    assert line.startswith(f"Error: SQLite store {db}: ")
    assert line.endswith(f"{NO_SPACE} (SQLite: database or disk is full)")
    before = set(keys(db, "job"))
    assert len(before) < 64

    # Once there is room again, running the job again finishes it: what was stored is kept,
    # nothing is stored twice, and the verdict is stored.
    filler.unlink()
    done = beacon("run", job, "--store", db, *RUN)
    assert done.returncode == 0, done.stderr
    after = keys(db, "job")
    assert before <= set(after)
    assert len(after) == len(set(after)) == 64
    assert stored(db, "job") == ("completed", 64)


def test_a_full_disk_when_the_store_is_created_is_one_line_and_leaves_no_file(
    disk: Path, job: Path
) -> None:
    db = disk / "jobs.db"
    fill(disk, leave=0)
    line = one_line_failure(beacon("run", job, "--store", db, *RUN))
    assert line == (
        f"Error: SQLite store {db}: cannot create it: cannot write: {NO_SPACE} "
        "(SQLite: database or disk is full)"
    )
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]  # no half-made store


def test_a_store_failure_mid_run_is_one_line_and_the_verdict_is_still_stored(
    tmp_path: Path, job: Path, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    """The disk is full for one commit, then has room: the job stops, and is fully accounted.

    The failing commit fails two tasks at once (the job and the command waiting for it), in
    an exception group: still one line. Every key gets its record and the verdict is stored,
    because the store can take them once the commit has failed.
    """
    calls = 0
    write_rows = _tallies.write_rows

    def full_once(rows: list[Any], conn: sqlite3.Connection) -> None:
        nonlocal calls
        calls += 1
        if calls == 5:
            error = sqlite3.OperationalError("database or disk is full")
            error.sqlite_errorname = "SQLITE_FULL"
            raise error
        write_rows(rows, conn)

    monkeypatch.setattr(_store, "write_rows", full_once)
    db = tmp_path / "jobs.db"
    result = invoke(["run", str(job), "--store", str(db), "--backend", backend, *RUN])
    assert result.exit_code == 1, result.output
    assert result.stderr.strip().splitlines() == [
        f"Error: SQLite store {db}: the commit holding this write failed: cannot write: "
        f"{NO_SPACE} (SQLite: database or disk is full)"
    ]
    status, count = stored(db, "job")
    assert (status, count) == ("failed", 64)
    assert len(set(keys(db, "job"))) == 64


@pytest.fixture(params=["asyncio", "trio"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# -- a read-only directory --------------------------------------------------------------------


def test_a_read_only_directory_is_told_as_the_file_system_says(
    read_only_dir: Path, job: Path
) -> None:
    db = read_only_dir / "jobs.db"
    line = one_line_failure(beacon("run", job, "--store", db, *RUN))
    # The real cause, not the failure to clean up a temporary file that was never made.
    assert line == f"Error: SQLite store {db}: cannot create it in '{read_only_dir}': {READ_ONLY}"


def test_a_store_on_a_file_system_made_read_only_is_one_line_and_kept(
    disk: Path, job: Path
) -> None:
    db = disk / "jobs.db"
    assert beacon("run", job, "--store", db, *RUN).returncode == 0
    _remount(disk, "ro")
    try:
        commands: list[list[str | Path]] = [
            ["run", job, "--store", db, *RUN],
            ["status", "job", "--store", db],
            ["export", "job", "--store", db, "-o", disk / "job.jsonl"],
        ]
        for args in commands:
            line = one_line_failure(beacon(*args))
            # `run` fails taking the job's lease, the readers on opening; both say where and why.
            assert line.startswith(f"Error: SQLite store {db}: ")
            assert f"cannot write in '{disk}': {READ_ONLY}" in line
    finally:
        _remount(disk, "rw")
    assert stored(db, "job") == ("completed", 64)


# -- exports ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_an_export_to_a_full_disk_is_one_line_and_leaves_no_partial_file(
    disk: Path, finished_store: Path, fmt: str
) -> None:
    target = disk / f"job.{fmt}"
    fill(disk, leave=4096)  # the 64 records take some 40 KB
    done = beacon("export", "job", "--store", finished_store, "--format", fmt, "-o", target)
    line = one_line_failure(done)
    assert line == (
        f"Error: cannot write export to '{target}': {NO_SPACE}; the partial file was removed"
    )
    assert not target.exists()


def test_an_export_to_a_missing_directory_is_one_line(tmp_path: Path, finished_store: Path) -> None:
    target = tmp_path / "nonexistent" / "job.csv"
    line = one_line_failure(beacon("export", "job", "--store", finished_store, "-o", target))
    assert line == f"Error: cannot write export to '{target}': {os.strerror(2)}"


def test_an_export_to_a_read_only_directory_is_one_line(
    read_only_dir: Path, finished_store: Path
) -> None:
    target = read_only_dir / "job.csv"
    line = one_line_failure(beacon("export", "job", "--store", finished_store, "-o", target))
    assert line == f"Error: cannot write export to '{target}': {READ_ONLY}"


def test_an_export_to_a_full_standard_output_is_one_line(finished_store: Path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("this machine has no /dev/full to stand for a full disk")
    with open("/dev/full", "w") as full:
        done = beacon("export", "job", "--store", finished_store, stdout=full)
    # Python's own "Exception ignored ... flushing stdout" at exit would be a second line.
    line = one_line_failure(done)
    assert line == f"Error: cannot write export to <stdout>: {NO_SPACE}"


# -- the mapping from exceptions to one line (no event loop) ---------------------------------


def test_a_group_of_library_errors_is_its_first_error() -> None:
    full = StoreError("disk full")
    group = BaseExceptionGroup("outer", [ExceptionGroup("inner", [full]), full])
    assert library_error(group) is full
    assert library_error(full) is full
    spec = SpecError([])
    mixed = ExceptionGroup("g", [spec, StoreError("later")])
    assert library_error(mixed) is spec


def test_a_cancellation_beside_a_library_error_is_not_a_second_error() -> None:
    import asyncio

    import trio

    full = StoreError("disk full")
    assert library_error(BaseExceptionGroup("g", [asyncio.CancelledError(), full])) is full
    cancelled = trio.Cancelled._create()  # trio's way to make one outside a cancel scope
    assert library_error(BaseExceptionGroup("g", [cancelled, full])) is full


def test_a_bug_beside_a_library_error_keeps_its_traceback() -> None:
    # Anything that is not the library's error is a bug: it is not hidden behind one line.
    bug = ValueError("bug")
    assert library_error(ExceptionGroup("g", [StoreError("x"), bug])) is None
    assert library_error(bug) is None
    assert library_error(BaseExceptionGroup("g", [KeyboardInterrupt()])) is None
    assert isinstance(StoreError("x"), BeaconError)
