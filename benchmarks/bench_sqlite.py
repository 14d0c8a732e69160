"""SQLiteStore write throughput: records per second, raw and inside a job.

Two measurements, each the best of a few rounds on a fresh file in a temporary directory:

- ``sqlite_write_records_per_s``: ``store.write`` from many concurrent tasks (what a job's
  in-flight executions do), so group commit shares each transaction among the waiting writers.
  Also reported for 1 and 10 writers and for ``synchronous="full"`` (fsync on every commit),
  without a target, to show where the throughput comes from.
- ``sqlite_job_records_per_s``: a whole ``run_job`` with a zero-latency executor on
  SQLiteStore, executions per second; the same job on ``MemoryStore`` is the baseline, so the
  ratio shows what durability costs in a job.

Target (DESIGN §8): at least 20,000 records/s written in a job, so the store is never the
bottleneck.

Run: ``python benchmarks/bench_sqlite.py [--quick]``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import anyio

from beacon_orchestrator import (
    ExecutionRequest,
    ExecutionStatus,
    FunctionExecutor,
    JobSpec,
    MemoryStore,
    ModelTarget,
    Question,
    Response,
    SQLiteStore,
    Store,
    run_job,
)
from beacon_orchestrator.stores.sqlite import Synchronous

from ._common import ANSWER, completed_record

TARGET = 20_000.0


def _spec(job_id: str, questions: int, models: int = 10, regions: int = 10) -> JobSpec:
    region_names = tuple(f"region-{i}" for i in range(regions))
    return JobSpec(
        id=job_id,
        questions=tuple(Question(f"q{i}", f"question {i}?") for i in range(questions)),
        models=tuple(ModelTarget(f"model-{i}", region_names) for i in range(models)),
    )


async def _write_round(
    path: Path, questions: int, writers: int, synchronous: Synchronous = "normal"
) -> float:
    spec = _spec("bench", questions)
    records = [completed_record(k) for k in spec.plan()]
    async with SQLiteStore(path, synchronous=synchronous) as store:
        await store.open_job(spec)
        pending = iter(records)

        async def writer() -> None:
            for r in pending:
                await store.write("bench", r)

        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(writers):
                tg.start_soon(writer)
        elapsed = time.perf_counter() - start
        assert len(await store.records("bench")) == len(records)
    return len(records) / elapsed


async def _job_round(store: Store, questions: int, job_id: str) -> float:
    async def answer(request: ExecutionRequest) -> Response:
        return Response(text=ANSWER, provider="bench", metadata={"inference_time": 0.0})

    spec = _spec(job_id, questions)
    start = time.perf_counter()
    result = await run_job(spec, FunctionExecutor(answer), store=store)
    elapsed = time.perf_counter() - start
    assert result.counts[ExecutionStatus.COMPLETED] == spec.size, result.counts
    return spec.size / elapsed


async def _measure(quick: bool) -> list[dict[str, object]]:
    questions, rounds = (20, 2) if quick else (100, 3)  # x 100 endpoints
    size = questions * 100
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="beacon-bench-") as tmp:
        files = iter(Path(tmp) / f"{i}.db" for i in range(10_000))

        async def best_write(writers: int, synchronous: Synchronous = "normal") -> float:
            return max(
                [
                    await _write_round(next(files), questions, writers, synchronous)
                    for _ in range(rounds)
                ]
            )

        many = await best_write(100)
        rows.append(
            {
                "name": "sqlite_write_records_per_s",
                "value": round(many, 1),
                "unit": "records/s",
                "target": TARGET,
                "note": (
                    f"store.write from 100 concurrent tasks (group commit), {size} records, "
                    f"WAL, synchronous=NORMAL, best of {rounds}"
                ),
            }
        )
        for writers in (1, 10):
            value = await best_write(writers)
            rows.append(
                {
                    "name": f"sqlite_write_records_per_s_{writers}_writer{'s' * (writers > 1)}",
                    "value": round(value, 1),
                    "unit": "records/s",
                    "target": None,
                    "note": f"as above with {writers} concurrent writer(s): fewer records share "
                    "each transaction",
                }
            )
        full = await best_write(100, "full")
        rows.append(
            {
                "name": "sqlite_write_records_per_s_synchronous_full",
                "value": round(full, 1),
                "unit": "records/s",
                "target": None,
                "note": "100 writers, synchronous=FULL (fsync on every commit; survives power "
                "loss); depends on the disk",
            }
        )

        job_sqlite = job_memory = 0.0
        for i in range(rounds):
            async with SQLiteStore(next(files)) as store:
                job_sqlite = max(job_sqlite, await _job_round(store, questions, f"job-{i}"))
            job_memory = max(job_memory, await _job_round(MemoryStore(), questions, f"job-{i}"))
        rows.append(
            {
                "name": "sqlite_job_records_per_s",
                "value": round(job_sqlite, 1),
                "unit": "records/s",
                "target": TARGET,
                "baseline": round(job_memory, 1),
                "ratio": round(job_sqlite / job_memory, 3),
                "note": (
                    f"run_job of {size} executions (100 endpoints, per_endpoint=1, strategy "
                    f"'endpoint'), zero-latency executor, on SQLiteStore; baseline: the same job "
                    f"on MemoryStore; best of {rounds}; each commit is a hand-off to a worker "
                    f"thread, slow on a busy machine ({_load()})"
                ),
            }
        )
    return rows


def _load() -> str:
    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"


def run(quick: bool) -> list[dict[str, object]]:
    """Measure SQLiteStore's write throughput; one dict per figure."""
    return anyio.run(_measure, quick)


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(json.dumps(row))
