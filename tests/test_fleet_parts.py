"""The fleet guards' synchronous parts, without an event loop: the adaptive limit, the circuit
breaker, the cost model, the budget and the picker's per-endpoint limits."""

from __future__ import annotations

import math

import pytest

from beacon_orchestrator import (
    AdaptiveConcurrency,
    CircuitBreaker,
    CostModel,
    Endpoint,
    JobSpec,
    Limits,
    ModelTarget,
    Price,
    Question,
    SpecError,
    TransientError,
    Usage,
    UsageError,
)
from beacon_orchestrator._scheduler._adaptive import AimdLimit, is_overload
from beacon_orchestrator._scheduler._breaker import BreakerState, EndpointBreaker
from beacon_orchestrator._scheduler._budget import Budget, worst_case_seconds
from beacon_orchestrator._scheduler._picker import Picker
from beacon_orchestrator._scheduler._plan import Plan

SPEC = JobSpec(
    id="parts",
    questions=[Question(f"q{i}", "x" * 10) for i in range(6)],
    models=[ModelTarget("m", ["us-east", "eu-west"])],
    params={"max_tokens": 100},
)

# -- adaptive concurrency ---------------------------------------------------------------------


def test_the_limit_doubles_per_round_trip_until_the_first_overload_then_grows_by_one() -> None:
    aimd = AimdLimit(AdaptiveConcurrency(), ceiling=64)
    assert aimd.limit == 1
    t = 0.0
    for expected in (2, 4, 8):
        for _ in range(aimd.limit):
            aimd.answered(t, t + 1.0, in_flight=aimd.limit)
        t += 1.0
        assert aimd.limit == expected
    assert aimd.overloaded(t, t + 0.1)
    assert aimd.limit == 5  # 8 x 0.7
    aimd.plateau = None  # growth near the old overload is slower; see the next test
    for _ in range(5):
        aimd.answered(t + 1, t + 2, in_flight=aimd.limit)
    assert aimd.limit == 6  # one per round trip of five answers


def test_the_limit_stays_within_one_and_the_ceiling() -> None:
    aimd = AimdLimit(AdaptiveConcurrency(initial=8), ceiling=3)
    assert aimd.limit == 3
    for i in range(50):
        aimd.answered(i, i + 1.0, in_flight=3)
    assert aimd.limit == 3
    for i in range(50):
        aimd.overloaded(100.0 + i, 100.5 + i)
    assert aimd.limit == 1


def test_overloads_of_attempts_sent_before_the_last_decrease_do_not_lower_it_again() -> None:
    aimd = AimdLimit(AdaptiveConcurrency(initial=10), ceiling=10)
    assert aimd.overloaded(0.0, 5.0)
    assert aimd.limit == 7
    assert not aimd.overloaded(1.0, 5.5)  # under way when the limit came down
    assert aimd.limit == 7
    assert aimd.overloaded(6.0, 7.0)
    assert aimd.limit == 4


def test_growth_back_to_the_last_overloads_limit_is_patience_times_slower() -> None:
    aimd = AimdLimit(AdaptiveConcurrency(initial=3, patience=10.0), ceiling=16)
    aimd.overloaded(0.0, 1.0)  # at 3: down to 2, plateau 3
    assert (aimd.limit, aimd.plateau) == (2, 3)
    answers = 0
    while aimd.limit < 3:
        aimd.answered(2.0, 3.0, in_flight=aimd.limit)
        answers += 1
    assert answers >= 10  # not every other answer, as plain additive increase would
    for _ in range(200):
        aimd.answered(2.0, 3.0, in_flight=aimd.limit)
    assert aimd.limit > 3  # past the old overload: normal growth
    assert aimd.plateau is None


def test_an_idle_endpoint_does_not_grow_its_limit() -> None:
    aimd = AimdLimit(AdaptiveConcurrency(initial=4), ceiling=16)
    for i in range(20):
        assert not aimd.answered(i, i + 1.0, in_flight=2)
    assert aimd.limit == 4


def test_an_answer_that_queued_or_came_far_slower_than_the_median_is_an_overload() -> None:
    aimd = AimdLimit(AdaptiveConcurrency(initial=4, min_samples=3), ceiling=8)
    # The provider says it ran 10 s; it took 20 s: it waited 10 s in the endpoint's queue.
    assert aimd.answered(0.0, 20.0, in_flight=4, served=10.0)
    assert aimd.limit == 2
    slow = AimdLimit(AdaptiveConcurrency(initial=4, min_samples=3), ceiling=8)
    for i in range(3):
        slow.answered(10.0 * i, 10.0 * i + 2.0, in_flight=1)
    assert slow.answered(100.0, 107.0, in_flight=1)  # 7 s > 3 x the 2 s median
    assert slow.limit == 2


