"""Accounting that survives bugs: whatever raises inside the scheduler, every key gets a record.

An ``on_event`` callback that raised on ``ExecutionStarted`` used to leave the in-flight key with
no record while a FAILED verdict was stored. Now a callback raising at any event (by position
or by type), a status policy that raises, or a store that refuses a record all stop the job
like a cancellation: nothing new starts, every planned key ends with exactly one record, and
only then does the error reach the caller, unwrapped.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from attrs import define, field
from hypothesis import given
from hypothesis import strategies as st

from beacon_orchestrator import (
    Event,
    ExecutionFinished,
    ExecutionKey,
    ExecutionRecord,
    ExecutionStarted,
    ExecutionStatus,
    JobFinished,
    JobSpec,
    JobStarted,
    Limits,
    MemoryStore,
    MinSuccessRate,
    QuestionFinished,
    QuestionStarted,
    RetryPolicy,
    StoreError,
    Strategy,
    Tally,
    Verdict,
    run_job,
)
from beacon_orchestrator._scheduler._salvage import STORE_REFUSED
from beacon_orchestrator.testing import (
    FakeExecutor,
    Step,
    fault_scripts,
    find_violations,
    retry_policies,
    run_virtual,
    scheduling_limits,
    scheduling_specs,
)

from .stores.support import make_spec

BACKENDS = [pytest.param("asyncio", id="asyncio"), pytest.param("trio", id="trio")]
STRATEGIES: tuple[Strategy, ...] = ("endpoint", "region", "lockstep")
# Every run that is not cancelled emits each of these at least once.
EVENT_TYPES = (JobStarted, QuestionStarted, ExecutionStarted, ExecutionFinished, QuestionFinished)


class CallbackBug(Exception):
    """What the test's callback raises."""


@define
class RaisingCallback:
    """Collects every event; raises at the ``at``-th one, or at every event of type ``kind``."""

    at: int | None = None
    kind: type[Event] | None = None
    events: list[Event] = field(factory=list)
    raised: list[CallbackBug] = field(factory=list)

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        if len(self.events) - 1 == self.at or (self.kind is not None and type(event) is self.kind):
            bug = CallbackBug(f"dashboard down at event {len(self.events) - 1}")
            self.raised.append(bug)
            raise bug


@st.composite
def raising_callbacks(draw: st.DrawFn, spec: JobSpec) -> RaisingCallback:
    """A callback raising at a position every run reaches, or at every event of one type."""
    # JobStarted, JobFinished, and per key and per question a start and an end at least.
    fewest_events = 2 + 2 * spec.size + 2 * len(spec.questions)
    if draw(st.booleans()):
        return RaisingCallback(at=draw(st.integers(0, fewest_events - 1)))
    return RaisingCallback(kind=draw(st.sampled_from((*EVENT_TYPES, JobFinished))))


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_a_callback_raising_at_any_event_leaves_one_record_per_key_then_reaches_the_caller(
    backend: str, data: st.DataObject
) -> None:
    """Whatever event the ``on_event`` callback raises at, on asyncio and trio: every planned
    key has exactly one record in the store and one ``ExecutionFinished`` event, no execution
    starts after the callback raised, and ``run_job`` raises the callback's first exception."""
    spec = data.draw(scheduling_specs(max_questions=5, max_models=3, max_regions=3))
    strategy = data.draw(st.sampled_from(STRATEGIES))
    limits: Limits = data.draw(scheduling_limits())
    retry: RetryPolicy = data.draw(retry_policies())
    script = data.draw(fault_scripts(spec, hangs=limits.attempt_timeout is not None))
    callback = data.draw(raising_callbacks(spec))

    async def main() -> tuple[list[ExecutionRecord], FakeExecutor, BaseException]:
        store = MemoryStore()
        fake = FakeExecutor(script)

        def on_event(event: Event) -> None:
            try:
                callback(event)
            except CallbackBug:
                fake.mark("cancel")  # from here on, no execution may start
                raise

        with pytest.raises(CallbackBug) as info:
            await run_job(
                spec,
                fake,
                store=store,
                strategy=strategy,
                limits=limits,
                retry=retry,
                on_event=on_event,
            )
        (job,) = await store.jobs()
        assert job.status is not None, "no verdict was stored"
        assert job.lease is None, "the lease outlived the run"
        return await store.records(spec.id), fake, info.value

    records, fake, raised = run_virtual(main, backend=backend)
    assert raised is callback.raised[0], "run_job raised something else than the first bug"
    violations = find_violations(
        spec,
        callback.events,
        records,
        strategy=strategy,
        limits=limits,
        only=["everything_accounted_for"],
    )
    assert [str(v) for v in violations] == []
    first_raise = next(c.seq for c in fake.log if c.kind == "mark")
    late = [c for c in fake.log if c.kind == "start" and c.seq > first_raise]
    assert late == [], f"{len(late)} executions started after the callback raised"


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_callback_raising_on_execution_started_leaves_that_key_cancelled_unsent(
    backend: str,
) -> None:
    """The attacker's case: the key whose ExecutionStarted raised has a CANCELLED record, and
    the executor never received it."""
    spec = make_spec(questions=2, models=1)

    async def main() -> tuple[list[ExecutionRecord], FakeExecutor, list[Event]]:
        store, fake = MemoryStore(), FakeExecutor(default=Step(latency=1.0))
        callback = RaisingCallback(kind=ExecutionStarted)
        with pytest.raises(CallbackBug):
            await run_job(spec, fake, store=store, on_event=callback)
        return await store.records(spec.id), fake, callback.events

    records, fake, events = run_virtual(main, backend=backend)
    first = next(e for e in events if isinstance(e, ExecutionStarted))
    by_key = {r.key: r for r in records}
    assert len(records) == spec.size == len(by_key)
    assert by_key[first.key].status is ExecutionStatus.CANCELLED
    assert by_key[first.key].attempts == 0
    assert first.key not in {c.key for c in fake.log}
    assert {r.status for r in records} <= {ExecutionStatus.CANCELLED, ExecutionStatus.SKIPPED}


