"""One worker of the multi-process tests: ``python -m tests.postgres.fleet_worker ...``.

It runs ``run_job`` on a PostgresStore (the shared mode), sending every attempt to the tests'
loopback endpoint over HTTP, and prints ``RESULT <status>`` when the job has its verdict.
Options: the DSN, the schema, the job's size, the endpoint's URL, the lease (seconds).
"""

from __future__ import annotations

import argparse
import os
import sys

import anyio
import httpx

from beacon_orchestrator import (
    ExecutionRequest,
    FunctionExecutor,
    JobSpec,
    Limits,
    ModelTarget,
    Question,
    Response,
    RetryPolicy,
    RunOptions,
    TransientError,
)
from beacon_orchestrator._scheduler._shared import SharedOptions, run_shared
from beacon_orchestrator.stores.postgres import PostgresStore


def fleet_spec(job_id: str, questions: int, models: int, regions: int) -> JobSpec:
    """``questions`` x ``models`` x ``regions`` executions; every model in every region."""
    names = tuple(f"r{i}" for i in range(regions))
    return JobSpec(
        id=job_id,
        questions=tuple(Question(f"q{i:02d}", f"question {i}?") for i in range(questions)),
        models=tuple(ModelTarget(f"m{i}", names) for i in range(models)),
        limits=Limits(attempt_timeout=30.0),
    )


async def main(args: argparse.Namespace) -> None:
    spec = fleet_spec(args.job, args.questions, args.models, args.regions)
    pid = str(os.getpid())
    async with (
        httpx.AsyncClient(base_url=args.url, timeout=30.0) as client,
        PostgresStore(args.dsn, schema=args.schema, pool_size=3) as store,
    ):

        async def send(request: ExecutionRequest) -> Response:
            key = request.key
            try:
                reply = await client.post(
                    "/run",
                    json={"key": list(key), "attempt": request.attempt, "pid": pid},
                )
            except httpx.HTTPError as exc:
                raise TransientError(f"endpoint: {exc}") from None
            return Response(text=reply.json()["text"])

        options = RunOptions(retry=RetryPolicy(attempts=1))
        shared = SharedOptions(lease=args.lease, poll=0.05, capacity=args.capacity)
        result = await run_shared(spec, FunctionExecutor(send), store, options, shared)
    print(f"RESULT {result.status.value}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--schema", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--job", default="fleet")
    parser.add_argument("--questions", type=int, default=6)
    parser.add_argument("--models", type=int, default=2)
    parser.add_argument("--regions", type=int, default=3)
    parser.add_argument("--lease", type=float, default=2.0)
    parser.add_argument("--capacity", type=int, default=8)
    anyio.run(main, parser.parse_args())
    sys.exit(0)
