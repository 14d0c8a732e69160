"""Evidence that the invariant property tests can fail.

For every invariant of DESIGN §4 a scheduler is broken on purpose in the way that invariant
guards against (the checks of the production failures: the cancellation check removed, the
barrier removed, the verdict computed before the last records, ...), and hypothesis must find a
scenario in which ``find_violations`` reports exactly that invariant. If a mutant survives, the
corresponding property test in ``test_scheduler_invariants.py`` could not have caught the bug.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator, Sequence
from types import FrameType

import pytest
from hypothesis import HealthCheck, Phase, find, settings

from beacon_orchestrator import ExecutionKey, ExecutionRecord, RegionQueue
from beacon_orchestrator._events import CancelSource
from beacon_orchestrator._scheduler._resume import KeptKeys
from beacon_orchestrator.testing import InvariantName

from .scheduling_harness import CANCELLING, Scenario, run_scenario, scenarios


class NoStartCheck(RegionQueue):
    """The cancellation check before each start (and each retry) is removed."""

    def _may_start(self) -> bool:
        return True


class NoSkippedRecords(RegionQueue):
    """Executions that never started get no record (production: 'pending forever')."""

    def _unstarted_keys(self) -> Iterator[tuple[ExecutionKey, object, int]]:  # type: ignore[override]
        return iter(())


class VerdictBeforeRecords(RegionQueue):
    """The verdict is computed and emitted before the last records are stored."""

    _deferred: list[tuple[ExecutionRecord, object, int]]

    async def _store_and_account(
        self, batch: Sequence[tuple[ExecutionRecord, object, int]]
    ) -> None:
        self._deferred = [*getattr(self, "_deferred", []), *batch]

    async def _finish(self) -> None:
        await super()._finish()
        deferred, self._deferred = self._deferred, []
        await RegionQueue._store_and_account(self, deferred)  # type: ignore[arg-type]


class ReexecutesCompleted(RegionQueue):
    """A resumed job forgets what the store already completed."""

    async def _kept_keys(self) -> KeptKeys:
        return KeptKeys([q.id for q in self.spec.questions])


class NoBarrier(RegionQueue):
    """Under "region"/"lockstep" the wait for the previous question is gone."""

    async def _prepare(self) -> None:
        await super()._prepare()
        for e in self._plan.endpoints:
            e.group = None
        self._plan.groups = []
        for e in self._plan.endpoints:
            self._picker.enqueue(e)


class IgnoresPerRegion(RegionQueue):
    """The per-region limit is not enforced."""

    async def _prepare(self) -> None:
        await super()._prepare()
        self._picker.per_region = None


class NoInterrupt(RegionQueue):
    """Cancellation stops new work but lets in-flight executions run on (zombie GPU work)."""

    def _request_cancel(self, source: CancelSource, reason: str) -> None:
        scope, self._workers_scope = self._workers_scope, None
        try:
            super()._request_cancel(source, reason)
        finally:
            self._workers_scope = scope


MUTANTS: list[tuple[InvariantName, type[RegionQueue], dict[str, object]]] = [
    ("no_start_after_cancel", NoStartCheck, {"sources": CANCELLING}),
    ("everything_accounted_for", NoSkippedRecords, {"sources": CANCELLING}),
    ("verdict_last", VerdictBeforeRecords, {"sources": CANCELLING}),
    ("no_duplicates", ReexecutesCompleted, {"resume": True, "sources": ("none",)}),
    ("order", NoBarrier, {"strategies": ("region", "lockstep")}),
    ("bounds", IgnoresPerRegion, {}),
    ("bounded_stop", NoInterrupt, {"sources": ("handle", "deadline", "early_stop")}),
]


class _Spinning(Exception):
    pass


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise _Spinning


SEARCH = settings(
    max_examples=500,
    database=None,
    deadline=None,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.parametrize(("invariant", "mutant", "options"), MUTANTS, ids=[m[0] for m in MUTANTS])
def test_invariant_test_catches_broken_scheduler(
    invariant: InvariantName, mutant: type[RegionQueue], options: dict[str, object]
) -> None:
    """Each invariant's property finds a counterexample against a scheduler that breaks it."""

    def broken(sc: Scenario) -> bool:
        # A broken scheduler may also spin without letting virtual time advance; a real-time
        # alarm turns that into a plain "not this scenario" instead of a hung test run.
        signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, 5.0)
        try:
            out = run_scenario(sc, "asyncio", mutant)
        except TimeoutError:
            # The mutant never stopped; for NoInterrupt that is the very bug being shown.
            return invariant == "bounded_stop"
        except _Spinning:
            return False
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        return bool(out.violations(invariant))

    counterexample = find(scenarios(**options), broken, settings=SEARCH)  # type: ignore[arg-type]
    # The real scheduler keeps the invariant on the very scenario that broke the mutant.
    assert run_scenario(counterexample, "asyncio").violations(invariant) == []


class SamplesAsOneKey(RegionQueue):
    """Every sample of a cell runs under its cell's key: the sample index is dropped."""

    async def _prepare(self) -> None:
        await super()._prepare()
        key = self._plan.key
        self._plan.key = lambda e, slot: key(e, slot).cell  # type: ignore[method-assign]


def test_the_invariant_tests_with_samples_catch_a_scheduler_that_drops_the_sample() -> None:
    """With several samples per cell, a scheduler that runs them all under one key breaks "no
    duplicates" (the same key executed again) and "everything accounted for"."""

    def broken(sc: Scenario) -> bool:
        out = run_scenario(sc, "asyncio", SamplesAsOneKey)
        return bool(out.violations("no_duplicates")) and bool(
            out.violations("everything_accounted_for")
        )

    options = {"min_samples": 2, "max_samples": 3, "sources": ("none",)}
    counterexample = find(scenarios(**options), broken, settings=SEARCH)  # type: ignore[arg-type]
    assert counterexample.spec.samples >= 2
    assert run_scenario(counterexample, "asyncio").violations() == []
