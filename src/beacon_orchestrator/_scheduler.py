"""The RegionQueue scheduler, JobHandle, and the run_job / start_job entry points.

How it works, in brief. A job's executions are never materialised: each endpoint (model x
region) keeps a cursor over the questions, and a fixed pool of worker tasks (as many as can be
in flight at once) repeatedly *picks* the next startable execution from a ready queue of
endpoints. Picking is synchronous, and the cancellation check, the pick and the call into the
executor happen with no await between them; that is what makes "no start after cancel" true by
construction rather than by timing. The strategies only differ in a gate: under ``"region"``
each region, and under ``"lockstep"`` the whole job, is a group whose members may only start
the group's current question, and the group advances once every execution of that question is
terminal and stored.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, Literal, TypeAlias, get_args

import anyio
import anyio.abc
from anyio.lowlevel import checkpoint_if_cancelled
from attrs import define, field

from ._errors import ExecutionError, UsageError
from ._events import (
    CancelSource,
    Counter,
    EventHandler,
    ExecutionFinished,
    ExecutionStarted,
    JobCancelled,
    JobFinished,
    JobStarted,
    Progress,
    QuestionFinished,
    QuestionStarted,
)
from ._executor import ExecutionRequest, Executor, Response, SupportsPreflight
from ._retry import RetryPolicy
from ._spec import JobSpec, Limits
from ._status import JobResult, JobStatus, RegionTally, StatusPolicy, Tally, Verdict
from ._types import ExecutionKey, ExecutionRecord, ExecutionStatus
from .stores import MemoryStore, Store

__all__ = ["JobHandle", "RegionQueue", "Strategy", "run_job", "run_job_sync", "start_job"]

Strategy: TypeAlias = Literal["endpoint", "region", "lockstep"]
"""How questions advance: per endpoint (default), per region, or in lockstep across regions."""

_STRATEGIES: tuple[str, ...] = get_args(Strategy)
_SKIP_CHUNK = 1000

_C = ExecutionStatus.COMPLETED
_F = ExecutionStatus.FAILED
_T = ExecutionStatus.TIMEOUT
_X = ExecutionStatus.CANCELLED
_S = ExecutionStatus.SKIPPED


class _Group:
    """A set of endpoints that advance through the questions together (region or lockstep)."""

    __slots__ = ("cur_q", "members", "outstanding")

    def __init__(self) -> None:
        self.members: list[_Ep] = []
        self.cur_q = 0
        self.outstanding = 0


class _Region:
    __slots__ = ("in_flight", "name", "parked")

    def __init__(self, name: str) -> None:
        self.name = name
        self.in_flight = 0
        self.parked: list[_Ep] = []


class _Ep:
    """Mutable scheduling state of one endpoint (plain slots class: it is on the hot path)."""

    __slots__ = (
        "cursor",
        "group",
        "in_flight",
        "label",
        "model",
        "parked",
        "queued",
        "region",
        "tally",
    )

    def __init__(self, model: str, region: _Region) -> None:
        self.model = model
        self.region = region
        self.label = f"{model}@{region.name}"
        self.cursor = 0
        self.in_flight = 0
        self.queued = False
        self.parked = False
        self.group: _Group | None = None
        # Terminal records here: completed, completed empty, failed or timed out, unfinished.
        self.tally = [0, 0, 0, 0]


# Not slotted: the run state is set up in _prepare, once the job is known to the store.
@define(eq=False, slots=False)
class RegionQueue:
    """Runs one job: schedules its executions and accounts for every one of them.

    Most code calls :func:`run_job` or :func:`start_job`, which build a ``RegionQueue``. Use it
    directly to keep a reference to the running job's state (for :meth:`progress`) without a
    handle. One instance runs one job once.

    Args:
        spec: The job.
        executor: Sends each attempt.
        store: Where records go (default: a fresh :class:`MemoryStore`).
        strategy: ``"endpoint"``, ``"region"`` or ``"lockstep"`` (see the scheduling docs).
        policy: The status policy (default: ``spec.policy``).
        limits: Bounds (default: ``spec.limits``).
        retry: Retry policy (default: ``RetryPolicy()``).
        on_event: Called synchronously with every event, in order.
        early_stop: Stop as soon as the policy's verdict can no longer change.
        rerun_failed: On resume, run keys whose stored record is ``FAILED``/``TIMEOUT`` again
            (``CANCELLED``/``SKIPPED``/missing keys always run; ``COMPLETED`` ones never do).
        preflight: Ask the executor (if it supports it) to check its regions first.
        wall_clock: Source of wall time for record timestamps (default ``time.time``).
    """

    spec: JobSpec
    executor: Executor
    store: Store = field(factory=MemoryStore)
    strategy: Strategy = "endpoint"
    policy: StatusPolicy | None = None
    limits: Limits | None = None
    retry: RetryPolicy = field(factory=RetryPolicy)
    on_event: EventHandler | None = None
    early_stop: bool = False
    rerun_failed: bool = True
    preflight: bool = False
    wall_clock: Callable[[], float] = time.time

    # -- runtime state (set up in _prepare) ----------------------------------------------
    _ran: bool = field(default=False, init=False)
    _stopping: bool = field(default=False, init=False)
    _cancel_source: CancelSource | None = field(default=None, init=False)
    _cancel_reason: str | None = field(default=None, init=False)
    _crash: BaseException | None = field(default=None, init=False)
    _workers_scope: anyio.CancelScope | None = field(default=None, init=False)
    _sleepers: set[anyio.CancelScope] = field(factory=set, init=False)
    _finished_event: anyio.Event | None = field(default=None, init=False)
    _result: JobResult | None = field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        if self.strategy not in _STRATEGIES:
            raise UsageError(
                f"strategy must be one of {', '.join(map(repr, _STRATEGIES))}, "
                f"got {self.strategy!r}"
            )
        if not isinstance(self.executor, Executor):
            raise UsageError(
                f"executor must have an 'async def execute(request)' method, got "
                f"{type(self.executor).__name__}; wrap a function with FunctionExecutor(fn)"
            )

    # ------------------------------------------------------------------------------------
    # Public surface
    # ------------------------------------------------------------------------------------

    @property
    def job_id(self) -> str:
        """The job's id."""
        return self.spec.id

    @property
    def result(self) -> JobResult | None:
        """The result once the job has finished, else ``None``."""
        return self._result

    def cancel(self, reason: str | None = None) -> None:
        """Request cancellation. When this returns, no execution or retry will start."""
        if not self._ran:
            raise UsageError("the job has not started yet; there is nothing to cancel")
        self._request_cancel("handle", reason or "cancelled by the caller")

    def progress(self) -> Progress:
        """A snapshot of the job's progress."""
        if not self._ran:
            raise UsageError("the job has not started yet")
        now = anyio.current_time()
        elapsed = now - self._t0
        total = self._planned
        done = sum(self._counts.values())
        ran = done - self._pre_done
        to_run = total - self._pre_done
        eta = None if ran <= 0 else elapsed / ran * (to_run - ran)
        qtotal = len(self._eps)
        n_q = self._n_q
        by_endpoint = {e.label: Counter(sum(e.tally), n_q) for e in self._eps}
        by_region: dict[str, list[int]] = {}
        by_model: dict[str, list[int]] = {}
        for e in self._eps:
            done_here = sum(e.tally)
            for slot in (
                by_region.setdefault(e.region.name, [0, 0]),
                by_model.setdefault(e.model, [0, 0]),
            ):
                slot[0] += done_here
                slot[1] += n_q
        return Progress(
            job_id=self.spec.id,
            total=total,
            done=done,
            in_flight=self._in_flight,
            counts=dict(self._counts),
            by_question={
                q.id: Counter(self._q_done[i], qtotal) for i, q in enumerate(self.spec.questions)
            },
            by_region={name: Counter(d, t) for name, (d, t) in by_region.items()},
            by_model={name: Counter(d, t) for name, (d, t) in by_model.items()},
            by_endpoint=by_endpoint,
            elapsed=elapsed,
            eta=eta,
        )

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[RegionQueue] = anyio.TASK_STATUS_IGNORED
    ) -> JobResult:
        """Run the job to its end and return the result.

        ``task_status.started(self)`` is called once the job is registered in the store and its
        plan is ready, so ``await task_group.start(queue.run)`` returns a running job.
        """
        if self._ran:
            raise UsageError("a RegionQueue runs one job once; create a new one")
        self._ran = True
        await self._prepare()
        task_status.started(self)
        try:
            await self._run_workers()
        finally:
            # Every path out (normal end, cancel, outer cancellation, a crash) accounts for every
            # key before the verdict; shielded so an outer cancellation cannot cut it short.
            with anyio.CancelScope(shield=True):
                try:
                    await self._finish()
                except Exception as exc:
                    # The store failed while accounting: whoever waits must hear of it.
                    if self._crash is None:
                        self._crash = exc
                    raise
                finally:
                    assert self._finished_event is not None
                    self._finished_event.set()
        if self._crash is not None:
            raise self._crash
        assert self._result is not None
        return self._result

    # ------------------------------------------------------------------------------------
    # Setup
    # ------------------------------------------------------------------------------------

    async def _prepare(self) -> None:
        spec = self.spec
        self._now, self._checkpoint = _backend_primitives()
        self._limits = limits = self.limits if self.limits is not None else spec.limits
        self._policy: StatusPolicy = self.policy if self.policy is not None else spec.policy
        self._emit = self.on_event
        self._cancelled_exc = anyio.get_cancelled_exc_class()
        self._finished_event = anyio.Event()

        if self.preflight and isinstance(self.executor, SupportsPreflight):
            await self.executor.preflight(spec.regions)

        # Shielded: once the job is open in the store, the run must reach _finish so that
        # every key gets a record; an outer cancellation is seen by the workers instead.
        with anyio.CancelScope(shield=True):
            await self.store.open_job(spec)
            prior = await self._prior_records()
        done = {r.key for r in prior}
        self._done_keys = done

        questions = spec.questions
        self._n_q = n_q = len(questions)
        self._qids = [q.id for q in questions]
        self._prompts = [q.prompt for q in questions]
        self._q_index = {q.id: i for i, q in enumerate(questions)}
        self._params = spec.params
        self._per_endpoint = 1 if self.strategy != "endpoint" else limits.per_endpoint
        self._per_region = limits.per_region

        regions: dict[str, _Region] = {}
        eps: list[_Ep] = []
        for m in spec.models:
            for rname in m.regions:
                region = regions.get(rname)
                if region is None:
                    region = regions[rname] = _Region(rname)
                eps.append(_Ep(m.id, region))
        self._eps = eps
        self._planned = n_q * len(eps)

        # Cursors skip keys already done, so resumed work is never scheduled again.
        for e in eps:
            e.cursor = self._advance(e, 0)

        if self.strategy == "region":
            groups: dict[str, _Group] = {}
            for e in eps:
                e.group = groups.setdefault(e.region.name, _Group())
                e.group.members.append(e)
            self._groups = list(groups.values())
        elif self.strategy == "lockstep":
            group = _Group()
            for e in eps:
                e.group = group
                group.members.append(e)
            self._groups = [group]
        else:
            self._groups = []
        for g in self._groups:
            self._reset_group(g)

        # Counters for progress, the policy and the question events.
        self._counts: dict[ExecutionStatus, int] = dict.fromkeys(ExecutionStatus, 0)
        self._q_done = [0] * n_q
        self._q_remaining = [len(eps)] * n_q
        self._q_started = [False] * n_q
        self._pre_done = 0
        ep_index = {(e.model, e.region.name): e for e in eps}
        for rec in prior:
            key = rec.key
            qi = self._q_index.get(key.question_id)
            owner = ep_index.get((key.model_id, key.region))
            if qi is None or owner is None:
                continue  # a record for a key this spec does not plan (cannot happen via open_job)
            self._pre_done += 1
            self._q_remaining[qi] -= 1
            self._q_started[qi] = True
            self._account(rec, owner, qi)

        self._unstarted = self._planned - self._pre_done
        self._in_flight = 0
        self._idle = 0
        self._wake = anyio.Event()
        self._ready: deque[_Ep] = deque()
        for e in eps:
            self._enqueue(e)
        self._unwritten: dict[ExecutionKey, ExecutionRecord] = {}
        # (key, endpoint, question, last error, attempts, started, interrupted at)
        self._interrupted: list[
            tuple[ExecutionKey, _Ep, int, BaseException | None, int, float, float]
        ] = []
        self._retries_left = self.retry.budget

        mc = limits.max_concurrency
        cap = len(eps) * self._per_endpoint
        if self._per_region is not None:
            cap = min(cap, len(regions) * self._per_region)
        self._n_workers = max(0, min(cap, mc if mc is not None else cap, self._unstarted))

        self._t0 = self._now()
        self._wall0 = self.wall_clock()
        self._wall_offset = self._wall0 - self._t0
        self._job_deadline = None if limits.job_timeout is None else self._t0 + limits.job_timeout
        # When an attempt is interrupted at the latest: the job deadline plus the grace.
        self._hard_deadline = (
            None if self._job_deadline is None else self._job_deadline + limits.cancel_grace
        )
        if self._emit is not None:
            self._emit(JobStarted(spec.id, self._t0, self._planned, self._unstarted, self.strategy))

    async def _prior_records(self) -> list[ExecutionRecord]:
        """Records of an earlier run that this run keeps (and so does not execute again)."""
        store, job_id = self.store, self.spec.id
        if self.rerun_failed:
            if not await store.completed_keys(job_id):
                return []
            return [r for r in await store.records(job_id) if r.status is _C]
        return [r for r in await store.records(job_id) if r.status.finished]

    def _advance(self, e: _Ep, q: int) -> int:
        """The first question index >= q whose key on e still needs to run."""
        done = self._done_keys
        if done:
            qids = self._qids
            n_q = len(qids)
            while q < n_q and ExecutionKey(qids[q], e.model, e.region.name) in done:
                q += 1
            return q
        return q

    def _reset_group(self, g: _Group) -> None:
        cur = min(m.cursor for m in g.members)
        g.cur_q = cur
        g.outstanding = sum(1 for m in g.members if m.cursor == cur) if cur < self._n_q else 0

    def _enqueue(self, e: _Ep) -> None:
        if not e.queued and e.cursor < self._n_q:
            e.queued = True
            self._ready.append(e)

    # ------------------------------------------------------------------------------------
    # Cancellation
    # ------------------------------------------------------------------------------------

    def _request_cancel(self, source: CancelSource, reason: str) -> None:
        """Stop all new work, synchronously, and interrupt what is in flight."""
        if self._stopping or not self._ran or self._result is not None:
            return
        self._stopping = True
        self._cancel_source = source
        self._cancel_reason = reason
        now = self._now()
        if self._emit is not None:
            self._emit(JobCancelled(self.spec.id, source, reason, now))
        for sleeper in self._sleepers:
            sleeper.cancel()
        self._wake_idle()
        workers = self._workers_scope
        if workers is not None:
            grace = self._limits.cancel_grace
            if grace <= 0:
                workers.cancel()
            else:
                workers.deadline = min(workers.deadline, now + grace)

    # ------------------------------------------------------------------------------------
    # The workers
    # ------------------------------------------------------------------------------------

    async def _run_workers(self) -> None:
        if self._n_workers == 0:
            return
        async with anyio.create_task_group() as outer:
            if self._job_deadline is not None:
                outer.start_soon(self._deadline_watch, self._job_deadline)
            with anyio.CancelScope() as workers_scope:
                self._workers_scope = workers_scope
                if self._stopping:  # cancelled before the workers existed
                    workers_scope.cancel()
                async with anyio.create_task_group() as tg:
                    for _ in range(self._n_workers):
                        tg.start_soon(self._worker)
            self._workers_scope = None
            outer.cancel_scope.cancel()

    async def _deadline_watch(self, deadline: float) -> None:
        await anyio.sleep_until(deadline)
        self._request_cancel(
            "deadline", f"the job deadline of {self._limits.job_timeout:g} s passed"
        )

    def _deadline_reason(self) -> str:
        return f"the job deadline of {self._limits.job_timeout:g} s passed"

    async def _worker(self) -> None:
        try:
            await self._work()
        except self._cancelled_exc:
            if not self._stopping:
                # Nobody inside asked for this, so it came from the caller's cancel scope.
                self._request_cancel("scope", "the caller's cancel scope was cancelled")
            raise
        except BaseException as exc:
            if isinstance(exc, Exception):
                # A bug outside the executor (an on_event callback, the store): stop the job,
                # account for everything, then re-raise it from run() unwrapped.
                if self._crash is None:
                    self._crash = exc
                # If the callback is what raised, calling it again while accounting for the
                # remaining keys would only raise again and leave them unrecorded.
                self._emit = None
                if not self._stopping:
                    self._stopping = True
                    self._wake_idle()
                    if self._workers_scope is not None:
                        self._workers_scope.cancel()
                return
            raise

    async def _work(self) -> None:
        n_q = self._n_q
        per_region = self._per_region
        ready = self._ready
        emit = self._emit
        job_id = self.spec.id
        deadline = self._job_deadline
        # Raises if the caller's scope is cancelled; never yields otherwise, so nothing can
        # happen between this check, the pick and the call into the executor. Later iterations
        # get the same guarantee from the checkpoint that ends each one, which raises if the
        # caller's scope was cancelled while this task was suspended.
        await checkpoint_if_cancelled()
        while True:
            if not self._may_start():
                return
            if deadline is not None and self._now() >= deadline:
                self._request_cancel("deadline", self._deadline_reason())
                return
            # -- pick the next startable execution ------------------------------------
            e: _Ep | None = None
            while ready:
                cand = ready.popleft()
                cand.queued = False
                q = cand.cursor
                if q >= n_q:
                    continue
                g = cand.group
                if g is not None and q != g.cur_q:
                    continue
                if cand.in_flight >= self._per_endpoint:
                    continue
                region = cand.region
                if per_region is not None and region.in_flight >= per_region:
                    if not cand.parked:
                        cand.parked = True
                        region.parked.append(cand)
                    continue
                e = cand
                break
            if e is None:
                if self._unstarted == 0:
                    return
                self._idle += 1
                wake = self._wake
                try:
                    await wake.wait()
                finally:
                    self._idle -= 1
                # A set event returns its value even if the caller's scope was cancelled
                # meanwhile (trio), so check before going on to pick.
                await checkpoint_if_cancelled()
                continue
            q = e.cursor
            e.cursor = self._advance(e, q + 1) if self._done_keys else q + 1
            e.in_flight += 1
            e.region.in_flight += 1
            self._in_flight += 1
            self._unstarted -= 1
            if self._unstarted == 0 and self._idle:
                self._wake_idle()
            elif e.group is None and e.cursor < n_q and e.in_flight < self._per_endpoint:
                e.queued = True
                ready.append(e)
            if not self._q_started[q]:
                self._q_started[q] = True
                if emit is not None:
                    emit(QuestionStarted(job_id, self._qids[q], q, self._now()))
            await self._execute(e, q)
            # Yield once per execution so that a job of instant executions still lets other
            # tasks (and the caller's cancellation) in.
            await self._checkpoint()

    def _wake_idle(self) -> None:
        self._wake.set()
        self._wake = anyio.Event()

    async def _execute(self, e: _Ep, q: int) -> None:
        """Run every attempt of one picked execution, then store and account for its record."""
        key = ExecutionKey(self._qids[q], e.model, e.region.name)
        job_id = self.spec.id
        emit = self._emit
        attempt_timeout = self._limits.attempt_timeout
        retry = self.retry
        attempt = 1
        started = self._now()
        err: BaseException | None = None
        status = _C
        response: Response | None = None
        while True:
            now = self._now() if attempt > 1 else started
            deadline: float | None = None
            if attempt_timeout is not None:
                deadline = now + attempt_timeout
            hard = self._hard_deadline
            if hard is not None:
                deadline = hard if deadline is None else min(deadline, hard)
            request = ExecutionRequest(
                job_id, key, self._prompts[q], self._params, attempt, deadline
            )
            if emit is not None:
                emit(ExecutionStarted(job_id, key, attempt, now))
            try:
                if attempt_timeout is None:
                    response = await self.executor.execute(request)
                else:
                    with anyio.CancelScope(deadline=now + attempt_timeout) as attempt_scope:
                        response = await self.executor.execute(request)
                    if attempt_scope.cancelled_caught:
                        response = None
                        raise _AttemptTimeout(attempt_timeout)  # noqa: TRY301
            except self._cancelled_exc:
                self._interrupt(key, e, q, err, attempt, started)
                raise
            except Exception as exc:
                err = exc
                if isinstance(exc, _AttemptTimeout):
                    status = _T
                elif isinstance(exc, ExecutionError):
                    status = _F
                else:
                    status = _F
                if self._may_retry(exc, attempt):
                    wait = retry.wait(attempt, exc)
                    try:
                        await self._backoff(wait)
                        # A backoff that ends at the instant the caller's scope is cancelled
                        # may still return normally; the retry must not start then.
                        await checkpoint_if_cancelled()
                    except self._cancelled_exc:
                        self._interrupt(key, e, q, err, attempt, started)
                        raise
                    if self._may_start() and (
                        self._job_deadline is None or self._now() < self._job_deadline
                    ):
                        attempt += 1
                        continue
                    status = _X
                break
            else:
                status = _C
                break
        if status is _C and response is not None:
            text = response.text
            record = ExecutionRecord(
                key=key,
                status=_C,
                text=text,
                empty=not text.strip(),
                error_code=None,
                error_message=None,
                attempts=attempt,
                started_at=started + self._wall_offset,
                finished_at=self._now() + self._wall_offset,
                provider=response.provider,
                metadata=response.metadata,
                receipt=response.receipt,
            )
        else:
            record = self._failure_record(key, status, err, attempt, started)
        unwritten = self._unwritten
        unwritten[key] = record
        try:
            await self.store.write(job_id, record)
        except self._cancelled_exc:
            # The write may or may not have landed: _finish writes it again (writes are
            # idempotent per key), then emits its ExecutionFinished.
            self._release(e)
            raise
        del unwritten[key]
        self._release(e)
        self._finished(record, e, q)

    def _may_start(self) -> bool:
        """The check that precedes every start and every retry: has cancellation been asked?"""
        return not self._stopping

    def _may_retry(self, exc: BaseException, attempt: int) -> bool:
        if not self._may_start():
            return False
        retryable = isinstance(exc, _AttemptTimeout) or (
            isinstance(exc, ExecutionError) and exc.transient
        )
        if not retryable or attempt >= self.retry.attempts:
            return False
        if self._retries_left is not None:
            if self._retries_left <= 0:
                return False
            self._retries_left -= 1
        return True

    async def _backoff(self, seconds: float) -> None:
        # A scope per backoff, registered so that cancel() can cut every backoff short at once:
        # a retry must never start after cancellation, however long the provider asked us to wait.
        with anyio.CancelScope() as scope:
            self._sleepers.add(scope)
            try:
                await anyio.sleep(seconds)
            finally:
                self._sleepers.discard(scope)

    def _wall(self, t: float) -> float:
        return t + self._wall_offset

    def _failure_record(
        self,
        key: ExecutionKey,
        status: ExecutionStatus,
        err: BaseException | None,
        attempts: int,
        started: float,
        *,
        ended: float | None = None,
    ) -> ExecutionRecord:
        code: str | None
        if isinstance(err, _AttemptTimeout):
            code, message = "TIMEOUT", str(err)
        elif isinstance(err, ExecutionError):
            code, message = err.code or type(err).__name__, err.message
        elif err is not None:
            code, message = "EXECUTOR_ERROR", f"{type(err).__name__}: {err}"
        else:
            code, message = None, None
        if status is _X:
            code = "CANCELLED"
            why = self._cancel_reason or "cancelled"
            message = f"interrupted: {why}" + (f" (last failure: {message})" if message else "")
        return ExecutionRecord(
            key=key,
            status=status,
            text=None,
            empty=False,
            error_code=code,
            error_message=message,
            attempts=attempts,
            started_at=self._wall(started),
            finished_at=self._wall(self._now() if ended is None else ended),
        )

    def _interrupt(
        self,
        key: ExecutionKey,
        e: _Ep,
        q: int,
        err: BaseException | None,
        attempts: int,
        started: float,
    ) -> None:
        """Note an execution cut short by cancellation; its record is built in _finish.

        This runs once per in-flight execution while the job is being cancelled, before the
        next task gets its turn, so it does the least it can: a tuple and the slot counts.
        """
        self._interrupted.append((key, e, q, err, attempts, started, self._now()))
        self._release(e)

    def _release(self, e: _Ep) -> None:
        """Free the slots an execution held and make whatever they unblock startable."""
        e.in_flight -= 1
        region = e.region
        region.in_flight -= 1
        self._in_flight -= 1
        if self._stopping:
            return  # nothing will start again: no need to queue anything
        if region.parked and (self._per_region is None or region.in_flight < self._per_region):
            for p in region.parked:
                p.parked = False
                self._enqueue(p)
            region.parked.clear()
        self._enqueue(e)
        if self._idle and self._ready:
            self._wake_idle()

    def _account(self, record: ExecutionRecord, e: _Ep, q: int) -> None:
        """Count a terminal record in the progress counters and the policy tally."""
        # Only what the hot path must count; per-region and per-model figures are sums of the
        # endpoints' tallies, computed when someone asks (progress, the policy).
        status = record.status
        self._counts[status] += 1
        self._q_done[q] += 1
        t = e.tally
        if status is _C:
            t[1 if record.empty else 0] += 1
        elif status is _F or status is _T:
            t[2] += 1
        else:
            t[3] += 1

    def _finished(self, record: ExecutionRecord, e: _Ep, q: int) -> None:
        """Bookkeeping once a record is stored: events, barriers, early stop."""
        self._account(record, e, q)
        emit = self._emit
        if emit is not None:
            emit(ExecutionFinished(self.spec.id, record, self._now()))
        self._q_remaining[q] -= 1
        if self._q_remaining[q] == 0 and emit is not None:
            emit(QuestionFinished(self.spec.id, self._qids[q], q, self._now()))
        g = e.group
        if g is not None and q == g.cur_q:
            g.outstanding -= 1
            if g.outstanding == 0:
                self._reset_group(g)
                for m in g.members:
                    if m.cursor == g.cur_q:
                        self._enqueue(m)
                if self._idle and self._ready:
                    self._wake_idle()
        if self.early_stop and not self._stopping:
            verdict = self._policy.decided(self._make_tally())
            if verdict is not None:
                self._request_cancel(
                    "early_stop", f"the verdict can no longer change ({verdict.status.value})"
                )

    def _make_tally(self) -> Tally:
        sums: dict[str, list[int]] = {}
        for e in self._eps:
            slot = sums.setdefault(e.region.name, [0, 0, 0, 0, 0])
            slot[0] += self._n_q
            for i, n in enumerate(e.tally):
                slot[i + 1] += n
        return Tally({name: RegionTally(*counts) for name, counts in sums.items()})

    # ------------------------------------------------------------------------------------
    # The end: account for everything, then the verdict
    # ------------------------------------------------------------------------------------

    def _unstarted_keys(self) -> Iterator[tuple[ExecutionKey, _Ep, int]]:
        qids = self._qids
        n_q = self._n_q
        for e in self._eps:
            q = e.cursor
            while q < n_q:
                yield ExecutionKey(qids[q], e.model, e.region.name), e, q
                q = self._advance(e, q + 1)
            e.cursor = n_q

    async def _store_and_account(self, batch: Sequence[tuple[ExecutionRecord, _Ep, int]]) -> None:
        if not batch:
            return
        await self.store.write_many(self.spec.id, [rec for rec, _, _ in batch])
        for rec, e, q in batch:
            self._finished(rec, e, q)

    async def _finish(self) -> None:
        ep_index = {(e.model, e.region.name): e for e in self._eps}

        def locate(key: ExecutionKey) -> tuple[_Ep, int]:
            return ep_index[key.model_id, key.region], self._q_index[key.question_id]

        # The job is over for whatever reason: from here on nothing may start.
        self._stopping = True
        batch: list[tuple[ExecutionRecord, _Ep, int]] = []
        for rec in list(self._unwritten.values()):
            batch.append((rec, *locate(rec.key)))
        self._unwritten.clear()
        for key, e, q, err, attempts, started, ended in self._interrupted:
            rec = self._failure_record(key, _X, err, attempts, started, ended=ended)
            batch.append((rec, e, q))
        self._interrupted.clear()
        await self._store_and_account(batch)

        now_wall = self._wall(self._now())
        reason = self._cancel_reason or "the job ended"
        chunk: list[tuple[ExecutionRecord, _Ep, int]] = []
        for key, e, q in self._unstarted_keys():
            rec = ExecutionRecord(
                key=key,
                status=_S,
                text=None,
                empty=False,
                error_code="SKIPPED",
                error_message=f"never started: {reason}",
                attempts=0,
                started_at=None,
                finished_at=now_wall,
            )
            chunk.append((rec, e, q))
            if len(chunk) >= _SKIP_CHUNK:
                await self._store_and_account(chunk)
                chunk = []
        await self._store_and_account(chunk)

        tally = self._make_tally()
        verdict = self._verdict(tally)
        records = tuple(await self.store.records(self.spec.id))
        end = self._now()
        result = JobResult(
            job_id=self.spec.id,
            status=verdict.status,
            reason=verdict.reason,
            counts=dict(self._counts),
            success_rate=self._policy.success_rate(tally),
            planned=self._planned,
            records=records,
            started_at=self._wall0,
            finished_at=self._wall(end),
            cancelled_by=self._cancel_source,
        )
        await self.store.finish_job(self.spec.id, result)
        self._result = result
        if self._emit is not None:
            self._emit(JobFinished(self.spec.id, result, self._now()))

    def _verdict(self, tally: Tally) -> Verdict:
        source = self._cancel_source
        if self._crash is not None:
            return Verdict(
                JobStatus.FAILED,
                f"The job stopped on an unexpected error: {type(self._crash).__name__}.",
            )
        if source in ("handle", "scope"):
            c = self._counts
            return Verdict(
                JobStatus.CANCELLED,
                f"Cancelled ({self._cancel_reason}) with {c[_C]} of {self._planned} executions "
                f"completed; {c[_X]} interrupted and {c[_S]} never started.",
            )
        verdict = self._policy.verdict(tally)
        if source == "deadline":
            return Verdict(
                verdict.status,
                f"The job deadline of {self._limits.job_timeout:g} s passed; {verdict.reason}",
            )
        if source == "early_stop":
            return Verdict(
                verdict.status,
                f"{verdict.reason} Stopped early: the verdict could no longer change.",
            )
        return verdict

    async def _wait(self) -> JobResult:
        assert self._finished_event is not None
        await self._finished_event.wait()
        if self._crash is not None:
            raise self._crash
        if self._result is None:
            raise UsageError(f"job {self.spec.id!r} ended without a verdict; see its task's error")
        return self._result


