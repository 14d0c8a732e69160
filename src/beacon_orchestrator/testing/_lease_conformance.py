"""The lease rules of the store conformance suite, and the wall clock the suite moves by hand.

:class:`LeaseRules` is mixed into :class:`~beacon_orchestrator.testing.StoreStateMachine`. Its
reference model is written out here rather than taken from
:func:`~beacon_orchestrator.stores.grant_lease`, so the suite also checks the library's own
rules: a lease is granted when nobody holds it, renewed for its own holder, refused while
another live holder's heartbeat is younger than its time to live, and taken over otherwise.

The holders are four: two runs in this process (alive), one on this host whose process is gone
(a pid no system hands out, so taking it over needs no wait), and one on another host, known
only by its heartbeat.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
from attrs import evolve
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from .._errors import JobLockedError, LeaseLostError, StoreError
from .._spec import JobSpec
from ..stores._lease import Holder, Lease
from ..stores._protocol import JobInfo, Store

__all__ = ["DEAD_PID", "REMOTE_HOST", "LeaseRules", "WallClock", "conformance_holders"]

_T = TypeVar("_T")

DEAD_PID = 2**31 - 1
"""A pid no process has (the largest a ``pid_t`` holds; systems hand out far smaller ones)."""

REMOTE_HOST = "conformance-remote.invalid"
"""The host name of the holder on another machine (``.invalid`` names no real host)."""

_TTLS = (1.0, 30.0, 600.0)
# Half-seconds add up exactly, so a lease is also seen at the very instant it expires.
_STEPS = (0.5, 1.0, 29.5, 30.0, 900.0)


class WallClock:
    """A wall clock that stands still until the suite moves it.

    Args:
        start: The time it shows first (seconds since the epoch).
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        """The time it shows."""
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the time forward."""
        self.now += seconds


def conformance_holders() -> tuple[Holder, Holder, Holder, Holder]:
    """The suite's holders: two alive here, one dead here, one on another host."""
    host, pid = socket.gethostname(), os.getpid()
    return (
        Holder("conformance-here-a", pid, host),
        Holder("conformance-here-b", pid, host),
        Holder("conformance-dead", DEAD_PID, host),
        Holder("conformance-remote", pid, REMOTE_HOST),
    )