def test_overload_signals_are_429_503_queue_full_and_any_retry_after() -> None:
    assert is_overload(TransientError("busy", code="HTTP_429"))
    assert is_overload(TransientError("busy", code="HTTP_503"))
    assert is_overload(TransientError("full", code="MODAL_QUEUE_FULL"))
    assert is_overload(TransientError("wait", code="WHATEVER", retry_after=3.0))
    assert not is_overload(TransientError("boom", code="HTTP_500"))
    assert not is_overload(RuntimeError("bug"))


def test_adaptive_settings_out_of_range_name_the_field() -> None:
    with pytest.raises(SpecError, match="decrease"):
        AdaptiveConcurrency(decrease=1.0)
    with pytest.raises(SpecError, match="initial"):
        AdaptiveConcurrency(initial=0)
    with pytest.raises(SpecError, match="rate"):
        CircuitBreaker(rate=0.0)
    with pytest.raises(SpecError, match="latency_factor"):
        AdaptiveConcurrency(latency_factor=math.nan)


# -- circuit breaker --------------------------------------------------------------------------


def state(b: EndpointBreaker) -> BreakerState:
    """Read afresh (mypy would narrow ``b.state`` across calls that change it)."""
    return b.state


def test_the_breaker_opens_after_a_run_of_the_same_failure_then_probes_once() -> None:
    b = EndpointBreaker(CircuitBreaker(failures=3, cool_down=10.0, probes=2))
    assert not b.failed("HTTP_500", 1.0)
    assert not b.failed("TIMEOUT", 2.0)  # another kind: the run starts again
    assert not b.failed("HTTP_500", 3.0)
    assert not b.failed("HTTP_500", 4.0)
    assert b.failed("HTTP_500", 5.0)
    assert state(b) is BreakerState.OPEN
    assert not b.may_send(14.9)  # cooling down
    assert b.may_send(15.0)  # the probe
    assert state(b) is BreakerState.HALF_OPEN
    assert not b.may_send(15.0)  # one probe at a time
    assert b.succeeded()
    assert state(b) is BreakerState.CLOSED
    assert b.may_send(16.0)


def test_the_breaker_gives_up_after_its_probes_fail() -> None:
    b = EndpointBreaker(CircuitBreaker(failures=1, cool_down=5.0, probes=2))
    assert b.failed("HTTP_500", 0.0)
    assert b.may_send(5.0)
    assert b.failed("HTTP_500", 6.0)
    assert state(b) is BreakerState.OPEN
    assert b.may_send(11.0)
    assert b.failed("HTTP_500", 12.0)
    assert state(b) is BreakerState.DOWN
    assert not b.may_send(1e9)
    assert not b.failed("HTTP_500", 1e9)  # nothing changes a down endpoint


def test_a_failure_rate_over_the_window_opens_it_whatever_the_codes() -> None:
    b = EndpointBreaker(CircuitBreaker(failures=100, rate=0.5, window=4))
    assert not b.failed("HTTP_500", 0.0)
    assert not b.succeeded()
    assert not b.failed("TIMEOUT", 1.0)  # 2 of 3: the window is not full yet
    assert b.failed("HTTP_502", 2.0)  # 3 of the last 4 failed
    assert state(b) is BreakerState.OPEN
    never = EndpointBreaker(CircuitBreaker(failures=100))
    assert not any(never.failed(f"E{i % 3}", float(i)) for i in range(50))


def test_a_success_resets_the_run_of_failures() -> None:
    b = EndpointBreaker(CircuitBreaker(failures=2))
    b.failed("HTTP_500", 0.0)
    b.succeeded()
    assert not b.failed("HTTP_500", 1.0)
    assert state(b) is BreakerState.CLOSED


# -- cost model and budget --------------------------------------------------------------------


def test_cost_is_per_second_tokens_and_request_or_the_providers_own() -> None:
    model = CostModel(
        default=Price(per_second=0.01, per_1k_tokens_in=1.0, per_1k_tokens_out=2.0),
        models={"big": Price(per_second=1.0)},
        endpoints={"big@eu-west": Price(per_request=5.0)},
    )
    ep = Endpoint("m", "us-east")
    usage = Usage(tokens_in=500, tokens_out=1000, inference_seconds=10.0)
    assert model.cost(ep, usage, seconds=99.0, attempts=1) == pytest.approx(0.1 + 0.5 + 2.0)
    assert model.cost(ep, None, seconds=20.0, attempts=2) == pytest.approx(0.2)
    assert model.cost(Endpoint("big", "us-east"), None, seconds=3.0, attempts=1) == 3.0
    assert model.cost(Endpoint("big", "eu-west"), None, seconds=3.0, attempts=2) == 10.0
    reported = Usage(provider_cost=0.42, inference_seconds=10.0)
    assert model.cost(ep, reported, seconds=1.0, attempts=1) == 0.42
    distrust = CostModel(default=Price(per_second=0.01), trust_provider=False)
    assert distrust.cost(ep, reported, seconds=1.0, attempts=1) == pytest.approx(0.1)