class _AttemptTimeout(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"the attempt exceeded its timeout of {seconds:g} s")


@define(eq=False)
class JobHandle:
    """A job running in the caller's task group (see :func:`start_job`)."""

    _queue: RegionQueue

    @property
    def job_id(self) -> str:
        """The job's id."""
        return self._queue.job_id

    @property
    def done(self) -> bool:
        """Whether the job has reached its verdict."""
        return self._queue.result is not None

    def cancel(self, reason: str | None = None) -> None:
        """Request cancellation; synchronous.

        When this returns, no execution and no retry will start. In-flight executions are
        interrupted at once, or after ``Limits.cancel_grace`` seconds. The job still stores a
        record for every key and then its verdict, ``CANCELLED``.
        """
        self._queue.cancel(reason)

    def progress(self) -> Progress:
        """A snapshot of done/total per question, region, model and endpoint, and an ETA."""
        return self._queue.progress()

    async def wait(self) -> JobResult:
        """Wait for the verdict and return the result."""
        return await self._queue._wait()


def _make_queue(
    spec: JobSpec,
    executor: Executor,
    *,
    store: Store | None,
    strategy: Strategy,
    policy: StatusPolicy | None,
    limits: Limits | None,
    retry: RetryPolicy | None,
    on_event: EventHandler | None,
    early_stop: bool,
    rerun_failed: bool,
    preflight: bool,
) -> RegionQueue:
    if not isinstance(spec, JobSpec):
        raise UsageError(f"spec must be a JobSpec, got {type(spec).__name__}")
    return RegionQueue(
        spec,
        executor,
        store=MemoryStore() if store is None else store,
        strategy=strategy,
        policy=policy,
        limits=limits,
        retry=RetryPolicy() if retry is None else retry,
        on_event=on_event,
        early_stop=early_stop,
        rerun_failed=rerun_failed,
        preflight=preflight,
    )


