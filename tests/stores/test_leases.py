"""Leases in the stores: the rules as plain functions, SQLite's table and its migration.

The conformance suite (``test_store_conformance.py``) checks every store against a model of
the rules; this module checks the rules themselves without an event loop, the error messages,
what SQLite keeps, and that a file written by schema version 1 (``tests/data/stores/
schema-v1.sqlite3``, written by the code before leases existed: two jobs, one finished, 11
records) opens and is migrated in place without losing anything.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from beacon_orchestrator import (
    ExecutionStatus,
    Holder,
    JobLockedError,
    JobStatus,
    Lease,
    LeaseLostError,
    MemoryStore,
    SpecError,
    SQLiteStore,
    StoreError,
)
from beacon_orchestrator.stores import grant_lease, holder_alive, is_current_lease, renewed_lease
from beacon_orchestrator.stores.sqlite import SCHEMA_VERSION
from beacon_orchestrator.testing._lease_conformance import DEAD_PID, REMOTE_HOST

from .support import make_spec, record

V1_FILE = Path(__file__).resolve().parent.parent / "data" / "stores" / "schema-v1.sqlite3"
HERE = socket.gethostname()
T0 = 1_700_000_000.0

alive_here = Holder("run-a", os.getpid(), HERE)
other_here = Holder("run-b", os.getpid(), HERE)
dead_here = Holder("run-dead", DEAD_PID, HERE)
remote = Holder("run-remote", 1234, REMOTE_HOST)


# -- the rules, without an event loop -----------------------------------------------------------


def test_a_free_job_is_granted_with_a_token_above_every_earlier_one() -> None:
    lease = grant_lease(None, "job", alive_here, 30.0, T0, last_token=4)
    assert lease == Lease("job", alive_here, since=T0, heartbeat=T0, ttl=30.0, token=5)
    assert lease.expires_at == T0 + 30.0


def test_a_live_holder_is_refused_with_an_error_naming_it_on_one_line() -> None:
    held = grant_lease(None, "job", remote, 30.0, T0)
    with pytest.raises(JobLockedError) as info:
        grant_lease(held, "job", alive_here, 30.0, T0 + 12.0)
    assert info.value.lease == held
    message = str(info.value)
    assert "\n" not in message
    assert f"host {REMOTE_HOST!r}" in message
    assert "pid 1234" in message
    assert "since 2023-11-14 22:13:20 UTC" in message
    assert "last heartbeat 12 s ago" in message


def test_a_hostile_host_name_cannot_break_the_message_onto_two_lines() -> None:
    evil = Holder("x", 7, "evil\nhost\x1b[31m")
    held = grant_lease(None, "job", evil, 30.0, T0)
    with pytest.raises(JobLockedError) as info:
        grant_lease(held, "job", alive_here, 30.0, T0)
    assert "\n" not in str(info.value)
    assert "\x1b" not in str(info.value)


def test_a_lease_expires_once_its_heartbeat_is_older_than_its_ttl() -> None:
    held = grant_lease(None, "job", remote, 30.0, T0)
    with pytest.raises(JobLockedError):
        grant_lease(held, "job", alive_here, 30.0, T0 + 30.0)  # exactly ttl old: still held
    taken = grant_lease(held, "job", alive_here, 30.0, T0 + 30.5)
    assert (taken.holder, taken.token, taken.since) == (alive_here, held.token + 1, T0 + 30.5)


def test_a_holder_whose_process_is_gone_is_taken_over_at_once() -> None:
    held = grant_lease(None, "job", dead_here, 3600.0, T0)
    taken = grant_lease(held, "job", alive_here, 30.0, T0 + 0.001)
    assert taken.holder == alive_here
    assert taken.token == held.token + 1


def test_the_holder_asking_again_renews_its_own_lease() -> None:
    held = grant_lease(None, "job", alive_here, 30.0, T0)
    again = grant_lease(held, "job", alive_here, 60.0, T0 + 5.0)
    assert again == Lease("job", alive_here, since=T0, heartbeat=T0 + 5.0, ttl=60.0, token=1)


def test_renewing_needs_the_same_holder_and_token_even_past_expiry() -> None:
    held = grant_lease(None, "job", remote, 30.0, T0)
    assert renewed_lease(held, held, T0 + 100.0).heartbeat == T0 + 100.0  # nobody took it
    taken = grant_lease(held, "job", alive_here, 30.0, T0 + 100.0)
    with pytest.raises(LeaseLostError) as info:
        renewed_lease(taken, held, T0 + 101.0)
    assert (info.value.lease, info.value.current) == (held, taken)
    assert "pid" in str(info.value)
    with pytest.raises(LeaseLostError, match="nobody holds it now"):
        renewed_lease(None, held, T0)
    assert is_current_lease(taken, taken)
    assert not is_current_lease(taken, held)
    assert not is_current_lease(None, held)


def test_only_a_process_gone_from_this_host_counts_as_dead() -> None:
    assert holder_alive(alive_here)
    assert not holder_alive(dead_here)
    assert holder_alive(Holder("far", DEAD_PID, REMOTE_HOST))  # cannot tell: trust the ttl
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: its pid is free
    assert not holder_alive(Holder("child", child.pid, HERE))


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: Holder("", 1, "h"), "owner"),
        (lambda: Holder("o", 0, "h"), "pid"),
        (lambda: Holder("o", True, "h"), "pid"),
        (lambda: Holder("o", 1, ""), "host"),
        (lambda: Lease("job", alive_here, since=math.nan, heartbeat=T0, ttl=1.0, token=1), "since"),
        (lambda: Lease("job", alive_here, since=T0, heartbeat=T0, ttl=0.0, token=1), "ttl"),
        (lambda: Lease("job", alive_here, since=T0, heartbeat=T0, ttl=1.0, token=0), "token"),
        (lambda: grant_lease(None, "job", alive_here, -1.0, T0), "ttl"),
    ],
)
def test_bad_values_are_spec_errors_naming_the_field(build: object, field: str) -> None:
    with pytest.raises(SpecError) as info:
        build()  # type: ignore[operator]
    assert info.value.problems[0].path == field


# -- MemoryStore and SQLiteStore ------------------------------------------------------------


@pytest.mark.anyio
async def test_memory_store_keeps_tokens_growing_across_releases() -> None:
    store = MemoryStore(clock=lambda: T0)
    await store.open_job(make_spec())
    first = await store.acquire_lease("job", alive_here, 30.0)
    await store.release_lease(first)
    assert (await store.jobs())[0].lease is None
    second = await store.acquire_lease("job", other_here, 30.0)
    assert second.token == first.token + 1
    await store.release_lease(first)  # a stale release changes nothing
    assert (await store.jobs())[0].lease == second


@pytest.mark.anyio
async def test_sqlite_leases_are_shared_by_every_store_on_the_file(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    async with SQLiteStore(path) as one, SQLiteStore(path) as two:
        await one.open_job(make_spec())
        lease = await one.acquire_lease("job", alive_here, 30.0)
        with pytest.raises(JobLockedError) as info:
            await two.acquire_lease("job", other_here, 30.0)
        assert info.value.lease == lease
        assert (await two.jobs())[0].lease == lease
        await one.release_lease(lease)
        assert (await two.acquire_lease("job", other_here, 30.0)).token == lease.token + 1


@pytest.mark.anyio
async def test_a_damaged_lease_row_is_a_store_error_naming_the_job(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    async with SQLiteStore(path) as store:
        await store.open_job(make_spec())
        await store.acquire_lease("job", alive_here, 30.0)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE leases SET pid = 'not a pid' WHERE job_id = 'job'")
    async with SQLiteStore(path) as store:
        with pytest.raises(StoreError, match=r"job 'job': the stored lease is damaged: pid"):
            await store.acquire_lease("job", other_here, 30.0)
        with pytest.raises(StoreError, match="damaged"):
            await store.jobs()


@pytest.mark.anyio
async def test_a_version_1_file_opens_and_is_migrated_in_place_keeping_everything(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    shutil.copyfile(V1_FILE, path)
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (1,)
        cursor = conn.execute("SELECT * FROM records ORDER BY rowid")
        columns = ", ".join(d[0] for d in cursor.description)
        before = cursor.fetchall()
        jobs_before = conn.execute("SELECT * FROM jobs ORDER BY rowid").fetchall()
    async with SQLiteStore(path) as store:
        infos = await store.jobs()
        assert [(j.job_id, j.records, j.status, j.lease) for j in infos] == [
            ("finished-job", 6, JobStatus.COMPLETED, None),
            ("interrupted-job", 5, None, None),
        ]
        result = await store.load_result("finished-job")
        assert result is not None
        assert result.counts[ExecutionStatus.COMPLETED] == 1
        lease = await store.acquire_lease("interrupted-job", alive_here, 30.0)
        spec = await store.load_spec("interrupted-job")
        await store.write("interrupted-job", record(list(spec.plan())[-1]))
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        indexes = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert "records_outcomes" in indexes  # the last migration, on a file of version 1
        # Later versions add columns; version 1's are kept as they were, and are sample 0.
        after = conn.execute(f"SELECT {columns} FROM records ORDER BY rowid").fetchall()
        assert conn.execute("SELECT * FROM jobs ORDER BY rowid").fetchall() == jobs_before
        assert after[: len(before)] == before
        assert {s for (s,) in conn.execute("SELECT sample FROM records")} == {0}
        assert len(after) == len(before) + 1
        assert conn.execute("SELECT owner, token FROM leases").fetchall() == [("run-a", 1)]
    async with SQLiteStore(path) as store:  # and it opens again, as the current version
        assert (await store.jobs())[1].lease == lease
