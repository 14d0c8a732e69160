"""The Store conformance suite: one hypothesis state machine every store must pass.

It drives a store and a small reference model side by side (open jobs, including with
conflicting specs; write and write_many records of random keys and statuses, including attempts
to replace ``COMPLETED`` ones; finish jobs; ask about unknown job ids; acquire, renew and
release leases by several holders, two at once, while a fake wall clock moves on) and, after
every step, checks that every read of the store (``records``, ``completed_keys``, ``progress``,
``jobs`` with their leases, ``load_spec``) agrees with the model; the bulk reads
(``iter_records`` with filters and batches, ``keys``) are checked by rules of their own.

Hypothesis rules are synchronous, so the store runs on an event loop in a
:func:`anyio.from_thread.start_blocking_portal` thread, on asyncio or trio. The factory gets
the suite's wall clock, which the store must read for every time it stores (``created_at``,
``finished_at``, leases), so that the suite can let leases expire. Use it from a test module::

    from contextlib import asynccontextmanager

    from beacon_orchestrator.testing import store_conformance_test


    @asynccontextmanager
    async def fresh_store(clock):
        async with MyStore(..., clock=clock) as store:
            yield store


    TestMyStore = store_conformance_test(fresh_store)
"""

from __future__ import annotations

import contextlib
import string
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, ClassVar, TypeVar

import anyio
import anyio.from_thread
import hypothesis
from attrs import define, evolve, field
from hypothesis import HealthCheck
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from .._errors import JobConflictError, StoreError
from .._spec import JobSpec, ModelTarget, Question
from .._status import JobResult, JobStatus
from .._types import ExecutionKey, ExecutionRecord, ExecutionStatus
from .._usage import Usage
from ..stores._protocol import JobInfo, Store, StoredProgress, should_replace
from ._lease_conformance import LeaseRules, WallClock
from ._read_conformance import ReadRules

__all__ = [
    "Snapshot",
    "StoreFactory",
    "StoreStateMachine",
    "conformance_records",
    "store_conformance_test",
]

_T = TypeVar("_T")

StoreFactory = Callable[[Callable[[], float]], AbstractAsyncContextManager[Store]]
"""Makes a fresh, empty store reading the given wall clock: an async context manager that
yields it and closes it on exit."""

_JOB_IDS = ("job-a", "job-b", "job-c")
_UNKNOWN_IDS = ("no-such-job",)
_QUESTIONS = ("q1", "q2", "q3")
_MODELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("m1", ("us-east", "eu-west")),
    ("m2", ("asia-pacific",)),
)
_REGIONS = tuple(sorted({r for _, regions in _MODELS for r in regions}))
_SAMPLES = 2  # so a store must keep the samples of a cell apart
_KEYS = tuple(
    ExecutionKey(q, model, region, sample)
    for q in _QUESTIONS
    for model, regions in _MODELS
    for region in regions
    for sample in range(_SAMPLES)
)


def _spec(job_id: str, variant: int) -> JobSpec:
    """Every job shares one plan (so any key fits any job); variants differ in their params."""
    questions: tuple[Question, ...] = tuple(Question(q, f"prompt of {q}?") for q in _QUESTIONS)
    models: tuple[ModelTarget, ...] = tuple(ModelTarget(m, regions) for m, regions in _MODELS)
    return JobSpec(
        id=job_id,
        questions=questions,
        models=models,
        params={"temperature": 0.1 * (variant + 1), "max_tokens": 100},
        metadata={"variant": variant},
        samples=_SAMPLES,
    )


# Text a store must keep exactly. Lone surrogates are excluded: they cannot be encoded as
# UTF-8, and no answer decoded from an HTTP body contains them.
_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=8)
_times = st.floats(min_value=0, max_value=4e9, allow_nan=False, allow_infinity=False)
_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text
)
_json_objects = st.dictionaries(
    st.text(string.ascii_letters + "_", max_size=6),
    _json_scalars | st.lists(_json_scalars, max_size=2),
    max_size=2,
)


