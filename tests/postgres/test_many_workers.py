"""Many worker processes on one job: a real PostgreSQL, a loopback endpoint, signals.

Each test starts worker subprocesses (``fleet_worker.py``) running ``run_job`` on a
PostgresStore in the shared mode, all sending to one loopback fake endpoint that logs every
request's arrival and end on the server side. The checks read that log and the store.
"""

from __future__ import annotations

import signal
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator

import anyio
import psycopg
import pytest

from beacon_orchestrator import ExecutionStatus, JobStatus
from beacon_orchestrator.stores.postgres import PostgresStore

from .fleet import Arrival, FakeEndpoint, overlaps, start_worker, wait_all
from .server import fresh_schema

pytestmark = pytest.mark.slow


@pytest.fixture
def schema(postgres_dsn: str) -> Iterator[str]:
    with fresh_schema() as name:
        yield name


def _records(dsn: str, schema: str) -> list[tuple[str, str, str, str]]:
    with psycopg.connect(dsn) as conn:
        return [
            tuple(r)
            for r in conn.execute(
                f"SELECT question_id, model_id, region, status FROM {schema}.records"
            ).fetchall()
        ]


def _verdict(dsn: str, schema: str) -> tuple[str | None, int]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(f"SELECT status, count(*) OVER () FROM {schema}.jobs").fetchone()
    assert row is not None
    return row[0], int(row[1])


def _wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the scenario's moment"
        time.sleep(0.01)


def _in_flight(endpoint: FakeEndpoint, pid: int) -> list[Arrival]:
    with endpoint.lock:
        return [a for a in endpoint.arrivals if a.pid == str(pid) and a.ended is None]


def _in_question_order(arrivals: list[Arrival]) -> bool:
    """Whether each endpoint's first arrivals of its questions came in question order."""
    firsts: dict[tuple[str, str], list[str]] = {}
    seen: set[tuple[str, str, str]] = set()
    for a in sorted(arrivals, key=lambda a: a.arrived):
        if a.key not in seen:
            seen.add(a.key)
            firsts.setdefault((a.key[1], a.key[2]), []).append(a.key[0])
    return all(qs == sorted(qs) for qs in firsts.values())


def test_claim_storm_of_16_workers_starts_every_key_once_in_order(
    postgres_dsn: str, schema: str
) -> None:
    """16 workers at once: every key arrives once, endpoints in question order, one at a time."""
    size = {"questions": 5, "models": 4, "regions": 4}
    with FakeEndpoint(latency=0.03).running() as endpoint:
        workers = [
            start_worker(postgres_dsn, schema, endpoint.url, capacity=2, **size) for _ in range(16)
        ]
        outs = wait_all(workers, timeout=120)
    assert all("RESULT completed" in out for out in outs), outs
    keys = Counter(a.key for a in endpoint.arrivals)
    assert len(keys) == 80
    assert max(keys.values()) == 1, "a key was started twice"
    assert _in_question_order(endpoint.arrivals)
    assert set(overlaps(endpoint.arrivals).values()) == {1}
    assert _verdict(postgres_dsn, schema) == ("completed", 1)
    assert len(set(_records(postgres_dsn, schema))) == 80


@pytest.mark.parametrize("seed", [1, 2])
def test_sigkill_mid_attempt_is_taken_over_after_the_lease(
    postgres_dsn: str, schema: str, seed: int
) -> None:
    """A worker killed mid-request: its endpoints resume after the lease, each key once stored,
    only the interrupted key sent twice, never two requests at once on an endpoint."""
    lease = 2.0
    size = {"questions": 6, "models": 2, "regions": 2, "lease": lease, "capacity": 2}
    with FakeEndpoint(latency=0.2).running() as endpoint:
        victim = start_worker(postgres_dsn, schema, endpoint.url, **size)
        _wait_for(lambda: len(_in_flight(endpoint, victim.pid)) > 0)
        time.sleep(0.05 * seed)
        _wait_for(lambda: len(_in_flight(endpoint, victim.pid)) > 0)
        interrupted = {a.key for a in _in_flight(endpoint, victim.pid)}
        victim.send_signal(signal.SIGKILL)
        killed_at = time.time()
        others = [start_worker(postgres_dsn, schema, endpoint.url, **size) for _ in range(2)]
        outs = wait_all(others, timeout=120)
        victim.communicate()
    assert all("RESULT completed" in out for out in outs), outs
    records = _records(postgres_dsn, schema)
    assert len(records) == 24
    assert len({r[:3] for r in records}) == 24
    sent = Counter(a.key for a in endpoint.arrivals)
    twice = {k for k, n in sent.items() if n > 1}
    assert twice <= interrupted, f"keys sent twice that were not in flight at the kill: {twice}"
    assert max(sent.values()) <= 2
    assert set(overlaps(endpoint.arrivals).values()) == {1}
    retakes = [a.arrived - killed_at for a in endpoint.arrivals if a.key in twice]
    late = [t for t in retakes if t > 0]
    assert late, "the interrupted key never ran again"
    assert max(late) < lease + 2.0, f"takeover took {max(late):.2f} s after the kill"


