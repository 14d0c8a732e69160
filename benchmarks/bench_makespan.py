"""Makespan of each strategy on the Beacon 8-question scenario, on virtual time.

The scenario (``benchmarks/data/beacon-8q.json``, a copy of the shared ``beacon-8q.json``) gives
the job (8 questions x 8 endpoints) and, for each endpoint, the seconds it needs to answer each
question, cold start included. A :class:`FakeExecutor` replays those service times with
``endpoint_capacity=1`` (an endpoint serves one request at a time and queues the rest) on a
virtual clock, on asyncio and on trio; the makespan is the virtual time from the start of
``run_job`` to its verdict. The lower bound is the busiest endpoint's total service time (no
schedule can finish sooner); it is recomputed from the service times and checked against the
file's figure.

Target (DESIGN §8): the default strategy within 2% of the lower bound. ``"region"`` and
``"lockstep"`` are reported beside it with the file's reference makespans.

Run: ``python -m benchmarks.bench_makespan``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio

from beacon_orchestrator import (
    ExecutionRequest,
    ExecutionStatus,
    JobSpec,
    Strategy,
    run_job,
)
from beacon_orchestrator.testing import FakeExecutor, Step, run_virtual

from ._common import BACKENDS, SCENARIO, Row, check, row

TARGET_RATIO = 1.02
STRATEGIES: tuple[Strategy, ...] = ("endpoint", "region", "lockstep")


def load_scenario(path: Path = SCENARIO) -> dict[str, Any]:
    """The scenario document."""
    with path.open(encoding="utf-8") as f:
        scenario: dict[str, Any] = json.load(f)
    return scenario


def lower_bound(service_s: Mapping[str, Sequence[float]]) -> float:
    """The busiest endpoint's total service time."""
    return max(sum(times) for times in service_s.values())


async def makespan(
    spec: JobSpec, service_s: Mapping[str, Sequence[float]], capacity: int, strategy: Strategy
) -> float:
    """Virtual seconds from the start of ``run_job`` to its verdict under ``strategy``."""
    q_index = {q.id: i for i, q in enumerate(spec.questions)}

    def step(request: ExecutionRequest) -> Step:
        key = request.key
        return Step(latency=service_s[f"{key.model_id}@{key.region}"][q_index[key.question_id]])

    executor = FakeExecutor(step, endpoint_capacity=capacity)
    start = anyio.current_time()
    result = await run_job(spec, executor, strategy=strategy)
    elapsed = anyio.current_time() - start
    done = result.counts[ExecutionStatus.COMPLETED]
    check(done == spec.size, f"{strategy!r} completed {done} of {spec.size} executions")
    check(
        len(executor.starts()) == spec.size,
        f"{strategy!r} started {len(executor.starts())} attempts for {spec.size} executions",
    )
    return elapsed


def measure(backends: Sequence[str] = BACKENDS, path: Path = SCENARIO) -> list[Row]:
    """One row per strategy: makespan, the lower bound as baseline, the file's reference."""
    scenario = load_scenario(path)
    spec = JobSpec.from_dict(scenario["job"])
    service_s: dict[str, list[float]] = scenario["service_s"]
    capacity = int(scenario["endpoint_capacity"])
    endpoints = {f"{e.model_id}@{e.region}" for e in spec.endpoints}
    check(
        endpoints == set(service_s),
        f"the scenario's service times name {sorted(service_s)}, its job {sorted(endpoints)}",
    )
    bound = lower_bound(service_s)
    check(
        abs(bound - float(scenario["lower_bound_s"])) < 0.01,
        f"the lower bound computed from service_s is {bound:.2f} s, the file says "
        f"{scenario['lower_bound_s']} s",
    )
    references: dict[str, float] = scenario["reference_makespans_s"]
    rows: list[Row] = []
    for strategy in STRATEGIES:
        spans = {
            b: run_virtual(makespan, spec, service_s, capacity, strategy, backend=b)
            for b in backends
        }
        value = max(spans.values())
        per_backend = ", ".join(f"{b} {s:.2f} s" for b, s in spans.items())
        reference = float(references[strategy])
        is_default = strategy == "endpoint"
        rows.append(
            row(
                f"makespan_{strategy}",
                value,
                "s (virtual)",
                target=TARGET_RATIO if is_default else None,
                target_of="ratio",
                target_op="<=",
                baseline=bound,
                digits=6,
                note=(
                    f"strategy {strategy!r}{' (the default)' if is_default else ''} on "
                    f"beacon-8q, endpoint_capacity={capacity}: {per_backend}; baseline: the "
                    f"lower bound; the scenario's reference figure is {reference:.2f} s"
                ),
                reference=reference,
            )
        )
    return rows


def run(quick: bool) -> list[Row]:
    """Makespans on virtual time: the same figures in quick and full mode."""
    return measure()


if __name__ == "__main__":
    for r in run(quick="--quick" in sys.argv):
        print(json.dumps(r))
