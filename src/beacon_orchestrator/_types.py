"""Values shared by every layer: execution keys, statuses and records.

They live apart from the spec, the executor and the scheduler so that each of those can use them
without importing the others.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Final, NamedTuple

from attrs import field, frozen

from ._record_codec import EPOCH_SECONDS, RecordCodec, encoded, enum_value, flattened, json_object
from ._usage import USAGE_ENCODING, Usage

__all__ = [
    "RECORD_CODEC",
    "Endpoint",
    "ExecutionKey",
    "ExecutionRecord",
    "ExecutionStatus",
]


class Endpoint(NamedTuple):
    """One model served in one region: the unit that answers one request at a time."""

    model_id: str
    region: str

    def __str__(self) -> str:
        return f"{self.model_id}@{self.region}"


class ExecutionKey(NamedTuple):
    """The identity of one execution: a question asked of a model in a region, one sample of it.

    A job asks each cell (question x model x region) ``samples`` times; ``sample`` numbers
    them from 0. With one sample per cell (the default) the key is the cell: a key built from
    three fields has sample 0 and equals one built with ``sample=0``, and it prints as it
    always did (``q/m@r``); another sample prints its number (``q/m@r#2``).

    A plain named tuple (hashable, ordered, cheap to build) because a job creates one per
    execution on the hot path.
    """

    question_id: str
    model_id: str
    region: str
    sample: int = 0

    @property
    def endpoint(self) -> Endpoint:
        """The endpoint (model x region) this execution runs on."""
        return Endpoint(self.model_id, self.region)

    @property
    def cell(self) -> ExecutionKey:
        """The key of this execution's cell: the same question, model and region, sample 0."""
        if not self.sample:
            return self
        return ExecutionKey(self.question_id, self.model_id, self.region)

    def __str__(self) -> str:
        if self.sample:
            return f"{self.question_id}/{self.model_id}@{self.region}#{self.sample}"
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

    How a field is flattened into the dict form, a SQLite row and an export row follows from
    its declaration here: a plain scalar as it is, anything else as its ``encoded(...)``
    metadata says (see ``_record_codec``).

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
        served_region: The canonical region the provider says served the execution, when
            the executor reported one (a ``WRONG_REGION`` failure keeps it too).
        system_prompt: The system prompt the executor sent, if any.
        request_sha256: SHA-256 (hex) of the request body as the executor sent it (canonical
            JSON, credentials excluded), so a study can show what each region was asked.
        usage: What the provider reported the execution used (tokens, seconds, its cost).
        cost: What the execution cost under the run's cost model (``None``: no cost model).
    """

    key: ExecutionKey = field(metadata=encoded(flattened(ExecutionKey)))
    status: ExecutionStatus = field(metadata=encoded(enum_value(ExecutionStatus)))
    text: str | None = None
    empty: bool = False
    error_code: str | None = None
    error_message: str | None = None
    attempts: int = 0
    started_at: float | None = field(default=None, metadata=encoded(EPOCH_SECONDS))
    finished_at: float | None = field(default=None, metadata=encoded(EPOCH_SECONDS))
    provider: str | None = None
    metadata: Mapping[str, Any] = field(factory=dict, metadata=encoded(json_object()))
    receipt: Mapping[str, Any] | None = field(
        default=None, metadata=encoded(json_object(optional=True))
    )
    served_region: str | None = None
    system_prompt: str | None = None
    request_sha256: str | None = None
    usage: Usage | None = field(default=None, metadata=encoded(USAGE_ENCODING))
    cost: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (the key flattened into its fields, ``sample`` included)."""
        return RECORD_CODEC.to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExecutionRecord:
        """Rebuild a record from :meth:`to_dict` output."""
        return RECORD_CODEC.from_dict(data)


RECORD_CODEC: Final = RecordCodec(ExecutionRecord)
"""The columns of an :class:`ExecutionRecord` in its dict form, a SQLite row and an export row."""
