"""SQLiteStore: persistence, group commit, the write rule in SQL, and refusing foreign files."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio import wait_all_tasks_blocked
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beacon_orchestrator import (
    ExecutionKey,
    ExecutionRecord,
    ExecutionStatus,
    JobConflictError,
    JobResult,
    JobStatus,
    SQLiteStore,
    StoreError,
    UsageError,
)
from beacon_orchestrator.stores.sqlite import APPLICATION_ID, SCHEMA_VERSION, _tallies
from beacon_orchestrator.stores.sqlite import _store as store_module
from beacon_orchestrator.testing._store_conformance import conformance_records

from .support import make_spec, record, snapshot

pytestmark = pytest.mark.anyio

C = ExecutionStatus.COMPLETED
F = ExecutionStatus.FAILED


def result_of(job_id: str, status: JobStatus = JobStatus.COMPLETED) -> JobResult:
    return JobResult(
        job_id=job_id,
        status=status,
        reason="18 of 18 executions succeeded (100%).",
        counts={C: 18},
        success_rate=1.0,
        planned=18,
        started_at=10.0,
        finished_at=12.5,
        cancelled_by=None,
    )


# -- persistence ----------------------------------------------------------------------------


async def test_everything_survives_closing_and_reopening(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    spec = make_spec("job-1")
    keys = list(spec.plan())
    written = [record(k, C if i % 3 else F) for i, k in enumerate(keys)]
    async with SQLiteStore(path, clock=lambda: 42.0) as store:
        await store.open_job(spec)
        await store.open_job(make_spec("job-2"))
        await store.write_many("job-1", written[:5])
        for r in written[5:]:
            await store.write("job-1", r)
        await store.finish_job("job-1", result_of("job-1"))

    async with SQLiteStore(path) as store:
        assert await store.records("job-1") == written  # equal values, in first-written order
        assert await store.load_spec("job-1") == spec
        assert await store.completed_keys("job-1") == {r.key for r in written if r.status is C}
        jobs = await store.jobs()
        assert [j.job_id for j in jobs] == ["job-1", "job-2"]
        assert (jobs[0].records, jobs[0].planned, jobs[0].status) == (18, 18, JobStatus.COMPLETED)
        assert (jobs[0].created_at, jobs[0].finished_at) == (42.0, 42.0)
        assert (jobs[1].records, jobs[1].status, jobs[1].finished_at) == (0, None, None)
        loaded = await store.load_result("job-1")
        assert loaded is not None
        assert loaded.reason == result_of("job-1").reason
        assert list(loaded.records) == written  # read from the file on demand
        assert loaded.failures == tuple(r for r in written if r.status is not C)
        assert tuple([r async for r in loaded.records(status=F)]) == loaded.failures
        assert await store.load_result("job-2") is None


@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(conformance_records(), max_size=8))
def test_any_json_ready_record_reads_back_equal_after_reopening(
    tmp_path_factory: pytest.TempPathFactory, records: list[ExecutionRecord]
) -> None:
    """Property: whatever a record holds (any text, NUL characters, JSON metadata), reading it
    back from a reopened file gives an equal record."""
    path = tmp_path_factory.mktemp("prop") / "jobs.db"
    spec = make_spec("job")

    async def main() -> None:
        async with SQLiteStore(path) as store:
            await store.open_job(spec)
            await store.write_many("job", records)
        async with SQLiteStore(path) as store:
            got = {r.key: r for r in await store.records("job")}
        expected: dict[ExecutionKey, ExecutionRecord] = {}
        for r in records:
            old = expected.get(r.key)
            if old is None or old.status is not C or r.status is C:
                expected[r.key] = r
        assert got == expected

    anyio.run(main)


async def test_memory_database_works_without_a_file(tmp_path: Path) -> None:
    async with SQLiteStore(":memory:") as store:
        await store.open_job(make_spec())
        await store.write("job", record(ExecutionKey("q0", "m0", "us-east")))
        assert len(await store.records("job")) == 1


async def test_a_new_file_is_stamped_with_our_application_id_and_schema_version(
    tmp_path: Path,
) -> None:
    path = tmp_path / "jobs.db"
    async with SQLiteStore(path) as store:
        await store.open_job(make_spec())
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
    # Read straight from the file header, as the foreign-file check does.
    header = path.read_bytes()[:100]
    assert int.from_bytes(header[68:72], "big") == APPLICATION_ID
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jobs.db"]  # no temporary files left


async def test_stores_creating_the_same_file_at_once_end_up_sharing_it(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    stores = [SQLiteStore(path) for _ in range(4)]
    async with anyio.create_task_group() as tg:
        for store in stores:
            tg.start_soon(store.open)
    await stores[0].open_job(make_spec())
    for store in stores:
        assert [j.job_id for j in await store.jobs()] == ["job"]
        await store.aclose()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jobs.db"]


async def test_the_store_opens_lazily_and_refuses_use_after_close(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    store = SQLiteStore(path)
    assert not path.exists()
    await store.open_job(make_spec())  # opens on first use, without `async with`
    assert path.exists()
    await store.aclose()
    await store.aclose()  # idempotent
    with pytest.raises(UsageError, match="closed"):
        await store.jobs()


def test_bad_options_are_usage_errors_naming_the_option(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"synchronous.*'sometimes'"):
        SQLiteStore(tmp_path / "a.db", synchronous="sometimes")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"busy_timeout.*-1"):
        SQLiteStore(tmp_path / "a.db", busy_timeout=-1)


@pytest.mark.parametrize("synchronous", ["normal", "full"])
async def test_the_synchronous_option_reaches_sqlite(tmp_path: Path, synchronous: str) -> None:
    store = SQLiteStore(tmp_path / "a.db", synchronous=synchronous)  # type: ignore[arg-type]
    async with store:
        level = await store._call(lambda c: c.execute("PRAGMA synchronous").fetchone()[0])
    assert level == {"normal": 1, "full": 2}[synchronous]


# -- jobs -----------------------------------------------------------------------------------


async def test_open_job_is_idempotent_across_instances_and_conflicts_on_another_spec(
    tmp_path: Path,
) -> None:
    path = tmp_path / "jobs.db"
    async with SQLiteStore(path) as store:
        await store.open_job(make_spec("job"))
        await store.open_job(make_spec("job"))
        with pytest.raises(JobConflictError, match=r"'job'.*differs in: params"):
            await store.open_job(make_spec("job", temperature=0.9))
    async with SQLiteStore(path) as other:  # another process, same file
        await other.open_job(make_spec("job"))
        with pytest.raises(JobConflictError, match=r"differs in: questions"):
            await other.open_job(make_spec("job", questions=4))
        assert await other.load_spec("job") == make_spec("job")
        assert len(await other.jobs()) == 1


async def test_unknown_job_ids_raise_store_error_everywhere(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "jobs.db") as store:
        await store.open_job(make_spec("job"))
        key = ExecutionKey("q0", "m0", "us-east")
        calls: list[Callable[[], Any]] = [
            lambda: store.load_spec("nope"),
            lambda: store.completed_keys("nope"),
            lambda: store.write("nope", record(key)),
            lambda: store.write_many("nope", [record(key)]),
            lambda: store.write_many("nope", []),
            lambda: store.records("nope"),
            lambda: store.progress("nope"),
            lambda: store.finish_job("nope", result_of("nope")),
            lambda: store.load_result("nope"),
        ]
        for call in calls:
            with pytest.raises(StoreError, match="unknown job id 'nope'"):
                await call()
        assert [j.job_id for j in await store.jobs()] == ["job"]


async def test_finishing_again_replaces_the_verdict(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "jobs.db") as store:
        await store.open_job(make_spec("job"))
        await store.finish_job("job", result_of("job", JobStatus.FAILED))
        await store.finish_job("job", result_of("job", JobStatus.COMPLETED))
        (info,) = await store.jobs()
        assert info.status is JobStatus.COMPLETED


# -- the write rule -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second", "kept"),
    [
        (C, F, "first"),
        (C, ExecutionStatus.CANCELLED, "first"),
        (C, ExecutionStatus.SKIPPED, "first"),
        (C, C, "second"),
        (F, C, "second"),
        (F, ExecutionStatus.TIMEOUT, "second"),
        (ExecutionStatus.SKIPPED, F, "second"),
    ],
)
async def test_a_completed_record_is_only_replaced_by_a_completed_one(
    tmp_path: Path, first: ExecutionStatus, second: ExecutionStatus, kept: str
) -> None:
    key = ExecutionKey("q0", "m0", "us-east")
    a, b = record(key, first, text="first"), record(key, second, text="second", attempts=2)
    async with SQLiteStore(tmp_path / "jobs.db") as store:
        await store.open_job(make_spec())
        await store.write("job", a)
        await store.write("job", b)
        assert await store.records("job") == [a if kept == "first" else b]
        # write_many applies the same rule, also to repeats inside one batch.
        other = ExecutionKey("q1", "m0", "us-east")
        a2, b2 = record(other, first, text="first"), record(other, second, text="second")
        await store.write_many("job", [a2, b2])
        assert (await store.records("job"))[1] == (a2 if kept == "first" else b2)


async def test_a_record_the_table_cannot_hold_fails_only_its_own_write(tmp_path: Path) -> None:
    key, other = ExecutionKey("q0", "m0", "us-east"), ExecutionKey("q1", "m0", "us-east")
    bad_metadata = ExecutionRecord(key=key, status=C, text="x", metadata={"when": object()})
    bad_text = ExecutionRecord(key=key, status=C, text="\ud800")
    async with SQLiteStore(tmp_path / "jobs.db") as store:
        await store.open_job(make_spec())
        with pytest.raises(StoreError, match=r"q0/m0@us-east.*JSON"):
            await store.write("job", bad_metadata)
        with pytest.raises(StoreError, match=r"q0/m0@us-east: text .*UTF-8"):
            await store.write("job", bad_text)
        async with anyio.create_task_group() as tg:
            tg.start_soon(store.write, "job", record(other))
            with pytest.raises(StoreError):
                await store.write("job", bad_metadata)
        assert [r.key for r in await store.records("job")] == [other]


# -- group commit ---------------------------------------------------------------------------


class CommitSpy:
    """Wraps the store's transaction function to see batches and what is committed when."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.batches: list[int] = []
        self.committed: set[ExecutionKey] = set()
        self.lock = threading.Lock()
        real = _tallies.write_rows

        def spy(rows: list[tuple[Any, ...]], conn: sqlite3.Connection) -> None:
            real(rows, conn)
            with self.lock:
                self.batches.append(len(rows))
                self.committed.update(ExecutionKey(r[1], r[2], r[3]) for r in rows)

        monkeypatch.setattr(store_module, "write_rows", spy)


