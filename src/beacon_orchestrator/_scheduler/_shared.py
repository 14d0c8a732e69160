"""The shared mode: many workers, in many processes, run one job through a claims store.

Used by :func:`run_job` when the store implements
:class:`~beacon_orchestrator.stores.SupportsClaims` (``PostgresStore``), and by
``beacon worker``. The single-process runner (``_runner``) is not involved.

A worker claims endpoints (model x region) under a lease with a fencing token and runs each
claimed endpoint's questions in order, one at a time, each through the store's start gate; it
writes every record fenced against its claim, so a worker that lost an endpoint can store
nothing for it. The job's ``per_region`` and ``max_concurrency`` are held by the store across
workers (its gate starts an execution only with a free slot under each cap); an endpoint whose
start finds a cap full keeps its claim and asks again when a slot is freed (a notice) or after
a poll. Its own guards:

- **Self-fencing.** Each endpoint runs in a cancel scope whose deadline is the send time of the
  last successful renewal plus the lease, less a margin: a worker that cannot renew stops its
  own requests before anyone else may take the endpoint over.
- **Cancel.** A cancel notice (NOTIFY, or the heartbeat's flag if the notice was lost)
  interrupts the job's executions at once; each is stored ``CANCELLED`` under its fence.
- **One verdict.** Whoever sees every cell done asks the store to store the verdict; the store
  grants that once (``try_finish``). The verdict is the single-process ledger's, from the
  stored records.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Sequence
from functools import partial
from typing import Any, Protocol, TypeGuard

import anyio
from attrs import define, evolve, field, frozen

from .._compat import deadline_factory
from .._errors import StoreError, UsageError
from .._executor import Executor
from .._records import Records
from .._spec import JobSpec
from .._status import JobResult
from .._types import ExecutionKey, ExecutionRecord, ExecutionStatus
from ..stores import Store
from ..stores._claims import Claim, SupportsClaims
from ._attempts import AttemptLoop
from ._journal import JobLog
from ._ledger import Ledger, StopReason
from ._options import RunOptions
from ._plan import Plan

__all__ = ["SharedOptions", "SharedRun", "run_shared", "shares_jobs"]

_log = logging.getLogger(__name__)


class _ClaimsStore(Store, SupportsClaims, Protocol):
    """What the shared mode needs of a store: both protocols (a typing aid)."""


def shares_jobs(store: object) -> TypeGuard[_ClaimsStore]:
    """Whether ``store`` lets many workers share a job (it implements ``SupportsClaims``)."""
    return isinstance(store, SupportsClaims)


@frozen(kw_only=True)
class SharedOptions:
    """How a worker shares jobs.

    Attributes:
        lease: Seconds an endpoint stays a worker's without a renewal.
        capacity: Endpoints a worker holds at once (default: the job's ``max_concurrency``,
            else 8). The job's ``max_concurrency`` itself holds across all workers.
        poll: Seconds between two looks for free endpoints, or for a free slot under a cap,
            when nothing wakes the worker.
        margin: Seconds before its lease expires at which a worker that could not renew stops
            its own requests.
    """

    lease: float = 30.0
    capacity: int | None = None
    poll: float = 1.0
    margin: float | None = None

    @property
    def heartbeat(self) -> float:
        """Seconds between two renewals: a third of the lease."""
        return self.lease / 3

    @property
    def fence_margin(self) -> float:
        """The self-fencing margin (default a sixth of the lease)."""
        return self.lease / 6 if self.margin is None else self.margin


@define
class _Job:
    """What a worker knows of one job it runs endpoints of."""

    spec: JobSpec
    attempts: AttemptLoop
    stop: StopReason
    plan: Plan


@define
class _Held:
    """An endpoint this worker holds: its claim, its cancel scope, what runs on it."""

    claim: Claim
    scope: anyio.CancelScope
    claimed: float = float("inf")  # when the claim returned (committed)
    why: str | None = None  # "cancel" or "lost" once its scope is cancelled
    running: tuple[int, ExecutionKey] | None = None


def _check_supported(spec: JobSpec, options: RunOptions) -> None:
    limits = spec.limits if options.limits is None else options.limits
    problems = []
    if options.strategy != "endpoint":
        problems.append(f"strategy {options.strategy!r} (only 'endpoint')")
    if limits.per_endpoint != 1:
        problems.append(f"per_endpoint {limits.per_endpoint} (only 1)")
    if options.early_stop:
        problems.append("early_stop")
    # The fleet guards count what one process sees: across workers, an endpoint's breaker,
    # its adaptive limit, a cold start and the money spent would each be several, each wrong.
    for name in ("adaptive", "breaker", "cost_model"):
        if getattr(options, name) is not None:
            problems.append(f"{name} (not shared across workers yet)")
    if limits.max_cost is not None:
        problems.append(f"max_cost {limits.max_cost} (a budget is not shared across workers yet)")
    if limits.cold_start_timeout is not None:
        problems.append(
            f"cold_start_timeout {limits.cold_start_timeout} (not shared across workers yet)"
        )
    if problems:
        raise UsageError(
            "a job shared by many workers (a store with claims, such as PostgresStore) does not "
            f"support: {', '.join(problems)}"
        )


@define
class SharedRun:
    """One worker of the shared mode.

    Args:
        store: A store with claims.
        executor: Sends each attempt.
        options: The run options (retry, limits, policy, events).
        shared: Lease, capacity and polling.
        job_id: Work on this job only and return its result (``run_job``), or on every open
            job until cancelled (``None``: ``beacon worker``).
    """

    store: _ClaimsStore
    executor: Executor
    options: RunOptions = field(factory=RunOptions)
    shared: SharedOptions = field(factory=SharedOptions)
    job_id: str | None = None
    worker: str = field(factory=lambda: uuid.uuid4().hex)
    _held: dict[tuple[str, str, str], _Held] = field(factory=dict, init=False)
    _jobs: dict[str, _Job] = field(factory=dict, init=False)
    _cancelled: set[str] = field(factory=set, init=False)
    _wake: anyio.Event = field(factory=anyio.Event, init=False)
    _slot_freed: anyio.Event = field(factory=anyio.Event, init=False)

    # -- the loop ---------------------------------------------------------------------------

    async def run(self) -> JobResult | None:
        """Work until the job has its verdict (then return it), or until cancelled."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._heartbeat)
            # Nothing is claimed before the listener listens: a cancel reaches this worker
            # from its first execution on.
            await tg.start(partial(self.store.listen, self._on_cancel, on_slot=self._on_slot))
            async with anyio.create_task_group() as endpoints:
                result = await self._claim_loop(endpoints)
                endpoints.cancel_scope.cancel()
            tg.cancel_scope.cancel()
        return result

    async def _claim_loop(self, endpoints: anyio.abc.TaskGroup) -> JobResult | None:
        while True:
            self._wake = anyio.Event()
            try:
                result = await self._look_and_claim(endpoints)
            except StoreError as exc:
                # The database is away (restarting, partitioned): try again after a poll; the
                # endpoints held meanwhile stop their own requests before their leases end.
                _log.warning("worker %s: %s", self.worker, exc)
                result = None
            if result is not None:
                return result
            with anyio.move_on_after(self.shared.poll):
                await self._wake.wait()

    async def _look_and_claim(self, endpoints: anyio.abc.TaskGroup) -> JobResult | None:
        if self.job_id is not None:
            result = await self._result_if_done(self.job_id)
            if result is not None:
                return result
        else:
            await self._finish_jobs()
        free = self._capacity() - len(self._held)
        if free > 0:
            sent = anyio.current_time()  # the claim's lease runs from no earlier than this
            claims = await self.store.claim(self.worker, free, self.shared.lease, self.job_id)
            claimed = anyio.current_time()
            for claim in claims:
                await self._prepare(claim.job_id)
                held = _Held(claim, anyio.CancelScope(deadline=self._fence_deadline(sent)), claimed)
                self._held[(claim.job_id, claim.model_id, claim.region)] = held
                endpoints.start_soon(self._endpoint, held)
        return None

    def _capacity(self) -> int:
        if self.shared.capacity is not None:
            return self.shared.capacity
        limits = self.options.limits
        return (limits.max_concurrency if limits is not None else None) or 8

    async def _finish_jobs(self) -> None:
        """Store the verdict of every job this worker ran and nobody finished yet."""
        for job_id, job in list(self._jobs.items()):
            if any(h.claim.job_id == job_id for h in self._held.values()):
                continue
            if (
                await self.store.try_finish(job_id, _decider(job.spec, self.options)) is not None
                or await self.store.load_result(job_id) is not None
            ):
                del self._jobs[job_id]

    async def _result_if_done(self, job_id: str) -> JobResult | None:
        job = self._jobs[job_id]
        result = await self.store.try_finish(job_id, _decider(job.spec, self.options))
        if result is None and not self._held:
            result = await self.store.load_result(job_id)
        return result

    # -- one endpoint -----------------------------------------------------------------------

    async def _endpoint(self, held: _Held) -> None:
        claim = held.claim
        job = self._jobs[claim.job_id]
        try:
            with held.scope:
                await self._questions(held, job)
        except StoreError as exc:
            # Nothing more starts here; what runs under this claim is re-run by its next holder.
            _log.warning("%s: endpoint %s@%s stopped: %s", claim.job_id, claim.model_id,
                         claim.region, exc)  # fmt: skip
        finally:
            with anyio.CancelScope(shield=True):
                await self._after(held, job)

    async def _questions(self, held: _Held, job: _Job) -> None:
        claim, store, plan = held.claim, self.store, job.plan
        endpoint = plan.endpoint(claim.model_id, claim.region)
        if endpoint is None:  # a claim row the spec does not plan: nothing to run on it
            return
        # The endpoint's slots in order: each question's samples one after another.
        slot = claim.next_slot
        while slot < plan.n_slots and claim.job_id not in self._cancelled:
            started = await store.start(claim, slot)
            if started is None:  # a cap is full: keep the endpoint, ask again once one frees
                freed = self._slot_freed
                with anyio.move_on_after(self.shared.poll):
                    await freed.wait()
                continue
            if not started:
                return  # cancelled, or the endpoint passed on: nothing more starts here
            if anyio.current_time() >= held.scope.deadline:
                # The gate let it start, then this process stood still past its own fence (a
                # SIGSTOP, a starved machine) before the scope's timer could fire: the lease
                # may be another worker's now, so the request must not go out. The slot runs
                # again under the endpoint's next holder, as if this worker had died here.
                return
            key = plan.key(endpoint, slot)
            held.running = (slot, key)
            record = await job.attempts.run(key, plan.prompts[plan.question_of(slot)])
            held.running = None
            with anyio.CancelScope(shield=True):
                stored = await store.finish(claim, slot, record)
            self._on_slot(claim.job_id)  # its slots are free: this worker's waiters need no notice
            if not stored:
                _log.warning("%s: fenced out of %s@%s", claim.job_id, key, claim.fence)
                return
            self._finished(job, record)
            slot += 1

    async def _after(self, held: _Held, job: _Job) -> None:
        """Store an interrupted execution CANCELLED (when cancelled), then hand back."""
        claim = held.claim
        try:
            if held.running is not None and held.why == "cancel":
                slot, key = held.running
                record = self._interrupted(job, key)
                await self.store.finish(claim, slot, record)
            await self.store.release(claim)
        except StoreError as exc:
            _log.warning("%s: could not hand back %s@%s: %s", claim.job_id, claim.model_id,
                         claim.region, exc)  # fmt: skip
        finally:
            self._held.pop((claim.job_id, claim.model_id, claim.region), None)
            self._wake.set()

    def _interrupted(self, job: _Job, key: ExecutionKey) -> ExecutionRecord:
        noted = [i for i in job.attempts.interrupted if i.key == key]
        for i in noted:
            job.attempts.interrupted.remove(i)
        ledger = job.attempts.ledger
        if not noted:
            now = anyio.current_time()
            return ledger.failed(key, ExecutionStatus.CANCELLED, None, 0, now, now, job.stop)
        i = noted[-1]
        return ledger.failed(
            key, ExecutionStatus.CANCELLED, i.error, i.attempts, i.started, i.ended, job.stop
        )

    def _finished(self, job: _Job, record: ExecutionRecord) -> None:
        if self.options.on_event is not None:
            from .._events import ExecutionFinished

            self.options.on_event(ExecutionFinished(job.spec.id, record, anyio.current_time()))

    # -- jobs, cancel, heartbeat ------------------------------------------------------------

    async def _prepare(self, job_id: str) -> None:
        if job_id in self._jobs:
            return
        spec = await self.store.load_spec(job_id)
        self._jobs[job_id] = self._job(spec)

    def _job(self, spec: JobSpec) -> _Job:
        opts = self.options
        limits = spec.limits if opts.limits is None else opts.limits
        stop = StopReason()
        plan = Plan(spec, "endpoint", set())
        now = anyio.current_time
        ledger = Ledger(plan, wall_offset=opts.wall_clock() - now())
        job_id = spec.id
        attempts = AttemptLoop(
            job_id=job_id,
            executor=self.executor,
            params=spec.params,
            retry=opts.retry,
            attempt_timeout=limits.attempt_timeout,
            job_deadline=None,
            hard_deadline=None,
            ledger=ledger,
            stop=stop,
            may_start=lambda: job_id not in self._cancelled,
            now=now,
            emit=opts.on_event,
            log=JobLog(job_id),
            system_prompts={r: spec.system_prompt_for(r) for r in spec.regions},
            deadline=deadline_factory(),
        )
        return _Job(spec=spec, attempts=attempts, stop=stop, plan=plan)

    def _on_cancel(self, job_id: str) -> None:
        """A job was cancelled (a notice or the heartbeat): interrupt its executions now."""
        if job_id in self._cancelled:
            return
        self._cancelled.add(job_id)
        job = self._jobs.get(job_id)
        if job is not None:
            job.stop.source = "handle"
            job.stop.reason = job.stop.reason or "the job was cancelled"
            job.attempts.wake_sleepers()
        for held in self._held.values():
            if held.claim.job_id == job_id and held.why is None:
                held.why = "cancel"
                held.scope.cancel()
        self._wake.set()

    def _on_slot(self, job_id: str) -> None:
        """A slot under a cap was freed: the starts waiting for one ask again."""
        self._slot_freed.set()
        self._slot_freed = anyio.Event()

    def _fence_deadline(self, renewed_at: float) -> float:
        """When a worker that renewed at ``renewed_at`` (send time) stops its own requests."""
        return renewed_at + self.shared.lease - self.shared.fence_margin

    async def _heartbeat(self) -> None:
        while True:
            await anyio.sleep(self.shared.heartbeat)
            sent = anyio.current_time()
            try:
                status = await self.store.renew(self.worker, self.shared.lease)
            except StoreError as exc:
                _log.warning("worker %s: could not renew its leases: %s", self.worker, exc)
                continue  # the scopes keep their deadlines: self-fencing
            with contextlib.suppress(StoreError):  # the next beat sweeps again
                await self.store.sweep()
            for held in list(self._held.values()):
                c = held.claim
                if (c.job_id, c.model_id, c.region, c.fence) in status.held:
                    held.scope.deadline = self._fence_deadline(sent)
                elif held.why is None and held.claimed < sent:
                    # Only a claim committed before the renewal was sent is lost when the
                    # renewal misses it; a later one is simply newer than the renewal's answer.
                    held.why = "lost"
                    held.scope.cancel()
            for job_id in status.cancelled:
                self._on_cancel(job_id)


