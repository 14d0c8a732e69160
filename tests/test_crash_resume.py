"""SQLiteStore under ``kill -9``: nothing acknowledged is lost, nothing completed is redone.

A subprocess (``crash_worker.py``) runs a 2,000-execution job on SQLiteStore and prints every
record the job reports stored; the test kills it with SIGKILL after a random number of those
lines, checks the file, and runs the same command again, until a run finishes.
"""

from __future__ import annotations

import itertools
import random
import sqlite3
import sys
from collections import Counter
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from beacon_orchestrator import ExecutionKey, ExecutionStatus, SQLiteStore

from .crash_worker import MODELS, QUESTIONS, REGIONS

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

WORKER = Path(__file__).with_name("crash_worker.py")
PLANNED = QUESTIONS * MODELS * REGIONS
JOB = "crash-job"
KILLS = 4


@pytest.fixture
def anyio_backend() -> str:
    """Subprocess tests run on asyncio only: the backend is not what they test."""
    return "asyncio"


async def start_worker(db: Path, log: Path, seed: int, *options: str) -> Process:
    command = [sys.executable, str(WORKER), str(db), str(log), str(seed), *options]
    return await anyio.open_process(command, stdout=-1, stderr=-1)


class Output:
    """The worker's stdout, line by line."""

    def __init__(self, process: Process) -> None:
        assert process.stdout is not None
        self.stream = BufferedByteReceiveStream(process.stdout)

    async def next(self) -> str | None:
        try:
            return (await self.stream.receive_until(b"\n", 1 << 16)).decode()
        except (anyio.IncompleteRead, anyio.EndOfStream):
            return None


async def read_all(process: Process) -> bytes:
    """The rest of the worker's stderr (for the failure message)."""
    chunks: list[bytes] = []
    if process.stderr is not None:
        try:
            while True:
                chunks.append(await process.stderr.receive())
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass
    return b"".join(chunks)


def executed_keys(log: Path) -> list[ExecutionKey]:
    if not log.exists():
        return []
    keys = []
    for line in log.read_text().splitlines():
        if line:
            q, m, r = line.split()
            keys.append(ExecutionKey(q, m, r))
    return keys


async def stored_statuses(db: Path) -> dict[ExecutionKey, ExecutionStatus]:
    """What the file holds, read through SQLiteStore (it must open after a kill) and raw SQL."""
    conn = sqlite3.connect(db)
    try:
        duplicates = conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM records GROUP BY job_id, question_id, model_id, "
            "region HAVING count(*) > 1)"
        ).fetchone()[0]
    finally:
        conn.close()
    assert duplicates == 0, "a key has two rows"
    async with SQLiteStore(db) as store:
        if not await store.jobs():
            return {}
        records = await store.records(JOB)
    statuses = {r.key: r.status for r in records}
    assert len(statuses) == len(records), "a key has two records"
    return statuses


@pytest.mark.parametrize("seed", [11, 22, 33])
async def test_kill_9_loses_no_acknowledged_record_and_resume_never_redoes_completed_work(
    tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    db = tmp_path / "jobs.db"
    completed_before: set[ExecutionKey] = set()
    kills = 0
    for run in range(12):
        log = tmp_path / f"executed-{run}.log"
        # Kill after a random share of what is left (so that every planned kill happens).
        left = PLANNED - len(completed_before)
        kill_after = rng.randint(1, max(1, left * 2 // 3)) if kills < KILLS else None
        process = await start_worker(db, log, seed * 100 + run)
        output = Output(process)
        reported: dict[ExecutionKey, ExecutionStatus] = {}
        done: str | None = None
        async with process:
            while (line := await output.next()) is not None:
                kind, *fields = line.split()
                if kind == "DONE":
                    done = line
                    continue
                q, m, r = fields[:3]
                reported[ExecutionKey(q, m, r)] = ExecutionStatus(fields[3])
                if kill_after is not None and len(reported) >= kill_after:
                    process.kill()  # SIGKILL: no cleanup, no flush, no checkpoint
                    kills += 1
                    break
            await process.wait()
            stderr = await read_all(process)

        statuses = await stored_statuses(db)
        # Every record the job reported stored is there, with that status.
        lost = {k: s for k, s in reported.items() if statuses.get(k) is not s}
        assert not lost, f"run {run}: acknowledged records lost or changed: {list(lost)[:5]}"
        # No key COMPLETED before this run was executed again, and none twice in one run.
        executed = executed_keys(log)
        assert not set(executed) & completed_before, f"run {run} re-executed completed keys"
        assert not [k for k, n in Counter(executed).items() if n > 1], "a key executed twice"
        completed_before = {k for k, s in statuses.items() if s is ExecutionStatus.COMPLETED}
        if done is not None:
            assert process.returncode == 0, stderr.decode(errors="replace")
            assert done.split()[2] == str(PLANNED)
            break
    else:
        pytest.fail("the job never finished")
    assert kills == KILLS, "the job finished before it could be killed often enough"
    assert len(statuses) == PLANNED  # exactly one record per planned key


async def test_another_process_reads_progress_while_a_job_writes_without_stalling_it(
    tmp_path: Path,
) -> None:
    db, log = tmp_path / "jobs.db", tmp_path / "executed.log"
    # Slower and narrower than the crash test, so the job lasts long enough to be watched.
    process = await start_worker(
        db, log, 7, "--delay", "0.002", "--max-concurrency", "10", "--fail-rate", "0"
    )
    output = Output(process)
    stamps: list[float] = []
    readings: list[int] = []
    async with process:
        first = await output.next()
        assert first is not None, "the worker ended before storing anything"
        stamps.append(float(first.split()[5]))

        async def watch_output() -> None:
            while (line := await output.next()) is not None:
                if line.startswith("STORED"):
                    stamps.append(float(line.split()[5]))

        async with SQLiteStore(db) as reader, anyio.create_task_group() as tg:
            tg.start_soon(watch_output)
            while process.returncode is None:
                progress = await reader.progress(JOB)
                assert progress.planned == PLANNED
                readings.append(progress.stored)
                with anyio.move_on_after(0.002):
                    await process.wait()
            readings.append((await reader.progress(JOB)).stored)
        assert process.returncode == 0
    assert readings == sorted(readings), "progress went backwards"
    assert readings[-1] == PLANNED
    assert any(0 < n < PLANNED for n in readings), "never saw the job in progress"
    assert len(readings) >= 10
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert len(stamps) == PLANNED
    # A reader holding a lock the writer needs would stall it for busy_timeout (5 s); 1 s
    # leaves room for a loaded machine's scheduling hiccups.
    assert max(gaps) < 1.0, f"the writer stalled for {max(gaps):.3f}s while being read"
