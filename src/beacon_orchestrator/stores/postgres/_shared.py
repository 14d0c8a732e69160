"""The :class:`~beacon_orchestrator.stores.SupportsClaims` methods of ``PostgresStore``.

Thin: each runs one function of ``_claims`` in one transaction; the listener keeps one
connection of its own (never a pooled one: a pool would hand it to others) and reconnects.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.abc
import anyio.to_thread

from ..._status import JobResult
from ..._types import ExecutionRecord, ExecutionStatus
from .._claims import Claim, ClaimStatus, Decide
from . import _claims, _slots
from ._dsn import scrub

if TYPE_CHECKING:
    import psycopg

    from ..._spec import JobSpec, Limits
    from ._rows import Statements

__all__ = ["LISTENER_NAME", "SharedJobs"]

LISTENER_NAME = "beacon-listener"
"""The ``application_name`` of the connections that listen for cancels."""

_T = TypeVar("_T")
_log = logging.getLogger(__name__)
# Seconds between two attempts to reconnect the listener.
_RECONNECT = 0.5


class SharedJobs:
    """Many workers on one job (mixed into ``PostgresStore``)."""

    dsn: str
    schema: str
    clock: Callable[[], float]
    _sql: Statements

    async def _call(
        self, fn: Callable[[psycopg.Connection[Any]], _T], *, wait: float | None = None
    ) -> _T:
        raise NotImplementedError

    async def open_job(self, spec: JobSpec) -> None:  # provided by the store
        raise NotImplementedError

    @property
    def where(self) -> str:  # provided by the store
        raise NotImplementedError

    async def publish_job(
        self,
        spec: JobSpec,
        *,
        limits: Limits | None = None,
        rerun: Collection[ExecutionStatus] = frozenset(),
    ) -> None:
        """Open the job and make its endpoints claimable (idempotent); finished keys stay done.

        Its first publication also fixes the caps every worker holds: ``per_region`` and
        ``max_concurrency`` of ``limits`` (default the spec's). Keys stored with a status in
        ``rerun`` run again, a finished job reopened for them (once, however many workers
        publish it at the same time).
        """
        await self.open_job(spec)
        call = partial(
            _slots.publish_job,
            schema=self.schema,
            spec=spec,
            limits=limits,
            rerun=frozenset(rerun),
        )
        await self._call(call)

    async def claim(self, worker: str, n: int, lease: float, job_id: str | None) -> list[Claim]:
        """Claim up to ``n`` free endpoints (of ``job_id``, or of any open job) for ``lease`` s."""
        return await self._call(
            partial(
                _claims.claim,
                schema=self.schema,
                worker=worker,
                n=n,
                lease=lease,
                job_id=job_id,
                sql=self._sql,
            )
        )

    async def start(self, claim: Claim, slot: int) -> bool | None:
        """The start gate: whether ``slot`` of the claim started; ``None``: a cap is full now."""
        return await self._call(partial(_slots.start, schema=self.schema, c=claim, slot=slot))

    async def finish(self, claim: Claim, slot: int, record: ExecutionRecord) -> bool:
        """Store an execution's record if ``claim`` is still the endpoint's; whether it was."""
        return await self._call(
            partial(
                _slots.finish, schema=self.schema, c=claim, slot=slot, record=record, sql=self._sql
            )
        )

    async def renew(self, worker: str, lease: float) -> ClaimStatus:
        """Renew every unexpired lease ``worker`` holds; say which, and which jobs cancelled.

        A pooled connection is waited for a third of the lease at most (a heartbeat's period),
        then the renewal connects on its own: a pool still backing off after an outage must
        not hold a renewal past the point where the worker fences itself.
        """
        return await self._call(
            partial(_slots.renew, schema=self.schema, worker=worker, lease=lease), wait=lease / 3
        )

    async def release(self, claim: Claim) -> None:
        """Hand an endpoint back (if still held by this claim), so another worker may take it."""
        await self._call(partial(_slots.release, schema=self.schema, c=claim))

    async def cancel_job(self, job_id: str, reason: str) -> bool:
        """Cancel a job for every worker; whether this call cancelled it (not already)."""
        return await self._call(
            partial(
                _claims.cancel_job, schema=self.schema, job_id=job_id, reason=reason, sql=self._sql
            )
        )

    async def sweep(self) -> int:
        """Close the running executions of cancelled jobs whose holder's lease expired."""
        jobs = await self._call(
            partial(_claims.sweep, schema=self.schema, sql=self._sql, at=self.clock())
        )
        return len(jobs)

    async def try_finish(self, job_id: str, decide: Decide) -> JobResult | None:
        """Store the verdict if every key is terminal and nobody stored it; the result if so."""
        return await self._call(
            partial(
                _claims.try_finish,
                schema=self.schema,
                job_id=job_id,
                decide=decide,
                sql=self._sql,
                at=self.clock(),
            )
        )

    async def listen(
        self,
        on_cancel: Callable[[str], None],
        *,
        on_slot: Callable[[str], None] | None = None,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Call ``on_cancel(job_id)`` for every cancel notice until cancelled (reconnecting).

        After every (re)connection it also reports every open job already cancelled: a notice
        sent while it was disconnected is lost, the flag is not. ``on_slot(job_id)`` is called
        when a slot of a capped job is freed (a lost notice only delays a waiting start until
        its next poll). ``task_status.started()`` is called once it first listens.
        """
        import psycopg

        prefix = f"{self.schema}:"
        started = False
        while True:
            try:
                conn = await anyio.to_thread.run_sync(self._listening_connection)
            except psycopg.Error as exc:
                _log.warning("listener for %s: %s", self.where, scrub(str(exc), self.dsn))
                await anyio.sleep(_RECONNECT)
                continue
            try:
                for (job,) in await anyio.to_thread.run_sync(self._cancelled_jobs, conn):
                    on_cancel(job)
                if not started:
                    started = True
                    task_status.started()
                while True:
                    await anyio.wait_readable(conn.fileno())
                    for notice in conn.notifies(timeout=0):
                        if not notice.payload.startswith(prefix):
                            continue
                        if notice.channel != _slots.SLOT_CHANNEL:
                            on_cancel(notice.payload[len(prefix) :])
                        elif on_slot is not None:
                            on_slot(notice.payload[len(prefix) :])
            except (psycopg.Error, OSError) as exc:
                _log.warning("listener for %s lost: %s", self.where, scrub(str(exc), self.dsn))
            finally:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(conn.close)
            await anyio.sleep(_RECONNECT)

    def _listening_connection(self) -> psycopg.Connection[Any]:
        import psycopg

        # Named, so an operator (or a test) can tell the listening connections apart.
        conn = psycopg.connect(
            self.dsn, autocommit=True, connect_timeout=5, application_name=LISTENER_NAME
        )
        conn.execute(f"LISTEN {_claims.CANCEL_CHANNEL}")
        conn.execute(f"LISTEN {_slots.SLOT_CHANNEL}")
        return conn

    def _cancelled_jobs(self, conn: psycopg.Connection[Any]) -> list[tuple[str]]:
        return conn.execute(
            f"SELECT job_id FROM {self.schema}.claim_jobs "
            "WHERE cancelled_at IS NOT NULL AND state = 'open'"
        ).fetchall()
