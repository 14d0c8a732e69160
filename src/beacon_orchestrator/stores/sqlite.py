"""SQLiteStore: the durable, embedded default store (one SQLite file in WAL mode).

How it stays correct:

- **Durable acknowledgements.** :meth:`SQLiteStore.write` returns only once the transaction that
  holds the record has committed. Concurrent writers share transactions (group commit): the
  writer that opens a batch commits it, in one transaction in a worker thread, as soon as the
  commit running (if any) ends; writers arriving meanwhile add their rows to that batch and
  wait for its commit. No task of the store's own runs in the background.
- **Crash safety.** WAL mode with ``synchronous=NORMAL`` (the default) makes a committed
  transaction survive the process being killed at any moment (``kill -9``), because the commit
  has reached the operating system when ``COMMIT`` returns; it does not fsync, so a power loss
  may lose the last transactions. ``synchronous="full"`` fsyncs every commit and survives power
  loss too, at a cost in throughput.
- **Never someone else's file.** Before writing anything the store checks the file read-only:
  not an SQLite file, a corrupt one, another application's database (SQLite's
  ``application_id``) or a schema newer than this library knows all raise
  :class:`~beacon_orchestrator.StoreError` and leave the file untouched.
- **No duplicates.** Records are keyed by ``(job_id, question_id, model_id, region)``; the
  write rule of :func:`~beacon_orchestrator.stores.should_replace` is one SQL upsert whose
  ``WHERE`` keeps ``COMPLETED`` rows.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence, Set
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias, TypeVar

import anyio
import anyio.to_thread
from attrs import define, field

from .._errors import JobConflictError, StoreError, UsageError
from .._status import JobResult, JobStatus
from .._types import ExecutionKey, ExecutionRecord, ExecutionStatus
from ._protocol import JobInfo, StoredProgress

if TYPE_CHECKING:
    from .._spec import JobSpec

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "SQLiteStore", "Synchronous"]

_T = TypeVar("_T")

APPLICATION_ID: Final = 0x42454143
"""SQLite ``application_id`` stamped on every file this store creates (ASCII ``BEAC``)."""

# _MIGRATIONS[n] takes a file from schema version n to n + 1. Append, never edit: files in the
# wild hold every version that ever shipped.
_MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """
        CREATE TABLE jobs (
            id          TEXT PRIMARY KEY,
            spec        TEXT NOT NULL,
            planned     INTEGER NOT NULL,
            created_at  REAL NOT NULL,
            status      TEXT,
            reason      TEXT,
            result      TEXT,
            finished_at REAL
        )
        """,
        """
        CREATE TABLE records (
            job_id        TEXT NOT NULL REFERENCES jobs(id),
            question_id   TEXT NOT NULL,
            model_id      TEXT NOT NULL,
            region        TEXT NOT NULL,
            status        TEXT NOT NULL,
            text          TEXT,
            empty         INTEGER NOT NULL,
            error_code    TEXT,
            error_message TEXT,
            attempts      INTEGER NOT NULL,
            started_at    REAL,
            finished_at   REAL,
            provider      TEXT,
            metadata      TEXT NOT NULL,
            receipt       TEXT,
            PRIMARY KEY (job_id, question_id, model_id, region)
        )
        """,
    ),
)

SCHEMA_VERSION: Final = len(_MIGRATIONS)
"""The schema version this library writes (SQLite ``user_version``)."""

_TABLES: Final = frozenset({"jobs", "records"})
_HEADER: Final = b"SQLite format 3\x00"

# The WHERE clause is should_replace() in SQL: a COMPLETED row is only replaced by a COMPLETED one.
_UPSERT: Final = """
    INSERT INTO records (
        job_id, question_id, model_id, region, status, text, empty, error_code,
        error_message, attempts, started_at, finished_at, provider, metadata, receipt
    ) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (job_id, question_id, model_id, region) DO UPDATE SET
        status = excluded.status,
        text = excluded.text,
        empty = excluded.empty,
        error_code = excluded.error_code,
        error_message = excluded.error_message,
        attempts = excluded.attempts,
        started_at = excluded.started_at,
        finished_at = excluded.finished_at,
        provider = excluded.provider,
        metadata = excluded.metadata,
        receipt = excluded.receipt
    WHERE records.status != 'completed' OR excluded.status = 'completed'
