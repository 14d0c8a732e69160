"""Random scheduling scenarios, run on virtual time, for the invariant property tests."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
from attrs import evolve, frozen
from hypothesis import strategies as st

from beacon_orchestrator import (
    AdaptiveConcurrency,
    CircuitBreaker,
    CostModel,
    Event,
    ExecutionKey,
    ExecutionRecord,
    JobHandle,
    JobResult,
    JobSpec,
    Limits,
    MemoryStore,
    Price,
    RegionQueue,
    RetryPolicy,
    RunOptions,
    Strategy,
)
from beacon_orchestrator.testing import (
    Call,
    CancelPlan,
    CancelPlanSource,
    FakeExecutor,
    InvariantName,
    Step,
    cancel_plans,
    fault_scripts,
    find_violations,
    retry_policies,
    run_virtual,
    scheduling_limits,
    scheduling_specs,
)

STRATEGIES: tuple[Strategy, ...] = ("endpoint", "region", "lockstep")
CANCELLING: tuple[CancelPlanSource, ...] = ("handle", "deadline", "scope", "early_stop")
# A job that never ends would hang a test; virtual time makes this limit free to wait for.
SAFETY_LIMIT = 1_000_000.0


@frozen
class Scenario:
    spec: JobSpec
    strategy: Strategy
    limits: Limits
    retry: RetryPolicy
    script: dict[ExecutionKey, list[Step]]
    plan: CancelPlan
    # When set, an earlier run of the same job is cancelled at this moment first, and the
    # scenario's run resumes it from the same store.
    resume_after: float | None
    # Run with adaptive concurrency and a circuit breaker, and a cost model (with this budget).
    fleet: bool = False
    max_cost: float | None = None


@frozen
class Outcome:
    scenario: Scenario
    limits: Limits
    events: Sequence[Event]
    records: Sequence[ExecutionRecord]
    log: Sequence[Call]
    result: JobResult | None
    resumed: frozenset[ExecutionKey]

    def violations(self, *only: InvariantName) -> list[str]:
        sc = self.scenario
        found = find_violations(
            sc.spec,
            self.events,
            self.records,
            strategy=sc.strategy,
            limits=self.limits,
            executor_log=self.log,
            resumed=self.resumed,
            only=only or None,
        )
        return [str(v) for v in found]


@st.composite
def scenarios(
    draw: st.DrawFn,
    *,
    strategies: Sequence[Strategy] = STRATEGIES,
    sources: tuple[CancelPlanSource, ...] | None = None,
    resume: bool | None = False,
    max_questions: int = 10,
    min_samples: int = 1,
    max_samples: int = 1,
    fleet: bool = False,
) -> Scenario:
    spec = draw(
        scheduling_specs(
            max_questions=max_questions, min_samples=min_samples, max_samples=max_samples
        )
    )
    strategy = draw(st.sampled_from(list(strategies)))
    limits = draw(scheduling_limits())
    retry = draw(retry_policies())
    plan = draw(cancel_plans(sources=sources))
    # A hang only ends by a timeout or a cancellation, so allow hangs only where one will come.
    hangs = limits.attempt_timeout is not None or plan.source in ("handle", "deadline", "scope")
    script = draw(fault_scripts(spec, hangs=hangs))
    do_resume = draw(st.booleans()) if resume is None else resume
    resume_after = draw(st.sampled_from((0.0, 1.0, 2.0, 4.0))) if do_resume else None
    max_cost = None
    if fleet:
        # A budget of a few executions' worst case (see FLEET_OPTIONS' prices), or none.
        max_cost = draw(st.none() | st.sampled_from((0.5, 2.0, 8.0)))
    return Scenario(spec, strategy, limits, retry, script, plan, resume_after, fleet, max_cost)


def fleet_options(sc: Scenario) -> RunOptions | None:
    """The run options of a fleet scenario: quick to adapt, quick to trip, a per-request price."""
    if not sc.fleet:
        return None
    return RunOptions(
        adaptive=AdaptiveConcurrency(min_samples=2, patience=2.0),
        breaker=CircuitBreaker(failures=2, cool_down=1.0, probes=2, rate=0.5, window=4),
        cost_model=CostModel(default=Price(per_request=0.25, per_second=0.01)),
    )


class _Runner:
    def __init__(self, queue_cls: type[RegionQueue]) -> None:
        self.queue_cls = queue_cls

    async def once(
        self,
        sc: Scenario,
        store: MemoryStore,
        fake: FakeExecutor,
        plan: CancelPlan,
        limits: Limits,
        events: list[Event],
        queue_cls: type[RegionQueue],
    ) -> JobResult | None:
        queue = queue_cls(
            sc.spec,
            fake,
            store=store,
            strategy=sc.strategy,
            limits=limits,
            retry=sc.retry,
            on_event=events.append,
            early_stop=plan.source == "early_stop",
            options=fleet_options(sc),
        )
        with anyio.fail_after(SAFETY_LIMIT):
            if plan.source == "handle":
                async with anyio.create_task_group() as tg:
                    await tg.start(queue.run)
                    handle = JobHandle(queue)

                    async def cancel_later() -> None:
                        await anyio.sleep(plan.at)
                        fake.mark("cancel")
                        handle.cancel()

                    tg.start_soon(cancel_later)
                    result = await handle.wait()
                    tg.cancel_scope.cancel()
                return result
            if plan.source == "scope":
                with anyio.CancelScope() as scope:
                    async with anyio.create_task_group() as tg:

                        async def cancel_scope_later() -> None:
                            await anyio.sleep(plan.at)
                            fake.mark("cancel")
                            scope.cancel()

                        tg.start_soon(cancel_scope_later)
                        await queue.run()
                        tg.cancel_scope.cancel()
                return queue.result
            return await queue.run()

    async def run(self, sc: Scenario) -> Outcome:
        store = MemoryStore()
        resumed: frozenset[ExecutionKey] = frozenset()
        limits = sc.limits
        if sc.max_cost is not None:
            # A budget needs a bound on an execution's seconds (the price charges them).
            timeout = limits.attempt_timeout or 6.0
            limits = evolve(limits, max_cost=sc.max_cost, attempt_timeout=timeout)
        if sc.resume_after is not None:
            first: list[Event] = []
            await self.once(
                sc,
                store,
                FakeExecutor(sc.script),
                CancelPlan("handle", sc.resume_after),
                limits,
                first,
                RegionQueue,
            )
            resumed = frozenset(await store.completed_keys(sc.spec.id))
        if sc.plan.source == "deadline":
            limits = evolve(limits, job_timeout=max(sc.plan.at, 0.001))
        fake = FakeExecutor(sc.script)
        events: list[Event] = []
        result = await self.once(sc, store, fake, sc.plan, limits, events, self.queue_cls)
        records = await store.records(sc.spec.id)
        return Outcome(sc, limits, events, records, fake.log, result, resumed)


def run_scenario(sc: Scenario, backend: str, queue_cls: type[RegionQueue] = RegionQueue) -> Outcome:
    """Run a scenario on virtual time on ``backend``."""
    return run_virtual(_Runner(queue_cls).run, sc, backend=backend)
