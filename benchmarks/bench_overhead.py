"""Scheduler overhead per execution, beside a bare anyio worker pool doing the same no-op work.

The job: ``Q`` questions x 50 models x 20 regions (1,000 endpoints), so ``Q = 100`` gives the
100,000 executions of the target and 1, 10, 300 give the other points of the curve. The executor
is an ``async def execute`` that returns a prebuilt :class:`Response` without awaiting anything;
the store is a :class:`MemoryStore`; limits are the defaults (``per_endpoint=1``, so one worker
per endpoint: 1,000 workers). The figure is the wall time of ``run_job`` (plan, every
execution, every record stored, the verdict) divided by the number of executions.

The baseline, measured in the same process and interleaved with it run by run: 1,000 anyio
tasks pulling item numbers from one shared iterator, each calling the same executor's
``execute`` with one prebuilt request, then yielding once (``anyio.lowlevel.checkpoint``), as
any worker waiting on real I/O would and as the scheduler does once per execution. That is the
floor of any anyio worker pool; a pool fed through a memory object stream, the other common
shape, costs more than the floor and is reported beside it (full mode) for scale.

Each figure is the best of ``repeats`` runs (``time.perf_counter``; the garbage collector is
run before each run, not disabled during it: collecting the records a job makes is part of its
cost). The process's CPU time (``time.process_time``) is kept beside it: on a shared machine
other processes inflate wall times, and short runs (the bare pool's) are likelier than long ones
to find a quiet moment, which biases a best-of-N wall ratio against the library; the CPU-time
ratio is immune to that, so a large gap between the two says the machine was busy.

Target (DESIGN §8): at most 2.5x the bare pool at 100,000 executions, on asyncio and on trio.

Run: ``python -m benchmarks.bench_overhead [--quick]``. Profile one job with
``pyinstrument -r text -m benchmarks.bench_overhead --one asyncio 100000``.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeAlias

import anyio
from anyio.lowlevel import checkpoint

from beacon_orchestrator import (
    ExecutionKey,
    ExecutionRequest,
    ExecutionStatus,
    JobSpec,
    MemoryStore,
    ModelTarget,
    Question,
    Response,
    run_job,
)

from ._common import BACKENDS, Row, best, check, row

MODELS = 50
REGIONS = 20
ENDPOINTS = MODELS * REGIONS
TARGET_SIZE = 100_000
TARGET_RATIO = 2.5
QUICK_SIZES = (1_000, 10_000, 100_000)
FULL_SIZES = (1_000, 3_000, 10_000, 30_000, 100_000, 300_000)

_RESPONSE = Response(text="ok")


class NoopExecutor:
    """Answers at once with one prebuilt response: all that is left to time is the scheduler."""

    async def execute(self, request: ExecutionRequest) -> Response:
        """Return the prebuilt response without awaiting anything."""
        return _RESPONSE


def make_spec(size: int, job_id: str = "overhead") -> JobSpec:
    """A job of ``size`` executions over 1,000 endpoints (``size`` a multiple of 1,000)."""
    if size <= 0 or size % ENDPOINTS:
        raise ValueError(f"size must be a positive multiple of {ENDPOINTS}, got {size}")
    regions = tuple(f"region-{r}" for r in range(REGIONS))
    return JobSpec(
        id=f"{job_id}-{size}",
        questions=tuple(Question(f"q{i}", f"question {i}?") for i in range(size // ENDPOINTS)),
        models=tuple(ModelTarget(f"model-{m}", regions) for m in range(MODELS)),
    )


Timing: TypeAlias = tuple[float, float]
"""Wall seconds (``perf_counter``) and CPU seconds (``process_time``) of one run."""


async def library_run(spec: JobSpec) -> Timing:
    """Wall and CPU seconds ``run_job`` takes for ``spec`` (no-op executor, MemoryStore)."""
    executor = NoopExecutor()
    store = MemoryStore()
    cpu, start = time.process_time(), time.perf_counter()
    result = await run_job(spec, executor, store=store)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    done = result.counts[ExecutionStatus.COMPLETED]
    check(done == spec.size, f"run_job completed {done} of {spec.size} executions")
    return elapsed, cpu


def _request() -> ExecutionRequest:
    return ExecutionRequest("bare", ExecutionKey("q0", "model-0", "region-0"), "question 0?", {})


async def bare_pool(size: int, workers: int) -> Timing:
    """Wall and CPU seconds ``workers`` tasks over one shared iterator take for ``size`` calls."""
    executor = NoopExecutor()
    request = _request()
    items = iter(range(size))
    done = 0

    async def worker() -> None:
        nonlocal done
        for _ in items:
            await executor.execute(request)
            await checkpoint()
            done += 1

    cpu, start = time.process_time(), time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(workers):
            tg.start_soon(worker)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    check(done == size, f"the bare pool made {done} of {size} calls")
    return elapsed, cpu


async def stream_pool(size: int, workers: int) -> Timing:
    """Wall and CPU seconds of a pool fed through an unbuffered memory object stream."""
    executor = NoopExecutor()
    request = _request()
    send, receive = anyio.create_memory_object_stream[int]()
    done = 0

    async def producer() -> None:
        async with send:
            for i in range(size):
                await send.send(i)

    async def worker(items: anyio.abc.ObjectReceiveStream[int]) -> None:
        nonlocal done
        async with items:
            async for _ in items:
                await executor.execute(request)
                done += 1

    cpu, start = time.process_time(), time.perf_counter()
    async with anyio.create_task_group() as tg:
        tg.start_soon(producer)
        for _ in range(workers):
            tg.start_soon(worker, receive.clone())
        receive.close()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    check(done == size, f"the stream pool made {done} of {size} calls")
    return elapsed, cpu


def _timed(backend: str, fn: Callable[..., Awaitable[Timing]], *args: object) -> Timing:
    gc.collect()
    timing: Timing = anyio.run(fn, *args, backend=backend)
    return timing


def _us(timings: Sequence[Timing], size: int, which: int) -> float:
    return round(best([t[which] for t in timings]) / size * 1e6, 3)


def measure(
    sizes: Sequence[int] = QUICK_SIZES,
    repeats: int = 3,
    backends: Sequence[str] = BACKENDS,
    stream_reference: bool = False,
) -> list[Row]:
    """Overhead rows: one per backend at ``TARGET_SIZE`` (or the largest size), with the curve."""
    rows: list[Row] = []
    headline = TARGET_SIZE if TARGET_SIZE in sizes else max(sizes)
    for backend in backends:
        curve: list[dict[str, float]] = []
        for size in sizes:
            spec = make_spec(size)
            lib: list[Timing] = []
            bare: list[Timing] = []
            for i in range(repeats):
                # Alternate which goes first, so a change in the machine's load hits both alike.
                if i % 2:
                    bare.append(_timed(backend, bare_pool, size, ENDPOINTS))
                    lib.append(_timed(backend, library_run, spec))
                else:
                    lib.append(_timed(backend, library_run, spec))
                    bare.append(_timed(backend, bare_pool, size, ENDPOINTS))
            curve.append(
                {
                    "size": size,
                    "library_us": _us(lib, size, 0),
                    "bare_us": _us(bare, size, 0),
                    "library_cpu_us": _us(lib, size, 1),
                    "bare_cpu_us": _us(bare, size, 1),
                }
            )
        point = next(p for p in curve if p["size"] == headline)
        rows.append(
            row(
                f"overhead_per_execution_{backend}",
                point["library_us"],
                "us/exec",
                target=TARGET_RATIO,
                target_of="ratio",
                target_op="<=",
                baseline=point["bare_us"],
                note=(
                    f"run_job of {headline:,} executions ({headline // ENDPOINTS} questions x "
                    f"{MODELS} models x {REGIONS} regions, {ENDPOINTS} workers), no-op executor, "
                    f"MemoryStore, default limits; baseline: {ENDPOINTS} anyio tasks over a "
                    f"shared iterator calling the same executor; best of {repeats}, on {backend}; "
                    f"in CPU time {point['library_cpu_us']:.2f} vs {point['bare_cpu_us']:.2f} "
                    f"us, ratio {point['library_cpu_us'] / point['bare_cpu_us']:.2f}"
                ),
                cpu_ratio=round(point["library_cpu_us"] / point["bare_cpu_us"], 3),
                backend=backend,
                size=headline,
                curve=curve,
            )
        )
        if stream_reference:
            streams = [
                _timed(backend, stream_pool, headline, ENDPOINTS) for _ in range(max(2, repeats))
            ]
            rows.append(
                row(
                    f"overhead_stream_pool_{backend}",
                    _us(streams, headline, 0),
                    "us/exec",
                    baseline=point["bare_us"],
                    note=(
                        f"for scale: {ENDPOINTS} anyio tasks fed through an unbuffered memory "
                        f"object stream, {headline:,} no-op calls, best of {len(streams)}; "
                        "baseline: the shared-iterator pool"
                    ),
                    backend=backend,
                )
            )
    return rows


def run(quick: bool) -> list[Row]:
    """Measure the scheduler's overhead per execution on asyncio and trio."""
    if quick:
        return measure(QUICK_SIZES, repeats=2)
    return measure(FULL_SIZES, repeats=5, stream_reference=True)


def _main(argv: Sequence[str]) -> None:
    if argv[:1] == ["--one"]:
        backend, size = argv[1], int(argv[2])
        wall, cpu = _timed(backend, library_run, make_spec(size))
        print(
            f"{size:,} executions on {backend}: {wall / size * 1e6:.2f} us/exec "
            f"({cpu / size * 1e6:.2f} us CPU)"
        )
        return
    import json

    for r in run(quick="--quick" in argv):
        print(json.dumps(r))


if __name__ == "__main__":
    _main(sys.argv[1:])
