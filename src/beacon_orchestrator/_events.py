"""Events a running job emits, and the Progress snapshot.

Events are immutable and delivered synchronously, in order, to the ``on_event`` callback given
to :func:`run_job` / :func:`start_job`. The callback runs on the scheduler's path, so keep it
quick; to do slow or async work, hand the event to a memory object stream.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal, TypeAlias

from attrs import field, frozen

from ._status import JobResult
from ._types import ExecutionKey, ExecutionRecord, ExecutionStatus

__all__ = [
    "CancelSource",
    "Counter",
    "EndpointChanged",
    "Event",
    "EventHandler",
    "ExecutionFinished",
    "ExecutionStarted",
    "JobCancelled",
    "JobFinished",
    "JobStarted",
    "Progress",
    "QuestionFinished",
    "QuestionStarted",
]

CancelSource: TypeAlias = Literal["handle", "deadline", "scope", "early_stop", "lease", "budget"]
"""What requested a job's cancellation: ``JobHandle.cancel()``, the job deadline, the caller's
cancel scope, the status policy's final verdict with early stop on, the loss of the job's
lease to another runner, or the spending budget (``Limits.max_cost``)."""


@frozen
class JobStarted:
    """The job has started. ``to_run`` excludes keys already completed in the store."""

    job_id: str
    at: float
    planned: int
    to_run: int
    strategy: str


@frozen
class QuestionStarted:
    """The first execution of a question started (anywhere in the job)."""

    job_id: str
    question_id: str
    index: int
    at: float


@frozen
class ExecutionStarted:
    """An attempt of an execution is about to call the executor (one event per attempt)."""

    job_id: str
    key: ExecutionKey
    attempt: int
    at: float


@frozen
class ExecutionFinished:
    """An execution reached its terminal state and its record is stored."""

    job_id: str
    record: ExecutionRecord
    at: float


@frozen
class QuestionFinished:
    """Every execution of a question is terminal: every sample, on every endpoint."""

    job_id: str
    question_id: str
    index: int
    at: float


@frozen
class JobCancelled:
    """Cancellation was requested; from this event on no execution starts."""

    job_id: str
    source: CancelSource
    reason: str
    at: float


@frozen
class JobFinished:
    """The verdict, emitted after every record is stored. Always the last event."""

    job_id: str
    result: JobResult
    at: float


@frozen
class EndpointChanged:
    """An endpoint's concurrency limit or circuit breaker changed.

    Attributes:
        job_id: The job.
        endpoint: ``model@region``.
        limit: Executions it may now have in flight (0 while its breaker is open).
        breaker: Its breaker's state (``closed``, ``open``, ``half_open``, ``down``), or
            ``None`` when the run has no breaker.
        reason: What changed it (``answered``, ``overload``, an error code, ``probe``,
            ``cool-down over``).
        at: Event-loop time.
    """

    job_id: str
    endpoint: str
    limit: int
    breaker: str | None
    reason: str
    at: float


Event: TypeAlias = (
    JobStarted
    | QuestionStarted
    | ExecutionStarted
    | ExecutionFinished
    | QuestionFinished
    | JobCancelled
    | JobFinished
    | EndpointChanged
)
"""Any event a job emits."""

EventHandler: TypeAlias = Callable[[Event], object]
"""The type of ``on_event`` callbacks."""


@frozen
class Counter:
    """How far one slice of a job (a question, region, model or endpoint) has come.

    Attributes:
        done: Executions of the slice with an outcome (completed, failed or timed out), in
            this run or kept from an earlier one. A cancelled or skipped execution has a record
            but no outcome, so it is not done: it runs again on resume.
        total: Planned executions of the slice: every sample of each of its cells (a job of
            3 samples per cell plans 3 executions of a question on each endpoint).
        kept: Of ``done``, those kept from an earlier run (a resume) rather than run now.
        cancelled: Executions of the slice interrupted by cancellation in this run.
        skipped: Executions of the slice this run recorded as never started.
    """

    done: int
    total: int
    kept: int = 0
    cancelled: int = 0
    skipped: int = 0

    @property
    def fraction(self) -> float:
        """The fraction with an outcome: done / total (1.0 for an empty slice)."""
        return self.done / self.total if self.total else 1.0


@frozen
class Progress:
    """A snapshot of a running job, computed when asked.

    Every planned execution is in exactly one of ``kept``, ``finished``, ``cancelled``,
    ``skipped``, ``in_flight``, ``waiting_to_retry`` and ``to_run``; they add up to ``total``.
    A key that still has to run is only ever counted in ``to_run``, never as done or skipped,
    even if an earlier run left a ``CANCELLED`` or ``SKIPPED`` record for it.

    Attributes:
        job_id: The job.
        total: Planned executions: cells times the job's ``samples``.
        done: Executions with an outcome (completed, failed or timed out): ``kept + finished``.
            Cancelled and skipped executions are not done (they run again on resume).
        in_flight: Executions started in this run whose attempt is running (or whose record is
            being stored). Those waiting between two attempts are in ``waiting_to_retry``.
        counts: Records per status, this run's and the kept ones.
        by_question: Done/total per question id.
        by_region: Done/total per region.
        by_model: Done/total per model id.
        by_endpoint: Done/total per endpoint (``model@region``).
        elapsed: Seconds since this run started.
        eta: Estimated seconds until this run ends, from each endpoint's recent pace and the
            limits the endpoints share (see the "Cancel and resume" how-to); ``None`` before
            the pace is known, and once cancellation was requested; ``0.0`` when nothing is left.
        kept: Records of an earlier run that this run keeps and does not execute again.
        finished: Executions this run brought to an outcome (completed, failed, timed out).
        cancelled: Executions this run started and cancellation interrupted.
        skipped: Executions this run recorded as never started (the job stopped first).
        waiting_to_retry: Executions between two attempts, waiting out a retry's backoff.
        to_run: Executions of this run not started yet.
        endpoint_limits: Each endpoint's concurrency limit now, by ``model@region``, when the
            run adapts them or has a circuit breaker (0: its breaker is open); else empty.
        spent: What this run's executions cost so far, under the run's cost model (``None``:
            no cost model).
    """

    job_id: str
    total: int
    done: int
    in_flight: int
    counts: Mapping[ExecutionStatus, int]
    by_question: Mapping[str, Counter]
    by_region: Mapping[str, Counter]
    by_model: Mapping[str, Counter]
    by_endpoint: Mapping[str, Counter]
    elapsed: float
    eta: float | None
    kept: int = 0
    finished: int = 0
    cancelled: int = 0
    skipped: int = 0
    waiting_to_retry: int = 0
    to_run: int = 0
    endpoint_limits: Mapping[str, int] = field(factory=dict)
    spent: float | None = None

    @property
    def planned_this_run(self) -> int:
        """The executions this run had to handle: ``total - kept``."""
        return self.total - self.kept

    @property
    def recorded(self) -> int:
        """Executions with a record of any status, kept or written by this run."""
        return self.kept + self.finished + self.cancelled + self.skipped

    @property
    def fraction(self) -> float:
        """The share of this run's work brought to an outcome: finished / planned_this_run.

        Cancelled and skipped executions do not count, so a cancelled job never shows 100%;
        kept ones are not this run's work (1.0 when the run had nothing to do).
        """
        planned = self.planned_this_run
        return self.finished / planned if planned else 1.0
