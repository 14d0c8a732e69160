"""The numbers behind ``beacon plan``: each endpoint's share, and each strategy's makespan.

The makespans come from the real scheduler, run on a virtual clock against a
:class:`~beacon_orchestrator.testing.FakeExecutor` that answers every execution after its
endpoint's assumed latency, with a :class:`~beacon_orchestrator.stores.MemoryStore` holding a
copy of what the store already has: the plan cannot disagree with what a run would do. All of
it is synchronous to call; the simulation runs in its own event loop on virtual time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import anyio
from attrs import evolve, frozen

from .._errors import SpecError, UsageError
from .._retry import RetryPolicy
from .._scheduler import STRATEGIES, RunOptions, Strategy, run_job
from .._spec import JobSpec, Limits, normalize_region
from .._types import Endpoint, ExecutionRecord, ExecutionStatus
from ..stores import MemoryStore
from ._locations import StoreLocation

__all__ = [
    "DEFAULT_STRATEGY",
    "EndpointPlan",
    "Estimate",
    "JobPlan",
    "endpoint_plans",
    "estimate",
    "parse_latencies",
]

DEFAULT_STRATEGY: Strategy = "endpoint"
"""The strategy ``beacon run`` uses unless ``--strategy`` says otherwise."""
_FAILURES = frozenset({ExecutionStatus.FAILED, ExecutionStatus.TIMEOUT})


@frozen
class EndpointPlan:
    """One endpoint's share of a job.

    Attributes:
        endpoint: The model and region.
        latency: Assumed seconds per execution.
        executions: Executions planned (one per question and sample).
        completed: Of those, completed in the store (never run again).
        kept: Failed or timed out in the store and kept (``--keep-failed``).
    """

    endpoint: Endpoint
    latency: float
    executions: int
    completed: int = 0
    kept: int = 0

    @property
    def to_run(self) -> int:
        """Executions a run would start."""
        return self.executions - self.completed - self.kept


@frozen
class Estimate:
    """What the scheduler did with one strategy on the virtual clock.

    Attributes:
        strategy: The strategy.
        makespan: Seconds from start to verdict.
        started: Executions started (each answers at its first attempt unless it timed out).
        counts: Records per status at the end, the store's earlier ones included.
    """

    strategy: Strategy
    makespan: float
    started: int
    counts: Mapping[ExecutionStatus, int]

    def shortfall(self, to_run: int, completed_before: int) -> str:
        """Why not every execution to run completes (a limit cut it short), or ``""``."""
        done = self.counts.get(ExecutionStatus.COMPLETED, 0) - completed_before
        if done >= to_run:
            return ""
        parts = [
            f"{n} {status.value}"
            for status in (ExecutionStatus.TIMEOUT, ExecutionStatus.SKIPPED)
            if (n := self.counts.get(status, 0))
        ]
        return "not all complete: " + ", ".join(parts or [f"{to_run - done} not completed"])


@frozen
class JobPlan:
    """A job's plan: its endpoints, what the store holds and the estimate of each strategy."""

    spec: JobSpec
    limits: Limits
    latency: float
    endpoints: tuple[EndpointPlan, ...]
    estimates: tuple[Estimate, ...]
    store_path: StoreLocation
    store_exists: bool
    stored: bool

    @property
    def completed(self) -> int:
        """Executions already completed in the store."""
        return sum(e.completed for e in self.endpoints)

    @property
    def kept(self) -> int:
        """Failed or timed-out executions a run keeps (``--keep-failed``)."""
        return sum(e.kept for e in self.endpoints)

    @property
    def to_run(self) -> int:
        """Executions a run would start."""
        return sum(e.to_run for e in self.endpoints)


# -- inputs ---------------------------------------------------------------------------------------


