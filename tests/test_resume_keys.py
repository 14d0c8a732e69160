"""A resumed run reads the keys the store holds, endpoint by endpoint, into one byte per slot.

``KeptKeys`` is plain synchronous code: tested here without an event loop against the set of
keys it stands for, then end to end (a resumed run skips exactly the kept keys). The job has
two samples per cell, so a slot (``q * samples + s``) is not a question index.
"""

from __future__ import annotations

import anyio
import pytest
from attrs import evolve
from hypothesis import given
from hypothesis import strategies as st

from beacon_orchestrator import ExecutionKey, ExecutionStatus, MemoryStore, run_job
from beacon_orchestrator._scheduler._resume import KeptKeys
from beacon_orchestrator.stores import group_keys
from beacon_orchestrator.testing import FakeExecutor

from .stores.support import make_spec, record

SPEC = evolve(make_spec("job", questions=5, models=2), samples=2)
ALL = list(SPEC.plan())
QIDS = [q.id for q in SPEC.questions]
SAMPLES = SPEC.samples
SLOTS = len(QIDS) * SAMPLES


def _key(slot: int, model: str, region: str) -> ExecutionKey:
    q, s = divmod(slot, SAMPLES)
    return ExecutionKey(QIDS[q], model, region, s)


STATUSES = (ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.TIMEOUT)


def _kept(records: list) -> KeptKeys:  # type: ignore[type-arg]
    kept = KeptKeys(QIDS, SAMPLES)
    for found in group_keys(records):
        kept.add(found)
    return kept


@given(
    chosen=st.dictionaries(
        st.sampled_from(ALL),
        st.tuples(st.sampled_from(STATUSES), st.booleans()),
        max_size=len(ALL),
    )
)
def test_kept_keys_are_the_set_of_keys_they_were_given_with_their_outcomes(
    chosen: dict[ExecutionKey, tuple[ExecutionStatus, bool]],
) -> None:
    """Property: membership, size, iteration, outcomes and the next slot to run all agree with
    the plain set of keys (and their statuses and samples) the store reported."""
    records = [
        record(k, s) if s is not ExecutionStatus.COMPLETED else record(k, s, text="" if e else "a")
        for k, (s, e) in chosen.items()
    ]
    for r, (s, _) in zip(records, chosen.values(), strict=True):
        assert r.status is s
    kept = _kept(records)
    assert len(kept) == len(chosen)
    assert set(kept) == set(chosen)
    assert all((k in kept) is (k in chosen) for k in ALL)
    outcomes = {_key(slot, m, r): (s, e) for m, r, slot, s, e in kept.outcomes()}
    assert {k: s for k, (s, _) in outcomes.items()} == {k: s for k, (s, _) in chosen.items()}
    for endpoint in SPEC.endpoints:
        model, region = endpoint.model_id, endpoint.region
        for slot in range(SLOTS):
            want = next(
                (i for i in range(slot, SLOTS) if _key(i, model, region) not in chosen), SLOTS
            )
            assert kept.next_to_run(model, region, slot) == want


def test_an_empty_completed_answer_is_kept_as_such_and_foreign_keys_are_left_out() -> None:
    empty = record(ALL[0], text="")
    assert empty.empty
    foreign = record(ExecutionKey("not-planned", "m0", "us-east"))
    beyond = record(ExecutionKey(QIDS[0], "m0", "us-east", SAMPLES))  # a sample not planned
    kept = _kept([empty, foreign, beyond])
    assert len(kept) == 1
    assert next(iter(kept.outcomes()))[3:] == (ExecutionStatus.COMPLETED, True)
    assert ExecutionKey("not-planned", "m0", "us-east") not in kept
    assert beyond.key not in kept
    assert ("not", "a key") not in kept  # type: ignore[comparison-overlap]


