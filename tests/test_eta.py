"""The ETA is honest: within 25% of the time really left, once a quarter of the run is done.

Jobs run on virtual time with a FakeExecutor of known latencies; the progress is sampled every
tenth of a (virtual) second like a live display would, and the ETA of the first sample at which
a quarter of the run's executions have finished is compared with the time the job then really
took to end.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Unpack

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from beacon_orchestrator import (
    ExecutionRequest,
    JobSpec,
    Limits,
    MemoryStore,
    ModelTarget,
    Progress,
    Question,
    RetryPolicy,
    Strategy,
    start_job,
)
from beacon_orchestrator._scheduler import STRATEGIES
from beacon_orchestrator._scheduler._eta import _Mean
from beacon_orchestrator._scheduler._options import RunOptionArgs
from beacon_orchestrator.testing import FakeExecutor, Step, run_virtual

BACKENDS = [pytest.param("asyncio", id="asyncio"), pytest.param("trio", id="trio")]
TOLERANCE = 0.25
SAMPLE_EVERY = 0.1
REGIONS = ("us-east", "eu-west", "asia-pacific")


def job(models: Mapping[str, tuple[str, ...]], n_questions: int) -> JobSpec:
    return JobSpec(
        id="eta",
        questions=[Question(f"q{i:02d}", f"prompt {i}") for i in range(n_questions)],
        models=[ModelTarget(model, regions) for model, regions in models.items()],
    )


def per_endpoint(latency: Mapping[str, float]) -> FakeExecutor:
    """Every execution of endpoint ``model@region`` takes ``latency[model@region]`` seconds."""
    return FakeExecutor(lambda request: Step(latency=latency[str(request.key.endpoint)]))


def quarter_point(p: Progress, *, paced: int = 0) -> bool:
    """A quarter of the run is done, and each endpoint has run ``paced`` executions (or all)."""
    if p.eta is None or p.finished < p.planned_this_run / 4:
        return False
    return all(c.done - c.kept >= paced or c.done == c.total for c in p.by_endpoint.values())


async def _eta_at_quarter(
    spec: JobSpec,
    executor: FakeExecutor,
    *,
    store: MemoryStore | None = None,
    paced: int = 0,
    **options: Unpack[RunOptionArgs],
) -> tuple[float, float]:
    """The ETA when a quarter of the run is done, and the time the run then really took."""
    sample: tuple[float, float] | None = None
    async with anyio.create_task_group() as tg:
        handle = await start_job(tg, spec, executor, store=store, **options)
        while not handle.done:
            p = handle.progress()
            if sample is None and quarter_point(p, paced=paced):
                assert p.eta is not None
                sample = (anyio.current_time(), p.eta)
            await anyio.sleep(SAMPLE_EVERY)
        await handle.wait()
    assert sample is not None, "the job ended before a quarter of it was seen done"
    at, eta = sample
    return eta, anyio.current_time() - at


def eta_at_quarter(
    spec: JobSpec,
    executor: FakeExecutor,
    backend: str = "asyncio",
    **options: Unpack[RunOptionArgs],
) -> tuple[float, float]:
    async def main() -> tuple[float, float]:
        return await _eta_at_quarter(spec, executor, **options)

    return run_virtual(main, backend=backend)


def assert_close(eta: float, true: float) -> None:
    assert abs(eta - true) <= TOLERANCE * true, f"ETA {eta:.1f} s, really {true:.1f} s left"


# -- the shapes ------------------------------------------------------------------------------

ALL = {"llama": REGIONS, "qwen": REGIONS, "mistral": REGIONS[1:]}
# Seconds per execution of each of the 8 endpoints.
STEADY = dict(
    zip(
        [f"{m}@{r}" for m, regions in ALL.items() for r in regions],
        (0.5, 1.0, 2.0, 3.0, 1.5, 4.0, 2.5, 0.8),
        strict=True,
    )
)


@pytest.mark.parametrize("backend", BACKENDS)
def test_eta_of_a_job_of_uniform_latency(backend: str) -> None:
    spec = job(ALL, 24)
    assert_close(*eta_at_quarter(spec, FakeExecutor(default=Step(latency=2.0)), backend))


@pytest.mark.parametrize("backend", BACKENDS)
def test_eta_when_each_endpoint_has_its_own_latency(backend: str) -> None:
    """The slowest endpoint decides the end, not the overall rate."""
    assert_close(*eta_at_quarter(job(ALL, 24), per_endpoint(STEADY), backend))


@pytest.mark.parametrize("backend", BACKENDS)
def test_eta_with_per_region_limits(backend: str) -> None:
    """Endpoints of a region share its slots: the region's total work decides."""
    limits = Limits(per_region=2)
    assert_close(*eta_at_quarter(job(ALL, 24), per_endpoint(STEADY), backend, limits=limits))