def parse_latencies(spec: JobSpec, default: float, values: Sequence[str]) -> dict[Endpoint, float]:
    """The latency of every endpoint: ``default``, or a ``MODEL@REGION=SECONDS`` override.

    Raises:
        UsageError: Naming ``--endpoint-latency`` and the value, for a malformed pair, an
            endpoint the job does not have, or a time that is not a positive number.
    """
    latencies = dict.fromkeys(spec.endpoints, default)
    for value in values:
        where, sep, seconds = value.rpartition("=")
        model, at, region = where.partition("@")
        if not sep or not at or not model.strip() or not region.strip():
            raise UsageError(
                f"--endpoint-latency expects MODEL@REGION=SECONDS, got {value!r} "
                "(e.g. llama3.2-1b@us-east=45)"
            )
        endpoint = Endpoint(model.strip(), _region(region.strip(), value))
        if endpoint not in latencies:
            known = ", ".join(map(str, spec.endpoints))
            raise UsageError(
                f"--endpoint-latency {value!r}: the job has no endpoint {str(endpoint)!r} "
                f"(it has: {known})"
            )
        latencies[endpoint] = _seconds(seconds, value)
    return latencies


def _region(name: str, value: str) -> str:
    try:
        return normalize_region(name)
    except SpecError as exc:
        problem = "; ".join(p.message for p in exc.problems)
        raise UsageError(f"--endpoint-latency {value!r}: unknown region: {problem}") from None


def _seconds(text: str, value: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < float("inf"):
        raise UsageError(
            f"--endpoint-latency {value!r}: expected a positive number of seconds, got {text!r}"
        )
    return seconds


# -- the estimate ---------------------------------------------------------------------------------


async def _simulate(
    spec: JobSpec,
    stored: Sequence[ExecutionRecord],
    options: RunOptions,
    latencies: Mapping[Endpoint, float],
) -> Estimate:
    from ..testing import FakeExecutor, Step

    # The simulated executor ignores generation parameters; without them the simulation does
    # not log what only a real run should (several samples at temperature 0), once per strategy.
    spec = evolve(spec, params={})
    store = MemoryStore()
    if stored:
        await store.open_job(spec)
        for record in stored:
            await store.write(spec.id, record)
    steps = {endpoint: Step(latency=seconds) for endpoint, seconds in latencies.items()}
    fake = FakeExecutor(lambda request: steps[request.key.endpoint])
    started = anyio.current_time()
    result = await run_job(spec, fake, store=store, options=options)
    makespan = anyio.current_time() - started
    first_attempts = sum(1 for call in fake.starts() if call.attempt == 1)
    return Estimate(options.strategy, makespan, first_attempts, dict(result.counts))


def estimate(
    spec: JobSpec,
    stored: Sequence[ExecutionRecord],
    latencies: Mapping[Endpoint, float],
    *,
    limits: Limits | None = None,
    rerun_failed: bool = True,
) -> tuple[Estimate, ...]:
    """Run ``spec`` with each strategy on a virtual clock, the store holding ``stored``.

    Every execution answers after its endpoint's latency; none fails, so none is retried
    unless the attempt timeout cuts it. Retries (if any) wait without jitter, so the figures
    are the same every time.

    Args:
        spec: The job.
        stored: The records the store already holds for it (a resume keeps what they allow).
        latencies: Seconds per execution on each endpoint of the job.
        limits: The limits to run under (default: the job's).
        rerun_failed: Whether failed and timed-out records run again.
    """
    from ..testing import run_virtual

    base = RunOptions(limits=limits, rerun_failed=rerun_failed, retry=RetryPolicy(wait_jitter=0.0))

    async def main() -> tuple[Estimate, ...]:
        return tuple(
            [
                await _simulate(spec, stored, evolve(base, strategy=strategy), latencies)
                for strategy in STRATEGIES
            ]
        )

    return run_virtual(main)


def endpoint_plans(
    spec: JobSpec,
    stored: Sequence[ExecutionRecord],
    latencies: Mapping[Endpoint, float],
    rerun_failed: bool,
) -> tuple[EndpointPlan, ...]:
    """Each endpoint's executions, and what of them ``stored`` completed or keeps."""
    completed = dict.fromkeys(spec.endpoints, 0)
    kept = dict.fromkeys(spec.endpoints, 0)
    for record in stored:
        endpoint = record.key.endpoint
        if endpoint not in completed:
            continue
        if record.status is ExecutionStatus.COMPLETED:
            completed[endpoint] += 1
        elif record.status in _FAILURES and not rerun_failed:
            kept[endpoint] += 1
    return tuple(
        EndpointPlan(e, latencies[e], len(spec.questions) * spec.samples, completed[e], kept[e])
        for e in spec.endpoints
    )