def _decider(spec: JobSpec, options: RunOptions) -> Any:
    """The verdict from the stored records: the single-process ledger's, over the same records."""
    limits = spec.limits if options.limits is None else options.limits
    policy = spec.policy if options.policy is None else options.policy

    def decide(records: Sequence[ExecutionRecord], cancel_reason: str | None) -> JobResult:
        plan = Plan(spec, "endpoint", set())
        ledger = Ledger(plan, wall_offset=0.0)
        for record in records:
            found = plan.locate(record.key)
            if found is not None:  # a record of a key the spec does not plan is not counted
                ledger.account(record, *found)
        stop = StopReason()
        if cancel_reason is not None:
            stop.source, stop.reason = "handle", cancel_reason
        verdict = ledger.verdict(policy, stop, limits.job_timeout)
        started = [r.started_at for r in records if r.started_at is not None]
        return JobResult(
            job_id=spec.id,
            status=verdict.status,
            reason=verdict.reason,
            counts=dict(ledger.counts),
            success_rate=policy.success_rate(ledger.tally()),
            planned=plan.size,
            records=tuple(records),
            started_at=min(started, default=options.wall_clock()),
            finished_at=options.wall_clock(),
            cancelled_by=stop.source,
        )

    return decide


def _rerun(options: RunOptions) -> frozenset[ExecutionStatus]:
    """The stored statuses whose keys a run executes again: the single-process resume's rule."""
    again = {ExecutionStatus.CANCELLED, ExecutionStatus.SKIPPED}
    if options.rerun_failed:
        again |= {ExecutionStatus.FAILED, ExecutionStatus.TIMEOUT}
    return frozenset(again)


async def run_shared(
    spec: JobSpec,
    executor: Executor,
    store: _ClaimsStore,
    options: RunOptions,
    shared: SharedOptions | None = None,
) -> JobResult:
    """Run ``spec`` as one of any number of workers sharing it; return its verdict.

    Raises:
        UsageError: An option the shared mode does not support.
    """
    _check_supported(spec, options)
    await store.publish_job(spec, limits=options.limits, rerun=_rerun(options))
    run = SharedRun(store, executor, options, shared or SharedOptions(), job_id=spec.id)
    run._jobs[spec.id] = run._job(spec)
    result = await run.run()
    assert result is not None
    # Like a single process's result: a view that reads the records from the store.
    return evolve(result, records=Records(store, spec.id, count=sum(result.counts.values())))