@pytest.mark.parametrize("backend", BACKENDS)
def test_eta_with_several_slots_per_endpoint_and_a_job_wide_limit(backend: str) -> None:
    limits = Limits(per_endpoint=3, max_concurrency=12)
    assert_close(*eta_at_quarter(job(ALL, 30), per_endpoint(STEADY), backend, limits=limits))


@pytest.mark.parametrize("strategy", ["region", "lockstep"])
def test_eta_when_questions_advance_together(strategy: Strategy) -> None:
    """Each question waits for the slowest member of its group."""
    assert_close(*eta_at_quarter(job(ALL, 20), per_endpoint(STEADY), strategy=strategy))


def test_eta_with_random_latencies() -> None:
    """Latencies drawn at random between 1 and 3 s per execution."""
    fake = FakeExecutor.random(seed=11, latency=(1.0, 3.0))
    assert_close(*eta_at_quarter(job(ALL, 40), fake))


def test_eta_is_not_thrown_by_cold_starts() -> None:
    """Each endpoint's first execution takes ten times longer: a ramp-up, not the pace."""
    warm: set[str] = set()

    def cold_first(request: ExecutionRequest) -> Step:
        endpoint = str(request.key.endpoint)
        cold = endpoint not in warm
        warm.add(endpoint)
        return Step(latency=STEADY[endpoint] * (10.0 if cold else 1.0))

    async def main() -> tuple[float, float]:
        # Its first execution cannot tell a cold start from a slow endpoint; the second can.
        return await _eta_at_quarter(job(ALL, 40), FakeExecutor(cold_first), paced=2)

    assert_close(*run_virtual(main))


def test_eta_of_a_resumed_job_is_about_the_work_left_to_this_run() -> None:
    """A first run is cancelled part-way (endpoints having done more or less); the resume's
    ETA is about its own work, not the kept records'."""
    spec = job(ALL, 24)
    fake = per_endpoint(STEADY)

    async def main() -> tuple[float, float]:
        store = MemoryStore()
        async with anyio.create_task_group() as tg:
            first = await start_job(tg, spec, fake, store=store)
            await anyio.sleep(9.0)
            first.cancel()
            await first.wait()
        kept = len(await store.completed_keys(spec.id))
        assert 0 < kept < spec.size // 2
        return await _eta_at_quarter(spec, fake, store=store)

    assert_close(*run_virtual(main))


# -- the property ----------------------------------------------------------------------------


@st.composite
def steady_jobs(draw: st.DrawFn) -> tuple[JobSpec, dict[str, float], Strategy, Limits]:
    """Jobs whose endpoints each take a fixed time per execution, with any limits, except that
    under ``region`` and ``lockstep`` the members of a group do not queue for one another's
    slots (how a gated question packs onto too few slots depends on the order they start in,
    which the estimate does not model)."""
    regions = draw(st.lists(st.sampled_from(REGIONS), min_size=1, unique=True))
    n_models = draw(st.integers(1, 4))
    models = {
        f"m{i}": tuple(draw(st.lists(st.sampled_from(regions), min_size=1, unique=True)))
        for i in range(n_models)
    }
    spec = job(models, draw(st.integers(16, 30)))
    latency = {str(e): draw(st.sampled_from((0.5, 1.0, 2.0, 3.0, 5.0))) for e in spec.endpoints}
    strategy: Strategy = draw(st.sampled_from(STRATEGIES))
    per_region = draw(st.none() | st.integers(1, 3))
    max_concurrency = draw(st.none() | st.sampled_from((2, 4, 8)))
    if strategy != "endpoint":
        crowded = max(sum(1 for e in spec.endpoints if e.region == r) for r in regions)
        per_region = None if per_region is None else max(per_region, crowded)
        max_concurrency = None if max_concurrency is None else len(spec.endpoints)
    limits = Limits(
        per_endpoint=draw(st.integers(1, 3)),
        per_region=per_region,
        max_concurrency=max_concurrency,
    )
    return spec, latency, strategy, limits


