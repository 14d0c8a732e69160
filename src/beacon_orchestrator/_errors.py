"""The exceptions beacon_orchestrator raises, all under one root.

::

    BeaconError
    ├── SpecError (also ValueError)      an invalid job document or JobSpec; lists every problem
    ├── UsageError                       the API was called in a way it does not support
    ├── StoreError                       a store could not do what was asked
    │   ├── JobConflictError             the same job id was opened with a different spec
    │   ├── JobLockedError               another runner holds the job's lease
    │   └── LeaseLostError               this run's lease passed to another runner
    ├── PreflightError                   a health check before the job found a region unusable
    └── ExecutionError                   one execution attempt failed (raised by executors)
        ├── TransientError               worth retrying; may carry ``retry_after``
        └── PermanentError               retrying will not help

Executors raise ``TransientError`` or ``PermanentError``; any other exception an executor
raises is recorded as a permanent failure of that one execution and never ends the job.
"""

from __future__ import annotations

import datetime as _dt
import reprlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

from attrs import frozen

if TYPE_CHECKING:
    from .stores import Lease

__all__ = [
    "WRONG_REGION",
    "BeaconError",
    "ExecutionError",
    "JobConflictError",
    "JobLockedError",
    "LeaseLostError",
    "PermanentError",
    "PreflightError",
    "SpecError",
    "SpecProblem",
    "StoreError",
    "TransientError",
    "UsageError",
    "WrongRegionError",
    "short_repr",
]

_NO_VALUE: Any = object()
_LISTED: Final = 50


class BeaconError(Exception):
    """Root of every exception this library raises on purpose."""


@frozen
class SpecProblem:
    """One thing wrong with a job document.

    Attributes:
        path: Where the problem is, e.g. ``models[1].regions[0]`` (``""`` for the document).
        message: What is wrong and what was expected, in one sentence.
        value: The offending value, when there is one (shown with ``repr``).
    """

    path: str
    message: str
    value: Any = _NO_VALUE

    @property
    def has_value(self) -> bool:
        """Whether the problem names an offending value."""
        return self.value is not _NO_VALUE

    def __str__(self) -> str:
        where = self.path or "<document>"
        if self.has_value:
            return f"{where}: {self.message} (got {short_repr(self.value)})"
        return f"{where}: {self.message}"


class _BoundedRepr(reprlib.Repr):
    """``reprlib`` limits, and an integer too long for ``repr`` described by its size."""

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > _HUGE_INT_BITS:
            # repr() refuses integers over 4300 digits, and a long one says nothing anyway.
            return f"<an integer of about {int(x.bit_length() * _LOG10_2) + 1} digits>"
        return super().repr_int(x, level)