def conformance_records(
    keys: st.SearchStrategy[ExecutionKey] | None = None,
) -> st.SearchStrategy[ExecutionRecord]:
    """Records with JSON-ready metadata and receipts, as every store must keep them exactly.

    Args:
        keys: Where keys come from (default: the keys of the suite's jobs).
    """
    return st.builds(
        ExecutionRecord,
        key=st.sampled_from(_KEYS) if keys is None else keys,
        status=st.sampled_from(ExecutionStatus),
        text=st.none() | _text,
        empty=st.booleans(),
        error_code=st.none() | st.sampled_from(["TIMEOUT", "HTTP_503", "PROVIDER_UNAVAILABLE"]),
        error_message=st.none() | _text,
        attempts=st.integers(0, 5),
        started_at=st.none() | _times,
        finished_at=st.none() | _times,
        provider=st.none() | st.sampled_from(["modal", "runpod"]),
        metadata=_json_objects,
        receipt=st.none() | _json_objects,
        usage=st.none() | _usages,
        cost=st.none() | st.floats(0, 1e6, allow_nan=False),
    )


_usages = st.builds(
    Usage,
    tokens_in=st.none() | st.integers(0, 10**9),
    tokens_out=st.none() | st.integers(0, 10**9),
    inference_seconds=st.none() | st.floats(0, 1e6, allow_nan=False),
    provider_cost=st.none() | st.floats(0, 1e6, allow_nan=False),
)


def _nonzero(counts: Mapping[ExecutionStatus, int]) -> dict[ExecutionStatus, int]:
    return {ExecutionStatus(s): n for s, n in counts.items() if n}


def _nonzero_by(
    groups: Mapping[str, Mapping[ExecutionStatus, int]],
) -> dict[str, dict[ExecutionStatus, int]]:
    out = {name: _nonzero(counts) for name, counts in groups.items()}
    return {name: counts for name, counts in out.items() if counts}


