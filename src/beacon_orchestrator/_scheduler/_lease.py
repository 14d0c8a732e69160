"""The run's hold on its job: acquire the store's lease, keep it alive, give it up.

A run acquires the job's lease before it reads the records of earlier runs, so a second run of
the same job is refused before anything executes (see
:class:`~beacon_orchestrator.JobLockedError`). While the workers run, a heartbeat renews it
every third of its time to live; while the end of the job is stored, each batch renews it when
a beat is due. A renewal that finds the lease gone (another runner took it over after this
process stalled past the time to live) is reported once, and the run stops and stores nothing
more: the job belongs to the new holder.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Final

import anyio

from .._errors import LeaseLostError, StoreError
from ..stores import Holder, Lease, Store

__all__ = ["LEASE_TTL", "LeaseKeeper"]

LEASE_TTL: Final = 30.0
"""Seconds a run's lease lasts without a heartbeat. Another runner on the same host takes the
job over as soon as the holder's process is gone; one on another host after this long."""


class LeaseKeeper:
    """Holds one job's lease for one run.

    Heartbeats are paced on the event loop's clock (virtual in tests); the lease's own times are
    the store's.

    Args:
        store: Where the lease lives.
        job_id: The job.
        lost: Called once, with the store's error, if the lease passes to another runner.
        failed: Called with anything else a renewal raises that is not a ``StoreError`` (a bug
            in the store); the run treats it as a crash.
        ttl: The lease's time to live, in seconds.
    """

    def __init__(
        self,
        store: Store,
        job_id: str,
        *,
        lost: Callable[[LeaseLostError], None],
        failed: Callable[[Exception], None],
        ttl: float = LEASE_TTL,
    ) -> None:
        self.store = store
        self.job_id = job_id
        self.on_lost = lost
        self.on_failed = failed
        self.ttl = ttl
        self.interval = ttl / 3
        self.lease: Lease | None = None
        self.lost: LeaseLostError | None = None
        self.renewed_at = 0.0

    async def acquire(self) -> None:
        """Take the job's lease for a new holder (this run).

        Raises:
            JobLockedError: Another live runner holds it.
        """
        self.lease = await self.store.acquire_lease(
            self.job_id, Holder.for_this_process(), self.ttl
        )
        self.renewed_at = anyio.current_time()

    async def heartbeat(self) -> None:
        """Renew the lease every interval, until cancelled or until renewing is pointless."""
        while True:
            await anyio.sleep(self.interval)
            if not await self.renew():
                return

    async def renew_if_due(self) -> bool:
        """Renew if a beat is due; whether the run still holds the lease."""
        if self.lost is None and anyio.current_time() - self.renewed_at >= self.interval:
            await self.renew()
        return self.lost is None

    async def renew(self) -> bool:
        """Renew now; whether to keep renewing (``False`` once lost or after a store bug)."""
        lease = self.lease
        if lease is None or self.lost is not None:
            return False
        try:
            self.lease = await self.store.renew_lease(lease)
        except LeaseLostError as exc:
            self.lost = exc
            self.on_lost(exc)
            return False
        except StoreError:
            # Unreachable this time (a busy or briefly unavailable database): the next beat
            # comes well before the lease expires, at a third of its life.
            return True
        except Exception as exc:
            self.on_failed(exc)
            return False
        self.renewed_at = anyio.current_time()
        return True

    @property
    def fenced(self) -> bool:
        """Whether the lease passed to another runner: this run must store nothing more."""
        return self.lost is not None

    async def release(self) -> None:
        """Give the lease up (shielded), unless it was lost: then it is not this run's to give."""
        lease, self.lease = self.lease, None
        if lease is None or self.lost is not None:
            return
        # A store that cannot release now leaves the lease to expire: the next run waits at
        # most its time to live, and no sooner on this host if this process has ended.
        with anyio.CancelScope(shield=True), contextlib.suppress(StoreError):
            await self.store.release_lease(lease)
