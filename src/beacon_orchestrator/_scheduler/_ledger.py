"""The ledger: records built, counted and summed into progress, the tally and the verdict.

Plain synchronous code. The hot path only counts what it must (per status, per question, per
endpoint); per-region and per-model figures are sums of the endpoints' tallies, computed when
someone asks (progress, the status policy).
"""

from __future__ import annotations

import operator
from collections.abc import Callable

from .._errors import ExecutionError, WrongRegionError
from .._events import CancelSource, Counter, Progress
from .._executor import Response
from .._status import JobStatus, RegionTally, StatusPolicy, Tally, Verdict
from .._types import ExecutionKey, ExecutionRecord, ExecutionStatus
from ._plan import EndpointState, Plan
from ._resume import KeptKeys

__all__ = ["AttemptTimeout", "Ledger", "StopReason", "error_code", "interrupted_message"]

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


def interrupted_message(stop: StopReason) -> str:
    """The message of an interrupted execution's record, before any failure it had."""
    return f"interrupted: {stop.reason or 'cancelled'}"


def error_code(err: BaseException) -> str | None:
    """The error code a record of the failure ``err`` keeps (what logs name, too)."""
    return _failure(err)[0]


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
        self.samples = plan.samples
        self.question_done = [0] * n_q
        # Every sample of a question on every endpoint: a question ends with its last one.
        self.question_remaining = [len(plan.endpoints) * plan.samples] * n_q
        self.question_started = [False] * n_q
        self.kept = 0  # records of an earlier run this run keeps
        # Counted when asked or off the hot path: kept records, cancelled and skipped ones.
        self.question_kept = [0] * n_q
        self.question_cancelled = [0] * n_q
        self.question_skipped = [0] * n_q
        self.endpoint_kept: dict[EndpointState, int] = dict.fromkeys(plan.endpoints, 0)
        self.endpoint_skipped: dict[EndpointState, int] = dict.fromkeys(plan.endpoints, 0)

    # -- counting ---------------------------------------------------------------------------

    def keep_all(self, kept: KeptKeys) -> None:
        """Count every kept record at once (a resume), endpoint by endpoint, in bulk.

        A kept record is finished (completed, failed or timed out): what a resumed run keeps.
        The per-slot counts are column sums over the endpoints' rows, and a question's count
        the sum of its slots (``slot // samples``), so a resumed job of 500,000 executions is
        counted without a Python step per execution.
        """
        per_slot = [0] * self.plan.n_slots
        for model, region, row in kept.rows():
            e = self.plan.endpoint(model, region)
            if e is None:
                continue  # an endpoint this spec does not plan
            found = kept.counts(row)
            total = found[COMPLETED] + found["empty"] + found[FAILED] + found[TIMEOUT]
            self.kept += total
            self.endpoint_kept[e] += total
            t = e.tally
            t.completed += found[COMPLETED]
            t.empty += found["empty"]
            t.failed += found[FAILED] + found[TIMEOUT]
            for status in (COMPLETED, FAILED, TIMEOUT):
                self.counts[status] += found[status]
            self.counts[COMPLETED] += found["empty"]
            per_slot = list(map(operator.add, per_slot, kept.present(row)))
        samples = self.samples
        for q in range(self.plan.n_questions):
            n = sum(per_slot[q * samples : (q + 1) * samples])
            if n:
                self.question_started[q] = True
                self.question_kept[q] += n
                self.question_done[q] += n
                self.question_remaining[q] -= n

    def account(self, record: ExecutionRecord, e: EndpointState, slot: int) -> bool:
        """Count a terminal record (of ``slot`` on ``e``) in the counters and its endpoint's tally.

        Returns:
            Whether it was the last execution of its question (every sample) to end.
        """
        q = slot // self.samples
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
            self._stopped(status, e, q)
            return remaining[q] == 0
        # Both stamps are set on every record this run builds for a finished execution.
        t.busy += (record.finished_at or 0.0) - (record.started_at or 0.0)
        return remaining[q] == 0

    def _stopped(self, status: ExecutionStatus, e: EndpointState, q: int) -> None:
        """Count a cancelled or skipped record (rare: only when a job stops early)."""
        if status is SKIPPED:
            self.question_skipped[q] += 1
            self.endpoint_skipped[e] += 1
        else:
            self.question_cancelled[q] += 1

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
            # Verified before this record was built: when reported, it is the key's region.
            served_region=None if response.served_region is None else key.region,
            system_prompt=response.system_prompt,
            request_sha256=response.request_sha256,
            usage=response.usage,
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
            message = interrupted_message(stop) + (f" (last failure: {message})" if message else "")
        off = self.wall_offset
        # An answer from the wrong region: what was asked, and where it was answered.
        wrong = err if isinstance(err, WrongRegionError) else None
        return ExecutionRecord(
            key=key,
            status=status,
            error_code=code,
            error_message=message,
            attempts=attempts,
            started_at=started + off,
            finished_at=ended + off,
            served_region=None if wrong is None else wrong.served,
            system_prompt=None if wrong is None else wrong.system_prompt,
            request_sha256=None if wrong is None else wrong.request_sha256,
        )

    def interrupted(
        self, key: ExecutionKey, message: str, attempts: int, started: float, ended: float
    ) -> ExecutionRecord:
        """The ``CANCELLED`` record of an execution interrupted with no failure before.

        What :meth:`failed` builds for it, with the message given (:func:`interrupted_message`,
        the same for every such execution of a job): the end of a job builds thousands at once.
        """
        off = self.wall_offset
        return ExecutionRecord(
            key=key,
            status=CANCELLED,
            error_code="CANCELLED",
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
        """Per-region counts of executions (every sample), as the status policy sees them."""
        n_q = self.plan.n_slots
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

    def finished_here(self, e: EndpointState) -> int:
        """Executions of ``e`` this run brought to an outcome (kept records excluded)."""
        t = e.tally
        return t.completed + t.empty + t.failed - self.endpoint_kept[e]

    def progress(
        self, job_id: str, *, elapsed: float, unstarted: int, waiting: int, eta: float | None
    ) -> Progress:
        """A snapshot: what is kept, finished, stopped, in flight and to run, overall and per slice.

        Args:
            job_id: The job.
            elapsed: Seconds since the run started.
            unstarted: Keys the picker has not started (``SKIPPED`` ones included, until the
                picker forgets them: they never started either).
            waiting: Executions waiting out a retry's backoff.
            eta: The estimate of the time left.
        """
        plan = self.plan
        c = self.counts
        kept = self.kept
        cancelled, skipped = c[CANCELLED], c[SKIPPED]
        finished = c[COMPLETED] + c[FAILED] + c[TIMEOUT] - kept
        to_run = unstarted - skipped
        started = plan.size - kept - finished - cancelled - skipped - to_run
        return Progress(
            job_id=job_id,
            total=plan.size,
            done=kept + finished,
            in_flight=started - waiting,
            counts=dict(c),
            by_question=self._by_question(),
            by_region=self._sums(lambda e: e.region.name),
            by_model=self._sums(lambda e: e.model),
            by_endpoint=self._sums(lambda e: e.label),
            elapsed=elapsed,
            eta=eta,
            kept=kept,
            finished=finished,
            cancelled=cancelled,
            skipped=skipped,
            waiting_to_retry=waiting,
            to_run=to_run,
        )

    def _by_question(self) -> dict[str, Counter]:
        n_eps = len(self.plan.endpoints) * self.samples
        return {
            qid: Counter(
                done - self.question_cancelled[i] - self.question_skipped[i],
                n_eps,
                kept=self.question_kept[i],
                cancelled=self.question_cancelled[i],
                skipped=self.question_skipped[i],
            )
            for i, (qid, done) in enumerate(
                zip(self.plan.question_ids, self.question_done, strict=True)
            )
        }

    def _sums(self, slice_of: Callable[[EndpointState], str]) -> dict[str, Counter]:
        """Counters of the slices ``slice_of`` puts the endpoints in, summed over endpoints."""
        n_q = self.plan.n_slots
        sums: dict[str, list[int]] = {}
        for e in self.plan.endpoints:
            t = e.tally
            skipped = self.endpoint_skipped[e]
            slot = sums.setdefault(slice_of(e), [0, 0, 0, 0, 0])
            slot[0] += t.completed + t.empty + t.failed
            slot[1] += n_q
            slot[2] += self.endpoint_kept[e]
            slot[3] += t.unfinished - skipped
            slot[4] += skipped
        return {name: Counter(*counts) for name, counts in sums.items()}

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
        if stop.source == "budget":
            return Verdict(verdict.status, f"{verdict.reason} Stopped early: {stop.reason}.")
        if stop.source == "early_stop":
            return Verdict(
                verdict.status,
                f"{verdict.reason} Stopped early: the verdict could no longer change.",
            )
        return verdict
