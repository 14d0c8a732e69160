"""The runner: a fixed pool of workers, cancellation, and the end of a job.

A job's executions are never materialised. A fixed pool of worker tasks (as many as can be in
flight at once) repeatedly asks the picker for the next startable execution. The cancellation
check, the pick and the call into the executor happen with no await between them: that is what
makes "no start after cancel" true by construction rather than by timing. When the job ends,
for whatever reason (a bug in a callback or a store included), every key gets exactly one
record before the verdict (``_ending``), and only then is the error, if any, raised. A run holds
the job's lease from before it reads earlier records until after the verdict (``_lease``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Unpack

import anyio
import anyio.abc
from anyio.lowlevel import checkpoint_if_cancelled

from .. import _compat
from .._errors import UsageError
from .._events import (
    JobFinished,
    JobStarted,
    Progress,
)
from .._executor import Executor, SupportsPreflight, check_endpoint_regions
from .._spec import JobSpec
from .._status import JobResult
from .._types import ExecutionKey, ExecutionRecord, ExecutionStatus
from ..stores import MemoryStore, Store
from ._attempts import AttemptLoop, Interrupted
from ._bookkeeping import Bookkeeping
from ._budget import Budget
from ._ending import Accounted, JobEnd
from ._eta import EtaEstimator
from ._fleet import Fleet
from ._journal import JobLog
from ._lease import LeaseKeeper
from ._ledger import Ledger, StopReason
from ._options import RunOptionArgs, RunOptions, resolve_options
from ._picker import Picker
from ._plan import EndpointState, Plan
from ._resume import KeptKeys
from ._stopping import Stopping
from ._threads import LoopThread
from ._watch import AttemptWatch, Carried, Handover, Worker

__all__ = ["RegionQueue"]

_COMPLETED_ONLY = frozenset({ExecutionStatus.COMPLETED})
_FINISHED = frozenset(s for s in ExecutionStatus if s.finished)


def _missing_store_methods(store: object) -> list[str]:
    return [m for m in ("keys", "iter_records") if not callable(getattr(store, m, None))]


class RegionQueue(Stopping, Bookkeeping):
    """Runs one job: schedules its executions and accounts for every one of them.

    Most code calls :func:`run_job` or :func:`start_job`, which build a ``RegionQueue``. Use it
    directly to keep a reference to the running job's state (for :meth:`progress`) without a
    handle. One instance runs one job once.

    Args:
        spec: The job.
        executor: Sends each attempt.
        store: Where records go (default: a fresh :class:`MemoryStore`).
        options: How the run behaves (see :class:`RunOptions`); fields given by keyword
            (``strategy=``, ``limits=``, ...) replace its fields.
    """

    def __init__(
        self,
        spec: JobSpec,
        executor: Executor,
        *,
        store: Store | None = None,
        options: RunOptions | None = None,
        **overrides: Unpack[RunOptionArgs],
    ) -> None:
        if not isinstance(spec, JobSpec):
            raise UsageError(f"spec must be a JobSpec, got {type(spec).__name__}")
        if not isinstance(executor, Executor):
            raise UsageError(
                f"executor must have an 'async def execute(request)' method, got "
                f"{type(executor).__name__}; wrap a function with FunctionExecutor(fn)"
            )
        if store is not None and (missing := _missing_store_methods(store)):
            raise UsageError(
                f"store {type(store).__name__} lacks {', '.join(missing)} of the Store protocol "
                "(bulk reads, added in this version): see the 'Write a store' guide"
            )
        self.spec = spec
        self.executor = executor
        self.store: Store = MemoryStore() if store is None else store
        self.options = opts = resolve_options(options, overrides)
        self.limits = spec.limits if opts.limits is None else opts.limits
        self.policy = spec.policy if opts.policy is None else opts.policy
        if self.limits.max_cost is not None and opts.cost_model is None:
            Budget.for_run(spec, self.limits, None, endpoints=[], attempts=1)  # raises
        self._ran = False
        self._stopping = False
        self._stop = StopReason()
        self._workers_scope: anyio.CancelScope | None = None
        self._workers_group: Any = None  # the workers' task group while they run
        self._watch: AttemptWatch | None = None
        self._gc_threshold: tuple[int, int, int] | None = None
        self._finished_event: anyio.Event | None = None
        self._result: JobResult | None = None
        self._unwritten: dict[ExecutionKey, tuple[ExecutionRecord, EndpointState, int]] = {}
        self._loop: LoopThread | None = None
        self._lease = LeaseKeeper(self.store, spec.id, lost=self._lease_lost, failed=self._crashed)

    # -- public surface ----------------------------------------------------------------------

    @property
    def job_id(self) -> str:
        """The job's id."""
        return self.spec.id

    @property
    def strategy(self) -> str:
        """The scheduling strategy of this run."""
        return self.options.strategy

    @property
    def result(self) -> JobResult | None:
        """The result once the job has finished, else ``None``."""
        return self._result

    def progress(self) -> Progress:
        """A snapshot of the job's progress (see :class:`Progress` for what each count means)."""
        if not self._ran:
            raise UsageError("the job has not started yet")
        if self._result is not None:
            eta: float | None = 0.0
        else:
            # Once the job stops, what is left is interrupting, not running: no estimate.
            eta = None if self._stopping else self._eta.eta(self._now() - self._t0)
        progress = self._ledger.progress(
            self.spec.id,
            elapsed=self._now() - self._t0,
            unstarted=self._picker.unstarted,
            waiting=self._attempts.waiting,
            eta=eta,
        )
        return progress if self._fleet is None else self._fleet.annotate(progress)

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[RegionQueue] = anyio.TASK_STATUS_IGNORED
    ) -> JobResult:
        """Run the job to its end and return the result.

        ``task_status.started(self)`` is called once the job is registered in the store, this
        run holds its lease and its plan is ready, so ``await task_group.start(queue.run)``
        returns a running job.

        Raises:
            JobLockedError: Another run of the job holds its lease (nothing has run).
            LeaseLostError: Another runner took the job over while this one ran.
            Exception: What a callback or the store raised, once every key has its record.
        """
        if self._ran:
            raise UsageError("a RegionQueue runs one job once; create a new one")
        self._ran = True
        self._finished_event = anyio.Event()
        self._loop = LoopThread.current()
        try:
            await self._prepare()
        except BaseException:
            await self._lease.release()
            self._finished_event.set()
            raise
        task_status.started(self)
        try:
            await self._run_workers()
        finally:
            # Every path out (normal end, cancel, outer cancellation, a crash) accounts for every
            # key before the verdict; shielded so an outer cancellation cannot cut it short.
            with anyio.CancelScope(shield=True):
                try:
                    self._pause_gc()
                    await self._finish()
                except Exception as exc:
                    # The store failed while accounting: whoever waits must hear of it.
                    if self._stop.crash is None:
                        self._stop.crash = exc
                    raise
                finally:
                    self._resume_gc()
                    # Released before anyone hears the job ended, so a run started right after
                    # this one's end is not refused.
                    await self._lease.release()
                    self._finished_event.set()
        if self._stop.crash is not None:
            raise self._stop.crash
        assert self._result is not None
        return self._result

    # -- setup -------------------------------------------------------------------------------

    async def _prepare(self) -> None:
        spec, opts, limits = self.spec, self.options, self.limits
        self._now, self._checkpoint = _compat.backend_primitives()
        self._task_scopes, self._new_scope = _compat.task_scopes(), _compat.scope_factory()
        self._emit = opts.on_event
        self._cancelled_exc = anyio.get_cancelled_exc_class()
        self._log = log = JobLog(spec.id)
        check_endpoint_regions(self.executor, spec.regions)  # before anything is stored
        if opts.preflight and isinstance(self.executor, SupportsPreflight):
            await log.preflight(self.executor, spec.regions)
        # Shielded: once the job is open in the store, the run must reach _finish so that
        # every key gets a record; an outer cancellation is seen by the workers instead.
        with anyio.CancelScope(shield=True):
            await self.store.open_job(spec)
            await self._lease.acquire()  # a second run is refused here, before it plans
            kept = await self._kept_keys()
        self._plan = plan = Plan(spec, opts.strategy, kept)
        self._t0 = self._now()
        self._wall0 = opts.wall_clock()
        self._ledger = ledger = Ledger(plan, wall_offset=self._wall0 - self._t0)
        ledger.keep_all(kept)
        per_endpoint = limits.per_endpoint if opts.strategy == "endpoint" else 1
        unstarted = plan.size - ledger.kept
        budget = Budget.for_run(
            spec, limits, opts.cost_model, endpoints=plan.endpoints, attempts=opts.retry.attempts
        )
        if budget is not None:  # the job's budget, not the run's: earlier runs spent some
            budget.spent = kept.spent
        self._picker = Picker(
            plan,
            per_endpoint=per_endpoint,
            per_region=limits.per_region,
            unstarted=unstarted,
            budget=budget,
        )
        self._fleet = Fleet.for_run(
            spec.id,
            opts,
            limits,
            plan,
            self._picker,
            per_endpoint,
            budget,
            self._now,
            emit=self._emit_safely,
            wake=self._wake_if_ready,
        )
        self._eta = EtaEstimator(
            plan,
            ledger,
            per_endpoint=per_endpoint,
            per_region=limits.per_region,
            max_concurrency=limits.max_concurrency,
        )
        self._idle = 0
        self._wake = anyio.Event()
        self._interrupt = anyio.Event()
        self._job_deadline = None if limits.job_timeout is None else self._t0 + limits.job_timeout
        self._attempts = self._attempt_loop()
        self._end = JobEnd(
            store=self.store,
            job_id=spec.id,
            unstarted=self._unstarted_keys,
            ledger=ledger,
            stop=self._stop,
            lease=self._lease,
            finished=self._finished,
            crashed=self._crashed,
            now=self._now,
            write=self._store_and_account,
        )
        log.started(plan.size, unstarted, ledger.kept, opts.strategy)
        log.warn_if_samples_alike(spec.samples, spec.params)
        self._emit_safely(JobStarted(spec.id, self._t0, plan.size, unstarted, opts.strategy))

    def _attempt_loop(self) -> AttemptLoop:
        deadline, grace = self._job_deadline, self.limits.cancel_grace
        # One watch times the attempts out through each worker's scope (``_watch``); a run
        # with fleet guards has per-endpoint timeouts, so a deadline scope per attempt.
        timed = self.limits.attempt_timeout is not None and self._fleet is None
        self._watch = AttemptWatch(self._now) if timed else None
        return AttemptLoop(
            job_id=self.spec.id,
            executor=self.executor,
            params=self.spec.params,
            retry=self.options.retry,
            attempt_timeout=self.limits.attempt_timeout,
            job_deadline=deadline,
            # When an attempt is interrupted at the latest: the job deadline plus the grace.
            hard_deadline=None if deadline is None else deadline + grace,
            ledger=self._ledger,
            stop=self._stop,
            may_start=self._may_start,
            now=self._now,
            emit=self._emit,
            log=self._log,
            system_prompts={r: self.spec.system_prompt_for(r) for r in self.spec.regions},
            fleet=self._fleet,
            deadline=_compat.deadline_factory(),
            watch=self._watch,
        )

    async def _kept_keys(self) -> KeptKeys:
        """The keys an earlier run finished that this run keeps (and so does not run again)."""
        statuses = _COMPLETED_ONLY if self.options.rerun_failed else _FINISHED
        spec = self.spec
        found = self.store.keys(spec.id, status=statuses)
        return await KeptKeys.read([q.id for q in spec.questions], spec.samples, found)

    # -- the workers -------------------------------------------------------------------------

    async def _run_workers(self) -> None:
        # As many workers as can be in flight at once, and no more than there is work.
        n_workers = min(self._eta.cap, self._picker.unstarted)
        if n_workers <= 0:
            return
        async with anyio.create_task_group() as outer:
            if self._job_deadline is not None:
                outer.start_soon(self._deadline_watch, self._job_deadline)
            outer.start_soon(self._lease.heartbeat)
            outer.start_soon(self._interrupt_when_asked)
            if self._fleet is not None:
                outer.start_soon(self._fleet.watch)
            if self._watch is not None:
                outer.start_soon(self._watch.run)
            with anyio.CancelScope() as workers_scope:
                self._workers_scope = workers_scope
                if self._stopping:  # cancelled before the workers existed
                    workers_scope.cancel()
                # Workers return when cancelled, so trio's bare nursery serves (see _compat).
                async with _compat.worker_group() as tg:
                    self._workers_group = tg
                    for _ in range(n_workers):
                        self._spawn(None)
            self._workers_scope = self._workers_group = None
            outer.cancel_scope.cancel()

    async def _deadline_watch(self, deadline: float) -> None:
        await anyio.sleep_until(deadline)
        self._request_cancel("deadline", self._deadline_reason())

    def _spawn(self, carried: Carried | None) -> None:
        """Start a worker; with ``carried``, one that first goes on with that execution."""
        group = self._workers_group
        if self._watch is None:
            group.start_soon(self._worker, None, carried)
        elif self._task_scopes:
            worker = Worker()  # the watch cancels this task through its own scope (asyncio)
            worker.handle = group.start_soon(self._worker, worker, carried)
        else:
            group.start_soon(self._scoped_worker, carried)

    async def _scoped_worker(self, carried: Carried | None) -> None:
        """A worker in a scope of its own, for the watch to cancel (trio's tasks have none)."""
        worker = Worker()
        with self._new_scope() as worker.handle:
            await self._worker(worker, carried)

    async def _worker(self, worker: Worker | None, carried: Carried | None) -> None:
        try:
            await self._work(worker, carried)
        except Handover as handover:
            # Its attempt timed out, and this task's scope with it: a new worker goes on.
            self._spawn(handover.carried)
        except self._cancelled_exc:
            if not self._stopping:
                # Nobody inside asked for this, so it came from the caller's cancel scope.
                self._request_cancel("scope", "the caller's cancel scope was cancelled")
            # The job is ending and this task has nothing left to do: it ends here, without
            # awaiting again. Re-raising would leave each interrupted task's exception in a
            # reference cycle with its traceback's frames (the event loop's task keeps it),
            # about 40 objects per task for the collector to find while the job ends; a
            # caller's cancellation still reaches the run's own task, which owns this group.
            return
        except Exception as exc:
            self._crashed(exc)

    async def _work(self, worker: Worker | None, carried: Carried | None) -> None:
        """Pick, execute, store, account; until nothing is left or the job stops.

        ``carried`` (an execution whose attempt timed out in another worker) goes first, taken
        before anything is awaited, so it is accounted for here or by the watch, never by
        neither. One execution's path is inline here rather than in a helper coroutine: this
        loop runs once per execution of the job, and a coroutine per execution is measurable.
        """
        picker, attempts, store = self._picker, self._attempts, self.store
        plan = self._plan
        prompts, samples = plan.prompts, plan.samples
        job_id, unwritten = self.spec.id, self._unwritten
        deadline = self._job_deadline
        # Raises if the caller's scope is cancelled; never yields otherwise, so nothing can
        # happen between this check, the pick and the call into the executor. Later iterations
        # get the same guarantee from the checkpoint that ends each one, which raises if the
        # caller's scope was cancelled while this task was suspended.
        if carried is None:
            await checkpoint_if_cancelled()
        while carried is not None or self._may_start():
            if carried is not None:
                key, prompt, (e, q) = carried.key, carried.prompt, carried.at
                self._watch.take(carried)  # type: ignore[union-attr]
            else:
                if deadline is not None and self._now() >= deadline:
                    self._request_cancel("deadline", self._deadline_reason())
                    return
                picked = picker.pick()
                if picked is None:
                    if picker.unstarted == 0:
                        return
                    if picker.over_budget:
                        assert picker.budget is not None
                        self._request_cancel("budget", picker.budget.reason())
                        return
                    await self._idle_wait()
                    continue
                e = picked
                q = self._start(e)  # the slot: sample q % samples of question q // samples
                key, prompt = plan.key(e, q), prompts[q // samples]
            try:
                if carried is None:
                    record = await attempts.run(key, prompt, (e, q), worker)
                else:
                    record = await attempts.carry_on(carried, worker)  # type: ignore[arg-type]
            except Handover:
                raise  # the execution goes on in another worker, in the same slot
            except BaseException:  # cancelled, or a bug; the attempt loop noted the execution
                picker.release(e, requeue=False)
                raise
            carried = None
            if self._stopping and self._lease.fenced:
                # It ended at the instant the lease was found lost: the new holder runs it.
                picker.release(e, requeue=False)
                return
            unwritten[key] = (record, e, q)
            try:
                await store.write(job_id, record)
            finally:
                # Cancelled, the write may or may not have landed: _finish writes it again
                # (writes are idempotent per key), then emits its ExecutionFinished.
                self._release(e)
            del unwritten[key]
            self._finished(record, e, q)
            # Yield once per execution so that a job of instant executions still lets other
            # tasks (and the caller's cancellation) in.
            await self._checkpoint()

    # -- the end: account for everything, then the verdict --------------------------------

    def _unstarted_keys(self) -> Iterator[tuple[ExecutionKey, EndpointState, int]]:
        return self._plan.unstarted()

    async def _store_and_account(self, batch: Sequence[Accounted]) -> None:
        await self._end.store_batch(batch)

    async def _finish(self) -> None:
        # The job is over for whatever reason: from here on nothing may start.
        self._stopping = True
        unwritten, interrupted = list(self._unwritten.values()), list(self._attempts.interrupted)
        self._unwritten.clear()
        self._attempts.interrupted.clear()
        if self._watch is not None:
            self._take_leftovers(self._watch, unwritten, interrupted)
        result = await self._end.finish(
            unwritten, interrupted, policy=self.policy, limits=self.limits, started_at=self._wall0
        )
        if result is not None:  # None: the lease passed on, and the job with it
            self._result = result
            self._log.finished(result)
            self._emit_safely(JobFinished(self.spec.id, result, self._now()))

    def _take_leftovers(
        self, watch: AttemptWatch, unwritten: list[Accounted], interrupted: list[Interrupted]
    ) -> None:
        """Executions that timed out while the job ended, before another worker took them."""
        now = self._now()
        for c in watch.leftovers():
            record = self._attempts.answered(c)
            if record is not None:
                unwritten.append((record, *c.at))
            else:
                assert isinstance(c.outcome, Exception)
                interrupted.append(Interrupted(c.key, c.outcome, c.calls, c.started, now, c.at))

    async def wait(self) -> JobResult:
        """Wait for the verdict and return the result (or raise what stopped the job)."""
        if self._finished_event is None:
            raise UsageError("the job has not started yet")
        await self._finished_event.wait()
        if self._stop.crash is not None:
            raise self._stop.crash
        if self._result is None:
            raise UsageError(f"job {self.spec.id!r} ended without a verdict; see its task's error")
        return self._result