@given(shape=steady_jobs())
def test_eta_is_within_a_quarter_of_the_truth_on_steady_jobs(
    shape: tuple[JobSpec, dict[str, float], Strategy, Limits],
) -> None:
    """Property: for a steady job (each endpoint a fixed latency) of any shape, strategy and
    limits (see ``steady_jobs``), once a quarter of it is done and every endpoint has finished
    an execution (before that an endpoint's pace is a guess), the ETA is within 25% of the time
    really left."""
    spec, latency, strategy, limits = shape

    async def main() -> tuple[float, float]:
        return await _eta_at_quarter(
            spec, per_endpoint(latency), paced=1, strategy=strategy, limits=limits
        )

    assert_close(*run_virtual(main))


# -- the edges -------------------------------------------------------------------------------


def test_eta_is_unknown_before_anything_finished_and_zero_at_the_end() -> None:
    spec = job({"m": ("us-east",)}, 2)

    async def main() -> list[float | None]:
        async with anyio.create_task_group() as tg:
            handle = await start_job(tg, spec, FakeExecutor(default=Step(latency=4.0)))
            seen = [handle.progress().eta]
            await anyio.sleep(5.0)
            seen.append(handle.progress().eta)
            await handle.wait()
        return [*seen, handle.progress().eta]

    before, midway, end = run_virtual(main)
    assert before is None
    assert midway == pytest.approx(3.0)  # the second execution has run 1 s of its 4
    assert end == 0.0


def test_eta_counts_down_while_nothing_finishes() -> None:
    spec = job({"m": ("us-east",)}, 3)

    async def main() -> list[float | None]:
        seen: list[float | None] = []
        async with anyio.create_task_group() as tg:
            handle = await start_job(tg, spec, FakeExecutor(default=Step(latency=10.0)))
            for at in (10.5, 12.0, 15.0, 19.0):
                await anyio.sleep_until(at)
                seen.append(handle.progress().eta)
            await handle.wait()
        return seen

    assert run_virtual(main) == pytest.approx([19.5, 18.0, 15.0, 11.0])


def test_retries_and_their_backoffs_count_in_the_pace() -> None:
    """Every execution fails once, waits 5 s and succeeds: each takes 1 + 5 + 1 = 7 s."""
    spec = job({"m": ("us-east",)}, 8)
    fake = FakeExecutor(
        lambda request: Step(latency=1.0, outcome="transient" if request.attempt == 1 else "ok")
    )
    retry = RetryPolicy(attempts=2, wait_initial=5.0, wait_max=5.0, wait_jitter=0.0)

    async def main() -> tuple[float | None, float]:
        async with anyio.create_task_group() as tg:
            handle = await start_job(tg, spec, fake, retry=retry)
            await anyio.sleep(7.5)
            eta, at = handle.progress().eta, anyio.current_time()
            await handle.wait()
        return eta, anyio.current_time() - at

    eta, true = run_virtual(main)
    assert true == pytest.approx(8 * 7.0 - 7.5)
    assert eta == pytest.approx(true)


# -- the recent mean, without an event loop ---------------------------------------------------


def feed(durations: list[float]) -> _Mean:
    mean, total = _Mean(), 0.0
    for n, d in enumerate(durations, 1):
        total += d
        mean.add(total, n)
    return mean


def test_a_cold_start_stands_for_the_pace_only_until_the_next_execution() -> None:
    assert feed([30.0]).seconds == 30.0
    assert feed([30.0, 3.0]).seconds == 3.0
    assert feed([30.0, 3.0, 5.0]).seconds == pytest.approx(4.0)


def test_a_first_execution_like_the_others_is_kept() -> None:
    assert feed([4.0, 3.0]).seconds == pytest.approx(3.5)


def test_the_mean_is_plain_at_first_then_follows_recent_executions() -> None:
    assert feed([2.0] * 4 + [4.0]).seconds == pytest.approx(2.4)  # a plain mean of five
    slowed = feed([2.0] * 50 + [4.0] * 10).seconds
    assert slowed is not None
    assert 3.5 < slowed < 4.0  # the last ten count most, the first fifty hardly


def test_several_executions_seen_at_once_weigh_as_several() -> None:
    one_by_one = feed([2.0] * 20 + [6.0, 6.0, 6.0])
    mean = feed([2.0] * 20)
    mean.add(40.0 + 18.0, 23)
    assert mean.seconds == pytest.approx(one_by_one.seconds)


def test_nothing_new_changes_nothing() -> None:
    mean = feed([2.0, 2.0])
    assert mean.add(4.0, 2) is False
    assert mean.seconds == 2.0