async def run_job(
    spec: JobSpec,
    executor: Executor,
    *,
    store: Store | None = None,
    strategy: Strategy = "endpoint",
    policy: StatusPolicy | None = None,
    limits: Limits | None = None,
    retry: RetryPolicy | None = None,
    on_event: EventHandler | None = None,
    early_stop: bool = False,
    rerun_failed: bool = True,
    preflight: bool = False,
) -> JobResult:
    """Run a job to its end and return its :class:`JobResult`.

    Resumes transparently: keys already ``COMPLETED`` in ``store`` are never executed again.
    Cancelled from outside (the calling task's cancel scope), it still stores a record for every
    key and the verdict ``CANCELLED`` before the cancellation propagates.

    Args:
        spec: The job.
        executor: Sends each attempt (see :class:`Executor`, :class:`FunctionExecutor`).
        store: Where records go (default: a new :class:`MemoryStore`).
        strategy: ``"endpoint"`` (default), ``"region"`` or ``"lockstep"``.
        policy: Status policy (default: the spec's :class:`MinSuccessRate`).
        limits: Bounds (default: the spec's).
        retry: Retry policy (default: ``RetryPolicy()``: 3 attempts, exponential backoff).
        on_event: Called synchronously with each event, in order.
        early_stop: Stop once the policy's verdict can no longer change (saves GPU time).
        rerun_failed: On resume, run ``FAILED``/``TIMEOUT`` keys again (default) or keep them.
        preflight: Ask the executor to health-check the job's regions first; raises
            :class:`PreflightError` naming an unusable region before anything starts.

    Raises:
        UsageError: For a bad argument (unknown strategy, not an executor).
        StoreError: When the store cannot open the job.
        PreflightError: When ``preflight`` finds a region unusable.
    """
    queue = _make_queue(
        spec,
        executor,
        store=store,
        strategy=strategy,
        policy=policy,
        limits=limits,
        retry=retry,
        on_event=on_event,
        early_stop=early_stop,
        rerun_failed=rerun_failed,
        preflight=preflight,
    )
    return await queue.run()