class StoreStateMachine(LeaseRules, ReadRules, RuleBasedStateMachine):
    """Drives a store and a reference model side by side; subclass to add rules.

    Set :attr:`factory` (and optionally :attr:`backend`, :attr:`backend_options`) on a
    subclass, or let :func:`store_conformance_test` do it.

    Attributes:
        factory: Makes a fresh, empty store reading the clock it is given (an async context
            manager).
        clock: The wall clock the store reads; rules move it forward.
        backend: The anyio backend the store runs on (``"asyncio"`` or ``"trio"``).
        backend_options: Passed to :func:`anyio.from_thread.start_blocking_portal`.
        call_timeout: Seconds any one store call may take before the test fails (a hang).
    """

    factory: ClassVar[StoreFactory]
    backend: ClassVar[str] = "asyncio"
    backend_options: ClassVar[dict[str, Any] | None] = None
    call_timeout: ClassVar[float] = 30.0

    def __init__(self) -> None:
        super().__init__()
        self._stack = contextlib.ExitStack()
        self.portal = self._stack.enter_context(
            anyio.from_thread.start_blocking_portal(self.backend, self.backend_options)
        )
        self.clock = WallClock()
        try:
            self.store = self._stack.enter_context(
                self.portal.wrap_async_context_manager(type(self).factory(self.clock))
            )
        except BaseException:
            self._stack.close()
            raise
        # The reference model: what each open job must hold.
        self.specs: dict[str, JobSpec] = {}
        self.model: dict[str, dict[ExecutionKey, ExecutionRecord]] = {}
        self.results: dict[str, JobResult] = {}
        self.created_at: dict[str, float] = {}
        self.init_leases()
        self.read_names = (_QUESTIONS, tuple(m for m, _ in _MODELS), _REGIONS)

    def teardown(self) -> None:
        """Close the store and stop its event loop."""
        self._stack.close()

    def call(self, fn: Callable[..., Awaitable[_T]], *args: Any) -> _T:
        """Run one store call on the store's event loop and return its result."""
        result: _T = self.portal.call(self._timed, fn, *args)
        return result

    async def _timed(self, fn: Callable[..., Awaitable[_T]], *args: Any) -> _T:
        try:
            with anyio.fail_after(self.call_timeout):
                return await fn(*args)
        except TimeoutError:
            name = getattr(fn, "__name__", repr(fn))
            raise AssertionError(f"store.{name} did not return in {self.call_timeout}s") from None

    def expect_store_error(
        self, fn: Callable[..., Awaitable[object]], *args: Any, error: type[StoreError] = StoreError
    ) -> StoreError:
        """Call ``fn`` and check that it raises ``error``."""
        try:
            self.call(fn, *args)
        except error as exc:
            return exc
        raise AssertionError(f"store.{fn.__name__}{args!r} should raise {error.__name__}")

    # -- rules ----------------------------------------------------------------------------

    @initialize()
    def starts_empty(self) -> None:
        """A fresh store holds no job."""
        assert self.call(self.store.jobs) == [], "a fresh store must hold no job"

    @rule(job_id=st.sampled_from(_JOB_IDS), variant=st.integers(0, 1))
    def open_job(self, job_id: str, variant: int) -> None:
        """Opening is idempotent for the same spec; another spec conflicts and changes nothing."""
        spec = _spec(job_id, variant)
        known = self.specs.get(job_id)
        if known is None or known == spec:
            self.call(self.store.open_job, spec)
            if known is None:
                self.specs[job_id] = spec
                self.model[job_id] = {}
        else:
            self.expect_store_error(self.store.open_job, spec, error=JobConflictError)
        assert self.call(self.store.load_spec, job_id) == self.specs[job_id]

    @rule(job_id=st.sampled_from(_JOB_IDS + _UNKNOWN_IDS), record=conformance_records())
    def write(self, job_id: str, record: ExecutionRecord) -> None:
        """One record; a COMPLETED one is never replaced by another status."""
        if job_id not in self.specs:
            self.expect_store_error(self.store.write, job_id, record)
            return
        self.call(self.store.write, job_id, record)
        self._apply(job_id, record)

    @rule(
        job_id=st.sampled_from(_JOB_IDS + _UNKNOWN_IDS),
        records=st.lists(conformance_records(), max_size=6),
    )
    def write_many(self, job_id: str, records: list[ExecutionRecord]) -> None:
        """Several records at once, applied as if written one by one (repeated keys included)."""
        if job_id not in self.specs:
            self.expect_store_error(self.store.write_many, job_id, records)
            return
        self.call(self.store.write_many, job_id, records)
        for record in records:
            self._apply(job_id, record)

    @precondition(lambda self: bool(self.model))
    @rule(
        data=st.data(),
        records=st.lists(conformance_records(), max_size=9, unique_by=lambda r: r.key),
    )
    def write_concurrently(self, data: st.DataObject, records: list[ExecutionRecord]) -> None:
        """Records of different keys written from concurrent tasks all land (group commit)."""
        job_id = data.draw(st.sampled_from(sorted(self.model)))

        async def write_all() -> None:
            async with anyio.create_task_group() as tg:
                for record in records:
                    tg.start_soon(self.store.write, job_id, record)

        self.call(write_all)
        for record in records:
            self._apply(job_id, record)

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data(), status=st.sampled_from(ExecutionStatus))
    def replace_completed(self, data: st.DataObject, status: ExecutionStatus) -> None:
        """Aim a write at a key that is COMPLETED, when there is one: only COMPLETED replaces it."""
        job_id = data.draw(st.sampled_from(sorted(self.model)))
        done = sorted(
            k for k, r in self.model[job_id].items() if r.status is ExecutionStatus.COMPLETED
        )
        key = data.draw(st.sampled_from(done)) if done else data.draw(st.sampled_from(_KEYS))
        record = data.draw(conformance_records(st.just(key)).map(lambda r: _with_status(r, status)))
        self.call(self.store.write, job_id, record)
        self._apply(job_id, record)

    @rule(
        job_id=st.sampled_from(_JOB_IDS + _UNKNOWN_IDS),
        status=st.sampled_from(JobStatus),
        reason=_text,
    )
    def finish_job(self, job_id: str, status: JobStatus, reason: str) -> None:
        """A verdict is stored and listed by jobs(); finishing again (a resumed run) replaces it."""
        if job_id not in self.specs:
            result = JobResult(job_id, status, reason, {}, 0.0, 0)
            self.expect_store_error(self.store.finish_job, job_id, result)
            return
        records = tuple(self.model[job_id].values())
        result = JobResult(
            job_id=job_id,
            status=status,
            reason=reason,
            counts=dict(Counter(r.status for r in records)),
            success_rate=0.5,
            planned=self.specs[job_id].size,
            records=records,
            started_at=1.0,
            finished_at=2.0,
        )
        self.call(self.store.finish_job, job_id, result)
        self.results[job_id] = result

    @rule(job_id=st.sampled_from(_JOB_IDS + _UNKNOWN_IDS))
    def unknown_job_ids_are_errors(self, job_id: str) -> None:
        """Every per-job read of a job never opened raises StoreError."""
        if job_id in self.specs:
            return
        missing = self.call(self.calls_that_do_not_raise, job_id)
        assert not missing, f"{', '.join(missing)} of an unknown job id should raise StoreError"

    async def calls_that_do_not_raise(self, job_id: str) -> list[str]:
        """The per-job reads that do not raise StoreError for ``job_id``."""
        missing: list[str] = []
        for method in (
            self.store.load_spec,
            self.store.completed_keys,
            self.store.records,
            self.store.progress,
        ):
            try:
                await method(job_id)
            except StoreError:
                continue
            missing.append(f"{method.__name__}({job_id!r})")
        return missing

    def _apply(self, job_id: str, record: ExecutionRecord) -> None:
        records = self.model[job_id]
        if should_replace(records.get(record.key), record):
            records[record.key] = record

    # -- invariants -----------------------------------------------------------------------

    async def read_everything(self) -> Snapshot:
        """Every read of the store, in one trip to its event loop (the checks are many)."""
        snapshot = Snapshot(jobs=await self.store.jobs())
        for job_id in self.model:
            snapshot.records[job_id] = await self.store.records(job_id)
            snapshot.completed[job_id] = set(await self.store.completed_keys(job_id))
            snapshot.progress[job_id] = await self.store.progress(job_id)
        return snapshot

    @invariant()
    def store_matches_the_model(self) -> None:
        """After every step, every read of the store agrees with the model."""
        snapshot = self.call(self.read_everything)
        self.check_records(snapshot)
        self.check_completed_keys(snapshot)
        self.check_progress(snapshot)
        self.check_jobs(snapshot)
        self.check_leases(snapshot.jobs)

    def check_records(self, snapshot: Snapshot) -> None:
        """Exactly one record per written key, equal to the last write that was allowed."""
        for job_id, expected in self.model.items():
            got = snapshot.records[job_id]
            keys = [r.key for r in got]
            assert len(keys) == len(set(keys)), f"{job_id}: duplicate records for one key"
            actual = {r.key: r for r in got}
            for key in expected.keys() | actual.keys():
                assert actual.get(key) == expected.get(key), (
                    f"{job_id} {key}: stored {actual.get(key)!r}, expected {expected.get(key)!r}"
                )

    def check_completed_keys(self, snapshot: Snapshot) -> None:
        """completed_keys() is exactly the keys whose record is COMPLETED."""
        for job_id, expected in self.model.items():
            want = {k for k, r in expected.items() if r.status is ExecutionStatus.COMPLETED}
            assert snapshot.completed[job_id] == want, f"{job_id}: completed_keys()"

    def check_progress(self, snapshot: Snapshot) -> None:
        """progress() counts the stored records per status, question, region and model."""
        for job_id, expected in self.model.items():
            progress = snapshot.progress[job_id]
            records = list(expected.values())
            assert progress.job_id == job_id
            assert progress.planned == self.specs[job_id].size, f"{job_id}: progress.planned"
            assert progress.stored == len(records), f"{job_id}: progress.stored"
            want_counts = dict(Counter(r.status for r in records))
            assert _nonzero(progress.counts) == want_counts, f"{job_id}: progress.counts"
            for name, index, groups in (
                ("by_question", 0, progress.by_question),
                ("by_model", 1, progress.by_model),
                ("by_region", 2, progress.by_region),
            ):
                want: dict[str, dict[ExecutionStatus, int]] = {}
                for r in records:
                    group: str = r.key[index]  # type: ignore[assignment]  # not the sample
                    slot = want.setdefault(group, {})
                    slot[r.status] = slot.get(r.status, 0) + 1
                assert _nonzero_by(groups) == want, f"{job_id}: progress.{name}"

    def check_jobs(self, snapshot: Snapshot) -> None:
        """jobs() lists every opened job, oldest first, with its counts and verdict."""
        listed = snapshot.jobs
        assert [j.job_id for j in listed] == list(self.specs), "jobs(): opened jobs, in order"
        for info in listed:
            job_id = info.job_id
            result = self.results.get(job_id)
            assert info.planned == self.specs[job_id].size, f"{job_id}: jobs() planned"
            assert info.records == len(self.model[job_id]), f"{job_id}: jobs() records"
            assert info.status == (None if result is None else result.status), job_id
            assert info.reason == (None if result is None else result.reason), job_id
            assert (info.finished_at is None) == (result is None), f"{job_id}: finished_at"
            first = self.created_at.setdefault(job_id, info.created_at)
            assert info.created_at == first, f"{job_id}: created_at changed"


