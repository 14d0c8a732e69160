"""The end of a job: a record for every key that has none, then the result.

However a job ends, its runner hands over what it has not stored: records whose write was
interrupted, and the executions the attempt loop noted as interrupted. They are stored as they
are or as ``CANCELLED``, then every key that never started is stored ``SKIPPED``, in bounded
batches, each counted as it is stored; only then is the verdict computed.

A batch the store refuses is written again record by record (``_salvage``), so one record it
cannot hold does not cost the other keys theirs. A run whose lease passed to another runner
stores nothing more: the job's records are the new holder's to write.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence

from .._records import Records
from .._spec import Limits
from .._status import SHOWN_FAILURES, JobResult, StatusPolicy
from .._types import ExecutionKey, ExecutionRecord, ExecutionStatus
from ..stores import Store
from ._attempts import Interrupted
from ._lease import LeaseKeeper
from ._ledger import Ledger, StopReason, interrupted_message
from ._plan import EndpointState
from ._salvage import salvage

__all__ = ["Accounted", "JobEnd"]

_SKIP_CHUNK = 1000
_NOT_COMPLETED = frozenset(ExecutionStatus) - {ExecutionStatus.COMPLETED}

Accounted = tuple[ExecutionRecord, EndpointState, int]
"""A record with the endpoint and question index it belongs to."""


class JobEnd:
    """Stores the end of one job and builds its result.

    Args:
        store: The job's store.
        job_id: The job.
        ledger: Builds and counts its records (and knows the plan).
        unstarted: The keys never started, with their endpoints and question indexes.
        stop: Why it stopped (the records' reasons, the verdict).
        lease: The run's lease (renewed when due; nothing is stored once it is lost).
        finished: Counts a stored record (the runner's bookkeeping and events).
        crashed: Told of a store error before the batch is salvaged.
        now: The event loop's clock.
        write: Stores and counts one batch (default :meth:`store_batch`; the runner passes
            its own method, which tests override).
    """

    def __init__(
        self,
        *,
        store: Store,
        job_id: str,
        ledger: Ledger,
        unstarted: Callable[[], Iterable[tuple[ExecutionKey, EndpointState, int]]],
        stop: StopReason,
        lease: LeaseKeeper,
        finished: Callable[[ExecutionRecord, EndpointState, int], None],
        crashed: Callable[[Exception], None],
        now: Callable[[], float],
        write: Callable[[Sequence[Accounted]], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.job_id = job_id
        self.plan = ledger.plan
        self.unstarted = unstarted
        self.ledger = ledger
        self.stop = stop
        self.lease = lease
        self.finished = finished
        self.crashed = crashed
        self.now = now
        self.write = self.store_batch if write is None else write

    async def account(
        self, unwritten: Iterable[Accounted], interrupted: Iterable[Interrupted]
    ) -> bool:
        """Store a record for every key without one; whether this run still owns the job.

        Args:
            unwritten: Records whose write may not have landed (written again: writes are
                idempotent per key).
            interrupted: Executions cut short, stored ``CANCELLED``.
        """
        batch = list(unwritten)
        batch.extend(self._interrupted(interrupted))
        await self.write(batch)
        await self._store_skipped()
        return not self.lease.fenced

    def _interrupted(self, interrupted: Iterable[Interrupted]) -> list[Accounted]:
        """The ``CANCELLED`` records of the interrupted executions, built in one pass.

        With 10,000 in flight this is 10,000 records between the cancellation and the verdict:
        those with no earlier failure (nearly all) share one message, built once.
        """
        ledger, stop, locate = self.ledger, self.stop, self.plan.locate
        plain = interrupted_message(stop)
        cancelled = ExecutionStatus.CANCELLED
        built: list[Accounted] = []
        for i in interrupted:
            located = i.at or locate(i.key)
            assert located is not None
            if i.error is None:
                rec = ledger.interrupted(i.key, plain, i.attempts, i.started, i.ended)
            else:
                rec = ledger.failed(i.key, cancelled, i.error, i.attempts, i.started, i.ended, stop)
            built.append((rec, *located))
        return built

    async def store_batch(self, batch: Sequence[Accounted]) -> None:
        """Store records in one write and count each; salvage a batch the store refuses."""
        if not batch or not await self.lease.renew_if_due():
            return  # another runner holds the job now: its records are its own
        records = [rec for rec, _, _ in batch]
        try:
            await self.store.write_many(self.job_id, records)
        except Exception as exc:
            self.crashed(exc)
            records = await salvage(self.store, self.job_id, records)
        for rec, (_, e, q) in zip(records, batch, strict=True):
            self.finished(rec, e, q)

    async def _store_skipped(self) -> None:
        """A ``SKIPPED`` record for every key that never started, in bounded chunks."""
        now = self.now()
        reason = self.stop.reason or "the job ended"
        chunk: list[Accounted] = []
        for key, e, q in self.unstarted():
            chunk.append((self.ledger.skipped(key, reason, now), e, q))
            if len(chunk) >= _SKIP_CHUNK:
                if self.lease.fenced:
                    return
                await self.write(chunk)
                chunk = []
        await self.write(chunk)

    async def finish(
        self,
        unwritten: Iterable[Accounted],
        interrupted: Iterable[Interrupted],
        *,
        policy: StatusPolicy,
        limits: Limits,
        started_at: float,
    ) -> JobResult | None:
        """Account for every key, then store the verdict.

        Returns:
            The result, or ``None`` if the lease passed to another runner: the job is then
            that runner's to finish.
        """
        if not await self.account(unwritten, interrupted):
            return None
        result = await self.result(policy, limits, started_at)
        await self.store.finish_job(self.job_id, result)
        return result

    async def result(self, policy: StatusPolicy, limits: Limits, started_at: float) -> JobResult:
        """The verdict, the counts and a view of the stored records, as one result (not stored).

        The records stay in the store (the result reads them on demand); only the first few
        that are not ``COMPLETED`` are read here, to show. They are read only if there are any.
        """
        ledger = self.ledger
        verdict = ledger.verdict(policy, self.stop, limits.job_timeout)
        counts = dict(ledger.counts)
        failures: list[ExecutionRecord] = []
        if sum(counts.values()) > counts[ExecutionStatus.COMPLETED]:
            reading = self.store.iter_records(
                self.job_id, status=_NOT_COMPLETED, batch=SHOWN_FAILURES
            )
            try:
                async for record in reading:
                    failures.append(record)
                    if len(failures) >= SHOWN_FAILURES:
                        break
            finally:
                # Stopped early: close the store's generator now, not when it is collected.
                aclose = getattr(reading, "aclose", None)
                if aclose is not None:
                    await aclose()
        return JobResult(
            job_id=self.job_id,
            status=verdict.status,
            reason=verdict.reason,
            counts=counts,
            success_rate=policy.success_rate(ledger.tally()),
            planned=self.plan.size,
            records=Records(self.store, self.job_id, count=sum(counts.values())),
            failures=tuple(failures),
            started_at=started_at,
            finished_at=self.now() + ledger.wall_offset,
            cancelled_by=self.stop.source,
        )
