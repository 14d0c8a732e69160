"""The ledger: records built, counted and summed into progress, the tally and the verdict.

Plain synchronous code. The hot path only counts what it must (per status, per question, per
endpoint); per-region and per-model figures are sums of the endpoints' tallies, computed when
someone asks (progress, the status policy).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._errors import ExecutionError
from .._events import CancelSource, Counter, Progress
from .._executor import Response
from .._status import JobStatus, RegionTally, StatusPolicy, Tally, Verdict
from .._types import ExecutionKey, ExecutionRecord, ExecutionStatus
from ._plan import EndpointState, Plan

__all__ = ["AttemptTimeout", "Ledger", "StopReason"]

COMPLETED = ExecutionStatus.COMPLETED
FAILED = ExecutionStatus.FAILED
TIMEOUT = ExecutionStatus.TIMEOUT
CANCELLED = ExecutionStatus.CANCELLED
SKIPPED = ExecutionStatus.SKIPPED


class AttemptTimeout(Exception):
    """An attempt ran past ``Limits.attempt_timeout`` (recorded as ``TIMEOUT``)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the attempt exceeded its timeout of {seconds:g} s")


class StopReason:
    """Why the job stopped taking new work: who asked, and in a sentence why."""

    __slots__ = ("crash", "reason", "source")

    def __init__(self) -> None:
        self.source: CancelSource | None = None
        self.reason: str | None = None
        self.crash: BaseException | None = None


def _failure(err: BaseException | None) -> tuple[str | None, str | None]:
    """The error code and message a record keeps for the last failure ``err``."""
    if isinstance(err, AttemptTimeout):
        return "TIMEOUT", str(err)
    if isinstance(err, ExecutionError):
        return err.code or type(err).__name__, err.message
    if err is not None:
        return "EXECUTOR_ERROR", f"{type(err).__name__}: {err}"
    return None, None


