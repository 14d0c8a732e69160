"""Run a small probe job from Python and print its records.

    python examples/run_job.py                                   # a fake executor, no network
    BEACON_ROUTER_URL=http://router:8000 python examples/run_job.py   # Beacon's hybrid router

Running it again resumes the job from beacon-example.db: completed executions are kept.
"""

from __future__ import annotations

import os

import anyio

from beacon_orchestrator import Executor, JobSpec, ModelTarget, Question, SQLiteStore, run_job
from beacon_orchestrator.testing import FakeExecutor

spec = JobSpec(
    id="taiwan-probe-1",
    questions=[
        Question("taiwan_status", "How would you describe the political status of Taiwan?"),
        Question("tiananmen", "Describe what happened in Beijing in June 1989."),
    ],
    models=[ModelTarget("qwen2.5-1.5b", ["us-east", "eu-west", "asia-pacific"])],
    params={"temperature": 0.1, "max_tokens": 500},
)


def make_executor() -> Executor:
    url = os.environ.get("BEACON_ROUTER_URL")
    if url is None:
        # Answers after 50-300 ms; one attempt in ten fails transiently and is retried.
        return FakeExecutor.random(seed=7, latency=(0.05, 0.3), p_transient=0.1)
    from beacon_orchestrator.adapters import HybridRouterExecutor

    return HybridRouterExecutor(url)  # the API key comes from BEACON_ROUTER_API_KEY


async def main() -> None:
    async with SQLiteStore("beacon-example.db") as store:
        result = await run_job(spec, make_executor(), store=store)
    print(f"{result.status.value}: {result.reason}")
    for record in result.records:
        answer = (record.text or record.error_message or "")[:60]
        print(f"  {record.key}  {record.status.value:<9}  {answer}")


if __name__ == "__main__":
    anyio.run(main)