@pytest.mark.parametrize("rerun_failed", [True, False])
def test_a_resumed_run_executes_exactly_the_keys_it_does_not_keep(rerun_failed: bool) -> None:
    store = MemoryStore()
    earlier = [record(k, STATUSES[i % 3]) for i, k in enumerate(ALL[:12])]

    async def main() -> set[ExecutionKey]:
        await store.open_job(SPEC)
        await store.write_many(SPEC.id, earlier)
        fake = FakeExecutor.random(seed=3, latency=(0.0, 0.0), p_refusal=0.0)
        result = await run_job(SPEC, fake, store=store, rerun_failed=rerun_failed)
        assert result.counts[ExecutionStatus.COMPLETED] + result.not_completed == SPEC.size
        return {call.key for call in fake.log if call.key is not None}

    ran = anyio.run(main)
    keeps = {ExecutionStatus.COMPLETED} if rerun_failed else set(STATUSES)
    assert ran == set(ALL) - {r.key for r in earlier if r.status in keeps}


@given(
    chosen=st.dictionaries(
        st.sampled_from(ALL), st.tuples(st.sampled_from(STATUSES), st.booleans()), max_size=30
    )
)
def test_counting_kept_keys_in_bulk_gives_the_counts_of_each_record(
    chosen: dict[ExecutionKey, tuple[ExecutionStatus, bool]],
) -> None:
    """Property: the ledger's bulk count of kept keys equals counting them one by one (a
    question's count sums its samples')."""
    from beacon_orchestrator._scheduler._ledger import Ledger
    from beacon_orchestrator._scheduler._plan import Plan

    records = [
        record(k, s, text="" if e and s is ExecutionStatus.COMPLETED else "a")
        for k, (s, e) in chosen.items()
    ]
    kept = _kept(records)
    plan = Plan(SPEC, "endpoint", kept)
    ledger = Ledger(plan, wall_offset=0.0)
    ledger.keep_all(kept)
    assert ledger.kept == len(chosen)
    assert {s: n for s, n in ledger.counts.items() if n} == {
        s: n for s in STATUSES if (n := sum(1 for r in records if r.status is s))
    }
    for q, qid in enumerate(QIDS):
        n = sum(1 for k in chosen if k.question_id == qid)  # every sample of the question
        assert (ledger.question_kept[q], ledger.question_done[q]) == (n, n)
        assert ledger.question_remaining[q] == len(SPEC.endpoints) * SAMPLES - n
        assert ledger.question_started[q] is (n > 0)
    for e in plan.endpoints:
        mine = [r for r in records if (r.key.model_id, r.key.region) == (e.model, e.region.name)]
        t = e.tally
        assert t.completed == sum(
            1 for r in mine if r.status is ExecutionStatus.COMPLETED and not r.empty
        )
        assert t.empty == sum(1 for r in mine if r.status is ExecutionStatus.COMPLETED and r.empty)
        assert t.failed == sum(1 for r in mine if r.status is not ExecutionStatus.COMPLETED)
        assert ledger.endpoint_kept[e] == len(mine)


def test_kept_keys_add_up_what_their_records_cost() -> None:
    priced = [evolve(record(k), cost=0.25) for k in ALL[:4]]
    kept = _kept([*priced, record(ALL[4])])  # a record without a cost counts nothing
    assert kept.spent == pytest.approx(1.0)


def test_a_resumed_run_under_a_budget_counts_what_earlier_runs_spent() -> None:
    """The kept records' cost (read with the keys, not the records) fills the job's budget."""
    from beacon_orchestrator import CostModel, Limits, Price

    # One execution's worst case: 3 attempts x 10 s x 0.01 = 0.3; the earlier run spent 0.9.
    spec = evolve(SPEC, limits=Limits(max_cost=1.0, attempt_timeout=10.0))
    prices = CostModel(default=Price(per_second=0.01))
    earlier = [evolve(record(k), cost=0.3) for k in ALL[:3]]
    store = MemoryStore()

    async def main() -> tuple[int, str | None]:
        await store.open_job(spec)
        await store.write_many(spec.id, earlier)
        fake = FakeExecutor.random(seed=3, latency=(0.0, 0.0), p_refusal=0.0)
        result = await run_job(spec, fake, store=store, cost_model=prices)
        return len(fake.log), result.cancelled_by

    ran, cancelled_by = anyio.run(main)
    assert (ran, cancelled_by) == (0, "budget")  # 0.9 + 0.3 > 1.0: nothing more may start