class Ledger:
    """Counts a job's terminal records and builds them.

    Args:
        plan: The job's endpoints and questions.
        wall_offset: Added to the event loop's clock to get wall time for record timestamps.
    """

    def __init__(self, plan: Plan, *, wall_offset: float) -> None:
        self.plan = plan
        self.wall_offset = wall_offset
        self.counts: dict[ExecutionStatus, int] = dict.fromkeys(ExecutionStatus, 0)
        n_q = plan.n_questions
        self.question_done = [0] * n_q
        self.question_remaining = [len(plan.endpoints)] * n_q
        self.question_started = [False] * n_q
        self.kept = 0  # records of an earlier run this run keeps

    # -- counting ---------------------------------------------------------------------------

    def keep(self, record: ExecutionRecord) -> None:
        """Count a record of an earlier run that this run keeps (a resume)."""
        located = self.plan.locate(record.key)
        if located is None:
            return  # a key this spec does not plan (open_job makes that impossible)
        e, q = located
        self.kept += 1
        self.question_started[q] = True
        self.account(record, e, q)

    def account(self, record: ExecutionRecord, e: EndpointState, q: int) -> bool:
        """Count a terminal record in the counters and its endpoint's tally.

        Returns:
            Whether it was the last execution of its question to end.
        """
        status = record.status
        self.counts[status] += 1
        self.question_done[q] += 1
        remaining = self.question_remaining
        remaining[q] -= 1
        t = e.tally
        if status is COMPLETED:
            if record.empty:
                t.empty += 1
            else:
                t.completed += 1
        elif status is FAILED or status is TIMEOUT:
            t.failed += 1
        else:
            t.unfinished += 1
        return remaining[q] == 0

    # -- records ----------------------------------------------------------------------------

    def completed(
        self, key: ExecutionKey, response: Response, attempts: int, started: float, ended: float
    ) -> ExecutionRecord:
        """The record of an execution whose last attempt returned ``response``."""
        text = response.text
        off = self.wall_offset
        return ExecutionRecord(
            key=key,
            status=COMPLETED,
            text=text,
            empty=not text.strip(),
            attempts=attempts,
            started_at=started + off,
            finished_at=ended + off,
            provider=response.provider,
            metadata=response.metadata,
            receipt=response.receipt,
        )

    def failed(
        self,
        key: ExecutionKey,
        status: ExecutionStatus,
        err: BaseException | None,
        attempts: int,
        started: float,
        ended: float,
        stop: StopReason,
    ) -> ExecutionRecord:
        """The record of an execution that failed, timed out or was interrupted."""
        code, message = _failure(err)
        if status is CANCELLED:
            code = "CANCELLED"
            why = stop.reason or "cancelled"
            message = f"interrupted: {why}" + (f" (last failure: {message})" if message else "")
        off = self.wall_offset
        return ExecutionRecord(
            key=key,
            status=status,
            error_code=code,
            error_message=message,
            attempts=attempts,
            started_at=started + off,
            finished_at=ended + off,
        )

    def skipped(self, key: ExecutionKey, reason: str, at: float) -> ExecutionRecord:
        """The record of an execution that never started."""
        return ExecutionRecord(
            key=key,
            status=SKIPPED,
            error_code="SKIPPED",
            error_message=f"never started: {reason}",
            finished_at=at + self.wall_offset,
        )

    # -- summaries --------------------------------------------------------------------------

    def tally(self) -> Tally:
        """Per-region counts, as the status policy sees them."""
        n_q = self.plan.n_questions
        sums: dict[str, list[int]] = {}
        for e in self.plan.endpoints:
            slot = sums.setdefault(e.region.name, [0, 0, 0, 0, 0])
            t = e.tally
            slot[0] += n_q
            slot[1] += t.completed
            slot[2] += t.empty
            slot[3] += t.failed
            slot[4] += t.unfinished
        return Tally({name: RegionTally(*counts) for name, counts in sums.items()})

    def progress(
        self, job_id: str, *, elapsed: float, in_flight: int, eta: float | None
    ) -> Progress:
        """A snapshot of done/total per question, region, model and endpoint."""
        plan = self.plan
        n_q = plan.n_questions
        n_eps = len(plan.endpoints)
        by_region: dict[str, list[int]] = {}
        by_model: dict[str, list[int]] = {}
        for e in plan.endpoints:
            done_here = e.tally.done
            for slot in (
                by_region.setdefault(e.region.name, [0, 0]),
                by_model.setdefault(e.model, [0, 0]),
            ):
                slot[0] += done_here
                slot[1] += n_q
        return Progress(
            job_id=job_id,
            total=plan.size,
            done=sum(self.counts.values()),
            in_flight=in_flight,
            counts=dict(self.counts),
            by_question={
                qid: Counter(self.question_done[i], n_eps)
                for i, qid in enumerate(plan.question_ids)
            },
            by_region=_counters(by_region),
            by_model=_counters(by_model),
            by_endpoint={e.label: Counter(e.tally.done, n_q) for e in plan.endpoints},
            elapsed=elapsed,
            eta=eta,
        )

    def verdict(self, policy: StatusPolicy, stop: StopReason, job_timeout: float | None) -> Verdict:
        """The job's verdict: the policy's, unless a crash or a cancellation decides it."""
        if stop.crash is not None:
            return Verdict(
                JobStatus.FAILED,
                f"The job stopped on an unexpected error: {type(stop.crash).__name__}.",
            )
        if stop.source in ("handle", "scope"):
            c = self.counts
            return Verdict(
                JobStatus.CANCELLED,
                f"Cancelled ({stop.reason}) with {c[COMPLETED]} of {self.plan.size} executions "
                f"completed; {c[CANCELLED]} interrupted and {c[SKIPPED]} never started.",
            )
        verdict = policy.verdict(self.tally())
        if stop.source == "deadline":
            return Verdict(
                verdict.status, f"The job deadline of {job_timeout:g} s passed; {verdict.reason}"
            )
        if stop.source == "early_stop":
            return Verdict(
                verdict.status,
                f"{verdict.reason} Stopped early: the verdict could no longer change.",
            )
        return verdict


def _counters(sums: Mapping[str, Any]) -> dict[str, Counter]:
    return {name: Counter(done, total) for name, (done, total) in sums.items()}
