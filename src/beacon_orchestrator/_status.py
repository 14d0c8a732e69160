"""Job verdicts: the status policy extension point and the standard min-success-rate policy."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, Self, overload, runtime_checkable

from attrs import field, frozen

from ._checks import NON_NEGATIVE_INT, RATE
from ._records import Records
from ._types import ExecutionKey, ExecutionRecord, ExecutionStatus

__all__ = [
    "JobResult",
    "JobStatus",
    "MinSuccessRate",
    "RegionTally",
    "StatusPolicy",
    "Tally",
    "Verdict",
]


class JobStatus(enum.StrEnum):
    """The verdict of a job."""

    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


@frozen
class RegionTally:
    """Counts of one region's executions, as the policy sees them.

    Attributes:
        planned: Executions the job plans in this region (every sample of every cell).
        completed: Completed with a non-empty answer.
        empty: Completed with an empty answer.
        failed: Failed or timed out.
        unfinished: Cancelled or skipped.
    """

    planned: int
    completed: int = 0
    empty: int = 0
    failed: int = 0
    unfinished: int = 0

    @property
    def pending(self) -> int:
        """Executions that have no terminal record yet."""
        return self.planned - self.completed - self.empty - self.failed - self.unfinished


class _SumOverRegions:
    """A count of a :class:`Tally`: the count of the same name of every region, added up."""

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self._name = name

    @overload
    def __get__(self, tally: None, owner: type[Any] | None = None) -> Self: ...

    @overload
    def __get__(self, tally: Tally, owner: type[Any] | None = None) -> int: ...

    def __get__(self, tally: Tally | None, owner: type[Any] | None = None) -> int | Self:
        if tally is None:
            return self
        total: int = sum(getattr(r, self._name) for r in tally.regions.values())
        return total


@frozen
class Tally:
    """What a status policy decides from: per-region counts of a job's executions.

    Attributes:
        regions: Each region's counts, by region name.
        planned (int): All planned executions.
        completed (int): Completed with a non-empty answer.
        empty (int): Completed with an empty answer.
        failed (int): Failed or timed out.
        pending (int): Not yet terminal.
    """

    regions: Mapping[str, RegionTally]

    # Computed on each read from ``regions``, like properties (they are not attrs fields).
    planned = _SumOverRegions()
    completed = _SumOverRegions()
    empty = _SumOverRegions()
    failed = _SumOverRegions()
    pending = _SumOverRegions()


@frozen
class Verdict:
    """A job status with a one-sentence reason."""

    status: JobStatus
    reason: str


@runtime_checkable
class StatusPolicy(Protocol):
    """Decides a job's verdict from its tally.

    ``verdict`` gives the final verdict once every execution is terminal (pending executions,
    if any, count as not succeeded). ``decided`` returns the verdict as soon as no outcome of the
    pending executions can change it, or ``None``; the scheduler uses it to stop early when asked.
    """

    def verdict(self, tally: Tally) -> Verdict:
        """The verdict on a finished job."""
        ...

    def decided(self, tally: Tally) -> Verdict | None:
        """The verdict if it can no longer change, else ``None``."""
        ...

    def success_rate(self, tally: Tally) -> float:
        """Succeeded executions over planned ones, as this policy counts success."""
        ...


def _pct(value: float) -> str:
    pct = value * 100
    return f"{pct:.0f}%" if abs(pct - round(pct)) < 0.05 else f"{pct:.1f}%"


@frozen
class MinSuccessRate:
    """The standard Beacon policy: enough executions and enough regions must succeed.

    The job is ``COMPLETED`` when at least ``rate`` of all planned executions succeeded and at
    least ``min_regions`` regions had a success; otherwise ``FAILED``.

    The rate counts executions, not cells: with ``samples`` per cell, each sample is one
    planned execution and one success or not, so a cell whose samples succeed two times in
    three adds two successes of three. This is Beacon's count for ``runs``, and a failed
    sample is as much a failure of the service as a failed cell.

    Attributes:
        rate: Required fraction of planned executions that succeed, in [0, 1].
        min_regions: Required number of regions with at least one success.
        empty_counts_as_success: Whether an empty answer counts as a success (it is one
            from the endpoint's point of view; some probes want to treat it as a refusal).

    Raises:
        SpecError: For a rate that is not a number from 0 to 1 or a ``min_regions`` that is
            not an integer >= 0; the message names the field.
    """

    # A bool rate is let through here and refused by the JobSpec holding the policy, which
    # reports it at its path (``policy.rate``) among the spec's other problems.
    rate: float = field(default=0.67, validator=RATE.validator(bool_as_number=True))
    min_regions: int = field(default=1, validator=NON_NEGATIVE_INT.validator())
    empty_counts_as_success: bool = True

    def _successes(self, r: RegionTally) -> int:
        return r.completed + r.empty if self.empty_counts_as_success else r.completed

    def success_rate(self, tally: Tally) -> float:
        """Succeeded executions over planned ones."""
        planned = tally.planned
        return sum(self._successes(r) for r in tally.regions.values()) / planned if planned else 0.0

    def verdict(self, tally: Tally) -> Verdict:
        """COMPLETED when both the rate and the region count are met, else FAILED."""
        planned = tally.planned
        ok = sum(self._successes(r) for r in tally.regions.values())
        rate = ok / planned if planned else 0.0
        regions_ok = sum(1 for r in tally.regions.values() if self._successes(r) > 0)
        head = f"{ok} of {planned} executions succeeded ({_pct(rate)})"
        if rate + 1e-12 < self.rate:
            return Verdict(JobStatus.FAILED, f"{head}, below the required {_pct(self.rate)}.")
        if regions_ok < self.min_regions:
            return Verdict(
                JobStatus.FAILED,
                f"{head}, but only {regions_ok} region{'s' if regions_ok != 1 else ''} had a "
                f"success, below the required {self.min_regions}.",
            )
        return Verdict(
            JobStatus.COMPLETED,
            f"{head}, meeting the required {_pct(self.rate)} in {regions_ok} of "
            f"{len(tally.regions)} regions.",
        )

    def decided(self, tally: Tally) -> Verdict | None:
        """The verdict once the pending executions can no longer change it."""
        planned = tally.planned
        if planned == 0:
            return self.verdict(tally)
        regions = tally.regions.values()
        ok = sum(self._successes(r) for r in regions)
        pending = sum(r.pending for r in regions)
        regions_ok = sum(1 for r in regions if self._successes(r) > 0)
        regions_possible = sum(1 for r in regions if self._successes(r) > 0 or r.pending > 0)
        # Successes only grow, so reaching both thresholds now is final; so is being unable to
        # reach one of them even if everything pending succeeds.
        if ok / planned + 1e-12 >= self.rate and regions_ok >= self.min_regions:
            return self.verdict(tally)
        if (ok + pending) / planned + 1e-12 < self.rate or regions_possible < self.min_regions:
            return self.verdict(tally)
        return None


SHOWN_FAILURES = 20
"""How many records that are not ``COMPLETED`` a :class:`JobResult` keeps to show."""


def _as_records(value: Records | Sequence[ExecutionRecord] | None) -> Records:
    if isinstance(value, Records):
        return value
    return Records(() if value is None else tuple(value), count=None)


def _as_tuple(value: Iterable[ExecutionRecord]) -> tuple[ExecutionRecord, ...]:
    return tuple(value)


@frozen
class JobResult:
    """The outcome of a job: its verdict, counts and timings, and a view of its records.

    A result does not hold its job's records (a job may have 500,000): ``records`` reads them
    from the store on demand, and ``failures`` keeps the first few records that are not
    ``COMPLETED`` to show. Build one by hand (tests do) with a tuple of records as ``records``.

    Attributes:
        job_id: The job's id.
        status: The verdict.
        reason: One sentence saying why.
        counts: Number of records per execution status (every status present, maybe 0).
        success_rate: Succeeded executions over planned ones, as the policy counts success.
        planned: How many executions the job plans.
        records: The job's records, one per planned key, read from the store when iterated
            (``for r in result.records``, ``async for r in result.records(status=...)``,
            ``result.records[key]``); see :class:`~beacon_orchestrator.Records`. Empty when
            the store does not keep records, like a counting sink.
        started_at: When the job started (seconds since the epoch).
        finished_at: When the verdict was reached (seconds since the epoch).
        cancelled_by: What cancelled the job (``"handle"``, ``"deadline"``, ``"scope"``,
            ``"early_stop"``), or ``None``.
        failures: The first records that are not ``COMPLETED``, in the order they were stored
            (at most :data:`SHOWN_FAILURES`; ``not_completed`` says how many there are).
    """

    job_id: str
    status: JobStatus
    reason: str
    counts: Mapping[ExecutionStatus, int]
    success_rate: float
    planned: int
    records: Records = field(default=None, converter=_as_records, eq=False)
    started_at: float = 0.0
    finished_at: float = 0.0
    cancelled_by: str | None = None
    failures: tuple[ExecutionRecord, ...] = field(converter=_as_tuple)

    @failures.default
    def _first_failures(self) -> tuple[ExecutionRecord, ...]:
        # Built from a tuple of records (by hand): take them from it; from a store: none read.
        if self.records.is_tuple:
            done = ExecutionStatus.COMPLETED
            failed = (r for r in self.records if r.status is not done)
            return tuple(r for _, r in zip(range(SHOWN_FAILURES), failed, strict=False))
        return ()

    @property
    def not_completed(self) -> int:
        """How many records are not ``COMPLETED`` (``failures`` shows the first of them)."""
        return sum(n for s, n in self.counts.items() if s is not ExecutionStatus.COMPLETED)

    def __getitem__(self, key: ExecutionKey) -> ExecutionRecord:
        """The record of ``key``, read from the store (``result.records[key]``).

        Raises:
            KeyError: The key has no record.
        """
        return self.records[key]

    async def record(self, key: ExecutionKey) -> ExecutionRecord | None:
        """The record of ``key`` read asynchronously, or ``None`` if it has none."""
        return await self.records.get(key)

    @property
    def duration(self) -> float:
        """Seconds from start to verdict."""
        return self.finished_at - self.started_at

    def __repr__(self) -> str:
        """The verdict and the counts, never the records (a job may have 500,000 of them)."""
        counts = ", ".join(f"{s.value}={n}" for s, n in self.counts.items() if n)
        cancelled = f", cancelled_by={self.cancelled_by!r}" if self.cancelled_by else ""
        return (
            f"JobResult(job_id={self.job_id!r}, status={self.status.value}, "
            f"planned={self.planned}, success_rate={self.success_rate:.3f}, "
            f"counts=({counts}), records={len(self.records)}{cancelled})"
        )

    def _repr_html_(self) -> str:
        """Jupyter's view: the verdict, the counts and a compact question x model x region matrix.

        The matrix shows each execution's status and label (see the notebook guide); a job with
        many question x model rows shows the first ones and says how many more there are.
        """
        from .analysis._result_html import result_html

        return result_html(self)

    @property
    def ok(self) -> bool:
        """Whether the verdict is ``COMPLETED``."""
        return self.status is JobStatus.COMPLETED
