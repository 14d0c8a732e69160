"""A job's records read on demand: the filter every store applies, and the view a result gives.

A :class:`~beacon_orchestrator.JobResult` does not hold its job's records (a job may have
500,000 of them): it holds a :class:`Records` view that reads them from the store when asked,
one batch at a time. The view iterates with ``async for`` wherever the store can be read
asynchronously, and with a plain ``for`` when the store can also be read without an event loop
(``MemoryStore``, ``SQLiteStore`` on a file) or the result was built from a tuple of records.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Collection, Iterable, Iterator
from contextlib import aclosing
from typing import Protocol, runtime_checkable

from attrs import frozen

from ._errors import UsageError
from ._types import ExecutionKey, ExecutionRecord, ExecutionStatus

__all__ = ["RecordFilter", "RecordReader", "Records", "StatusArg", "SyncRecordReader"]

StatusArg = ExecutionStatus | Collection[ExecutionStatus] | None
"""A status filter: one status, several, or ``None`` for any."""


def _statuses(status: object) -> frozenset[ExecutionStatus] | None:
    if status is None:
        return None
    values = [status] if isinstance(status, str) else status
    if not isinstance(values, Iterable):
        raise UsageError(f"status: expected an ExecutionStatus or several, got {status!r}")
    out: set[ExecutionStatus] = set()
    for value in values:
        try:
            out.add(ExecutionStatus(value))
        except ValueError:
            names = ", ".join(s.value for s in ExecutionStatus)
            raise UsageError(f"status: expected one of {names}, got {value!r}") from None
    return frozenset(out)


def _name(field: str, value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise UsageError(f"{field}: expected a string or None, got {value!r}")


@frozen
class RecordFilter:
    """Which records a read returns: every given condition must hold.

    Attributes:
        statuses: The statuses to return, or ``None`` for any.
        region: Only this region's records, or ``None``.
        model: Only this model's records, or ``None``.
        question: Only this question's records, or ``None``.
    """

    statuses: frozenset[ExecutionStatus] | None = None
    region: str | None = None
    model: str | None = None
    question: str | None = None

    @classmethod
    def of(
        cls,
        *,
        status: StatusArg = None,
        region: str | None = None,
        model: str | None = None,
        question: str | None = None,
    ) -> RecordFilter:
        """The filter of a read's keyword arguments (``status`` one status or several).

        Raises:
            UsageError: For a value that is not a status or not a string, naming the argument.
        """
        return cls(
            _statuses(status),
            _name("region", region),
            _name("model", model),
            _name("question", question),
        )

    def matches(self, record: ExecutionRecord) -> bool:
        """Whether ``record`` passes every condition."""
        key = record.key
        return (
            (self.statuses is None or record.status in self.statuses)
            and (self.region is None or key.region == self.region)
            and (self.model is None or key.model_id == self.model)
            and (self.question is None or key.question_id == self.question)
        )

    def narrowed(self, other: RecordFilter) -> RecordFilter:
        """Both filters at once (a record must pass each)."""
        if self.statuses is None or other.statuses is None:
            statuses = self.statuses if other.statuses is None else other.statuses
        else:
            statuses = self.statuses & other.statuses
        return RecordFilter(
            statuses,
            *(
                _both(name, getattr(self, name), getattr(other, name))
                for name in ("region", "model", "question")
            ),
        )


_NOTHING = "\x00"  # a name no id can be (ids are printable): a filter nothing passes


def _both(name: str, a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a if b is None else b
    return a if a == b else _NOTHING


class RecordReader(Protocol):
    """What a result reads its records from: a store's :meth:`iter_records`."""

    def iter_records(
        self,
        job_id: str,
        *,
        status: StatusArg = None,
        region: str | None = None,
        model: str | None = None,
        question: str | None = None,
        batch: int = ...,
    ) -> AsyncIterator[ExecutionRecord]:
        """The job's records that pass the filters, streamed."""
        ...


@runtime_checkable
class SyncRecordReader(Protocol):
    """A store that can also be read without an event loop (``for record in result.records``)."""

    def iter_records_sync(self, job_id: str, filter: RecordFilter) -> Iterator[ExecutionRecord]:
        """The job's records that pass ``filter``, read in the calling thread."""
        ...


