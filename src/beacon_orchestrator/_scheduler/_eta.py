"""The estimate of the time a run has left, from each endpoint's recent pace.

Plain synchronous code, run only when someone asks for progress; the hot path only adds each
finished execution's duration to its endpoint's tally (``EndpointTally.busy``).

A job is many lanes running side by side, not one queue: each endpoint works through its own
questions, at its own pace, sharing its region's slots and the job's concurrency with the
others. So the estimate is not "remaining executions / overall rate" (which a fast endpoint
inflates while a slow one decides when the job ends, and which the ramp-up at the start
deflates). It is the largest of the times the remaining work needs on each thing that bounds
it:

- an endpoint: its remaining executions x its recent seconds per execution / its slots;
- a region with ``per_region``: the sum of its endpoints' remaining work / ``per_region``;
- the whole job: the sum of all remaining work / the job's concurrency;
- a group (``region``, ``lockstep``): its remaining questions x its slowest member's pace, as
  each question waits for every member, or x its own recent time per question once it has
  moved on (unless groups compete for the job's slots, which makes that time a passing share).

An endpoint's pace is a mean of the durations of its executions (start to record, retries and
backoffs included): plain over the first ones, then exponentially weighted towards the recent
ones. Its first execution may pay a cold start, so it is dropped once a second one shows it
took more than twice as long. What is in flight counts for the share of the pace still to come
since it started (at the earliest: the last look before its endpoint finished something), so
the estimate counts down between completions. An endpoint with no finished execution yet goes
at the typical pace of the others. See ``tests/test_eta.py`` for how close this comes.
"""

from __future__ import annotations

from ._ledger import Ledger
from ._plan import EndpointState, GroupState, Plan

__all__ = ["EtaEstimator", "concurrency_cap"]

# Weight of each new execution in an endpoint's pace: about the last ten executions count.
_ALPHA = 0.2
# An endpoint's first execution is taken for a cold start if it took this many times longer
# than the next ones.
_COLD_START = 2.0
# The share of its pace an execution running longer than usual is assumed still to need.
_OVERDUE_LEFT = 0.1


def concurrency_cap(
    plan: Plan, *, per_endpoint: int, per_region: int | None, max_concurrency: int | None
) -> int:
    """How many executions of ``plan`` can be in flight at once under the limits."""
    cap = len(plan.endpoints) * per_endpoint
    if per_region is not None:
        cap = min(cap, len(plan.regions) * per_region)
    if max_concurrency is not None:
        cap = min(cap, max_concurrency)
    return cap


class _Mean:
    """A recent mean of durations, fed with running totals (seconds, count) at each look."""

    __slots__ = ("n", "provisional", "samples", "seconds", "total")

    def __init__(self) -> None:
        self.total = 0.0  # the running total of seconds at the last look
        self.n = 0  # the running count at the last look
        self.seconds: float | None = None  # the mean
        self.samples = 0  # durations averaged into ``seconds``
        self.provisional = False  # ``seconds`` is the first duration alone

    def add(self, total: float, n: int) -> bool:
        """Fold the durations counted since the last look in; whether there were any."""
        new = n - self.n
        if new <= 0:
            return False
        sample = (total - self.total) / new
        self.total, self.n = total, n
        if self.provisional:
            self.provisional = False
            if self.seconds is not None and self.seconds > _COLD_START * sample:
                # The first execution paid a cold start: it says nothing of the pace after.
                self.seconds, self.samples = None, 0
        if self.seconds is None:
            self.seconds, self.samples, self.provisional = sample, new, n == 1
            return True
        self.samples += new
        # A plain mean of the first durations, then an exponentially weighted one.
        weight = max(new / self.samples, 1.0 - (1.0 - _ALPHA) ** new)
        self.seconds += weight * (sample - self.seconds)
        return True


class _Lane:
    """One endpoint as the estimator sees it: its pace, and since when it has been running."""

    __slots__ = ("pace", "since")

    def __init__(self) -> None:
        self.pace = _Mean()
        # The earliest its executions in flight can have started: the last look before one
        # of its executions was seen to finish (or it was seen to start).
        self.since: float | None = None