class ExplodingPolicy(MinSuccessRate):
    """A status policy with a bug: deciding early overflows."""

    def decided(self, tally: Tally) -> Verdict | None:
        raise OverflowError("math range error")


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_status_policy_that_raises_stops_the_job_with_every_key_recorded(backend: str) -> None:
    spec = make_spec(questions=3, models=2)

    async def main() -> list[ExecutionRecord]:
        store = MemoryStore()
        with pytest.raises(OverflowError, match="math range error"):
            await run_job(
                spec,
                FakeExecutor(default=Step(latency=1.0)),
                store=store,
                policy=ExplodingPolicy(),
                early_stop=True,
            )
        return await store.records(spec.id)

    records = run_virtual(main, backend=backend)
    assert len({r.key for r in records}) == len(records) == spec.size


@define
class RefusingStore(MemoryStore):
    """A store that cannot hold one key's record (as SQLite refuses metadata it cannot encode)."""

    refuse: ExecutionKey | None = None

    def _check(self, records: Sequence[ExecutionRecord]) -> None:
        for record in records:
            if record.key == self.refuse and record.status is not ExecutionStatus.FAILED:
                raise StoreError(f"record {record.key}: metadata is not JSON-serialisable")

    async def write(self, job_id: str, record: ExecutionRecord) -> None:
        self._check([record])
        await super().write(job_id, record)

    async def write_many(self, job_id: str, records: Sequence[ExecutionRecord]) -> None:
        self._check(records)
        await super().write_many(job_id, records)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_record_the_store_refuses_costs_only_that_record(backend: str) -> None:
    """The refused record poisoned the batch of the job's end: now the other keys still get
    theirs, the refused key gets a FAILED record saying why, and the error reaches the caller."""
    spec = make_spec(questions=3, models=2)
    bad = next(iter(spec.plan()))

    async def main() -> list[ExecutionRecord]:
        store = RefusingStore(refuse=bad)
        with pytest.raises(StoreError, match="not JSON-serialisable"):
            await run_job(spec, FakeExecutor(default=Step(latency=1.0)), store=store)
        (job,) = await store.jobs()
        assert job.status is not None
        return await store.records(spec.id)

    records = run_virtual(main, backend=backend)
    by_key = {r.key: r for r in records}
    assert len(records) == len(by_key) == spec.size
    refused = by_key[bad]
    assert (refused.status, refused.error_code) == (ExecutionStatus.FAILED, STORE_REFUSED)
    assert "not JSON-serialisable" in (refused.error_message or "")


@pytest.mark.anyio
async def test_events_keep_coming_after_the_callback_raised_so_its_log_is_complete() -> None:
    spec = make_spec(questions=2, models=1)
    callback = RaisingCallback(at=0)  # raises on JobStarted, the very first event
    with pytest.raises(CallbackBug):
        await run_job(spec, FakeExecutor(), on_event=callback)
    assert isinstance(callback.events[-1], JobFinished)
    finished = [e for e in callback.events if isinstance(e, ExecutionFinished)]
    assert len(finished) == spec.size
    assert {e.record.status for e in finished} == {ExecutionStatus.SKIPPED}
