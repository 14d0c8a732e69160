"""The bulk reads of the store conformance suite: ``iter_records`` and ``keys``.

:class:`ReadRules` is mixed into :class:`~beacon_orchestrator.testing.StoreStateMachine`. Its
rules read a job with random filters and batch sizes (a batch of one or two pages through every
record; one below 1 is refused) and compare with the reference model: the same records as
``records()`` gives, in its order, each key once; and ``keys()`` lists each endpoint once
with exactly its keys (each sample apart) of the asked statuses, and what their records cost.
Nothing here depends on a backend: the model is plain dicts.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from typing import Any, TypeVar

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from .._errors import StoreError, UsageError
from .._records import RecordFilter
from .._types import ExecutionKey, ExecutionRecord, ExecutionStatus
from ..stores._protocol import EndpointKeys, Store

__all__ = ["ReadRules"]

_T = TypeVar("_T")

_statuses = st.none() | st.frozensets(st.sampled_from(ExecutionStatus), min_size=1)


def _names(values: tuple[str, ...]) -> st.SearchStrategy[str | None]:
    return st.none() | st.sampled_from(values) | st.just("not-in-the-job")


async def _drain(items: AsyncIterator[_T]) -> list[_T]:
    return [item async for item in items]


class ReadRules:
    """Rules for ``iter_records`` (filters, batches, order) and ``keys`` (grouping, statuses).

    Mixed into the store conformance state machine, which provides the store and the model.
    """

    store: Store
    model: dict[str, dict[ExecutionKey, ExecutionRecord]]
    read_names: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]

    def call(self, fn: Callable[..., Awaitable[_T]], *args: Any) -> _T:
        """Run one store call on the store's event loop (provided by the machine)."""
        raise NotImplementedError

    async def _filtered(self, job_id: str, f: RecordFilter, batch: int) -> list[ExecutionRecord]:
        found = self.store.iter_records(
            job_id,
            status=f.statuses,
            region=f.region,
            model=f.model,
            question=f.question,
            batch=batch,
        )
        return await _drain(found)

    async def _keys(
        self, job_id: str, status: Collection[ExecutionStatus] | None
    ) -> list[EndpointKeys]:
        return await _drain(self.store.keys(job_id, status=status))

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data(), statuses=_statuses, batch=st.integers(1, 4))
    def iter_records_streams_what_records_holds(
        self, data: st.DataObject, statuses: frozenset[ExecutionStatus] | None, batch: int
    ) -> None:
        """iter_records gives the records passing the filter, in records()' order, at any batch."""
        job_id = data.draw(st.sampled_from(sorted(self.model)))
        questions, models, regions = self.read_names
        f = RecordFilter(
            statuses,
            data.draw(_names(regions)),
            data.draw(_names(models)),
            data.draw(_names(questions)),
        )
        got = self.call(self._filtered, job_id, f, batch)
        everything = self.call(self.store.records, job_id)
        want = [r for r in everything if f.matches(r)]
        assert got == want, f"{job_id}: iter_records({f!r}, batch={batch}) gave {got!r}"
        assert {r.key for r in got} == {k for k, r in self.model[job_id].items() if f.matches(r)}, (
            f"{job_id}: iter_records({f!r}) and the model differ"
        )

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data(), statuses=_statuses)
    def keys_group_the_records_by_endpoint(
        self, data: st.DataObject, statuses: frozenset[ExecutionStatus] | None
    ) -> None:
        """keys() lists each endpoint once, with its keys of the asked statuses and their cost."""
        job_id = data.draw(st.sampled_from(sorted(self.model)))
        found = self.call(self._keys, job_id, statuses)
        endpoints = [(e.model_id, e.region) for e in found]
        assert len(endpoints) == len(set(endpoints)), f"{job_id}: keys() repeats an endpoint"
        got: dict[ExecutionKey, tuple[ExecutionStatus, bool]] = {}
        for e in found:
            sizes = {len(e.question_ids), len(e.samples), len(e.statuses), len(e.empty)}
            assert len(sizes) == 1, f"{job_id}: keys() of {e.model_id}@{e.region}: uneven"
            for qid, sample, status, empty in zip(
                e.question_ids, e.samples, e.statuses, e.empty, strict=True
            ):
                key = ExecutionKey(qid, e.model_id, e.region, sample)
                assert key not in got, f"{job_id}: keys() gives {key} twice"
                got[key] = (ExecutionStatus(status), bool(empty))
        wanted = {
            k: r for k, r in self.model[job_id].items() if statuses is None or r.status in statuses
        }
        want = {k: (r.status, r.empty) for k, r in wanted.items()}
        assert got == want, f"{job_id}: keys(status={statuses!r}) gave {got!r}, want {want!r}"
        for e in found:
            self._check_cost(
                job_id, e, [r for r in wanted.values() if r.key.endpoint == (e.model_id, e.region)]
            )

    @staticmethod
    def _check_cost(job_id: str, e: EndpointKeys, records: list[ExecutionRecord]) -> None:
        """An endpoint's cost is the sum of its records' (``None`` when none has a cost)."""
        costs = [r.cost for r in records if r.cost is not None]
        want = math.fsum(costs) if costs else None
        ok = (
            e.cost is None
            if want is None
            else e.cost is not None and math.isclose(e.cost, want, rel_tol=1e-9, abs_tol=1e-9)
        )
        assert ok, f"{job_id}: keys() of {e.model_id}@{e.region}: cost {e.cost!r}, want {want!r}"

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data(), batch=st.integers(-3, 0) | st.just(True) | st.just(2.5))
    def iter_records_refuses_a_batch_it_cannot_page_by(
        self, data: st.DataObject, batch: Any
    ) -> None:
        """iter_records with a batch that is not an integer >= 1 raises UsageError naming it.

        A batch of 0 would page forever (or divide by zero), so it must be refused, not read.
        """
        job_id = data.draw(st.sampled_from(sorted(self.model)))
        message = None
        try:
            self.call(self._filtered, job_id, RecordFilter(), batch)
        except UsageError as exc:
            message = str(exc)
        assert message is not None, f"{job_id}: iter_records(batch={batch!r}) should raise"
        assert "batch" in message, f"iter_records(batch={batch!r}): {message!r} names no field"
        assert repr(batch) in message, f"iter_records(batch={batch!r}): {message!r} has no value"

    @rule(job_id=st.sampled_from(("no-such-job",)))
    def bulk_reads_of_unknown_jobs_are_errors(self, job_id: str) -> None:
        """iter_records and keys of a job never opened raise StoreError when iterated."""
        for read in (
            lambda: self._filtered(job_id, RecordFilter(), 2),
            lambda: self._keys(job_id, None),
        ):
            try:
                self.call(read)
            except StoreError:
                continue
            raise AssertionError(f"a bulk read of the unknown job {job_id!r} should raise")