async def start_job(
    task_group: anyio.abc.TaskGroup,
    spec: JobSpec,
    executor: Executor,
    *,
    store: Store | None = None,
    strategy: Strategy = "endpoint",
    policy: StatusPolicy | None = None,
    limits: Limits | None = None,
    retry: RetryPolicy | None = None,
    on_event: EventHandler | None = None,
    early_stop: bool = False,
    rerun_failed: bool = True,
    preflight: bool = False,
) -> JobHandle:
    """Start a job in ``task_group`` and return its handle once it is running.

    The job's tasks belong to ``task_group``: cancelling that group cancels the job (which still
    accounts for every key). Arguments are those of :func:`run_job`.

    Example:
        >>> async def main(spec, executor):
        ...     async with anyio.create_task_group() as tg:
        ...         handle = await start_job(tg, spec, executor)
        ...         handle.cancel()
        ...         result = await handle.wait()
    """
    queue = _make_queue(
        spec,
        executor,
        store=store,
        strategy=strategy,
        policy=policy,
        limits=limits,
        retry=retry,
        on_event=on_event,
        early_stop=early_stop,
        rerun_failed=rerun_failed,
        preflight=preflight,
    )
    await task_group.start(_start, queue)
    return JobHandle(queue)


async def _start(
    queue: RegionQueue,
    *,
    task_status: anyio.abc.TaskStatus[RegionQueue] = anyio.TASK_STATUS_IGNORED,
) -> None:
    await queue.run(task_status=task_status)