class LeaseRules:
    """Rules and checks for ``acquire_lease``, ``renew_lease``, ``release_lease`` and ``jobs()``.

    Mixed into the store conformance state machine, which provides the store and the clock.
    """

    store: Store
    specs: dict[str, JobSpec]
    clock: WallClock

    def call(self, fn: Callable[..., Awaitable[_T]], *args: Any) -> _T:
        """Run one store call on the store's event loop (provided by the machine)."""
        raise NotImplementedError

    def init_leases(self) -> None:
        """Start the model: no job has a lease."""
        self.holders = conformance_holders()
        self.leases: dict[str, Lease | None] = {}
        self.last_token: dict[str, int] = {}
        self.issued: list[Lease] = []  # every lease the store handed out, stale ones included

    # -- the model --------------------------------------------------------------------------

    def holds_on(self, current: Lease | None, holder: Holder) -> bool:
        """Whether ``current`` keeps ``holder`` out at the clock's time."""
        if current is None or current.holder.owner == holder.owner:
            return False
        dead = current.holder.pid == DEAD_PID and current.holder.host != REMOTE_HOST
        return not dead and self.clock.now <= current.heartbeat + current.ttl

    def granted(self, job_id: str, holder: Holder, ttl: float, lease: Lease) -> None:
        """Check a lease the store granted against the model, then record it."""
        current, now = self.leases.get(job_id), self.clock.now
        if current is not None and current.holder.owner == holder.owner:
            want = evolve(current, holder=holder, heartbeat=now, ttl=ttl)
            assert lease == want, f"re-acquiring one's own lease: got {lease!r}, want {want!r}"
        else:
            last = self.last_token.get(job_id, 0)
            assert lease.token > last, f"{job_id}: token {lease.token} after token {last}"
            want = Lease(job_id, holder, since=now, heartbeat=now, ttl=ttl, token=lease.token)
            assert lease == want, f"{job_id}: granted {lease!r}, want {want!r}"
        self.leases[job_id] = lease
        self.last_token[job_id] = lease.token
        self.issued.append(lease)

    def outcome(self, fn: Callable[..., Awaitable[_T]], *args: Any) -> _T | StoreError:
        """What a store call returns, or the ``StoreError`` it raises."""
        try:
            return self.call(fn, *args)
        except StoreError as exc:
            return exc

    def expect_locked(self, job_id: str, holder: Holder, ttl: float) -> None:
        """Acquiring must raise JobLockedError naming the current lease."""
        got = self.outcome(self.store.acquire_lease, job_id, holder, ttl)
        current = self.leases.get(job_id)
        assert isinstance(got, JobLockedError), f"{holder.owner} got the held lease of {job_id}"
        assert got.lease == current, f"JobLockedError names {got.lease!r}, not {current!r}"

    # -- rules ------------------------------------------------------------------------------

    @rule(
        job_id=st.sampled_from(("job-a", "job-b", "no-such-job")),
        which=st.integers(0, 3),
        ttl=st.sampled_from(_TTLS),
    )
    def acquire_lease(self, job_id: str, which: int, ttl: float) -> None:
        """Granted, renewed for its own holder, taken over from the dead, or refused."""
        holder = self.holders[which]
        if job_id not in self.specs:
            got = self.outcome(self.store.acquire_lease, job_id, holder, ttl)
            assert isinstance(got, StoreError), f"acquire_lease of unknown job {job_id!r}: {got!r}"
            assert not isinstance(got, JobLockedError), f"unknown job {job_id!r} is locked"
        elif self.holds_on(self.leases.get(job_id), holder):
            self.expect_locked(job_id, holder, ttl)
        else:
            got = self.outcome(self.store.acquire_lease, job_id, holder, ttl)
            assert isinstance(got, Lease), f"{holder.owner} was refused a free lease: {got!r}"
            self.granted(job_id, holder, ttl, got)

    @precondition(lambda self: bool(self.issued))
    @rule(data=st.data())
    def renew_lease(self, data: st.DataObject) -> None:
        """A lease still held (even past its expiry) is renewed; any other is lost."""
        lease = data.draw(st.sampled_from(self.issued))
        current = self.leases.get(lease.job_id)
        if current is not None and (current.holder, current.token) == (lease.holder, lease.token):
            renewed = self.call(self.store.renew_lease, lease)
            assert renewed == evolve(current, heartbeat=self.clock.now), f"renewed {renewed!r}"
            self.leases[lease.job_id] = renewed
            self.issued.append(renewed)
            return
        got = self.outcome(self.store.renew_lease, lease)
        assert isinstance(got, LeaseLostError), f"renewed {lease!r}, no longer the job's lease"
        assert got.lease == lease, "LeaseLostError names another lease"
        assert got.current == current, f"LeaseLostError: current {got.current!r}, {current!r}"

    @precondition(lambda self: bool(self.issued))
    @rule(data=st.data())
    def release_lease(self, data: st.DataObject) -> None:
        """Releasing the current lease frees the job; releasing a stale one changes nothing."""
        lease = data.draw(st.sampled_from(self.issued))
        self.call(self.store.release_lease, lease)
        current = self.leases.get(lease.job_id)
        if current is not None and (current.holder, current.token) == (lease.holder, lease.token):
            self.leases[lease.job_id] = None

    @precondition(lambda self: bool(self.specs))
    @rule(data=st.data(), pair=st.sampled_from([(0, 1), (0, 3), (1, 3)]))
    def two_runners_race(self, data: st.DataObject, pair: tuple[int, int]) -> None:
        """Two live runners asking at once for a free lease: exactly one gets it.

        Which one wins is the store's (a real server's) to decide, not the test data's, so the
        winner releases the lease again: the machine goes on from the same state whoever won,
        and hypothesis can replay what it found.
        """
        job_id = data.draw(st.sampled_from(sorted(self.specs)))
        first, second = (self.holders[i] for i in pair)
        if self.holds_on(self.leases.get(job_id), first) or self.holds_on(
            self.leases.get(job_id), second
        ):
            return  # not free for both; the single-runner rule covers it
        outcomes = self.call(self._race, job_id, first, second)
        won = [o for o in outcomes if isinstance(o, Lease)]
        lost = [o for o in outcomes if isinstance(o, JobLockedError)]
        assert len(won) == 1, f"{len(won)} of two racing runners got the lease of {job_id}"
        assert len(lost) == 1, f"the loser of the race got {outcomes!r}"
        (lease,) = won
        self.granted(job_id, lease.holder, lease.ttl, lease)
        assert lost[0].lease == lease, "the loser's JobLockedError does not name the winner"
        self.issued.pop()
        self.call(self.store.release_lease, lease)
        self.leases[job_id] = None

    async def _race(self, job_id: str, *holders: Holder) -> list[Lease | BaseException]:
        outcomes: list[Lease | BaseException] = []

        async def ask(holder: Holder) -> None:
            try:
                outcomes.append(await self.store.acquire_lease(job_id, holder, 600.0))
            except StoreError as exc:
                outcomes.append(exc)

        async with anyio.create_task_group() as tg:
            for holder in holders:
                tg.start_soon(ask, holder)
        return outcomes

    @precondition(lambda self: bool(self.specs))
    @rule(data=st.data(), which=st.sampled_from((0, 1, 3)))
    def take_over_an_expired_lease(self, data: st.DataObject, which: int) -> None:
        """A lease left alone past its TTL is granted to the next live runner who asks.

        The clock jumps to just past the job's lease expiry, so a store whose leases never
        expire is caught whenever this rule runs, not only when random steps happen to add up.
        """
        job_id = data.draw(st.sampled_from(sorted(self.specs)))
        holder = self.holders[which]
        current = self.leases.get(job_id)
        if current is not None:
            self.clock.advance(max(0.0, current.heartbeat + current.ttl - self.clock.now) + 0.5)
        got = self.outcome(self.store.acquire_lease, job_id, holder, _TTLS[0])
        assert isinstance(got, Lease), f"{holder.owner} was refused a free lease: {got!r}"
        self.granted(job_id, holder, _TTLS[0], got)

    @rule(seconds=st.sampled_from(_STEPS))
    def advance_clock(self, seconds: float) -> None:
        """Time passes: leases age."""
        self.clock.advance(seconds)

    # -- checks -----------------------------------------------------------------------------

    def check_leases(self, jobs: list[JobInfo]) -> None:
        """jobs() shows every job's lease as the model has it (``None`` when free)."""
        for info in jobs:
            want = self.leases.get(info.job_id)
            assert info.lease == want, f"{info.job_id}: jobs() lease {info.lease!r}, want {want!r}"
