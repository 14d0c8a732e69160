"""The scheduler's invariants hold with the fleet guards on, as hypothesis properties.

The same random jobs, faults, limits, strategies and cancellations as
``test_scheduler_invariants.py``, run with adaptive concurrency, a circuit breaker that trips
after two failures of a kind, a cost model and (often) a spending budget, on asyncio and trio.
Each test checks one invariant with ``beacon_orchestrator.testing.find_violations``, and one
more checks what the guards themselves promise: the budget is never passed, and an execution
the breaker refused reached no endpoint.
"""

from __future__ import annotations

import pytest
from hypothesis import given

from beacon_orchestrator import ENDPOINT_DOWN, ExecutionStatus
from beacon_orchestrator.testing import InvariantName

from .scheduling_harness import CANCELLING, Scenario, run_scenario, scenarios

BACKENDS = [pytest.param("asyncio", id="asyncio"), pytest.param("trio", id="trio")]


def _check(sc: Scenario, backend: str, invariant: InvariantName) -> None:
    out = run_scenario(sc, backend)
    assert out.violations(invariant) == []


@pytest.mark.parametrize("backend", BACKENDS)
@given(sc=scenarios(sources=CANCELLING, resume=None, fleet=True))
def test_no_start_after_cancel_with_the_fleet_guards(backend: str, sc: Scenario) -> None:
    """Invariant 1 with the guards on: no executor call begins once cancellation is requested."""
    _check(sc, backend, "no_start_after_cancel")


@pytest.mark.parametrize("backend", BACKENDS)
@given(sc=scenarios(resume=None, fleet=True))
def test_everything_accounted_for_with_the_fleet_guards(backend: str, sc: Scenario) -> None:
    """Invariant 2 with the guards on (a budget stop included): every key has one record."""
    _check(sc, backend, "everything_accounted_for")


@pytest.mark.parametrize("backend", BACKENDS)
@given(sc=scenarios(resume=None, fleet=True))
def test_verdict_last_with_the_fleet_guards(backend: str, sc: Scenario) -> None:
    """Invariant 3 with the guards on: the verdict comes once, last, counting every key."""
    _check(sc, backend, "verdict_last")


@pytest.mark.parametrize("backend", BACKENDS)
@given(sc=scenarios(resume=True, fleet=True))
def test_no_duplicates_with_the_fleet_guards(backend: str, sc: Scenario) -> None:
    """Invariant 4 with the guards on: each key runs at most once per run, never again once done."""
    _check(sc, backend, "no_duplicates")


@pytest.mark.parametrize("backend", BACKENDS)
@given(sc=scenarios(resume=None, fleet=True))
def test_order_with_the_fleet_guards(backend: str, sc: Scenario) -> None:
    """Invariant 5 with the guards on: each strategy's order holds whatever the limits do."""
    _check(sc, backend, "order")


@pytest.mark.parametrize("backend", BACKENDS)
@given(sc=scenarios(resume=None, fleet=True))
def test_bounds_with_the_fleet_guards(backend: str, sc: Scenario) -> None:
    """Invariant 6 with the guards on: adaptive limits stay within max_concurrency, per_region
    and per_endpoint."""
    _check(sc, backend, "bounds")


@pytest.mark.parametrize("backend", BACKENDS)
@given(sc=scenarios(sources=CANCELLING, fleet=True))
def test_bounded_stop_with_the_fleet_guards(backend: str, sc: Scenario) -> None:
    """Invariant 7 with the guards on: in-flight work ends within cancel_grace after a cancel."""
    _check(sc, backend, "bounded_stop")


@pytest.mark.parametrize("backend", BACKENDS)
@given(sc=scenarios(resume=None, fleet=True))
def test_spend_never_passes_the_budget_and_refused_executions_send_nothing(
    backend: str, sc: Scenario
) -> None:
    """The guards' own promises: what the records cost stays within max_cost, a key skipped
    for the budget says so, and an ENDPOINT_DOWN record had no attempt."""
    out = run_scenario(sc, backend)
    spent = sum(r.cost or 0.0 for r in out.records)
    if sc.max_cost is not None:
        assert spent <= sc.max_cost + 1e-9
    sent = {c.key for c in out.log if c.kind == "start"}
    for r in out.records:
        if r.error_code == ENDPOINT_DOWN:
            assert r.status is ExecutionStatus.FAILED
            assert r.attempts == 0
            assert r.key not in sent
    if out.result is not None and out.result.cancelled_by == "budget":
        assert "max_cost" in out.result.reason
        skipped = [r for r in out.records if r.status is ExecutionStatus.SKIPPED]
        assert all("max_cost" in (r.error_message or "") for r in skipped)
