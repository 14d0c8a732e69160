"""The fleet guard: each endpoint's adaptive limit, circuit breaker, warmth and spend, for a run.

The attempt loop tells it what each attempt met; it moves each endpoint's limit in the picker
(adaptive concurrency, a breaker's open and half-open states), says which timeout an attempt
gets (a cold endpoint's first answer may take a cold start) and whether an attempt may be sent
at all (an endpoint found down), and prices each record. It exists only when the run uses one
of these, so a run without them takes no extra step per execution.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio
from attrs import evolve

from .._cost import CostModel
from .._errors import PermanentError
from .._events import EndpointChanged, Event, Progress
from .._spec import Limits
from .._types import Endpoint, ExecutionKey, ExecutionRecord
from .._usage import Usage
from ._adaptive import AdaptiveConcurrency, AimdLimit, is_overload
from ._breaker import ENDPOINT_DOWN, BreakerState, CircuitBreaker, EndpointBreaker
from ._budget import Budget
from ._ledger import error_code
from ._options import RunOptions
from ._picker import Picker
from ._plan import EndpointState, Plan

__all__ = ["Fleet"]

_log = logging.getLogger(__name__)

CLOSED = BreakerState.CLOSED
OPEN = BreakerState.OPEN
HALF_OPEN = BreakerState.HALF_OPEN
DOWN = BreakerState.DOWN


class Fleet:
    """Per-endpoint guards of one run (one instance per run).

    Args:
        job_id: The job, for events.
        plan: Its endpoints.
        picker: Whose per-endpoint limits it moves.
        ceiling: The most executions one endpoint may have in flight.
        adaptive: How limits adapt (``None``: they stay at ``ceiling``).
        breaker: When to stop sending to a failing endpoint (``None``: never).
        cold_start_timeout: The timeout of attempts sent before an endpoint first answered.
        cost_model: Prices records (``None``: records have no cost).
        budget: The spending budget (``None``: none).
        now: The event loop's clock.
        emit: Sends an event (limit and breaker changes).
        wake: Wakes idle workers when a limit grew (something may start).
    """

    def __init__(
        self,
        *,
        job_id: str,
        plan: Plan,
        picker: Picker,
        ceiling: int,
        adaptive: AdaptiveConcurrency | None,
        breaker: CircuitBreaker | None,
        cold_start_timeout: float | None,
        cost_model: CostModel | None,
        budget: Budget | None,
        now: Callable[[], float],
        emit: Callable[[Event], None],
        wake: Callable[[], None],
    ) -> None:
        self.job_id = job_id
        self.picker = picker
        self.ceiling = ceiling
        self.cold_start_timeout = cold_start_timeout
        self.cost_model = cost_model
        self.budget = budget
        self.now = now
        self.emit = emit
        self.wake = wake
        self._by_endpoint = {(e.model, e.region.name): e for e in plan.endpoints}
        self.aimd = {e: AimdLimit(adaptive, ceiling) for e in plan.endpoints} if adaptive else None
        self.breakers = {e: EndpointBreaker(breaker) for e in plan.endpoints} if breaker else None
        self.warm: set[EndpointState] = set()
        self._spent = 0.0
        # Attempts in flight per endpoint: a retry waits for one below the limit, because an
        # execution waiting out a backoff may outnumber a limit that came down meanwhile.
        self.active: dict[EndpointState, int] = dict.fromkeys(plan.endpoints, 0)
        self._slot_freed = anyio.Event()
        self._breaker_moved = anyio.Event()
        self._told: dict[EndpointState, BreakerState] = {}  # the states logged so far
        if self.aimd is not None:
            for e, aimd in self.aimd.items():
                picker.set_limit(e, aimd.limit)

    @classmethod
    def for_run(
        cls,
        job_id: str,
        options: RunOptions,
        limits: Limits,
        plan: Plan,
        picker: Picker,
        ceiling: int,
        budget: Budget | None,
        now: Callable[[], float],
        *,
        emit: Callable[[Event], None],
        wake: Callable[[], None],
    ) -> Fleet | None:
        """The guards of a run, or ``None`` when it uses none of them."""
        o = options
        if not (o.adaptive or o.breaker or o.cost_model or limits.cold_start_timeout):
            return None
        return cls(
            job_id=job_id,
            plan=plan,
            picker=picker,
            ceiling=ceiling,
            adaptive=o.adaptive,
            breaker=o.breaker,
            cold_start_timeout=limits.cold_start_timeout,
            cost_model=o.cost_model,
            budget=budget,
            now=now,
            emit=emit,
            wake=wake,
        )

    def annotate(self, progress: Progress) -> Progress:
        """``progress`` with the endpoints' limits (if they move) and the spend."""
        limits = self.limits() if self.aimd or self.breakers else {}
        return evolve(progress, endpoint_limits=limits, spent=self.spent)

    def endpoint(self, key: ExecutionKey) -> EndpointState:
        """The endpoint state of ``key``."""
        return self._by_endpoint[key.model_id, key.region]

    def limits(self) -> dict[str, int]:
        """Each endpoint's limit now, by ``model@region`` (progress shows them)."""
        return {e.label: limit for e, limit in self.picker.limit.items()}

    @property
    def spent(self) -> float | None:
        """What this run's records cost so far (``None`` without a cost model)."""
        if self.budget is not None:
            return self.budget.spent
        return None if self.cost_model is None else self._spent

    # -- before an attempt ------------------------------------------------------------------

    def timeout(self, e: EndpointState, default: float | None) -> float | None:
        """The timeout of an attempt on ``e`` now: a cold start's until it first answered."""
        cold = self.cold_start_timeout
        if cold is None or e in self.warm:
            return default
        return cold

    def refusal(self, e: EndpointState, attempt: int) -> PermanentError | None:
        """Why an attempt may not be sent to ``e`` now, or ``None`` if it may.

        A first attempt refused is an execution that never reached the endpoint: its record
        says ``ENDPOINT_DOWN``. A retry refused ends its execution with its last failure.
        """
        breakers = self.breakers
        if breakers is None:
            return None
        b = breakers[e]
        was = b.state
        if b.may_send(self.now()):
            if b.state is not was or b.probing:
                self._apply(e, "probe")
            return None
        if b.state is DOWN:
            return PermanentError(
                f"not sent: endpoint {e.label} is down (its circuit breaker opened "
                f"{b.policy.probes} times in a row)",
                code=ENDPOINT_DOWN,
            )
        return PermanentError(
            f"not sent: endpoint {e.label}'s circuit breaker is open", code="CIRCUIT_OPEN"
        )

    def full(self, e: EndpointState) -> bool:
        """Whether ``e`` has as many attempts in flight as its limit allows."""
        return self.active[e] >= self.picker.limit[e]

    async def slot_freed(self) -> None:
        """Wait until an attempt ends or a limit changes anywhere (then check :meth:`full`)."""
        await self._slot_freed.wait()

    def sending(self, e: EndpointState) -> None:
        """An attempt to ``e`` is about to be sent."""
        self.active[e] += 1

    def _freed(self, e: EndpointState) -> None:
        self.active[e] -= 1
        self._slot_freed.set()
        self._slot_freed = anyio.Event()

    # -- after an attempt -------------------------------------------------------------------

    def answered(
        self, e: EndpointState, started: float, ended: float, usage: Usage | None = None
    ) -> None:
        """An attempt on ``e`` that started at ``started`` answered at ``ended``."""
        self._freed(e)
        self.warm.add(e)
        changed = False
        if self.breakers is not None:
            changed = self.breakers[e].succeeded()
        if self.aimd is not None:
            served = None if usage is None else usage.inference_seconds
            changed = self.aimd[e].answered(started, ended, e.in_flight, served) or changed
        if changed:
            self._apply(e, "answered")

    def failed(self, e: EndpointState, err: BaseException, started: float, ended: float) -> None:
        """An attempt on ``e`` that started at ``started`` failed with ``err`` at ``ended``."""
        self._freed(e)
        overload = is_overload(err)
        changed = False
        if overload:
            if self.aimd is not None:
                changed = self.aimd[e].overloaded(started, ended)
            if self.breakers is not None:
                # A full endpoint is up: for the breaker, it answered (a probe closes it).
                changed = self.breakers[e].succeeded() or changed
        elif self.breakers is not None:
            changed = self.breakers[e].failed(error_code(err), ended)
        if changed:
            self._apply(e, "overload" if overload else error_code(err) or "failure")

    def priced(self, e: EndpointState, record: ExecutionRecord, seconds: float) -> ExecutionRecord:
        """``record`` with its cost, counted in the spend (unchanged without a cost model)."""
        model = self.cost_model
        if model is None:
            return record
        endpoint = Endpoint(e.model, e.region.name)
        cost = model.cost(endpoint, record.usage, seconds=seconds, attempts=record.attempts)
        if self.budget is not None:
            self.budget.settle(e, cost)
        else:
            self._spent += cost
        return evolve(record, cost=cost)

    # -- limits -----------------------------------------------------------------------------

    def _limit(self, e: EndpointState) -> int:
        if self.breakers is not None:
            b = self.breakers[e]
            state = b.state
            if state is DOWN:
                return self.ceiling  # drained at once: no request is sent
            if state is OPEN or (state is HALF_OPEN and b.probing):
                return 0
            if state is HALF_OPEN:
                # Room for the probe only (a retry may be it when the endpoint is full).
                return min(self.ceiling, e.in_flight + 1)
        return self.ceiling if self.aimd is None else self.aimd[e].limit

    def _apply(self, e: EndpointState, reason: str) -> None:
        limit = self._limit(e)
        before = self.picker.limit[e]
        if self.picker.set_limit(e, limit):
            self.wake()
        if limit > before:
            self._slot_freed.set()
            self._slot_freed = anyio.Event()
        breaker = None if self.breakers is None else self.breakers[e].state
        if breaker is OPEN:
            self._breaker_moved.set()
        if breaker is not None and breaker is not self._told.get(e, CLOSED):
            self._told[e] = breaker
            self._log_breaker(e, breaker, reason)
        if limit != before or reason != "answered":
            self.emit(
                EndpointChanged(
                    self.job_id,
                    e.label,
                    limit,
                    None if breaker is None else breaker.value,
                    reason,
                    self.now(),
                )
            )

    def _log_breaker(self, e: EndpointState, state: BreakerState, reason: str) -> None:
        job, label = self.job_id, e.label
        if state is OPEN:
            cool = 0.0 if self.breakers is None else self.breakers[e].policy.cool_down
            _log.warning(
                "job %s: endpoint %s: circuit breaker open (%s); one probe in %g s",
                job,
                label,
                reason,
                cool,
            )
        elif state is DOWN:
            _log.warning(
                "job %s: endpoint %s is down: its remaining executions end %s without a request",
                job,
                label,
                ENDPOINT_DOWN,
            )
        elif state is CLOSED:
            _log.info("job %s: endpoint %s answered its probe: circuit breaker closed", job, label)

    async def watch(self) -> None:
        """Let each open breaker's probe through once its cool-down has passed (runs for ever)."""
        breakers = self.breakers
        if breakers is None:
            return
        while True:
            due = [b.reopens_at for b in breakers.values() if b.state is OPEN]
            if not due:
                await self._breaker_moved.wait()
                self._breaker_moved = anyio.Event()
                continue
            await anyio.sleep_until(min(due))
            now = self.now()
            for e, b in breakers.items():
                if b.cooled(now):
                    self._apply(e, "cool-down over")