@define
class Snapshot:
    """Everything the store says at one moment."""

    jobs: list[JobInfo]
    records: dict[str, list[ExecutionRecord]] = field(factory=dict)
    completed: dict[str, set[ExecutionKey]] = field(factory=dict)
    progress: dict[str, StoredProgress] = field(factory=dict)


def _with_status(record: ExecutionRecord, status: ExecutionStatus) -> ExecutionRecord:
    return evolve(record, status=status)


def store_conformance_test(
    factory: StoreFactory,
    *,
    backend: str = "asyncio",
    backend_options: dict[str, Any] | None = None,
    hypothesis_settings: hypothesis.settings | None = None,
) -> type[Any]:
    """A ``unittest.TestCase`` class running the conformance state machine on your store.

    Assign it to a ``Test...`` name in a test module and pytest (or unittest) runs it.

    Args:
        factory: Makes a fresh, empty store each time it is called with the suite's wall
            clock (a function returning seconds since the epoch, which the store must use for
            every time it stores): an async context manager yielding the store (a store class
            that is its own context manager will do, e.g. ``lambda clock: MyStore(clock=clock)``).
        backend: The anyio backend to run the store on (``"asyncio"`` or ``"trio"``).
        backend_options: Options for that backend (e.g. ``{"use_uvloop": True}``).
        hypothesis_settings: Hypothesis settings (default: the loaded profile, no deadline,
            30 steps).

    Returns:
        The test case class.
    """
    machine: type[StoreStateMachine] = type(
        "StoreConformance",
        (StoreStateMachine,),
        {
            "factory": staticmethod(factory),
            "backend": backend,
            "backend_options": backend_options,
        },
    )
    test_case: type[Any] = machine.TestCase
    test_case.settings = hypothesis_settings or hypothesis.settings(
        deadline=None,
        stateful_step_count=30,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    return test_case