_HUGE_INT_BITS: Final = 200
_LOG10_2: Final = 0.30103


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)``, at most ``limit`` characters long, at a cost that does not grow with it.

    A long string shows its start and its length (``'xxxx...' (10000000 characters)``), so
    an error about a 10 MB value is still one short line; containers show their first items.
    """
    if isinstance(value, str | bytes) and len(value) > limit:
        head = repr(value[: limit // 2])
        unit = "characters" if isinstance(value, str) else "bytes"
        return f"{head[:-1]}...{head[-1]} ({len(value)} {unit})"
    bounded = _BoundedRepr()
    bounded.maxlevel, bounded.maxstring, bounded.maxother = 3, limit // 2, limit // 2
    bounded.maxlong = limit
    try:
        text = bounded.repr(value)
    except Exception:  # a value built in code may have a repr that fails
        text = f"<{type(value).__name__} object>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


class SpecError(BeaconError, ValueError):
    """A job document, a :class:`JobSpec` or a value given to the library is invalid.

    Every problem found is listed, not only the first, so a user can fix a document in one go.

    Args:
        problems: The problems found.
        source: The file the document came from, if any.
        subject: What is invalid, as the message names it: ``"job spec"``, or a class such as
            ``"RetryPolicy"`` for a value built in code.

    Attributes:
        problems: Each problem with its path, offending value and expectation.
        source: The file the document came from, or ``None``.
    """

    def __init__(
        self,
        problems: Iterable[SpecProblem],
        *,
        source: str | None = None,
        subject: str = "job spec",
    ) -> None:
        self.problems: tuple[SpecProblem, ...] = tuple(problems)
        self.source = source
        head = f"invalid {subject}{f' in {source}' if source else ''}"
        count = len(self.problems)
        # The message stays readable (and its size bounded) however many problems there are;
        # ``problems`` keeps them all.
        lines = [f"  - {p}" for p in self.problems[:_LISTED]]
        if count > _LISTED:
            lines.append(f"  ... and {count - _LISTED} more (SpecError.problems lists them all)")
        text = "\n".join(lines)
        super().__init__(f"{head}: {count} problem{'s' if count != 1 else ''}\n{text}")

    @classmethod
    def for_field(cls, owner: str, field: str, message: str, value: Any) -> SpecError:
        """The error for one bad field of a value built in code.

        ``SpecError.for_field("RetryPolicy", "attempts", "expected a positive integer", 0)``
        reads ``invalid RetryPolicy: 1 problem`` then ``attempts: expected a positive integer
        (got 0)``.
        """
        return cls([SpecProblem(field, message, value)], subject=owner)


class UsageError(BeaconError):
    """The library was used in a way it does not support (wrong call, wrong context)."""


class StoreError(BeaconError):
    """A store could not open, read or write what was asked."""


class JobConflictError(StoreError):
    """A job id was opened again with a spec that differs from the stored one."""


def _when(seconds: float) -> str:
    try:
        stamp = _dt.datetime.fromtimestamp(seconds, _dt.UTC)
    except (OverflowError, OSError, ValueError):
        return f"{seconds:g}"
    return stamp.strftime("%Y-%m-%d %H:%M:%S UTC")


def _who(lease: Lease) -> str:
    # repr() of the host: a store file may come from anywhere, and the message is one line.
    holder = lease.holder
    return f"host {holder.host!r}, pid {holder.pid}, since {_when(lease.since)}"


class JobLockedError(StoreError):
    """Another runner holds the job's lease: the job is running elsewhere.

    Raised before anything runs. A runner that died is taken over instead (its process gone on
    this host, or its heartbeat older than the lease's time to live), so a crash never blocks
    a resume.

    Args:
        lease: The lease that holds the job.
        now: The store's clock, to say how long ago the holder was last heard of.

    Attributes:
        lease: The holding lease: its holder's host and pid, since when, last heartbeat.
    """

    def __init__(self, lease: Lease, *, now: float | None = None) -> None:
        self.lease = lease
        ago = "" if now is None else f", last heartbeat {max(0.0, now - lease.heartbeat):.0f} s ago"
        super().__init__(
            f"job {lease.job_id!r} is already running: its lease is held by {_who(lease)}"
            f"{ago}; wait for that run to end or stop it (a run that died is taken over)"
        )


class LeaseLostError(StoreError):
    """This run's lease was released or passed to another runner, which now owns the job.

    The run stops starting work at once and stores nothing more: the new holder accounts for
    the job.

    Args:
        lease: The lease this run held.
        current: The job's lease now, or ``None`` if nobody holds it.

    Attributes:
        lease: The lease this run held.
        current: The job's lease now, or ``None``.
    """

    def __init__(self, lease: Lease, current: Lease | None) -> None:
        self.lease = lease
        self.current = current
        now_held = "nobody holds it now" if current is None else f"now held by {_who(current)}"
        super().__init__(f"job {lease.job_id!r}: this run lost its lease ({now_held})")


class PreflightError(BeaconError):
    """A health check before the job found a region with no healthy provider."""


class ExecutionError(BeaconError):
    """One attempt of one execution failed.

    Executors raise subclasses: :class:`TransientError` when another attempt may succeed,
    :class:`PermanentError` when it will not.

    Attributes:
        code: A short machine-readable code (``PROVIDER_UNAVAILABLE``, ``HTTP_503``, ...).
        transient: Whether another attempt may succeed.
        retry_after: Seconds the provider asked us to wait before retrying, if it said.
    """

    transient: bool = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code!r})"


class TransientError(ExecutionError):
    """A failure another attempt may fix: overload, timeout, 429, 5xx, dropped connection."""

    transient = True


class PermanentError(ExecutionError):
    """A failure retrying will not fix: bad request, unknown model, malformed answer."""

    transient = False


WRONG_REGION = "WRONG_REGION"
"""The error code of an answer served by another region than the one asked."""


class WrongRegionError(PermanentError):
    """An answer came from another region than the one the execution asked for.

    Permanent: the execution is recorded ``FAILED`` with ``error_code="WRONG_REGION"``, never
    ``COMPLETED``, and its record keeps the region that served it.

    Attributes:
        requested: The region the execution asked for.
        served: The region the provider says served it.
        system_prompt: The system prompt that was sent, if the executor said (kept in the
            record, as for an answer from the right region).
        request_sha256: The hash of the request that was sent, likewise.
    """

    def __init__(
        self,
        requested: str,
        served: str,
        *,
        system_prompt: str | None = None,
        request_sha256: str | None = None,
    ) -> None:
        super().__init__(
            f"asked region {requested!r}, but the answer was served by {served!r}",
            code=WRONG_REGION,
        )
        self.requested = requested
        self.served = served
        self.system_prompt = system_prompt
        self.request_sha256 = request_sha256
