"""Leases: which runner holds a job, and the rules every store applies to grant one.

A run of a job holds the job's lease from before it reads the records of earlier runs until
after it stores the verdict. A store grants the lease to one holder at a time; a second runner
is refused with :class:`~beacon_orchestrator.JobLockedError` naming the holder, unless the
holder is dead: its process is gone (checked when it runs on this host) or its heartbeat is
older than the lease's time to live. A store only keeps leases; the rules are the functions
here, so every store applies the same ones.
"""

from __future__ import annotations

import math
import os
import socket
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from attrs import evolve, field, frozen

from .._errors import JobLockedError, LeaseLostError, SpecError

__all__ = [
    "Holder",
    "Lease",
    "grant_lease",
    "holder_alive",
    "is_current_lease",
    "renewed_lease",
]


def _nonempty_str(owner: str) -> Callable[[Any, Any, Any], None]:
    def check(_: object, attribute: Any, value: object) -> None:
        if not isinstance(value, str) or not value:
            raise SpecError.for_field(owner, attribute.name, "expected a non-empty string", value)

    return check


def _positive_int(owner: str) -> Callable[[Any, Any, Any], None]:
    def check(_: object, attribute: Any, value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise SpecError.for_field(owner, attribute.name, "expected a positive integer", value)

    return check


def _finite(_: object, attribute: Any, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SpecError.for_field("Lease", attribute.name, "expected a finite number", value)


def _check_ttl(owner: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise SpecError.for_field(owner, "ttl", "expected a finite number of seconds > 0", value)


def _ttl(_: object, __: object, value: Any) -> None:
    _check_ttl("Lease", value)


@frozen
class Holder:
    """A runner that may hold a job's lease: one run of a job, in one process on one host.

    Attributes:
        owner: A random id, new for every run; two runs in one process differ by it.
        pid: The process id of the runner.
        host: The host name the runner's process runs on.

    Raises:
        SpecError: For an empty ``owner`` or ``host`` or a ``pid`` that is not positive.
    """

    owner: str = field(validator=_nonempty_str("Holder"))
    pid: int = field(validator=_positive_int("Holder"))
    host: str = field(validator=_nonempty_str("Holder"))

    @classmethod
    def for_this_process(cls) -> Holder:
        """A new holder for a run in this process: a fresh random owner, this pid and host."""
        return cls(owner=uuid.uuid4().hex, pid=os.getpid(), host=socket.gethostname())


@frozen
class Lease:
    """A job's lease, as a store grants it to one holder.

    Times are seconds since the epoch, on the store's clock.

    Attributes:
        job_id: The job.
        holder: Who holds it.
        since: When this holder got it.
        heartbeat: When it was last renewed (``since`` at first).
        ttl: Seconds after the heartbeat when another runner may take it over.
        token: Grows every time the lease passes to a new holder, so a lease of an earlier
            holder never matches the current one (a fencing token).
    """

    job_id: str = field(validator=_nonempty_str("Lease"))
    holder: Holder
    since: float = field(validator=_finite)
    heartbeat: float = field(validator=_finite)
    ttl: float = field(validator=_ttl)
    token: int = field(validator=_positive_int("Lease"))

    @property
    def expires_at(self) -> float:
        """When another runner may take the lease over unless it is renewed before."""
        return self.heartbeat + self.ttl

    def expired(self, now: float) -> bool:
        """Whether the heartbeat is older than the time to live at ``now``."""
        return now > self.expires_at


def holder_alive(holder: Holder) -> bool:
    """Whether ``holder``'s process may still be running.

    ``False`` only when the holder ran on this host and its process is gone: no process has
    its pid any more, or (on Linux) it is a zombie, killed but not yet reaped by its parent.
    A holder on another host (or on a system where this cannot be checked) counts as alive,
    and only the expiry of its lease lets another runner take over.
    """
    if holder.host != socket.gethostname() or os.name == "nt":
        # On Windows os.kill(pid, 0) would terminate the process, not probe it.
        return True
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):
        return True  # exists under another user (EPERM), or a pid this system cannot check
    return not _zombie(holder.pid)


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False  # no /proc here: trust os.kill
    # "pid (command) state ...": the command may hold spaces and parentheses.
    fields = stat.rpartition(")")[2].split()
    return bool(fields) and fields[0] == "Z"


def grant_lease(
    current: Lease | None,
    job_id: str,
    holder: Holder,
    ttl: float,
    now: float,
    *,
    last_token: int = 0,
    alive: Callable[[Holder], bool] = holder_alive,
) -> Lease:
    """The lease a store grants ``holder`` when it asks at ``now``, given the ``current`` one.

    - No current lease (never held, or released): a new lease.
    - The current lease is ``holder``'s own (the same ``owner``): it is renewed, keeping its
      ``since`` and ``token``, with the new ``ttl``.
    - The current holder is dead (``alive`` says so) or its lease expired: taken over.
    - Otherwise: refused.

    A store calls this and writes the result in one atomic step (a transaction that compares
    and sets), so two runners asking at once cannot both be granted the lease.

    Args:
        current: The lease the store holds for the job, or ``None``.
        job_id: The job.
        holder: Who asks.
        ttl: Seconds the lease lasts without a renewal.
        now: The store's clock.
        last_token: The token of the last lease the job had, when ``current`` is ``None``
            because it was released (tokens keep growing).
        alive: Whether a holder's process may still be running (default :func:`holder_alive`).

    Raises:
        JobLockedError: Another live holder's lease has not expired.
        SpecError: ``ttl`` is not a finite number of seconds > 0.
    """
    _check_ttl("acquire_lease", ttl)
    if current is not None:
        if current.holder.owner == holder.owner:
            return evolve(current, holder=holder, heartbeat=now, ttl=ttl)
        if not current.expired(now) and alive(current.holder):
            raise JobLockedError(current, now=now)
        last_token = max(last_token, current.token)
    return Lease(job_id, holder, since=now, heartbeat=now, ttl=ttl, token=last_token + 1)


def is_current_lease(current: Lease | None, lease: Lease) -> bool:
    """Whether ``lease`` is still the job's lease: same holder, same token."""
    return current is not None and current.holder == lease.holder and current.token == lease.token


def renewed_lease(current: Lease | None, lease: Lease, now: float) -> Lease:
    """``lease`` with its heartbeat at ``now``, if it is still the job's lease.

    A lease that expired but was not taken over is renewed: nobody else can have run the job
    meanwhile.

    Raises:
        LeaseLostError: The lease was released or passed to another holder.
    """
    if current is None or not is_current_lease(current, lease):
        raise LeaseLostError(lease, current)
    return evolve(current, heartbeat=now)