"""

_SELECT_RECORDS: Final = """
    SELECT question_id, model_id, region, status, text, empty, error_code, error_message,
           attempts, started_at, finished_at, provider, metadata, receipt
    FROM records WHERE job_id = ? ORDER BY rowid
"""

_SYNCHRONOUS: Final = ("normal", "full", "extra")
Synchronous: TypeAlias = Literal["normal", "full", "extra"]
"""Values of :class:`SQLiteStore`'s ``synchronous`` option."""

_Row = tuple[Any, ...]


def _to_path(value: str | os.PathLike[str]) -> Path:
    return Path(os.fspath(value))


def _check_synchronous(_: object, __: object, value: object) -> None:
    if value not in _SYNCHRONOUS:
        raise UsageError(
            f"SQLiteStore synchronous: expected one of {', '.join(map(repr, _SYNCHRONOUS))}, "
            f"got {value!r}"
        )


def _check_busy_timeout(_: object, __: object, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise UsageError(
            f"SQLiteStore busy_timeout: expected a finite number of seconds >= 0, got {value!r}"
        )


# Built once: json.dumps with keyword arguments builds a new encoder on every call, and rows are
# built on the hot path. ensure_ascii (the default) keeps lone surrogates storable.
_ENCODE: Final = json.JSONEncoder(separators=(",", ":")).encode


def _json(value: Mapping[str, Any]) -> str:
    return _ENCODE(dict(value)) if value else "{}"


def _check_text(key: ExecutionKey, row: _Row) -> None:
    for index, name in _TEXT_COLUMNS:
        value = row[index]
        if value is None or (type(value) is str and value.isascii()):
            continue  # the common case, checked in O(1)
        if not isinstance(value, str):
            raise StoreError(f"record {key}: {name} must be a string or None, got {value!r}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise StoreError(
                f"record {key}: {name} holds characters that are not valid UTF-8 ({exc.reason})"
            ) from None


_TEXT_COLUMNS: Final = (
    (1, "question_id"),
    (2, "model_id"),
    (3, "region"),
    (5, "text"),
    (7, "error_code"),
    (8, "error_message"),
    (12, "provider"),
)


def _row(job_id: str, record: ExecutionRecord) -> _Row:
    """Turn a record into its table row, raising StoreError for what the row cannot hold.

    Runs in the caller's task, so one bad record fails its own write and not the whole batch.
    """
    key = record.key
    try:
        metadata = _json(record.metadata)
        receipt = None if record.receipt is None else _json(record.receipt)
    except (TypeError, ValueError) as exc:
        raise StoreError(
            f"record {key}: metadata and receipt must be JSON-serialisable: {exc}"
        ) from None
    row = (
        job_id,
        key[0],
        key[1],
        key[2],
        ExecutionStatus(record.status).value,
        record.text,
        1 if record.empty else 0,
        record.error_code,
        record.error_message,
        int(record.attempts),
        record.started_at,
        record.finished_at,
        record.provider,
        metadata,
        receipt,
    )
    _check_text(key, row)
    return row


def _record(row: Sequence[Any]) -> ExecutionRecord:
    return ExecutionRecord(
        key=ExecutionKey(row[0], row[1], row[2]),
        status=ExecutionStatus(row[3]),
        text=row[4],
        empty=bool(row[5]),
        error_code=row[6],
        error_message=row[7],
        attempts=row[8],
        started_at=row[9],
        finished_at=row[10],
        provider=row[11],
        metadata=json.loads(row[12]),
        receipt=None if row[13] is None else json.loads(row[13]),
    )


def _result_json(result: JobResult) -> str:
    # Records live in their own table; repeating them here would double the file.
    return json.dumps(
        {
            "status": result.status.value,
            "reason": result.reason,
            "counts": {ExecutionStatus(s).value: n for s, n in result.counts.items()},
            "success_rate": result.success_rate,
            "planned": result.planned,
            "started_at": result.started_at,
            "finished_at": result.finished_at,
            "cancelled_by": result.cancelled_by,
        },
        separators=(",", ":"),
    )


def _tally(rows: list[tuple[str, str, int]]) -> dict[str, dict[ExecutionStatus, int]]:
    out: dict[str, dict[ExecutionStatus, int]] = {}
    for name, status, count in rows:
        out.setdefault(name, {})[ExecutionStatus(status)] = count
    return out


@define
class _Batch:
    """Rows waiting for one transaction, and the event that says it committed (or failed)."""

    rows: list[_Row]
    committed: anyio.Event = field(factory=anyio.Event)
    error: BaseException | None = None


@define
class _Known:
    """What this store instance already knows about a job (ids never disappear from a file)."""

    spec: JobSpec | None = None


@define
class SQLiteStore:
    """Jobs and records in one SQLite file, durable across crashes, readable while a job runs.

    Use it as an async context manager (``async with SQLiteStore("jobs.db") as store:``), or call
    methods directly (the file is opened on first use) and :meth:`aclose` when done. One
    instance belongs to one event loop; other processes may open the same file at the same
    time, e.g. to watch :meth:`progress` while a job writes.

    Args:
        path: The database file. It is created if missing; an existing file must be a database
            this library created. ``":memory:"`` gives a private, non-durable database.
        synchronous: SQLite's ``synchronous`` setting. ``"normal"`` (default) survives the
            process being killed at any moment; ``"full"`` and ``"extra"`` also survive power
            loss by fsyncing every commit, which costs throughput.
        busy_timeout: Seconds to wait for another process's write lock before failing.
        clock: Wall-clock time source for ``created_at``/``finished_at`` (default ``time.time``).

    Raises:
        UsageError: For an invalid ``synchronous`` or ``busy_timeout``.
    """

    path: Path = field(converter=_to_path)
    synchronous: Synchronous = field(default="normal", kw_only=True, validator=_check_synchronous)
    busy_timeout: float = field(default=5.0, kw_only=True, validator=_check_busy_timeout)
    clock: Callable[[], float] = field(default=time.time, kw_only=True)
    _conn: sqlite3.Connection | None = field(default=None, init=False, repr=False)
    _closed: bool = field(default=False, init=False, repr=False)
    # One token: a sqlite3 connection must never be used by two threads at once.
    _limiter: anyio.CapacityLimiter = field(
        factory=lambda: anyio.CapacityLimiter(1), init=False, repr=False
    )
    _open_batch: _Batch | None = field(default=None, init=False, repr=False)
    _flushing: anyio.Event | None = field(default=None, init=False, repr=False)
    _known: dict[str, _Known] = field(factory=dict, init=False, repr=False)

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> SQLiteStore:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Open (and if needed create or migrate) the database now rather than on first use.

        Raises:
            StoreError: The file is not a database of this library, is corrupt, or has a
                newer schema than this library knows. The file is not modified.
        """
        await self._call(lambda conn: None)

    async def aclose(self) -> None:
        """Commit pending writes and close the database. Idempotent."""
        if self._closed:
            return
        # Every open batch has a writer committing it (shielded, so even if it was cancelled):
        # wait for those commits, so no row handed to the store is dropped.
        while True:
            if self._flushing is not None:
                await self._flushing.wait()
            elif self._open_batch is not None:
                await self._open_batch.committed.wait()
            else:
                break
        self._closed = True
        await anyio.to_thread.run_sync(self._close_sync, limiter=self._limiter)

    def _close_sync(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    # -- plumbing -------------------------------------------------------------------------

    def _where(self) -> str:
        return str(self.path)

    async def _call(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._closed:
            raise UsageError(f"SQLiteStore({self._where()!r}) is closed")
        return await anyio.to_thread.run_sync(self._run, fn, limiter=self._limiter)

    def _run(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``fn`` on the connection in a worker thread, opening it on first use."""
        try:
            conn = self._conn
            if conn is None:
                conn = self._conn = self._connect()
            return fn(conn)
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite store {self._where()}: {exc}") from exc

    def _connect(self) -> sqlite3.Connection:
        if str(self.path) == ":memory:":
            conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            self._migrate(conn)
            return conn
        self._inspect()
        try:
            conn = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=self.busy_timeout,
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite store {self._where()}: {exc}") from exc
        try:
            self._configure(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _configure(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        self._migrate(conn)
        # After migrating, so that an adopted empty file gets its application_id in the main
        # file and not only in the WAL: _inspect() reads it straight from disk.
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(
                f"SQLite store {self._where()}: cannot use WAL mode (journal_mode is {mode!r})"
            )
        conn.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")

    def _inspect(self) -> None:
        """Refuse, without writing anything, a file that is not ours or not usable."""
        where = self._where()
        path = self.path
        if path.is_dir():
            raise StoreError(f"SQLite store {where}: is a directory, expected a database file")
        if not path.exists():
            if not path.parent.is_dir():
                raise StoreError(
                    f"SQLite store {where}: directory {str(path.parent)!r} does not exist"
                )
            self._create()  # then check what is there: another process may have been first
        try:
            with path.open("rb") as fp:
                header = fp.read(100)
        except OSError as exc:
            raise StoreError(f"SQLite store {where}: cannot read the file: {exc}") from exc
        if not header:
            return  # an empty file is an empty database (SQLite treats it so)
        if not header.startswith(_HEADER):
            raise StoreError(
                f"SQLite store {where}: not an SQLite database (the file does not start with "
                f"SQLite's header){self._journal_hint()}; refusing to touch it"
            )
        if len(header) < 100:
            raise StoreError(
                f"SQLite store {where}: corrupt SQLite database (truncated header)"
                f"{self._journal_hint()}; refusing to touch it"
            )
        app_id = int.from_bytes(header[68:72], "big", signed=True)
        if app_id == 0 and self._is_empty_database(header):
            return
        if app_id != APPLICATION_ID:
            raise StoreError(
                f"SQLite store {where}: not a beacon_orchestrator database (application_id "
                f"{app_id:#x}, expected {APPLICATION_ID:#x}): another application's database "
                f"or a corrupt file{self._journal_hint()}; refusing to touch it"
            )
        self._inspect_schema()

    def _journal_hint(self) -> str:
        journal = Path(f"{self.path}-journal")
        if journal.exists() and journal.stat().st_size > 0:
            return (
                f" (and {str(journal)!r} exists: the program that wrote the file may have been "
                "interrupted mid-transaction; opening it once with that program or the sqlite3 "
                "shell rolls the transaction back)"
            )
        return ""

    def _create(self) -> None:
        """Create a new database beside ``path`` and link it into place when it is complete.

        So a crash while creating leaves no half-made file at ``path`` (only a stray temporary
        file), and two processes creating the same store at once both end up using one file.
        """
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}-{time.time_ns()}.creating")
        try:
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                self._migrate(conn)
                conn.execute("PRAGMA journal_mode = WAL")  # stays WAL: recorded in the header
            finally:
                conn.close()
            try:
                os.link(tmp, self.path)
            except FileExistsError:
                pass  # another process created it first: use theirs
            except OSError:
                # No hard links on this file system; rename, unless someone was faster.
                if not self.path.exists():
                    os.replace(tmp, self.path)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"SQLite store {self._where()}: cannot create it: {exc}") from exc
        finally:
            for leftover in (tmp, Path(f"{tmp}-journal"), Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
                leftover.unlink(missing_ok=True)

    def _is_empty_database(self, header: bytes) -> bool:
        page_count = int.from_bytes(header[28:32], "big")
        schema_cookie = int.from_bytes(header[40:44], "big")
        wal = Path(f"{self.path}-wal")
        # A WAL-mode database may hold its tables only in the WAL until a checkpoint.
        wal_used = wal.exists() and wal.stat().st_size > 0
        return page_count <= 1 and schema_cookie == 0 and not wal_used

    def _inspect_schema(self) -> None:
        where = self._where()
        uri = f"{self.path.absolute().as_uri()}?mode=ro"
        try:
            ro = sqlite3.connect(uri, uri=True, timeout=self.busy_timeout)
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite store {where}: cannot open read-only: {exc}") from exc
        try:
            version = ro.execute("PRAGMA user_version").fetchone()[0]
            names = {r[0] for r in ro.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"SQLite store {where}: corrupt database ({exc}); refusing to touch it"
            ) from exc
        finally:
            ro.close()
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"SQLite store {where}: schema version {version} is newer than this library "
                f"knows ({SCHEMA_VERSION}); upgrade beacon_orchestrator to open it"
            )
        missing = _TABLES - names if version >= 1 else set()
        if missing:
            raise StoreError(
                f"SQLite store {where}: corrupt database: schema version {version} but table(s) "
                f"{', '.join(sorted(missing))} missing; refusing to touch it"
            )

    def _migrate(self, conn: sqlite3.Connection) -> None:
        if conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
            return  # the common case takes no write lock, so readers never block a writer
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = self._locked_version(conn)
            for statements in _MIGRATIONS[version:]:
                for statement in statements:
                    conn.execute(statement)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _locked_version(self, conn: sqlite3.Connection) -> int:
        # Read again under the write lock: another process may have migrated meanwhile.
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        if app_id not in (0, APPLICATION_ID) or version > SCHEMA_VERSION:
            raise StoreError(
                f"SQLite store {self._where()}: changed by another program while opening "
                f"(application_id {app_id:#x}, schema version {version})"
            )
        return version

    # -- jobs -----------------------------------------------------------------------------

    async def _require(self, job_id: str) -> _Known:
        known = self._known.get(job_id)
        if known is not None:
            return known

        def exists(conn: sqlite3.Connection) -> bool:
            return conn.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone() is not None

        if not await self._call(exists):
            raise StoreError(f"unknown job id {job_id!r} in SQLite store {self._where()}")
        return self._known.setdefault(job_id, _Known())

    async def open_job(self, spec: JobSpec) -> None:
        """Register a job (idempotent for the same spec).

        Raises:
            JobConflictError: The job id is stored with a different spec.
        """
        known = self._known.get(spec.id)
        if known is not None and known.spec is not None:
            if known.spec == spec:
                return
            raise self._conflict(spec, known.spec.to_dict())
        document = spec.to_dict()
        try:
            spec_json = json.dumps(document, sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise StoreError(f"job {spec.id!r}: the spec is not JSON-serialisable: {exc}") from exc
        created_at = self.clock()
        planned = spec.size

        def insert(conn: sqlite3.Connection) -> str:
            conn.execute(
                "INSERT INTO jobs (id, spec, planned, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (id) DO NOTHING",
                (spec.id, spec_json, planned, created_at),
            )
            return str(conn.execute("SELECT spec FROM jobs WHERE id = ?", (spec.id,)).fetchone()[0])

        stored_json = await self._call(insert)
        if stored_json != spec_json and not self._same_spec(stored_json, spec):
            raise self._conflict(spec, json.loads(stored_json))
        self._known[spec.id] = _Known(spec=spec)

    @staticmethod
    def _same_spec(stored_json: str, spec: JobSpec) -> bool:
        # Byte-different JSON can still be the same spec (written by another library version).
        from .._spec import JobSpec

        try:
            return JobSpec.from_dict(json.loads(stored_json)) == spec
        except Exception:  # an unreadable stored spec is simply not this one
            return False

    def _conflict(self, spec: JobSpec, stored: Mapping[str, Any]) -> JobConflictError:
        mine = spec.to_dict()
        fields = sorted(k for k in set(mine) | set(stored) if mine.get(k) != stored.get(k))
        differs = f" (differs in: {', '.join(fields)})" if fields else ""
        return JobConflictError(
            f"job {spec.id!r} is already stored in {self._where()} with a different spec"
            f"{differs}; use a new job id or the stored spec"
        )

    async def load_spec(self, job_id: str) -> JobSpec:
        """The spec the job was opened with."""
        from .._spec import JobSpec

        known = await self._require(job_id)
        if known.spec is None:

            def read(conn: sqlite3.Connection) -> str:
                return str(
                    conn.execute("SELECT spec FROM jobs WHERE id = ?", (job_id,)).fetchone()[0]
                )

            stored_json = await self._call(read)
            try:
                known.spec = JobSpec.from_dict(json.loads(stored_json))
            except Exception as exc:
                raise StoreError(
                    f"job {job_id!r} in {self._where()}: the stored spec cannot be loaded: {exc}"
                ) from exc
        return known.spec

    async def finish_job(self, job_id: str, result: JobResult) -> None:
        """Store the job's verdict (its records are already stored)."""
        await self._require(job_id)
        result_json = _result_json(result)
        finished_at = self.clock()

        def update(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE jobs SET status = ?, reason = ?, result = ?, finished_at = ? WHERE id = ?",
                (JobStatus(result.status).value, result.reason, result_json, finished_at, job_id),
            )

        await self._call(update)

    async def load_result(self, job_id: str) -> JobResult | None:
        """The verdict stored by :meth:`finish_job` with the job's records, or ``None``.

        Not part of the :class:`~beacon_orchestrator.Store` protocol: a convenience for tools
        that show finished jobs.
        """
        await self._require(job_id)

        def read(conn: sqlite3.Connection) -> tuple[str | None, list[ExecutionRecord]]:
            conn.execute("BEGIN")
            try:
                row = conn.execute("SELECT result FROM jobs WHERE id = ?", (job_id,)).fetchone()
                records = [_record(r) for r in conn.execute(_SELECT_RECORDS, (job_id,))]
            finally:
                conn.execute("COMMIT")
            return row[0], records

        result_json, records = await self._call(read)
        if result_json is None:
            return None
        data = json.loads(result_json)
        return JobResult(
            job_id=job_id,
            status=JobStatus(data["status"]),
            reason=data["reason"],
            counts={ExecutionStatus(s): n for s, n in data["counts"].items()},
            success_rate=data["success_rate"],
            planned=data["planned"],
            records=tuple(records),
            started_at=data["started_at"],
            finished_at=data["finished_at"],
            cancelled_by=data["cancelled_by"],
        )

    async def jobs(self) -> list[JobInfo]:
        """Every job, oldest first."""

        def read(conn: sqlite3.Connection) -> list[Any]:
            return conn.execute(
                "SELECT j.id, j.planned, (SELECT count(*) FROM records r WHERE r.job_id = j.id), "
                "j.status, j.reason, j.created_at, j.finished_at FROM jobs j ORDER BY j.rowid"
            ).fetchall()

        rows = await self._call(read)
        return [
            JobInfo(
                job_id=job_id,
                planned=planned,
                records=count,
                status=None if status is None else JobStatus(status),
                reason=reason,
                created_at=created_at,
                finished_at=finished_at,
            )
            for job_id, planned, count, status, reason, created_at, finished_at in rows
        ]

    # -- records --------------------------------------------------------------------------

    async def write(self, job_id: str, record: ExecutionRecord) -> None:
        """Store one record; returns once the transaction holding it has committed.

        A ``COMPLETED`` record is never replaced by a record of another status.

        Raises:
            StoreError: Unknown job id, a record the table cannot hold (metadata that is not
                JSON-serialisable, text that is not valid Unicode), or a failed commit.
        """
        await self._require(job_id)
        await self._commit([_row(job_id, record)])

    async def write_many(self, job_id: str, records: Sequence[ExecutionRecord]) -> None:
        """Store several records in one transaction (later ones win, as if written in order)."""
        await self._require(job_id)
        rows = [_row(job_id, r) for r in records]
        if rows:
            await self._commit(rows)

    async def _commit(self, rows: list[_Row]) -> None:
        """Group commit: add rows to the open batch and return once a transaction holds them.

        The writer that opens a batch commits it, as soon as the commit running (if any) ends;
        meanwhile later writers add their rows to the batch and wait for its commit. So every
        write costs one wake-up, and there is never more than one batch waiting.
        """
        batch = self._open_batch
        if batch is not None:
            batch.rows.extend(rows)
            await batch.committed.wait()
        else:
            batch = self._open_batch = _Batch(rows)
            # Shielded: the other writers in this batch wait for its commit, so it must happen
            # even if this writer is cancelled. That delays the cancellation by at most the
            # running commit and this one.
            with anyio.CancelScope(shield=True):
                while self._flushing is not None:
                    await self._flushing.wait()
                await self._flush(batch)
        if batch.error is not None:
            raise StoreError(
                f"SQLite store {self._where()}: the commit holding this write failed: {batch.error}"
            ) from batch.error

    async def _flush(self, batch: _Batch) -> None:
        self._open_batch = None
        done = self._flushing = anyio.Event()
        try:
            await self._call(partial(self._write_rows, batch.rows))
        except BaseException as exc:
            batch.error = exc  # every writer of the batch raises it, as a StoreError
            if not isinstance(exc, Exception):
                raise
        finally:
            self._flushing = None
            batch.committed.set()
            done.set()

    @staticmethod
    def _write_rows(rows: list[_Row], conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(_UPSERT, rows)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    async def completed_keys(self, job_id: str) -> Set[ExecutionKey]:
        """Keys with a ``COMPLETED`` record (what a resumed run must not execute again)."""
        await self._require(job_id)

        def read(conn: sqlite3.Connection) -> frozenset[ExecutionKey]:
            rows = conn.execute(
                "SELECT question_id, model_id, region FROM records "
                "WHERE job_id = ? AND status = 'completed'",
                (job_id,),
            )
            return frozenset(ExecutionKey(q, m, r) for q, m, r in rows)

        return await self._call(read)

    async def records(self, job_id: str) -> list[ExecutionRecord]:
        """Every record of the job, one per key, in the order keys were first written."""
        await self._require(job_id)

        def read(conn: sqlite3.Connection) -> list[ExecutionRecord]:
            return [_record(r) for r in conn.execute(_SELECT_RECORDS, (job_id,))]

        return await self._call(read)

    async def progress(self, job_id: str) -> StoredProgress:
        """Counts per status, overall and per question, region and model (one snapshot)."""
        await self._require(job_id)

        def read(conn: sqlite3.Connection) -> StoredProgress:
            # One read transaction: the three GROUP BYs see the same snapshot.
            conn.execute("BEGIN")
            try:
                planned = conn.execute("SELECT planned FROM jobs WHERE id = ?", (job_id,))
                planned_count = int(planned.fetchone()[0])
                groups = {
                    column: _tally(
                        conn.execute(
                            f"SELECT {column}, status, count(*) FROM records "
                            f"WHERE job_id = ? GROUP BY {column}, status",
                            (job_id,),
                        ).fetchall()
                    )
                    for column in ("question_id", "model_id", "region")
                }
            finally:
                conn.execute("COMMIT")
            counts: dict[ExecutionStatus, int] = {}
            for slot in groups["region"].values():
                for status, n in slot.items():
                    counts[status] = counts.get(status, 0) + n
            return StoredProgress(
                job_id=job_id,
                planned=planned_count,
                counts=counts,
                by_question=groups["question_id"],
                by_region=groups["region"],
                by_model=groups["model_id"],
            )

        return await self._call(read)
