"""Protecting a GPU fleet and a budget, on simulated fleets and virtual time.

Four simulations (``benchmarks/_fleet_sim.py`` serves the requests; nothing sleeps for real):

1. **Unknown capacities.** 16 endpoints, each serving between 2 and 16 requests at once (drawn
   from a fixed seed; the client is not told), answering ``HTTP_429`` with ``Retry-After: 5``
   beyond that; 125 questions each, 2,000 executions. Adaptive concurrency (ceiling
   ``per_endpoint=16``) against the ideal makespan (every endpoint run at exactly its capacity:
   ``max(ceil(125 / capacity) x service time)``), with static ``per_endpoint=1`` and
   ``per_endpoint=16`` beside it. Targets: at least 90% of the ideal (ratio ideal/makespan),
   under 5% of attempts rejected.
2. **The Beacon fleet** (``beacon-8q``): 8 single-container endpoints with their measured service
   times (cold starts included), queue overflow beyond 2 waiting requests. Adaptive on (with the
   job's limits) against the default: makespan within 2%, zero overload errors. Also shown: the
   adaptive run with a ceiling of 3, as a user who does not know the capacity would set it.
3. **A broken endpoint.** 10 endpoints x 100 questions; one answers ``HTTP_500`` to everything.
   With the circuit breaker, at most 20 requests reach it, the others finish, and its records
   say ``ENDPOINT_DOWN``; without it, every execution is tried and retried.
4. **A budget smaller than the job.** 4 endpoints x 50 questions priced per second and per
   token, ``max_cost`` 5 (0.1 per question): the spend, in-flight worst cases included, never
   passes it; every key has a record (the rest ``SKIPPED``, naming the budget); the verdict
   says why it stopped.

Each runs on asyncio and on trio; a figure is the worse of the two.

Run: ``python -m benchmarks.bench_fleet``.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Sequence
from typing import Any

import anyio

from beacon_orchestrator import (
    ENDPOINT_DOWN,
    CostModel,
    Endpoint,
    Event,
    ExecutionFinished,
    ExecutionStarted,
    ExecutionStatus,
    JobResult,
    JobSpec,
    Limits,
    ModelTarget,
    Price,
    Question,
    RunOptions,
    run_job,
)
from beacon_orchestrator.testing import run_virtual

from ._common import BACKENDS, Row, check, row
from ._fleet_sim import FleetExecutor, SimEndpoint
from .bench_makespan import load_scenario

COMPLETED = ExecutionStatus.COMPLETED


def _questions(n: int) -> list[Question]:
    return [Question(f"q{i:03d}", f"Question number {i}: answer briefly.") for i in range(n)]


def _index(spec: JobSpec) -> dict[str, int]:
    return {q.id: i for i, q in enumerate(spec.questions)}


async def _timed(
    spec: JobSpec, fleet: FleetExecutor, options: RunOptions
) -> tuple[float, JobResult]:
    start = anyio.current_time()
    result = await run_job(spec, fleet, options=options)
    return anyio.current_time() - start, result


def _on_both(fn: Any, *args: Any, backends: Sequence[str] = BACKENDS) -> list[dict[str, float]]:
    return [run_virtual(fn, *args, backend=b) for b in backends]


def _worst(runs: list[dict[str, float]], key: str, *, low: bool = False) -> float:
    values = [r[key] for r in runs]
    return min(values) if low else max(values)


# -- 1. unknown capacities ---------------------------------------------------------------------


def unknown_fleet(seed: int = 17, n_q: int = 125) -> tuple[JobSpec, dict[str, SimEndpoint], float]:
    """The job, the fleet (capacities 2..16, both ends present) and the ideal makespan."""
    rng = random.Random(seed)
    capacities = [2, 16] + [rng.randint(2, 16) for _ in range(14)]
    service = [rng.uniform(4.0, 12.0) for _ in range(16)]
    spec = JobSpec(
        id="fleet-16",
        questions=_questions(n_q),
        models=[ModelTarget(f"model-{i:02d}", ["us-east"]) for i in range(16)],
    )
    endpoints = {
        f"model-{i:02d}@us-east": SimEndpoint(capacity=capacities[i], service_s=service[i])
        for i in range(16)
    }
    ideal = max(-(-n_q // c) * s for c, s in zip(capacities, service, strict=True))
    return spec, endpoints, ideal


async def _unknown_run(mode: str, n_q: int) -> dict[str, float]:
    spec, endpoints, ideal = unknown_fleet(n_q=n_q)
    fleet = FleetExecutor(endpoints, _index(spec))
    options = {
        "adaptive": RunOptions(adaptive=True, limits=Limits(per_endpoint=16)),
        "static1": RunOptions(limits=Limits(per_endpoint=1)),
        "static16": RunOptions(limits=Limits(per_endpoint=16)),
    }[mode]
    elapsed, result = await _timed(spec, fleet, options)
    check(len(result.records) == spec.size, f"{mode}: {len(result.records)} records")
    return {
        "makespan": elapsed,
        "ideal": ideal,
        "rejected": sum(fleet.rejected.values()) / fleet.attempts,
        "completed": result.counts[COMPLETED],
        "size": spec.size,
    }


def measure_unknown(n_q: int = 125, backends: Sequence[str] = BACKENDS) -> list[Row]:
    """Rows of simulation 1."""
    runs = {
        m: _on_both(_unknown_run, m, n_q, backends=backends)
        for m in ("adaptive", "static1", "static16")
    }
    ideal = runs["adaptive"][0]["ideal"]
    size = int(runs["adaptive"][0]["size"])
    rows: list[Row] = []
    ad = runs["adaptive"]
    check(_worst(ad, "completed", low=True) == size, "adaptive lost executions")
    rows.append(
        row(
            "fleet16_adaptive_makespan",
            _worst(ad, "makespan"),
            "s (virtual)",
            baseline=ideal,
            target=1 / 0.9,
            target_of="ratio",
            note=f"16 endpoints of unknown capacity (2-16), 429 + Retry-After beyond it, {size} "
            "executions; adaptive (ceiling 16); baseline: the ideal makespan with capacities known",
        )
    )
    rows.append(
        row(
            "fleet16_adaptive_rejected",
            100 * _worst(ad, "rejected"),
            "% of attempts",
            target=5.0,
            target_op="<",
            note="attempts answered 429 under adaptive concurrency",
        )
    )
    for mode in ("static1", "static16"):
        rs = runs[mode]
        rows.append(
            row(
                f"fleet16_{mode}_makespan",
                _worst(rs, "makespan"),
                "s (virtual)",
                baseline=ideal,
                note=f"static per_endpoint={mode[6:]}: {100 * _worst(rs, 'rejected'):.1f}% of "
                f"attempts rejected, {int(_worst(rs, 'completed', low=True))} of {size} completed",
                rejected_pct=round(100 * _worst(rs, "rejected"), 2),
                completed=int(_worst(rs, "completed", low=True)),
            )
        )
    return rows


# -- 2. the Beacon fleet -----------------------------------------------------------------------


async def _beacon_run(mode: str) -> dict[str, float]:
    scenario = load_scenario()
    spec = JobSpec.from_dict(scenario["job"])
    service: dict[str, list[float]] = scenario["service_s"]
    endpoints = {
        name: SimEndpoint(
            capacity=1,
            queue=2,
            service_s=times.__getitem__,
            retry_after=None,
            overload_code="MODAL_QUEUE_FULL",
        )
        for name, times in service.items()
    }
    fleet = FleetExecutor(endpoints, _index(spec))
    options = {
        "default": RunOptions(),
        "adaptive": RunOptions(adaptive=True),
        "adaptive_ceiling3": RunOptions(adaptive=True, limits=Limits(per_endpoint=3)),
    }[mode]
    elapsed, result = await _timed(spec, fleet, options)
    check(len(result.records) == spec.size, f"beacon {mode}: {len(result.records)} records")
    return {
        "makespan": elapsed,
        "overloads": sum(fleet.rejected.values()),
        "attempts": fleet.attempts,
        "completed": result.counts[COMPLETED],
        "bound": float(scenario["lower_bound_s"]),
    }


def measure_beacon(backends: Sequence[str] = BACKENDS) -> list[Row]:
    """Rows of simulation 2."""
    runs = {
        m: _on_both(_beacon_run, m, backends=backends)
        for m in ("default", "adaptive", "adaptive_ceiling3")
    }
    default = _worst(runs["default"], "makespan")
    rows = [
        row(
            "beacon_adaptive_makespan",
            _worst(runs["adaptive"], "makespan"),
            "s (virtual)",
            baseline=default,
            target=1.02,
            target_of="ratio",
            note="beacon-8q, single-container endpoints, overflow beyond 2 queued; adaptive on "
            "with the job's limits (per_endpoint 1 is the ceiling); baseline: the default run",
        ),
        row(
            "beacon_adaptive_overload_errors",
            _worst(runs["adaptive"], "overloads"),
            "errors",
            target=0.0,
            note="queue-overflow errors the endpoints answered under adaptive concurrency",
        ),
    ]
    c3 = runs["adaptive_ceiling3"]
    rows.append(
        row(
            "beacon_adaptive_ceiling3_makespan",
            _worst(c3, "makespan"),
            "s (virtual)",
            baseline=default,
            note=f"adaptive with per_endpoint=3 (capacity unknown): {int(_worst(c3, 'overloads'))} "
            f"overload errors, {int(_worst(c3, 'attempts'))} attempts for 64 executions; a "
            "single-container endpoint that queues is only found out when a queued answer (or "
            "a timeout) comes back",
        )
    )
    return rows


# -- 3. a broken endpoint ----------------------------------------------------------------------


async def _broken_run(breaker: bool, n_q: int) -> dict[str, float]:
    spec = JobSpec(
        id="broken",
        questions=_questions(n_q),
        models=[ModelTarget(f"model-{i}", ["eu-west"]) for i in range(10)],
    )
    broken = "model-3@eu-west"
    endpoints = {
        f"model-{i}@eu-west": SimEndpoint(
            capacity=2, service_s=5.0, broken=f"model-{i}@eu-west" == broken
        )
        for i in range(10)
    }
    fleet = FleetExecutor(endpoints, _index(spec))
    options = RunOptions(breaker=breaker, adaptive=True, limits=Limits(per_endpoint=4))
    elapsed, result = await _timed(spec, fleet, options)
    mine = [r for r in result.records if f"{r.key.model_id}@{r.key.region}" == broken]
    others_done = sum(
        1
        for r in result.records
        if f"{r.key.model_id}@{r.key.region}" != broken and r.status is COMPLETED
    )
    return {
        "requests": fleet.sent[broken],
        "down": sum(
            1 for r in mine if r.error_code == ENDPOINT_DOWN and r.status is ExecutionStatus.FAILED
        ),
        "others": others_done,
        "others_size": 9 * n_q,
        "makespan": elapsed,
    }


def measure_broken(n_q: int = 100, backends: Sequence[str] = BACKENDS) -> list[Row]:
    """Rows of simulation 3."""
    on = _on_both(_broken_run, True, n_q, backends=backends)
    off = _on_both(_broken_run, False, n_q, backends=backends)
    check(
        _worst(on, "others", low=True) == on[0]["others_size"],
        "the healthy endpoints did not all finish with the breaker on",
    )
    down = int(_worst(on, "down", low=True))
    return [
        row(
            "broken_endpoint_requests",
            _worst(on, "requests"),
            "requests",
            baseline=_worst(off, "requests"),
            target=20.0,
            note=(
                f"requests that reached an endpoint answering 500 to all, in a "
                f"{10 * n_q}-execution job, with the breaker (baseline: without it); "
                f"{down} of its {n_q} records say ENDPOINT_DOWN; the 9 other endpoints "
                f"finished all {int(on[0]['others_size'])}; makespan "
                f"{_worst(on, 'makespan'):.0f} s with, {_worst(off, 'makespan'):.0f} s without"
            ),
            endpoint_down=down,
        )
    ]


# -- 4. a budget -------------------------------------------------------------------------------

PRICES = CostModel(default=Price(per_second=0.001, per_1k_tokens_out=0.1))


async def _budget_run(n_q: int) -> dict[str, float]:
    # A tenth of a unit per question: about 90% of what the job would cost.
    limits = Limits(max_cost=n_q / 10, per_endpoint=4, attempt_timeout=60.0)
    spec = JobSpec(
        id="budget",
        questions=_questions(n_q),
        models=[ModelTarget(f"model-{i}", ["asia-pacific"]) for i in range(4)],
        params={"max_tokens": 200},
        limits=limits,
    )
    endpoints = {
        f"model-{i}@asia-pacific": SimEndpoint(capacity=4, service_s=5.0 + i) for i in range(4)
    }
    fleet = FleetExecutor(endpoints, _index(spec))
    longest = max(len(q.prompt) for q in spec.questions)
    worst = PRICES.worst_case(
        Endpoint("model-0", "asia-pacific"),
        attempts=3,
        seconds=180.0,
        prompt_chars=longest,
        max_tokens=200,
    )
    state = {"spent": 0.0, "in_flight": 0, "peak": 0.0}

    def watch(event: Event) -> None:
        # What is committed at each start: spent so far plus every in-flight worst case.
        if isinstance(event, ExecutionStarted) and event.attempt == 1:
            state["in_flight"] += 1
            state["peak"] = max(state["peak"], state["spent"] + state["in_flight"] * worst)
        elif isinstance(event, ExecutionFinished) and event.record.status.finished:
            state["in_flight"] -= 1
            state["spent"] += event.record.cost or 0.0

    options = RunOptions(cost_model=PRICES, on_event=watch)
    _, result = await _timed(spec, fleet, options)
    skipped = [r for r in result.records if r.status is ExecutionStatus.SKIPPED]
    check(len(result.records) == spec.size, "the budget run left keys without a record")
    check(result.cancelled_by == "budget", f"the budget run ended by {result.cancelled_by}")
    check("max_cost" in result.reason, f"the verdict does not name the budget: {result.reason}")
    check(all("max_cost" in (r.error_message or "") for r in skipped), "a skip does not say why")
    return {
        "spent": sum(r.cost or 0.0 for r in result.records),
        "peak": state["peak"],
        "completed": result.counts[COMPLETED],
        "skipped": len(skipped),
        "size": spec.size,
    }


def measure_budget(n_q: int = 50, backends: Sequence[str] = BACKENDS) -> list[Row]:
    """Rows of simulation 4."""
    runs = _on_both(_budget_run, n_q, backends=backends)
    max_cost = n_q / 10
    return [
        row(
            "budget_peak_committed",
            _worst(runs, "peak"),
            "cost units",
            baseline=max_cost,
            target=1.0,
            target_of="ratio",
            note=f"max_cost {max_cost:g} on a job that would cost more: the most ever committed "
            f"(spent + in-flight worst cases); final spend {_worst(runs, 'spent'):.3f}; "
            f"{int(_worst(runs, 'completed', low=True))} completed, "
            f"{int(_worst(runs, 'skipped'))} skipped of {int(runs[0]['size'])}",
            spent=round(_worst(runs, "spent"), 4),
        )
    ]


def run(quick: bool) -> list[Row]:
    """Every fleet figure (virtual time: the same in quick and full mode)."""
    return measure_unknown() + measure_beacon() + measure_broken() + measure_budget()


if __name__ == "__main__":
    for r in run(quick="--quick" in sys.argv):
        print(json.dumps(r))
