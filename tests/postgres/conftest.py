"""Fixtures of the PostgreSQL tests: one server per session, one schema per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .server import fresh_schema, server_dsn


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """The DSN of a running PostgreSQL (``BEACON_TEST_POSTGRES_DSN`` or a throwaway server)."""
    return server_dsn()


@pytest.fixture
def pg_schema(postgres_dsn: str) -> Iterator[str]:
    """A schema of the test's own, dropped after the test."""
    with fresh_schema() as schema:
        yield schema
