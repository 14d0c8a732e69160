"""The picker: which execution may start next, under the strategy's gates and the limits.

Plain synchronous code, driven by the runner's workers and, in the tests, directly. Endpoints
wait in a ready queue; picking pops them until one may start: it has a slot (a sample of
a question) left, its group (if any) is on that slot, and its endpoint and region have
room. An endpoint whose region is full is parked on the region and queued again when room
there frees.

Each endpoint's limit is its own (:meth:`Picker.set_limit`): adaptive concurrency moves it
between 1 and ``per_endpoint``, and an open circuit breaker sets it to 0. With a spending
budget, an endpoint whose next execution's worst case does not fit is set aside until an
execution ends (and its actual cost replaces its worst case).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from ._plan import EndpointState, Plan

if TYPE_CHECKING:
    from ._budget import Budget

__all__ = ["Picker"]


class Picker:
    """Chooses the next execution to start and tracks what is in flight.

    Args:
        plan: The job's endpoints, cursors and groups.
        per_endpoint: At most this many executions in flight on one endpoint.
        per_region: At most this many in flight in one region (``None``: no limit).
        unstarted: How many planned executions remain to start.
        budget: The spending budget, if the job has one.
    """

    def __init__(
        self,
        plan: Plan,
        *,
        per_endpoint: int,
        per_region: int | None,
        unstarted: int,
        budget: Budget | None = None,
    ) -> None:
        self.plan = plan
        self.per_endpoint = per_endpoint
        self.per_region = per_region
        self.unstarted = unstarted
        self.in_flight = 0
        self.limit: dict[EndpointState, int] = dict.fromkeys(plan.endpoints, per_endpoint)
        self.budget = budget
        # Endpoints whose next execution the budget cannot hold now (see over_budget).
        self.unaffordable: list[EndpointState] = []
        self.ready: deque[EndpointState] = deque()
        for e in plan.endpoints:
            self.enqueue(e)

    def enqueue(self, e: EndpointState) -> None:
        """Make ``e`` a candidate for the next pick, if it has anything left to start."""
        if not e.queued and e.cursor < self.plan.n_slots:
            e.queued = True
            self.ready.append(e)

    def pick(self) -> EndpointState | None:
        """The next endpoint that may start its cursor's slot, or ``None`` if none may.

        Endpoints that may not start are dropped from the queue; whatever unblocks them later
        (a slot freeing, a group advancing) queues them again.
        """
        ready = self.ready
        n_q = self.plan.n_slots
        per_region = self.per_region
        limit = self.limit
        while ready:
            e = ready.popleft()
            e.queued = False
            q = e.cursor
            if q >= n_q or e.in_flight >= limit[e]:
                continue
            g = e.group
            if g is not None and q != g.current:
                continue
            region = e.region
            if per_region is not None and region.in_flight >= per_region:
                if not e.parked:
                    e.parked = True
                    region.parked.append(e)
                continue
            budget = self.budget
            if budget is not None and not budget.affordable(e):
                self.unaffordable.append(e)
                continue
            return e
        return None

    @property
    def over_budget(self) -> bool:
        """Whether the budget holds work back that nothing in flight can free any more."""
        return bool(self.unaffordable) and self.in_flight == 0

    def set_limit(self, e: EndpointState, limit: int) -> bool:
        """Let ``e`` have ``limit`` executions in flight; whether that queued it (it may start).

        A limit below what is in flight stops new starts until enough end; 0 stops them all.
        """
        self.limit[e] = limit
        if e.in_flight < limit and not e.queued:
            self.enqueue(e)
            return e.queued
        return False

    def start(self, e: EndpointState) -> int:
        """Take the slot at ``e``'s cursor: count it in flight and return its index."""
        q = e.cursor
        plan = self.plan
        # Skipping stored keys only matters on resume; a fresh job just moves on.
        e.cursor = plan.next_slot(e, q + 1) if plan.done else q + 1
        e.in_flight += 1
        e.region.in_flight += 1
        self.in_flight += 1
        self.unstarted -= 1
        if self.budget is not None:
            self.budget.reserve(e)
        if e.group is None and e.in_flight < self.limit[e]:
            # It may start its next slot at once (per_endpoint > 1).
            self.enqueue(e)
        return q

    def release(self, e: EndpointState, *, requeue: bool = True) -> None:
        """Free the slots an execution of ``e`` held and queue what they unblock.

        Args:
            e: The endpoint whose execution ended.
            requeue: ``False`` once the job is stopping: nothing will start again, so nothing
                needs to be queued.
        """
        e.in_flight -= 1
        region = e.region
        region.in_flight -= 1
        self.in_flight -= 1
        if not requeue:
            return
        if self.unaffordable:
            # An execution ended: its actual cost replaced its worst case, maybe freeing room.
            for u in self.unaffordable:
                self.enqueue(u)
            self.unaffordable.clear()
        if region.parked and (self.per_region is None or region.in_flight < self.per_region):
            for p in region.parked:
                p.parked = False
                self.enqueue(p)
            region.parked.clear()
        self.enqueue(e)

    def finished(self, e: EndpointState, q: int) -> None:
        """Note that ``e``'s execution of slot ``q`` is terminal and stored.

        Under ``region``/``lockstep`` this is what opens the gate: once every member's execution
        of the group's slot is terminal, the group moves on and its members are queued.
        """
        g = e.group
        if g is None or q != g.current:
            return
        g.outstanding -= 1
        if g.outstanding == 0:
            self.plan.reset_group(g)
            for m in g.members:
                if m.cursor == g.current:
                    self.enqueue(m)
