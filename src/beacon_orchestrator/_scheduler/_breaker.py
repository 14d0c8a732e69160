"""The circuit breaker: stop sending to an endpoint that keeps failing the same way.

Plain synchronous code: a state machine per endpoint, driven by the attempts' outcomes and the
clock's readings that the caller passes in. ``closed``: requests go; a run of ``failures``
consecutive failed attempts with the same error code opens it, and so does (when set) a
failure rate of at least ``rate`` over the last ``window`` attempts. ``open``: nothing is sent until
the cool-down has passed; then ``half_open``: one request (the probe) is sent. The probe's
success closes the breaker; its failure opens it again, and after ``probes`` failed probes in a
row the endpoint is ``down`` for the rest of the run: its remaining executions end ``FAILED``
with ``ENDPOINT_DOWN``, without a request.

Overload signals (429, 503, a ``Retry-After``) do not count: a full endpoint is not a broken
one, and adaptive concurrency and the retry policy's waits deal with it.
"""

from __future__ import annotations

import enum
from collections import deque
from typing import Final

from attrs import field, frozen

from .._checks import POSITIVE_INT, POSITIVE_SECONDS, Rule, is_number

__all__ = ["ENDPOINT_DOWN", "BreakerState", "CircuitBreaker", "EndpointBreaker"]

_RATE: Final = Rule(lambda v: is_number(v) and 0 < v <= 1, "expected a number above 0, at most 1")

ENDPOINT_DOWN: Final = "ENDPOINT_DOWN"
"""The error code of an execution not sent because its endpoint's breaker gave up."""


@frozen(kw_only=True)
class CircuitBreaker:
    """When to stop sending to a failing endpoint (pass as ``RunOptions(breaker=...)``).

    Attributes:
        failures: Consecutive failed attempts with the same error code that open the breaker.
        cool_down: Seconds the breaker stays open before one probe request is sent.
        probes: Failed probes in a row after which the endpoint counts as down for the rest
            of the run (at most ``failures + probes`` requests, plus those already in flight
            when it opened, reach an endpoint that fails everything).
        rate: Also open it when at least this fraction of the last ``window`` attempts
            failed, whatever their codes (``None``: only runs of the same failure count). For
            an endpoint that fails often but not always, or in several ways.
        window: The attempts ``rate`` is measured over (it only counts once that many ended).

    Raises:
        SpecError: For a value out of range; the message names the field.
    """

    failures: int = field(default=5, validator=POSITIVE_INT.validator())
    cool_down: float = field(default=30.0, validator=POSITIVE_SECONDS.validator())
    probes: int = field(default=3, validator=POSITIVE_INT.validator())
    rate: float | None = field(default=None, validator=_RATE.or_none().validator())
    window: int = field(default=20, validator=POSITIVE_INT.validator())


class BreakerState(enum.StrEnum):
    """Where an endpoint's breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    DOWN = "down"


CLOSED = BreakerState.CLOSED
OPEN = BreakerState.OPEN
HALF_OPEN = BreakerState.HALF_OPEN
DOWN = BreakerState.DOWN


class EndpointBreaker:
    """One endpoint's breaker (the runner keeps one per endpoint).

    Args:
        policy: When it opens, for how long, and when it gives up.
    """

    __slots__ = (
        "code",
        "failed_probes",
        "outcomes",
        "policy",
        "probing",
        "reopens_at",
        "state",
        "streak",
    )

    def __init__(self, policy: CircuitBreaker) -> None:
        self.policy = policy
        self.state = CLOSED
        self.code: str | None = None  # the error code of the current run of failures
        self.streak = 0
        self.failed_probes = 0
        self.reopens_at = 0.0  # when an open breaker lets a probe through
        self.probing = False  # the probe was sent and has not answered
        # The last attempts' outcomes (True: failed), for the failure rate; only if it is set.
        self.outcomes: deque[bool] | None = (
            None if policy.rate is None else deque(maxlen=policy.window)
        )

    def may_send(self, now: float) -> bool:
        """Whether a request may go to the endpoint now; a yes in ``half_open`` is the probe.

        An open breaker whose cool-down has passed turns ``half_open`` here.
        """
        if self.state is CLOSED:
            return True
        self.cooled(now)
        if self.state is HALF_OPEN and not self.probing:
            self.probing = True
            return True
        return False

    def cooled(self, now: float) -> bool:
        """Turn ``half_open`` if open and the cool-down has passed at ``now``; whether it did."""
        if self.state is OPEN and now >= self.reopens_at:
            self.state = HALF_OPEN
            return True
        return False

    def succeeded(self) -> bool:
        """An attempt answered; whether the state changed (a probe's success closes it)."""
        if self.outcomes is not None:
            self.outcomes.append(False)
        self.streak = 0
        self.code = None
        if self.state is HALF_OPEN and self.probing:
            self.state = CLOSED
            self.probing = False
            self.failed_probes = 0
            return True
        return False

    def failed(self, code: str | None, now: float) -> bool:
        """An attempt failed with ``code`` at ``now``; whether the state changed."""
        state = self.state
        if state is HALF_OPEN and self.probing:
            self.probing = False
            self.failed_probes += 1
            if self.failed_probes >= self.policy.probes:
                self.state = DOWN
            else:
                self._open(now)
            return True
        if state is not CLOSED:
            return False  # an attempt sent before it opened: the breaker knows already
        if code == self.code:
            self.streak += 1
        else:
            self.code, self.streak = code, 1
        if self.streak >= self.policy.failures or self._rate_reached():
            self._open(now)
            return True
        return False

    def _rate_reached(self) -> bool:
        outcomes = self.outcomes
        if outcomes is None:
            return False
        outcomes.append(True)
        rate = self.policy.rate
        assert rate is not None
        return len(outcomes) == outcomes.maxlen and sum(outcomes) >= rate * len(outcomes)

    def _open(self, now: float) -> None:
        self.state = OPEN
        self.streak = 0
        if self.outcomes is not None:
            self.outcomes.clear()  # after a probe's success, the rate starts afresh
        self.reopens_at = now + self.policy.cool_down
