"""PostgresStore passes the store conformance state machine (records and leases), asyncio and trio.

Each example of the state machine gets a fresh schema on the tests' server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio.to_thread
import pytest

from beacon_orchestrator import Store
from beacon_orchestrator.stores.postgres import PostgresStore
from beacon_orchestrator.testing._store_conformance import store_conformance_test

from .server import drop_schema, new_schema, server_dsn

# psycopg_pool draws from the global `random` (jitter on each new connection's lifetime) in
# its own threads; when that lands while hypothesis draws a step, hypothesis takes it for the
# strategy's own use of `random`. Nothing of the suite's generation depends on it.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies"
    ":hypothesis.errors.HypothesisDeprecationWarning"
)


@asynccontextmanager
async def postgres_store(clock: Callable[[], float]) -> AsyncIterator[Store]:
    schema = new_schema()
    try:
        async with PostgresStore(server_dsn(), schema=schema, pool_size=3, clock=clock) as store:
            yield store
    finally:
        await anyio.to_thread.run_sync(drop_schema, schema)


TestPostgresStoreOnAsyncio = store_conformance_test(postgres_store, backend="asyncio")
TestPostgresStoreOnTrio = store_conformance_test(postgres_store, backend="trio")