async def test_concurrent_writes_share_transactions_and_return_only_after_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = CommitSpy(monkeypatch)
    spec = make_spec(questions=40, models=5)  # 600 keys
    keys = list(spec.plan())
    acknowledged_early: list[ExecutionKey] = []
    async with SQLiteStore(tmp_path / "jobs.db") as store:
        await store.open_job(spec)

        async def writer(key: ExecutionKey) -> None:
            await store.write("job", record(key))
            if key not in spy.committed:
                acknowledged_early.append(key)

        async with anyio.create_task_group() as tg:
            for key in keys:
                tg.start_soon(writer, key)
        assert acknowledged_early == []
        assert sum(spy.batches) == len(keys)
        assert len(spy.batches) < len(keys) / 10, f"no group commit: batches {spy.batches}"
        assert len(await store.records("job")) == len(keys)


async def test_cancelled_writers_do_not_strand_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writers cancelled while their commit runs or while they wait for one: every other write
    still returns, and rows already handed over are committed by the time the store closes."""
    spy = CommitSpy(monkeypatch)
    spec = make_spec(questions=20, models=5)
    keys = list(spec.plan())
    returned: list[ExecutionKey] = []
    path = tmp_path / "jobs.db"
    async with SQLiteStore(path) as store:
        await store.open_job(spec)

        async def writer(key: ExecutionKey, scope: anyio.CancelScope) -> None:
            with scope:
                await store.write("job", record(key))
                returned.append(key)

        scopes = [anyio.CancelScope() for _ in keys]
        async with anyio.create_task_group() as tg:
            for key, scope in zip(keys, scopes, strict=True):
                tg.start_soon(writer, key, scope)
            await anyio.sleep(0)  # every writer has queued its row, the first is committing
            for scope in scopes[::3]:
                scope.cancel()
        assert set(returned) <= spy.committed
        assert len(returned) >= len(keys) - len(scopes[::3])
    async with SQLiteStore(path) as store:
        stored = {r.key for r in await store.records("job")}
    assert set(returned) <= stored
    assert stored == spy.committed


async def test_cancelling_the_writer_that_commits_a_batch_does_not_fail_the_others_in_it(
    tmp_path: Path,
) -> None:
    """The writer that commits a shared batch is cancelled before its transaction starts: the
    batch still commits and the other writers in it return normally."""
    spec = make_spec()
    a, b, c, d = list(spec.plan())[:4]
    gate1, gate2 = threading.Event(), threading.Event()
    returned: list[ExecutionKey] = []
    async with SQLiteStore(tmp_path / "jobs.db") as store:
        await store.open_job(spec)

        async def writer(key: ExecutionKey, scope: anyio.CancelScope) -> None:
            with scope:
                await store.write("job", record(key))
                returned.append(key)

        scopes = {k: anyio.CancelScope() for k in (a, b, c, d)}
        async with anyio.create_task_group() as tg:
            try:
                # Hold the connection so that commits queue up behind a worker thread.
                tg.start_soon(store._call, lambda conn: gate1.wait())
                await wait_all_tasks_blocked()
                tg.start_soon(writer, a, scopes[a])  # commits batch 1 = [a] once gate1 opens
                await wait_all_tasks_blocked()
                for key in (b, c, d):  # batch 2, opened (so committed) by b
                    tg.start_soon(writer, key, scopes[key])
                await wait_all_tasks_blocked()
                tg.start_soon(store._call, lambda conn: gate2.wait())  # queued after a's commit
                await wait_all_tasks_blocked()
                gate1.set()
                # a commits; the second holder takes the connection; b starts committing batch 2
                # and waits for the connection.
                while len(returned) < 1 or not store._commits.flushing:
                    await anyio.sleep(0.001)
                await wait_all_tasks_blocked()
                scopes[b].cancel()
                await wait_all_tasks_blocked()
                gate2.set()
            finally:  # never leave a worker thread blocked, whatever fails
                gate1.set()
                gate2.set()
        assert {a, c, d} <= set(returned)  # b may return too: its commit was shielded
        assert {r.key for r in await store.records("job")} == {a, b, c, d}


async def test_a_failed_commit_fails_every_write_in_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(rows: list[tuple[Any, ...]], conn: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    spec = make_spec()
    async with SQLiteStore(tmp_path / "jobs.db") as store:
        await store.open_job(spec)
        monkeypatch.setattr(store_module, "write_rows", broken)
        errors: list[BaseException] = []

        async def writer(key: ExecutionKey) -> None:
            try:
                await store.write("job", record(key))
            except StoreError as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            for key in spec.plan():
                tg.start_soon(writer, key)
        assert len(errors) == spec.size
        assert all("disk I/O error" in str(e) for e in errors)
        monkeypatch.undo()
        assert await store.records("job") == []


# -- progress -------------------------------------------------------------------------------


async def test_progress_counts_per_status_question_model_and_region(tmp_path: Path) -> None:
    spec = make_spec(questions=2, models=2)
    async with SQLiteStore(tmp_path / "jobs.db") as store:
        await store.open_job(spec)
        await store.write_many(
            "job",
            [
                record(ExecutionKey("q0", "m0", "us-east")),
                record(ExecutionKey("q0", "m1", "us-east"), F),
                record(ExecutionKey("q1", "m1", "eu-west")),
            ],
        )
        p = await store.progress("job")
    assert (p.planned, p.stored) == (12, 3)
    assert p.counts == {C: 2, F: 1}
    assert p.by_question == {"q0": {C: 1, F: 1}, "q1": {C: 1}}
    assert p.by_model == {"m0": {C: 1}, "m1": {C: 1, F: 1}}
    assert p.by_region == {"us-east": {C: 1, F: 1}, "eu-west": {C: 1}}


async def test_a_second_instance_reads_progress_while_the_first_writes(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    spec = make_spec(questions=30, models=4)
    keys = list(spec.plan())
    seen: list[int] = []
    async with SQLiteStore(path) as writer, SQLiteStore(path) as reader:
        await writer.open_job(spec)
        for i in range(0, len(keys), 60):
            await writer.write_many("job", [record(k) for k in keys[i : i + 60]])
            seen.append((await reader.progress("job")).stored)
    assert seen == list(range(60, len(keys) + 1, 60))


# -- files that are not ours ----------------------------------------------------------------


def _foreign_sqlite(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.execute("INSERT INTO notes VALUES ('keep me')")
    conn.commit()
    conn.close()


def _other_application(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA application_id = 1234")
    conn.execute("CREATE TABLE jobs (id TEXT)")
    conn.commit()
    conn.close()


def _corrupt_page(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 1")
    conn.execute("CREATE TABLE jobs (id TEXT)")
    conn.commit()
    conn.close()
    data = bytearray(path.read_bytes())
    data[100:400] = b"\xa5" * 300  # page 1's b-tree header: the schema is unreadable
    path.write_bytes(bytes(data))


def _newer_schema(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.execute("CREATE TABLE jobs (id TEXT)")
    conn.execute("CREATE TABLE records (id TEXT)")
    conn.commit()
    conn.close()


def _missing_tables(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    conn.execute("CREATE TABLE jobs (id TEXT)")
    conn.commit()
    conn.close()


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda p: p.write_text("question_id,status\nq1,completed\n"), "not an SQLite database"),
        (lambda p: p.write_bytes(bytes(range(256)) * 40), "not an SQLite database"),
        (lambda p: p.write_bytes(b"SQLite format 3\x00" + b"\x00" * 20), "truncated header"),
        (
            lambda p: p.write_bytes(b"SQLite format 3\x00" + bytes(range(200)) * 30),
            "not a beacon_orchestrator database",
        ),
        (_foreign_sqlite, "not a beacon_orchestrator database"),
        (_other_application, r"application_id 0x4d2"),
        (_corrupt_page, "corrupt database"),
        (_newer_schema, f"schema version {SCHEMA_VERSION + 1} is newer"),
        (_missing_tables, "table.* records.* missing"),
    ],
    ids=[
        "text",
        "binary",
        "truncated",
        "garbage-after-header",
        "foreign-sqlite",
        "other-app-id",
        "corrupt-page",
        "newer-schema",
        "missing-table",
    ],
)
async def test_a_file_that_is_not_ours_is_refused_and_left_untouched(
    tmp_path: Path, make: Callable[[Path], object], problem: str
) -> None:
    path = tmp_path / "data.db"
    make(path)
    before = snapshot(path)
    store = SQLiteStore(path)
    with pytest.raises(StoreError, match=problem) as info:
        await store.open()
    assert str(path) in str(info.value)
    with pytest.raises(StoreError):
        await store.open_job(make_spec())  # still refused, still untouched
    await store.aclose()
    assert snapshot(path) == before


INTERRUPTED_WRITER = """
import os, sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA cache_size = 1")  # spill pages to the file before the commit
conn.execute("BEGIN IMMEDIATE")
conn.execute("CREATE TABLE filler (x TEXT)")
for _ in range(2000):
    conn.execute("INSERT INTO filler VALUES (?)", ("x" * 200,))
os._exit(9)  # killed mid-transaction: a hot journal, page 1 not yet written
"""


async def test_a_file_left_mid_transaction_is_refused_with_a_hint_and_left_untouched(
    tmp_path: Path,
) -> None:
    path = tmp_path / "data.db"
    subprocess.run([sys.executable, "-c", INTERRUPTED_WRITER, str(path)], check=False)
    assert (tmp_path / "data.db-journal").exists()
    before = snapshot(path)
    with pytest.raises(StoreError, match=r"data\.db-journal' exists.*interrupted"):
        await SQLiteStore(path).open()
    assert snapshot(path) == before


async def test_an_empty_file_is_adopted_as_a_new_database(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    path.touch()
    async with SQLiteStore(path) as store:
        await store.open_job(make_spec())
        assert len(await store.jobs()) == 1


@pytest.mark.parametrize(
    ("where", "problem"),
    [("missing-dir/jobs.db", "does not exist"), (".", "is a directory")],
)
async def test_an_unusable_path_is_a_clear_store_error(
    tmp_path: Path, where: str, problem: str
) -> None:
    with pytest.raises(StoreError, match=problem):
        await SQLiteStore(tmp_path / where).open()
