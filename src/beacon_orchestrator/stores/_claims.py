"""``SupportsClaims``: a store that lets many workers share one job, endpoint by endpoint.

A store that implements it (``PostgresStore``) keeps, beside the records, which worker holds
each endpoint (model x region) of a job, under a lease with a fencing token. Workers claim
endpoints, pass every execution through a start gate, and write every result fenced against
the endpoint's current holder; the store refuses what a worker that lost its lease tries. The
scheduler's shared mode (``run_job`` on such a store, ``beacon worker``) drives it; a store
without it runs jobs in one process, as before.

The job's concurrency caps (``per_region``, ``max_concurrency``) are the store's to hold across
workers: its start gate lets an execution start only with a free place under each cap, and
frees it with the execution's finish or the endpoint's release, or when the holder's lease
passes.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import anyio
import anyio.abc
from attrs import frozen

from .._status import JobResult
from .._types import ExecutionRecord, ExecutionStatus

if TYPE_CHECKING:
    from .._spec import JobSpec, Limits

__all__ = ["Claim", "ClaimStatus", "Decide", "SupportsClaims"]


@frozen
class Claim:
    """One endpoint of one job, held by one worker under a lease.

    Attributes:
        job_id: The job.
        model_id: The endpoint's model.
        region: The endpoint's region.
        worker: The holder's id.
        fence: The fencing token: grows each time the endpoint passes to a holder, so a
            write under an older token is refused.
        next_slot: The next slot to start on the endpoint (a slot is a question's sample:
            ``question index * samples + sample``, as the job's plan numbers them).
    """

    job_id: str
    model_id: str
    region: str
    worker: str
    fence: int
    next_slot: int


@frozen
class ClaimStatus:
    """What a heartbeat learns: the claims still held, and the jobs cancelled meanwhile.

    Attributes:
        held: The claims whose lease was renewed.
        cancelled: The ids of cancelled jobs among those the worker holds endpoints of.
    """

    held: frozenset[tuple[str, str, str, int]]
    cancelled: frozenset[str]


Decide = Callable[[Sequence[ExecutionRecord], str | None], JobResult]
"""Builds a job's result from its stored records and its cancel reason (``None`` if none)."""


@runtime_checkable
class SupportsClaims(Protocol):
    """A store on which many workers share one job (see the many-workers how-to)."""

    async def publish_job(
        self,
        spec: JobSpec,
        *,
        limits: Limits | None = None,
        rerun: Collection[ExecutionStatus] = frozenset(),
    ) -> None:
        """Open the job and make its endpoints claimable (idempotent); finished keys stay done.

        Its first publication fixes the caps every worker holds it to: ``per_region`` and
        ``max_concurrency`` of ``limits`` (default the spec's). Keys stored with a status in
        ``rerun`` run again: a finished job is reopened for them, once however many workers
        publish it at the same time.
        """
        ...

    async def claim(self, worker: str, n: int, lease: float, job_id: str | None) -> list[Claim]:
        """Claim up to ``n`` free endpoints (of ``job_id``, or of any open job) for ``lease`` s."""
        ...

    async def start(self, claim: Claim, slot: int) -> bool | None:
        """The start gate: whether ``slot`` of the claim may start now (then it has).

        Returns:
            ``True``: it started, holding a place under each of the job's caps. ``False``:
            it never will under this claim (the job was cancelled, the endpoint passed on).
            ``None``: not now, a cap is full; ask again once a place is freed.
        """
        ...

    async def finish(self, claim: Claim, slot: int, record: ExecutionRecord) -> bool:
        """Store an execution's record if ``claim`` is still the endpoint's; whether it was.

        Frees the execution's places under the caps either way.
        """
        ...

    async def renew(self, worker: str, lease: float) -> ClaimStatus:
        """Renew every unexpired lease ``worker`` holds; say which, and which jobs cancelled."""
        ...

    async def release(self, claim: Claim) -> None:
        """Hand an endpoint back (if still held by this claim), so another worker may take it.

        Frees every place under the caps held under the claim.
        """
        ...

    async def cancel_job(self, job_id: str, reason: str) -> bool:
        """Cancel a job for every worker; whether this call cancelled it (not already)."""
        ...

    async def sweep(self) -> int:
        """Close the running executions of cancelled jobs whose holder's lease expired."""
        ...

    async def try_finish(self, job_id: str, decide: Decide) -> JobResult | None:
        """Store the verdict if every key is terminal and nobody stored it; the result if so."""
        ...

    async def listen(
        self,
        on_cancel: Callable[[str], None],
        *,
        on_slot: Callable[[str], None] | None = None,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Call ``on_cancel(job_id)`` for every cancel notice until cancelled (reconnecting).

        ``on_slot(job_id)``, if given, is called when a place under a cap of the job is freed
        (a hint: a start waiting for one also polls). ``task_status.started()`` is called once
        it listens.
        """
        ...

    async def load_result(self, job_id: str) -> JobResult | None:
        """The stored verdict, or ``None``."""
        ...
