"""Events a running job emits, and the Progress snapshot.

Events are immutable and delivered synchronously, in order, to the ``on_event`` callback given
to :func:`run_job` / :func:`start_job`. The callback runs on the scheduler's path, so keep it
quick; to do slow or async work, hand the event to a memory object stream.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal, TypeAlias

from attrs import frozen

from ._status import JobResult
from ._types import ExecutionKey, ExecutionRecord, ExecutionStatus

__all__ = [
    "CancelSource",
    "Counter",
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

CancelSource: TypeAlias = Literal["handle", "deadline", "scope", "early_stop", "lease"]
"""What requested a job's cancellation: ``JobHandle.cancel()``, the job deadline, the caller's
cancel scope, the status policy's final verdict with early stop on, or the loss of the job's
lease to another runner."""


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
    """Every execution of a question is terminal."""

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


Event: TypeAlias = (
    JobStarted
    | QuestionStarted
    | ExecutionStarted
    | ExecutionFinished
    | QuestionFinished
    | JobCancelled
    | JobFinished
)
"""Any event a job emits."""

EventHandler: TypeAlias = Callable[[Event], object]
"""The type of ``on_event`` callbacks."""


@frozen
class Counter:
    """``done`` of ``total`` executions of some slice of a job."""

    done: int
    total: int

    @property
    def fraction(self) -> float:
        """The fraction done: done / total (1.0 for an empty slice)."""
        return self.done / self.total if self.total else 1.0


@frozen
class Progress:
    """A snapshot of a running job.

    Attributes:
        job_id: The job.
        total: Planned executions.
        done: Executions with a terminal record (including those completed before a resume).
        in_flight: Executions started and not yet terminal.
        counts: Terminal records per status.
        by_question: Done/total per question id.
        by_region: Done/total per region.
        by_model: Done/total per model id.
        by_endpoint: Done/total per endpoint (``model@region``).
        elapsed: Seconds since the job started.
        eta: Estimated seconds to the end at the rate so far, or ``None`` before the first result.
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

    @property
    def fraction(self) -> float:
        """The fraction done: done / total."""
        return self.done / self.total if self.total else 1.0
