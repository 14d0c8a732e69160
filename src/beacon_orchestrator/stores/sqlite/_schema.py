"""The store's file format: which files are ours, the versioned schema, and opening a file.

- **Never someone else's file.** Before writing anything, :func:`connect` checks the file
  read-only: not an SQLite file, a corrupt one, another application's database (SQLite's
  ``application_id``) or a schema newer than this library knows all raise
  :class:`~beacon_orchestrator.StoreError` and leave the file untouched.
- **Versioned schema.** SQLite's ``user_version`` holds the schema version; opening a file of an
  older version applies the missing migrations in one transaction.
- **No half-made files.** A new file is built beside its path and linked into place complete,
  so a crash while creating it leaves no half-made database behind.
- **The real cause.** SQLite says "database or disk is full" or "unable to open database file";
  :func:`sqlite_failure` says what that means for the file (no space left on the device, a
  read-only file system, no permission), so a user knows what to fix.

Creating a file, migrating one and finding a write-ahead log to recover are logged (``INFO``;
creating a schema at ``DEBUG``) on ``beacon_orchestrator.stores.sqlite._schema``, naming the
file and the versions only.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from attrs import frozen

from ..._errors import StoreError
from ._tallies import TALLY_TABLES
from ._transactions import write_transaction

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "connect", "migrate", "sqlite_failure"]

_log = logging.getLogger(__name__)

APPLICATION_ID: Final = 0x42454143
"""SQLite ``application_id`` stamped on every file this store creates (ASCII ``BEAC``)."""

Step = str | Callable[[sqlite3.Connection], None]
"""One step of a migration: an SQL statement, or a function for what SQL alone cannot say."""


def _key_with_sample(conn: sqlite3.Connection) -> None:
    """Rebuild the records table with ``sample`` in its primary key (schema version 3).

    SQLite cannot change a primary key in place. The new table is the old one's own
    ``CREATE TABLE`` with the key widened, so every column the table has by now (whatever
    migrations ran before this one) is kept, and rows are copied with their rowids, which keep
    the order records were first written in. Every record written before has sample 0.
    """
    (create,) = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'records'"
    ).fetchone()
    wider, found = _OLD_KEY.subn(_NEW_KEY, create, count=1)
    if not found:
        raise StoreError(
            f"cannot migrate it to schema version 3: its records table is not keyed by "
            f"(job_id, question_id, model_id, region) ({' '.join(create.split())}); nothing "
            "was changed"
        )
    columns = ", ".join(row[1] for row in conn.execute("PRAGMA table_info(records)"))
    indexes = [
        sql
        for (sql,) in conn.execute(
            "SELECT sql FROM sqlite_master "
            "WHERE type = 'index' AND tbl_name = 'records' AND sql IS NOT NULL"
        )
    ]
    conn.execute(re.sub(r"\brecords\b", "records_rebuilt", wider, count=1))
    conn.execute(
        f"INSERT INTO records_rebuilt (rowid, {columns}) "
        f"SELECT rowid, {columns} FROM records ORDER BY rowid"
    )
    conn.execute("DROP TABLE records")
    conn.execute("ALTER TABLE records_rebuilt RENAME TO records")
    for sql in indexes:
        conn.execute(sql)


_OLD_KEY: Final = re.compile(
    r"PRIMARY\s+KEY\s*\(\s*job_id\s*,\s*question_id\s*,\s*model_id\s*,\s*region\s*\)"
)
_NEW_KEY: Final = (
    "sample        INTEGER NOT NULL DEFAULT 0,\n"
    "            PRIMARY KEY (job_id, question_id, model_id, region, sample)"
)

# _MIGRATIONS[n] takes a file from schema version n to n + 1. Append, never edit: files in the
# wild hold every version that ever shipped. A new column of the records table (a new field of
# ExecutionRecord) is a new migration: "ALTER TABLE records ADD COLUMN ...".
_MIGRATIONS: Final[tuple[tuple[Step, ...], ...]] = (
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
    # 2: who runs each job. A released lease keeps its row (holder columns NULL) so that the
    # token keeps growing across holders.
    (
        """
        CREATE TABLE leases (
            job_id    TEXT PRIMARY KEY REFERENCES jobs(id),
            token     INTEGER NOT NULL,
            owner     TEXT,
            pid       INTEGER,
            host      TEXT,
            since     REAL,
            heartbeat REAL,
            ttl       REAL
        )
        """,
    ),
    # 3: what the provider says about where it ran and what it was sent (issue 11).
    (
        "ALTER TABLE records ADD COLUMN served_region TEXT",
        "ALTER TABLE records ADD COLUMN system_prompt TEXT",
        "ALTER TABLE records ADD COLUMN request_sha256 TEXT",
    ),
    # 4: samples per cell. The execution key gains its sample index, and so does the primary
    # key; a table rebuild, since SQLite cannot change a primary key in place.
    (_key_with_sample,),
    # 5: what each execution used and cost (ExecutionRecord.usage, .cost).
    (
        "ALTER TABLE records ADD COLUMN usage TEXT",
        "ALTER TABLE records ADD COLUMN cost REAL",
    ),
    # 6: the outcome of every key in a small index, so that resuming, progress, status and
    # reads by status scan it rather than the records (whose answers make them large). Its
    # order follows how records arrive (a status, then question by question), so a commit
    # touches a few of its pages: ordered by endpoint first, it cost writes 3.6x. With the
    # cost, it answers Store.keys alone (a resumed run's budget counts what was spent).
    (
        "CREATE INDEX records_outcomes "
        "ON records (job_id, status, question_id, sample, model_id, region, empty, cost)",
    ),
    # 7: records counted per endpoint, status and empty flag, kept by every write (``_tallies``):
    # beacon status and progress() read a few hundred rows rather than an entry per record.
    TALLY_TABLES,
)

_CHECKPOINT_PAGES: Final = 10_000

SCHEMA_VERSION: Final = len(_MIGRATIONS)
"""The schema version this library writes (SQLite ``user_version``)."""

# The tables a file of each schema version must have (index: version - 1).
_TABLES: Final = (
    frozenset({"jobs", "records"}),
    frozenset({"jobs", "records", "leases"}),
    frozenset({"jobs", "records", "leases"}),
    frozenset({"jobs", "records", "leases"}),
    frozenset({"jobs", "records", "leases"}),
    frozenset({"jobs", "records", "leases"}),  # 6: an index, no new table
    frozenset({"jobs", "records", "leases", "tallies", "tally_mark"}),
)
_CORRUPT: Final = ("SQLITE_CORRUPT", "SQLITE_NOTADB")
_HEADER: Final = b"SQLite format 3\x00"


def sqlite_failure(exc: sqlite3.Error, path: Path) -> str:
    """What an SQLite error means for the store's file, as a user can act on it.

    ``database or disk is full`` becomes ``cannot write: No space left on device``; an error
    opening or writing the file is explained by what the file system says about its
    directory (read-only, no permission, full), when it says something. SQLite's own words
    follow in brackets.
    """
    name = str(getattr(exc, "sqlite_errorname", ""))
    if name.startswith("SQLITE_FULL"):
        return f"cannot write: {os.strerror(errno.ENOSPC)} (SQLite: {exc})"
    if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_IOERR", "SQLITE_PERM")):
        cause = _file_system_problem(path)
        if cause is not None:
            return f"{cause} (SQLite: {exc})"
    return str(exc)


def _file_system_problem(path: Path) -> str | None:
    """Why the file or its directory cannot be written, if the file system says why."""
    if str(path) == ":memory:":
        return None
    directory = path.parent
    try:
        stats = os.statvfs(directory)
    except OSError as exc:
        return f"cannot use directory {str(directory)!r}: {exc.strerror}"
    if stats.f_flag & os.ST_RDONLY:
        return f"cannot write in {str(directory)!r}: {os.strerror(errno.EROFS)}"
    # access() with the real ids: a root process is not refused by permissions, nor told so.
    if not os.access(directory, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return f"cannot write in {str(directory)!r}: {os.strerror(errno.EACCES)}"
    if stats.f_bavail == 0:
        return f"cannot write: {os.strerror(errno.ENOSPC)}"
    return None


def connect(path: Path, *, busy_timeout: float, synchronous: str) -> sqlite3.Connection:
    """Open the store's database at ``path``, creating or migrating it, in WAL mode.

    Args:
        path: The file, or ``":memory:"`` for a private, non-durable database.
        busy_timeout: Seconds to wait for another process's write lock.
        synchronous: SQLite's ``synchronous`` level (``normal``, ``full`` or ``extra``).

    Raises:
        StoreError: The file is not a database of this library, is corrupt, has a newer schema
            than this library knows, or cannot be opened. The file is not modified.
        sqlite3.Error: SQLite failed while migrating or configuring the connection.
    """
    if str(path) == ":memory:":
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        migrate(conn, ":memory:")
        return conn
    _DatabaseFile(path, busy_timeout).inspect()
    _note_write_ahead_log(path)
    try:
        conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=busy_timeout
        )
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open SQLite store {path}: {sqlite_failure(exc, path)}") from exc
    try:
        _configure(conn, str(path), busy_timeout=busy_timeout, synchronous=synchronous)
    except BaseException:
        conn.close()
        raise
    return conn


def _note_write_ahead_log(path: Path) -> None:
    """Log a write-ahead log found on opening: its committed transactions are recovered."""
    wal = Path(f"{path}-wal")
    try:
        size = wal.stat().st_size
    except OSError:
        return  # none (the usual case after a clean close)
    if size:
        _log.info(
            "SQLite store %s: found a write-ahead log of %d bytes (another connection has the "
            "file open, or the last one ended without closing it); SQLite recovers the "
            "transactions it committed",
            path, size,
        )  # fmt: skip


def _configure(
    conn: sqlite3.Connection, where: str, *, busy_timeout: float, synchronous: str
) -> None:
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    conn.execute("PRAGMA foreign_keys = ON")
    migrate(conn, where)
    # After migrating, so that an adopted empty file gets its application_id in the main file
    # and not only in the WAL: inspect() reads it straight from disk.
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise StoreError(f"SQLite store {where}: cannot use WAL mode (journal_mode is {mode!r})")
    conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
    # A checkpoint every 40 MB of log rather than SQLite's 4 MB: each copies a page once however
    # often it changed, and a commit that runs one makes every writer of its batch wait.
    conn.execute(f"PRAGMA wal_autocheckpoint = {_CHECKPOINT_PAGES}")


def migrate(conn: sqlite3.Connection, where: str) -> None:
    """Bring the database to :data:`SCHEMA_VERSION` and stamp it as ours, in one transaction.

    Raises:
        StoreError: Another program changed the file while it was being opened, or a
            migration found the file unlike its version (the file is left as it was).
    """
    if conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
        return  # the common case takes no write lock, so readers never block a writer
    with write_transaction(conn):
        version = _locked_version(conn, where)
        if version:
            _log.info(
                "SQLite store %s: migrating from schema version %d to %d",
                where, version, SCHEMA_VERSION,
            )  # fmt: skip
        else:
            _log.debug("SQLite store %s: creating schema version %d", where, SCHEMA_VERSION)
        for steps in _MIGRATIONS[version:]:
            for step in steps:
                _apply(conn, step, where)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _apply(conn: sqlite3.Connection, step: Step, where: str) -> None:
    if isinstance(step, str):
        conn.execute(step)
        return
    try:
        step(conn)
    except StoreError as exc:  # the whole migration is rolled back
        raise StoreError(f"SQLite store {where}: {exc}") from None


def _locked_version(conn: sqlite3.Connection, where: str) -> int:
    # Read again under the write lock: another process may have migrated meanwhile.
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    if app_id not in (0, APPLICATION_ID) or version > SCHEMA_VERSION:
        raise StoreError(
            f"SQLite store {where}: changed by another program while opening "
            f"(application_id {app_id:#x}, schema version {version})"
        )
    return version


@frozen
class _DatabaseFile:
    """A store's file on disk, read without writing anything (except to create it)."""

    path: Path
    busy_timeout: float

    def inspect(self) -> None:
        """Refuse, without writing anything, a file that is not ours or not usable."""
        path = self.path
        if path.is_dir():
            raise StoreError(f"SQLite store {path}: is a directory, expected a database file")
        if not path.exists():
            if not path.parent.is_dir():
                raise StoreError(
                    f"SQLite store {path}: directory {str(path.parent)!r} does not exist"
                )
            _log.info("SQLite store %s: creating a new database file", path)
            self._create()  # then check what is there: another process may have been first
        try:
            with path.open("rb") as fp:
                header = fp.read(100)
        except OSError as exc:
            raise StoreError(f"SQLite store {path}: cannot read the file: {exc.strerror}") from exc
        if not header:
            return  # an empty file is an empty database (SQLite treats it so)
        self._check_header(header)
        app_id = int.from_bytes(header[68:72], "big", signed=True)
        if app_id == 0 and self._is_empty_database(header):
            return
        if app_id != APPLICATION_ID:
            raise StoreError(
                f"SQLite store {path}: not a beacon_orchestrator database (application_id "
                f"{app_id:#x}, expected {APPLICATION_ID:#x}): another application's database "
                f"or a corrupt file{self._journal_hint()}; refusing to touch it"
            )
        self._inspect_schema()

    def _check_header(self, header: bytes) -> None:
        if not header.startswith(_HEADER):
            raise StoreError(
                f"SQLite store {self.path}: not an SQLite database (the file does not start "
                f"with SQLite's header){self._journal_hint()}; refusing to touch it"
            )
        if len(header) < 100:
            raise StoreError(
                f"SQLite store {self.path}: corrupt SQLite database (truncated header)"
                f"{self._journal_hint()}; refusing to touch it"
            )

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
        path = self.path
        tmp = path.with_name(f".{path.name}.{os.getpid()}-{time.time_ns()}.creating")
        try:
            # Created here first, so that a directory we cannot write in is reported as the
            # file system says it (read-only, permission denied), not as SQLite's "unable to
            # open database file". An empty file is an empty database.
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except OSError as exc:
            raise StoreError(
                f"SQLite store {path}: cannot create it in {str(path.parent)!r}: {exc.strerror}"
            ) from exc
        try:
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                migrate(conn, str(path))
                conn.execute("PRAGMA journal_mode = WAL")  # stays WAL: recorded in the header
            finally:
                conn.close()
            try:
                os.link(tmp, path)
            except FileExistsError:
                # Another process created it first: use theirs.
                _log.info("SQLite store %s: another process created it first; using it", path)
            except OSError:
                # No hard links on this file system; rename, unless someone was faster.
                if not path.exists():
                    os.replace(tmp, path)
        except OSError as exc:
            raise StoreError(f"SQLite store {path}: cannot create it: {exc.strerror}") from exc
        except sqlite3.Error as exc:
            raise StoreError(
                f"SQLite store {path}: cannot create it: {sqlite_failure(exc, path)}"
            ) from exc
        finally:
            for leftover in (tmp, Path(f"{tmp}-journal"), Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
                # A leftover that cannot be removed must not hide why creating failed.
                with contextlib.suppress(OSError):
                    leftover.unlink(missing_ok=True)

    def _is_empty_database(self, header: bytes) -> bool:
        page_count = int.from_bytes(header[28:32], "big")
        schema_cookie = int.from_bytes(header[40:44], "big")
        wal = Path(f"{self.path}-wal")
        # A WAL-mode database may hold its tables only in the WAL until a checkpoint.
        wal_used = wal.exists() and wal.stat().st_size > 0
        return page_count <= 1 and schema_cookie == 0 and not wal_used

    def _inspect_schema(self) -> None:
        where = self.path
        uri = f"{where.absolute().as_uri()}?mode=ro"
        try:
            ro = sqlite3.connect(uri, uri=True, timeout=self.busy_timeout)
        except sqlite3.Error as exc:
            raise StoreError(
                f"SQLite store {where}: cannot open read-only: {sqlite_failure(exc, where)}"
            ) from exc
        try:
            version = ro.execute("PRAGMA user_version").fetchone()[0]
            names = {r[0] for r in ro.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as exc:
            if str(getattr(exc, "sqlite_errorname", "")).startswith(_CORRUPT):
                raise StoreError(
                    f"SQLite store {where}: corrupt database ({exc}); refusing to touch it"
                ) from exc
            # Not corrupt: unreadable where it is. A WAL-mode file is opened by writing its
            # shared-memory file beside it, even to read, so a read-only directory shows here.
            raise StoreError(
                f"SQLite store {where}: cannot open it: {sqlite_failure(exc, where)}; even to "
                f"read it, SQLite writes {where.name}-shm beside it"
            ) from exc
        finally:
            ro.close()
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"SQLite store {where}: schema version {version} is newer than this library "
                f"knows ({SCHEMA_VERSION}); upgrade beacon_orchestrator to open it"
            )
        missing = _TABLES[version - 1] - names if version >= 1 else set()
        if missing:
            raise StoreError(
                f"SQLite store {where}: corrupt database: schema version {version} but table(s) "
                f"{', '.join(sorted(missing))} missing; refusing to touch it"
            )