def run_job_sync(
    spec: JobSpec,
    executor: Executor,
    *,
    backend: str = "asyncio",
    backend_options: dict[str, Any] | None = None,
    **kwargs: Any,
) -> JobResult:
    """Run a job from synchronous code (a script): :func:`run_job` in a new event loop.

    In a notebook, where an event loop is already running, ``await run_job(...)`` in a cell
    instead; this function refuses to nest event loops.

    Raises:
        UsageError: When called from inside a running event loop.
    """
    if _in_event_loop():
        raise UsageError(
            "run_job_sync() was called inside a running event loop (a notebook?); "
            "use 'await run_job(...)' there instead"
        )
    from functools import partial

    return anyio.run(
        partial(run_job, spec, executor, **kwargs),
        backend=backend,
        backend_options=backend_options,
    )


def _backend_primitives() -> tuple[Callable[[], float], Callable[[], Awaitable[None]]]:
    """The running backend's clock and checkpoint, looked up once.

    ``anyio.current_time()`` and ``anyio.lowlevel.checkpoint()`` find the backend on every call;
    the scheduler uses both several times per execution, so it binds the backend's own
    functions (the very ones anyio would call) when the job starts.
    """
    import asyncio
    import sys

    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            trio.lowlevel.current_task()
        except RuntimeError:
            pass
        else:
            return trio.current_time, trio.lowlevel.checkpoint

    def asyncio_checkpoint() -> Awaitable[None]:
        return asyncio.sleep(0)

    return asyncio.get_running_loop().time, asyncio_checkpoint


def _in_event_loop() -> bool:
    import asyncio
    import sys

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return True
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            trio.lowlevel.current_trio_token()
        except RuntimeError:
            return False
        return True
    return False
