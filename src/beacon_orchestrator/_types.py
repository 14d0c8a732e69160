"""Values shared by every layer: execution keys, statuses and records.

They live apart from the spec, the executor and the scheduler so that each of those can use them
without importing the others.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, NamedTuple

from attrs import field, frozen

__all__ = ["Endpoint", "ExecutionKey", "ExecutionRecord", "ExecutionStatus"]


class Endpoint(NamedTuple):
    """One model served in one region: the unit that answers one request at a time."""

    model_id: str
    region: str

    def __str__(self) -> str:
        return f"{self.model_id}@{self.region}"


class ExecutionKey(NamedTuple):
    """The identity of one cell of a job's cube: a question asked of a model in a region.

    A plain named tuple (hashable, ordered, cheap to build) because a job creates one per
    execution on the hot path.
    """

    question_id: str
    model_id: str
    region: str

    @property
    def endpoint(self) -> Endpoint:
        """The endpoint (model x region) this execution runs on."""
        return Endpoint(self.model_id, self.region)

    def __str__(self) -> str:
        return f"{self.question_id}/{self.model_id}@{self.region}"


class ExecutionStatus(enum.StrEnum):
    """The terminal state of one execution.

    ``COMPLETED``, ``FAILED`` and ``TIMEOUT`` are *finished* (the execution ran to an outcome);
    ``CANCELLED`` means it started and was interrupted by cancellation; ``SKIPPED`` means it never
    started because the job was cancelled or decided first.
    """

    COMPLETED = "completed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"

    @property
    def finished(self) -> bool:
        """Whether the execution ran to an outcome (completed, failed or timed out)."""
        return self in _FINISHED


_FINISHED = frozenset({ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.TIMEOUT})


@frozen(kw_only=True)
class ExecutionRecord:
    """The persisted outcome of one execution key.

    Timestamps are seconds since the Unix epoch (floats), so records serialise without loss.
    Every argument is a keyword (``ExecutionRecord(key=..., status=...)``), so fields can be
    added without breaking callers.

    Attributes:
        key: Which cell of the job this is.
        status: Its terminal state.
        text: The model's answer for ``COMPLETED`` (may be ``""``), else ``None``.
        empty: Whether a completed answer was empty (after stripping white space).
        error_code: Short code of the last failure (``PROVIDER_UNAVAILABLE``, ``TIMEOUT``, ...).
        error_message: Human-readable description of the last failure.
        attempts: How many attempts were started (0 for ``SKIPPED``).
        started_at: When the first attempt started.
        finished_at: When the execution reached this state.
        provider: Which provider answered, if the executor said.
        metadata: Executor-supplied details (latency, tokens, region reported by the GPU app).
        receipt: The provider's execution receipt, if any.
    """

    key: ExecutionKey
    status: ExecutionStatus
    text: str | None = None
    empty: bool = False
    error_code: str | None = None
    error_message: str | None = None
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    provider: str | None = None
    metadata: Mapping[str, Any] = field(factory=dict)
    receipt: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (the key flattened into its three fields)."""
        return {
            "question_id": self.key.question_id,
            "model_id": self.key.model_id,
            "region": self.key.region,
            "status": self.status.value,
            "text": self.text,
            "empty": self.empty,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "attempts": self.attempts,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "provider": self.provider,
            "metadata": dict(self.metadata),
            "receipt": None if self.receipt is None else dict(self.receipt),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExecutionRecord:
        """Rebuild a record from :meth:`to_dict` output."""
        return cls(
            key=ExecutionKey(data["question_id"], data["model_id"], data["region"]),
            status=ExecutionStatus(data["status"]),
            text=data.get("text"),
            empty=bool(data.get("empty", False)),
            error_code=data.get("error_code"),
            error_message=data.get("error_message"),
            attempts=int(data.get("attempts", 0)),
            started_at=data.get("started_at"),
            finished_at=data.get("finished_at"),
            provider=data.get("provider"),
            metadata=data.get("metadata") or {},
            receipt=data.get("receipt"),
        )