def test_the_worst_case_is_every_attempt_at_its_timeout_and_max_tokens() -> None:
    model = CostModel(default=Price(per_second=0.01, per_1k_tokens_out=1.0, per_request=0.5))
    worst = model.worst_case(
        Endpoint("m", "r"), attempts=3, seconds=30.0, prompt_chars=10, max_tokens=100
    )
    assert worst == pytest.approx(3 * (0.5 + 0.1) + 0.3)
    assert math.isinf(
        model.worst_case(Endpoint("m", "r"), attempts=1, seconds=None, prompt_chars=0, max_tokens=1)
    )
    limits = Limits(attempt_timeout=10.0, cold_start_timeout=100.0, job_timeout=50.0)
    assert worst_case_seconds(limits, 3) == 50.0  # the job's deadline bounds it
    assert worst_case_seconds(Limits(attempt_timeout=10.0, cold_start_timeout=100.0), 3) == 120.0
    assert worst_case_seconds(Limits(attempt_timeout=None), 3) is None


def test_the_budget_holds_the_worst_case_of_what_is_in_flight() -> None:
    plan = Plan(SPEC, "endpoint", set())
    e = plan.endpoints[0]
    budget = Budget(1.0, dict.fromkeys(plan.endpoints, 0.4))
    assert budget.affordable(e)
    budget.reserve(e)
    budget.reserve(e)
    assert not budget.affordable(e)  # 0.8 held + 0.4 > 1.0
    budget.settle(e, 0.1)  # it cost less than its worst case
    assert budget.affordable(e)
    assert budget.spent == pytest.approx(0.1)
    assert "max_cost 1" in budget.reason()


def test_a_budget_without_a_cost_model_or_a_bound_on_seconds_is_refused() -> None:
    plan = Plan(SPEC, "endpoint", set())
    limits = Limits(max_cost=1.0)
    with pytest.raises(UsageError, match="max_cost 1 but the run has no cost model"):
        Budget.for_run(SPEC, limits, None, endpoints=plan.endpoints, attempts=1)
    per_second = CostModel(default=Price(per_second=1.0))
    unbounded = Limits(max_cost=1.0, attempt_timeout=None)
    with pytest.raises(UsageError, match="m@us-east per second"):
        Budget.for_run(SPEC, unbounded, per_second, endpoints=plan.endpoints, attempts=1)
    assert Budget.for_run(SPEC, Limits(), per_second, endpoints=plan.endpoints, attempts=1) is None


def test_bad_prices_and_usage_name_the_field() -> None:
    with pytest.raises(SpecError, match="per_second"):
        Price(per_second=-1.0)
    with pytest.raises(SpecError, match="tokens_out"):
        Usage(tokens_out=1.5)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="price of 'm' must be a Price"):
        CostModel(models={"m": 1.0})  # type: ignore[dict-item]
    with pytest.raises(SpecError, match=r"limits\.max_cost"):
        Limits(max_cost=0.0)


# -- the picker's limits ----------------------------------------------------------------------


def test_a_limit_of_zero_stops_an_endpoint_and_raising_it_queues_the_endpoint_again() -> None:
    plan = Plan(SPEC, "endpoint", set())
    picker = Picker(plan, per_endpoint=2, per_region=None, unstarted=plan.size)
    us, eu = plan.endpoints
    picker.set_limit(us, 0)
    picked = picker.pick()
    assert picked is eu
    picker.start(eu)
    assert picker.pick() is eu  # its second slot
    picker.start(eu)
    assert picker.pick() is None
    assert picker.set_limit(us, 1)
    assert picker.pick() is us


def test_an_endpoint_the_budget_cannot_hold_waits_for_an_execution_to_end() -> None:
    plan = Plan(SPEC, "endpoint", set())
    budget = Budget(1.0, dict.fromkeys(plan.endpoints, 0.6))
    picker = Picker(plan, per_endpoint=1, per_region=None, unstarted=plan.size, budget=budget)
    e = picker.pick()
    assert e is not None
    picker.start(e)
    assert picker.pick() is None  # the other endpoint's worst case does not fit
    assert not picker.over_budget  # something is in flight: its end may free room
    budget.settle(e, 0.1)
    picker.release(e)
    assert picker.pick() is not None
    budget.spent = 0.9
    picker2 = Picker(plan, per_endpoint=1, per_region=None, unstarted=plan.size, budget=budget)
    assert picker2.pick() is None
    assert picker2.over_budget  # nothing in flight, nothing fits: the run stops