class Records:
    """A job's records, read when iterated (``async for``, or ``for`` where the store allows).

    What :attr:`JobResult.records <beacon_orchestrator.JobResult.records>` is. Call it with
    filters to narrow it (``result.records(status=ExecutionStatus.FAILED, region="eu-west")``);
    index it by key (``result.records[key]``, or ``await result.records.get(key)``). It holds
    no record itself (unless built from a tuple), so a result of any size stays small.

    Args:
        source: The store to read from, or the records themselves.
        job_id: The job whose records these are.
        count: How many records there are unfiltered, if known (``len`` then needs no read).
        filter: What passes.
    """

    __slots__ = ("_count", "_filter", "_job_id", "_source")

    def __init__(
        self,
        source: RecordReader | tuple[ExecutionRecord, ...] = (),
        job_id: str = "",
        *,
        count: int | None = None,
        filter: RecordFilter | None = None,
    ) -> None:
        self._source = source
        self._job_id = job_id
        self._filter = RecordFilter() if filter is None else filter
        self._count = count

    def __call__(
        self,
        *,
        status: StatusArg = None,
        region: str | None = None,
        model: str | None = None,
        question: str | None = None,
    ) -> Records:
        """The records that also pass these filters (``status``: one status or several)."""
        more = RecordFilter.of(status=status, region=region, model=model, question=question)
        return Records(self._source, self._job_id, filter=self._filter.narrowed(more))

    @property
    def is_tuple(self) -> bool:
        """Whether the records are held here (built from a tuple) rather than read from a store."""
        return isinstance(self._source, tuple)

    @property
    def filter(self) -> RecordFilter:
        """What this view lets through."""
        return self._filter

    async def __aiter__(self) -> AsyncGenerator[ExecutionRecord, None]:
        source, f = self._source, self._filter
        if isinstance(source, tuple):
            for record in source:
                if f.matches(record):
                    yield record
            return
        reading = source.iter_records(
            self._job_id, status=f.statuses, region=f.region, model=f.model, question=f.question
        )
        try:
            async for record in reading:
                yield record
        finally:
            # Left early (a lookup, a break): close the store's reader now, not when collected.
            aclose = getattr(reading, "aclose", None)
            if aclose is not None:
                await aclose()

    def __iter__(self) -> Iterator[ExecutionRecord]:
        source, f = self._source, self._filter
        if isinstance(source, tuple):
            return (r for r in source if f.matches(r))
        if isinstance(source, SyncRecordReader):
            return source.iter_records_sync(self._job_id, f)
        raise UsageError(
            f"the records of job {self._job_id!r} are in a {type(source).__name__}, which is "
            "read asynchronously: use 'async for record in result.records(...)'"
        )

    async def list(self) -> list[ExecutionRecord]:
        """Every record of this view in one list (mind the size of the job)."""
        return [r async for r in self]

    def _lookup(self, key: object) -> RecordFilter:
        if not isinstance(key, tuple) or len(key) != len(ExecutionKey._fields):
            raise UsageError(f"records[key]: expected an ExecutionKey, got {key!r}")
        k = ExecutionKey(*key)
        return self._filter.narrowed(RecordFilter(None, k.region, k.model_id, k.question_id))

    async def get(self, key: ExecutionKey) -> ExecutionRecord | None:
        """The record of ``key``, or ``None`` if it has none (or this view filters it out)."""
        view = Records(self._source, self._job_id, filter=self._lookup(key))
        async with aclosing(view.__aiter__()) as found:
            async for record in found:
                return record
        return None

    def __getitem__(self, key: ExecutionKey) -> ExecutionRecord:
        """The record of ``key`` (read without an event loop; see :meth:`get`).

        Raises:
            KeyError: The key has no record (or this view filters it out).
        """
        view = Records(self._source, self._job_id, filter=self._lookup(key))
        for record in view:
            return record
        raise KeyError(key)

    def __len__(self) -> int:
        """How many records pass (a count kept by the result, else one read)."""
        if self._count is not None and self._filter == RecordFilter():
            return self._count
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        where = "a tuple" if isinstance(self._source, tuple) else type(self._source).__name__
        narrowed = "" if self._filter == RecordFilter() else f", {self._filter!r}"
        return f"<Records of job {self._job_id!r} in {where}{narrowed}>"
