"""The invariants of DESIGN §4 as hypothesis properties, one test per invariant.

Each test draws a random job (1-6 regions, 1-6 models, 1-10 questions; the last test 2-4
samples of each cell), random latencies,
failures, crashes and hangs, limits, a retry policy, one of the three strategies and a
cancellation from any source at a random moment, runs it on virtual time on asyncio and on trio,
and checks its invariant with ``beacon_orchestrator.testing.find_violations``.
``test_invariant_tests_can_fail.py`` shows each of these catches a scheduler broken on purpose.
"""

from __future__ import annotations

import pytest
from hypothesis import given

from .scheduling_harness import CANCELLING, Scenario, run_scenario, scenarios

BACKENDS = [pytest.param("asyncio", id="asyncio"), pytest.param("trio", id="trio")]


@pytest.mark.parametrize("backend", BACKENDS)
@given(sc=scenarios(sources=CANCELLING, resume=None))
def test_no_start_after_cancel(backend: str, sc: Scenario) -> None:
    """Invariant 1: once cancellation is requested (handle, deadline, caller's scope, early stop),
    no executor call begins, neither a first attempt nor a retry."""
    out = run_scenario(sc, backend)
    assert out.violations("no_start_after_cancel") == []


@pytest.mark.parametrize("backend", BACKENDS)
@given(sc=scenarios(resume=None))
def test_everything_accounted_for(backend: str, sc: Scenario) -> None:
    """Invariant 2: when a job ends for any reason, every planned key has exactly one terminal
    record in the store and exactly one ExecutionFinished event."""
    out = run_scenario(sc, backend)
    assert out.violations("everything_accounted_for") == []


@pytest.mark.parametrize("backend", BACKENDS)
@given(sc=scenarios(resume=None))
def test_verdict_last(backend: str, sc: Scenario) -> None:
    """Invariant 3: the verdict (JobFinished) is emitted once, last, after every started execution
    is terminal and stored, and it counts every planned key."""
    out = run_scenario(sc, backend)
    assert out.violations("verdict_last") == []


@pytest.mark.parametrize("backend", BACKENDS)
@given(sc=scenarios(resume=True))
def test_no_duplicates(backend: str, sc: Scenario) -> None:
    """Invariant 4: each key is executed at most once per run (attempts numbered 1, 2, ...), and a
    resumed job never re-executes a key already COMPLETED in the store."""
    out = run_scenario(sc, backend)
    assert out.violations("no_duplicates") == []


@pytest.mark.parametrize("backend", BACKENDS)
@given(sc=scenarios(resume=None))
def test_order(backend: str, sc: Scenario) -> None:
    """Invariant 5: under "endpoint" each endpoint starts its questions in order; under "region" no
    execution of question n+1 starts in a region before all of question n there are terminal;
    under "lockstep" likewise across all regions."""
    out = run_scenario(sc, backend)
    assert out.violations("order") == []


@pytest.mark.parametrize("backend", BACKENDS)
@given(sc=scenarios(resume=None))
def test_bounds(backend: str, sc: Scenario) -> None:
    """Invariant 6: in flight never exceeds max_concurrency, per_region or per_endpoint."""
    out = run_scenario(sc, backend)
    assert out.violations("bounds") == []


@pytest.mark.parametrize("backend", BACKENDS)
@given(sc=scenarios(sources=CANCELLING))
def test_bounded_stop(backend: str, sc: Scenario) -> None:
    """Invariant 7: after cancellation every in-flight execution ends within cancel_grace (at once
    when it is 0), and no executor call is left running."""
    out = run_scenario(sc, backend)
    assert out.violations("bounded_stop") == []


@pytest.mark.parametrize("backend", BACKENDS)
@given(sc=scenarios(resume=None, max_questions=5, min_samples=2, max_samples=4))
def test_every_invariant_holds_with_several_samples_per_cell(backend: str, sc: Scenario) -> None:
    """Invariants 1-7 with 2-4 samples of each cell: each sample is an execution of its own, so
    no sample starts after cancel, every sample has one record and one ExecutionFinished, the
    verdict counts every sample, no sample runs twice (nor again on resume), an endpoint runs a
    question's samples in order before the next question (a group waits for each sample), and
    the bounds and the bounded stop hold."""
    assert sc.spec.samples >= 2
    out = run_scenario(sc, backend)
    assert out.violations() == []
