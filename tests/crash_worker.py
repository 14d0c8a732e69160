"""A job on SQLiteStore that ``test_crash_resume.py`` runs in a subprocess and kills with SIGKILL.

Usage: ``python crash_worker.py DB EXEC_LOG SEED [--delay S] [--fail-rate P]
[--max-concurrency N]``

- Every key the executor is called for is appended to EXEC_LOG *before* the call returns, with
  an unbuffered ``os.write``, so the log survives a kill.
- Every record reported stored (an ``ExecutionFinished`` event, emitted after the store
  acknowledged the write) is printed as ``STORED question model region status monotonic_time``
  and flushed at once.
- The last line is ``DONE <status> <records>`` when the job ends.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

import anyio

from beacon_orchestrator import (
    Event,
    ExecutionFinished,
    ExecutionRequest,
    FunctionExecutor,
    JobSpec,
    Limits,
    ModelTarget,
    PermanentError,
    Question,
    Response,
    RetryPolicy,
    SQLiteStore,
    run_job,
)

QUESTIONS, MODELS, REGIONS = 20, 10, 10


def crash_spec() -> JobSpec:
    """20 questions x 10 models x 10 regions: 2,000 executions."""
    regions = tuple(f"region-{i}" for i in range(REGIONS))
    questions = tuple(Question(f"q{i:02d}", f"question {i}?") for i in range(QUESTIONS))
    models = tuple(ModelTarget(f"model-{i}", regions) for i in range(MODELS))
    return JobSpec(id="crash-job", questions=questions, models=models)


def on_event(event: Event) -> None:
    if isinstance(event, ExecutionFinished):
        q, m, r, _ = event.record.key
        status = event.record.status.value
        sys.stdout.write(f"STORED {q} {m} {r} {status} {time.monotonic():.6f}\n")
        sys.stdout.flush()


async def main(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    log = os.open(args.exec_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    async def execute(request: ExecutionRequest) -> Response:
        q, m, r, _ = request.key
        os.write(log, f"{q} {m} {r}\n".encode())
        await anyio.sleep(args.delay)
        if rng.random() < args.fail_rate:
            raise PermanentError("scripted failure", code="SCRIPTED")
        return Response(text=f"answer to {q} from {m} in {r}", provider="crash-worker")

    try:
        async with SQLiteStore(args.db) as store:
            result = await run_job(
                crash_spec(),
                FunctionExecutor(execute),
                store=store,
                on_event=on_event,
                rerun_failed=True,
                retry=RetryPolicy(attempts=1),
                limits=Limits(max_concurrency=args.max_concurrency),
                strategy="endpoint",
            )
    finally:
        os.close(log)
    sys.stdout.write(f"DONE {result.status.value} {len(result.records)}\n")
    sys.stdout.flush()


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("db")
    parser.add_argument("exec_log")
    parser.add_argument("seed", type=int)
    parser.add_argument("--delay", type=float, default=0.0005)
    parser.add_argument("--fail-rate", type=float, default=0.1)
    parser.add_argument("--max-concurrency", type=int, default=100)
    return parser.parse_args(argv)


if __name__ == "__main__":
    anyio.run(main, parse(sys.argv[1:]))
