"""The database layout: one PostgreSQL schema per store, versioned like SQLite's files.

Every table lives in the store's own schema (``beacon`` unless told otherwise), so one database
can hold several stores, and a test its own. The ``meta`` table holds the schema version;
opening a store applies the missing migrations in one transaction, under an advisory lock so
that several processes opening one database at once migrate it once. A schema written by a
newer version of the library is refused, untouched.

The statements on the records table take their columns from the record codec (:mod:`._rows`),
so a field added to ``ExecutionRecord`` reaches the table with one migration appended here
that adds its column (a test compares the table with the codec).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Final

from ..._errors import StoreError, UsageError

if TYPE_CHECKING:
    import psycopg

__all__ = ["SCHEMA_VERSION", "check_schema_name", "migrate"]

_log = logging.getLogger(__name__)

_NAME: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# One number for every beacon store: the advisory lock serialising migrations.
_MIGRATION_LOCK: Final = 0x42454143

# _MIGRATIONS[n] takes a schema from version n to n + 1. Append, never edit. "{s}" is the
# store's schema name (checked by check_schema_name, so it needs no quoting).
_MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        "CREATE TABLE {s}.meta (key text PRIMARY KEY, value text NOT NULL)",
        """
        CREATE TABLE {s}.jobs (
            id           text PRIMARY KEY,
            seq          bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
            spec         text NOT NULL,
            planned      bigint NOT NULL,
            created_at   double precision NOT NULL,
            status       text,
            reason       text,
            result       text,
            finished_at  double precision
        )
        """,
        # Free text is bytea (UTF-8): PostgreSQL's text cannot hold NUL, an answer may.
        """
        CREATE TABLE {s}.records (
            seq           bigint GENERATED ALWAYS AS IDENTITY,
            job_id        text NOT NULL REFERENCES {s}.jobs(id),
            question_id   text NOT NULL,
            model_id      text NOT NULL,
            region        text NOT NULL,
            status        text NOT NULL,
            text          bytea,
            empty         boolean NOT NULL,
            error_code    bytea,
            error_message bytea,
            attempts      bigint NOT NULL,
            started_at    double precision,
            finished_at   double precision,
            provider      bytea,
            metadata      text NOT NULL,
            receipt       text,
            PRIMARY KEY (job_id, question_id, model_id, region)
        )
        """,
        "CREATE INDEX ON {s}.records (job_id, seq)",
        """
        CREATE TABLE {s}.leases (
            job_id    text PRIMARY KEY REFERENCES {s}.jobs(id),
            token     bigint NOT NULL,
            owner     text,
            pid       bigint,
            host      text,
            since     double precision,
            heartbeat double precision,
            ttl       double precision
        )
        """,
    ),
    # 2: many workers sharing one job (_claims.py): each endpoint's holder, lease and fence,
    # and each cell's state. A cell is (endpoint, question index; a slot since 3); at most one
    # runs per endpoint at a time, which the partial unique index enforces whatever a worker does.
    (
        """
        CREATE TABLE {s}.claim_jobs (
            job_id        text PRIMARY KEY REFERENCES {s}.jobs(id),
            state         text NOT NULL DEFAULT 'open',
            cancelled_at  timestamptz,
            cancel_reason text
        )
        """,
        """
        CREATE TABLE {s}.endpoints (
            job_id      text NOT NULL REFERENCES {s}.claim_jobs(job_id),
            model_id    text NOT NULL,
            region      text NOT NULL,
            ord         integer NOT NULL,
            n_q         integer NOT NULL,
            next_q      integer NOT NULL DEFAULT 0,
            holder      text,
            fence       bigint NOT NULL DEFAULT 0,
            lease_until timestamptz,
            done        boolean NOT NULL DEFAULT false,
            PRIMARY KEY (job_id, model_id, region)
        )
        """,
        """
        CREATE TABLE {s}.cells (
            job_id      text NOT NULL,
            model_id    text NOT NULL,
            region      text NOT NULL,
            q           integer NOT NULL,
            question_id text NOT NULL,
            state       text NOT NULL DEFAULT 'pending',
            fence       bigint,
            runs        integer NOT NULL DEFAULT 0,
            PRIMARY KEY (job_id, model_id, region, q),
            FOREIGN KEY (job_id, model_id, region) REFERENCES {s}.endpoints
        )
        """,
        "CREATE UNIQUE INDEX ON {s}.cells (job_id, model_id, region) WHERE state = 'running'",
    ),
    # 3: samples per cell, region identity, usage and cost. The execution key gains its sample
    # index (every record written before has sample 0), and so does the primary key; a claim
    # cell becomes a slot (question index x samples + sample: the same number while a job has
    # one sample per cell, so claims stored before keep their meaning). An index on status
    # serves reads by status and Store.keys without walking every answer.
    (
        "ALTER TABLE {s}.records ADD COLUMN sample bigint NOT NULL DEFAULT 0",
        "ALTER TABLE {s}.records DROP CONSTRAINT records_pkey",
        "ALTER TABLE {s}.records ADD PRIMARY KEY (job_id, question_id, model_id, region, sample)",
        "ALTER TABLE {s}.records ADD COLUMN served_region bytea",
        "ALTER TABLE {s}.records ADD COLUMN system_prompt bytea",
        "ALTER TABLE {s}.records ADD COLUMN request_sha256 bytea",
        "ALTER TABLE {s}.records ADD COLUMN usage text",
        "ALTER TABLE {s}.records ADD COLUMN cost double precision",
        "CREATE INDEX ON {s}.records (job_id, status, seq)",
        "ALTER TABLE {s}.endpoints RENAME COLUMN n_q TO n_slots",
        "ALTER TABLE {s}.endpoints RENAME COLUMN next_q TO next_slot",
        "ALTER TABLE {s}.cells RENAME COLUMN q TO slot",
        "ALTER TABLE {s}.cells ADD COLUMN sample bigint NOT NULL DEFAULT 0",
        # A verdict's reason is free text too (a user's policy writes it): NUL must fit.
        "ALTER TABLE {s}.jobs ALTER COLUMN reason TYPE bytea USING convert_to(reason, 'UTF8')",
    ),
    # 4: caps held across workers (_slots.py): per_region and max_concurrency as slot rows, a
    # set per cap (scope 'region:<name>' or 'job'), the cap being the number of rows. A slot is
    # held under an endpoint's claim (holder, endpoint fence, cell) with its lease; endpoints
    # waiting for a slot queue first come, first served.
    (
        """
        CREATE TABLE {s}.slots (
            job_id      text NOT NULL REFERENCES {s}.claim_jobs(job_id),
            scope       text NOT NULL,
            n           integer NOT NULL,
            holder      text,
            fence       bigint NOT NULL DEFAULT 0,
            lease_until timestamptz,
            model_id    text,
            region      text,
            ep_fence    bigint,
            cell        integer,
            PRIMARY KEY (job_id, scope, n)
        )
        """,
        "CREATE INDEX ON {s}.slots (holder) WHERE holder IS NOT NULL",
        # An endpoint whose start found a cap full waits in line: the set it waits for, since.
        "ALTER TABLE {s}.endpoints ADD COLUMN waiting_for text",
        "ALTER TABLE {s}.endpoints ADD COLUMN waiting_since timestamptz",
    ),
)

SCHEMA_VERSION: Final = len(_MIGRATIONS)
"""The schema version this library writes (the ``meta`` table's ``schema_version``)."""


def check_schema_name(name: object) -> str:
    """``name`` if it can name the store's schema as it is (lower case, digits, ``_``).

    Raises:
        UsageError: Naming the value and what it must be.
    """
    if not isinstance(name, str) or _NAME.fullmatch(name) is None:
        raise UsageError(
            f"PostgresStore schema: expected a lower-case SQL name (letters, digits, _; "
            f"at most 63, not starting with a digit), got {name!r}"
        )
    return name


def _version(conn: psycopg.Connection[tuple[object, ...]], schema: str) -> int:
    exists = conn.execute(
        "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = 'meta'",
        (schema,),
    ).fetchone()
    if exists is None:
        return 0
    row = conn.execute(f"SELECT value FROM {schema}.meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        raise StoreError(f"schema {schema!r} has a meta table without a schema version")
    return int(str(row[0]))


def migrate(conn: psycopg.Connection[tuple[object, ...]], schema: str) -> int:
    """Create or bring the store's schema up to :data:`SCHEMA_VERSION`; return the old version.

    Runs in one transaction on ``conn``.

    Raises:
        StoreError: The schema is newer than this library knows (it is left untouched).
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        version = _version(conn, schema)
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"schema {schema!r} has version {version}, newer than this library's "
                f"{SCHEMA_VERSION}: upgrade beacon-orchestrator to open it"
            )
        for steps in _MIGRATIONS[version:]:
            for template in steps:
                conn.execute(template.format(s=schema).encode())
        if version < SCHEMA_VERSION:
            conn.execute(
                f"INSERT INTO {schema}.meta (key, value) VALUES ('schema_version', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(SCHEMA_VERSION),),
            )
            _log.info("PostgreSQL schema %s: version %d -> %d", schema, version, SCHEMA_VERSION)
    return version