def test_a_paused_worker_past_its_lease_changes_nothing(postgres_dsn: str, schema: str) -> None:
    """SIGSTOP past the lease, then SIGCONT: its late writes are refused, the job completes,
    never two requests at once on one endpoint."""
    lease = 1.5
    size = {"questions": 6, "models": 2, "regions": 1, "lease": lease, "capacity": 2}
    with FakeEndpoint(latency=0.2).running() as endpoint:
        zombie = start_worker(postgres_dsn, schema, endpoint.url, **size)
        _wait_for(lambda: len(_in_flight(endpoint, zombie.pid)) > 0)
        paused = {a.key for a in _in_flight(endpoint, zombie.pid)}
        zombie.send_signal(signal.SIGSTOP)
        helper = start_worker(postgres_dsn, schema, endpoint.url, **size)
        time.sleep(2 * lease + 1.0)
        zombie.send_signal(signal.SIGCONT)
        outs = wait_all([helper, zombie], timeout=120)
    assert all("RESULT completed" in out for out in outs), outs
    records = _records(postgres_dsn, schema)
    assert len(records) == 12
    assert len({r[:3] for r in records}) == 12
    assert {r[3] for r in records} == {"completed"}
    sent = Counter(a.key for a in endpoint.arrivals)
    assert {k for k, n in sent.items() if n > 1} <= paused
    assert set(overlaps(endpoint.arrivals).values()) == {1}


def test_cancel_reaches_every_worker_stops_starts_and_interrupts_in_flight(
    postgres_dsn: str, schema: str
) -> None:
    """Cancel from outside while 4 workers run: no request after the cancel commits,
    in-flight executions interrupted (p99 under 50 ms), pending SKIPPED, running CANCELLED."""
    size = {"questions": 8, "models": 2, "regions": 4, "capacity": 2, "lease": 5.0}
    with FakeEndpoint(latency=0.6).running() as endpoint:
        workers = [start_worker(postgres_dsn, schema, endpoint.url, **size) for _ in range(4)]
        _wait_for(lambda: len(endpoint.arrivals) >= 12)

        async def cancel() -> float:
            async with PostgresStore(postgres_dsn, schema=schema) as store:
                assert await store.cancel_job("fleet", "stopped by the test")
                return time.time()

        committed = anyio.run(cancel)
        outs = wait_all(workers, timeout=60)
    assert all("RESULT cancelled" in out for out in outs), outs
    late = [a for a in endpoint.arrivals if a.arrived > committed]
    assert late == [], f"{len(late)} requests arrived after the cancel committed"
    with psycopg.connect(postgres_dsn) as conn:
        rows = conn.execute(
            f"SELECT status, finished_at FROM {schema}.records WHERE job_id = 'fleet'"
        ).fetchall()
    counts = Counter(status for status, _ in rows)
    assert len(rows) == 64
    assert counts[ExecutionStatus.SKIPPED.value] > 0
    # Requests the endpoint was still serving well after the commit were interrupted; one
    # that ended within a few ms of it may have completed first.
    surely = [a for a in endpoint.arrivals if a.ended is not None and a.ended > committed + 0.05]
    maybe = [a for a in endpoint.arrivals if a.ended is not None and a.ended > committed]
    assert len(surely) <= counts[ExecutionStatus.CANCELLED.value] <= len(maybe)
    assert surely, "nothing was in flight when the test cancelled"
    delays = sorted(at - committed for status, at in rows if status == "cancelled")
    p99 = delays[-1] if len(delays) < 100 else statistics.quantiles(delays, n=100)[98]
    assert p99 < 0.05, f"in-flight executions interrupted after {delays}"
    assert _verdict(postgres_dsn, schema)[0] == JobStatus.CANCELLED.value