class EtaEstimator:
    """Estimates the seconds a run has left; call :meth:`eta` whenever progress is asked.

    Args:
        plan: The job's endpoints, regions and groups.
        ledger: Counts and per-endpoint busy time.
        per_endpoint: Slots of one endpoint (1 under ``region`` and ``lockstep``).
        per_region: Slots of one region (``None``: no limit).
        max_concurrency: The job's limit on executions in flight (``None``: no limit).
    """

    def __init__(
        self,
        plan: Plan,
        ledger: Ledger,
        *,
        per_endpoint: int,
        per_region: int | None,
        max_concurrency: int | None,
    ) -> None:
        self.plan = plan
        self.ledger = ledger
        self.per_endpoint = per_endpoint
        self.per_region = per_region
        self.cap = concurrency_cap(
            plan,
            per_endpoint=per_endpoint,
            per_region=per_region,
            max_concurrency=max_concurrency,
        )
        self._lanes = {e: _Lane() for e in plan.endpoints}
        # A group's pace is in seconds per question, fed with "when it was last seen moving
        # on" and "how many questions it has moved on since the run started".
        self._groups = [(g, g.current, _Mean()) for g in plan.groups]
        # Groups that compete for the job's slots slow each other down only while they all
        # run: their past pace would then say little of the time left.
        wanted = sum(min(per_region or len(g.members), len(g.members)) for g in plan.groups)
        self._groups_apart = len(plan.groups) <= 1 or self.cap >= wanted
        self._last_look = 0.0

    def eta(self, elapsed: float) -> float | None:
        """Seconds until every remaining execution is done; ``None`` while no pace is known.

        Args:
            elapsed: Seconds since the run started.
        """
        self._look(elapsed)
        if all(e.tally.done >= self.plan.n_slots for e in self.plan.endpoints):
            return 0.0
        typical = self._typical()
        if typical is None:
            return None
        left: dict[EndpointState, tuple[float, float]] = {}
        seconds: dict[EndpointState, float] = {}
        for e, lane in self._lanes.items():
            # Until one of e's executions finishes, e goes at the typical pace.
            pace = lane.pace.seconds or typical
            age = elapsed - (lane.since or 0.0) if e.in_flight else 0.0
            seconds[e] = pace
            left[e] = self._left(e, 1.0 - age / pace if pace > 0 else 0.0)
        return max(self._bounds(left, seconds, elapsed))

    def _typical(self) -> float | None:
        """The mean pace of the endpoints whose pace is known; ``None`` if none is.

        Paces past a first execution count alone when there are any: a first one may be a
        cold start.
        """
        settled: list[float] = []
        first: list[float] = []
        for lane in self._lanes.values():
            seconds = lane.pace.seconds
            if seconds is not None:
                (first if lane.pace.provisional else settled).append(seconds)
        known = settled or first
        return sum(known) / len(known) if known else None

    def _look(self, elapsed: float) -> None:
        """Fold what finished since the last look into the paces."""
        ledger, previous = self.ledger, self._last_look
        slots = self.per_endpoint
        for e, lane in self._lanes.items():
            finished = lane.pace.add(e.tally.busy, ledger.finished_here(e))
            if not e.in_flight:
                lane.since = None
            elif finished or lane.since is None:
                # Started after the previous look, and not before its endpoint's slots were
                # busy with what finished (exact for an endpoint that is never idle).
                lane.since = max(previous, e.tally.busy / slots)
        self._last_look = elapsed
        for g, start, pace in self._groups:
            if g.current - start > pace.n:
                pace.add(elapsed, g.current - start)

    def _left(self, e: EndpointState, in_flight_left: float) -> tuple[float, float]:
        """Executions ``e`` has left, and the time they take in units of its pace.

        Its slots run side by side, so its time is in waves of ``per_endpoint`` executions;
        what is in flight counts for the share of a pace still to come (at least a tenth).
        """
        running = e.in_flight
        unstarted = self.plan.n_slots - e.tally.done - running
        share = max(in_flight_left, _OVERDUE_LEFT) if running else 0.0
        waves = -(-unstarted // self.per_endpoint) + share
        return unstarted + share * running, waves

    def _bounds(
        self,
        left: dict[EndpointState, tuple[float, float]],
        seconds: dict[EndpointState, float],
        elapsed: float,
    ) -> list[float]:
        work = {e: n * seconds[e] for e, (n, _) in left.items()}
        bounds = [waves * seconds[e] for e, (_, waves) in left.items()]
        bounds.append(sum(work.values()) / max(self.cap, 1))
        if self.per_region is not None:
            per_region: dict[str, float] = {}
            for e, w in work.items():
                per_region[e.region.name] = per_region.get(e.region.name, 0.0) + w
            bounds.extend(w / self.per_region for w in per_region.values())
        for g, _, group_pace in self._groups:
            bounds.append(self._group_bound(g, group_pace, left, seconds, elapsed))
        return bounds

    def _group_bound(
        self,
        g: GroupState,
        pace: _Mean,
        left: dict[EndpointState, tuple[float, float]],
        seconds: dict[EndpointState, float],
        elapsed: float,
    ) -> float:
        """A group's questions left times its time per question.

        Each question waits for every member, so it takes at least the slowest member's pace;
        once the group has moved on, its own recent time per question (which also counts the
        spread of latencies and the slots members wait for) is the better figure, unless
        groups compete for the job's slots.
        """
        members = g.members
        bound = max(left[m][0] for m in members) * max(seconds[m] for m in members)
        per_question = pace.seconds
        if per_question is not None and self._groups_apart and g.current < self.plan.n_slots:
            # pace.total is when the group was last seen moving on: the current question has
            # been running since then.
            into_current = min(elapsed - pace.total, per_question)
            questions = self.plan.n_slots - g.current
            bound = max(bound, questions * per_question - into_current)
        return bound
