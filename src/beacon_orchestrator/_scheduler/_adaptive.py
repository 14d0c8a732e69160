"""Adaptive concurrency: each endpoint's limit found by additive increase, multiplicative decrease.

Plain synchronous code: the attempt loop reports each attempt's outcome and the controller
answers with the endpoint's new limit, which the picker then applies. It never goes below 1 nor
above the ceiling (``Limits.per_endpoint``). Until the first overload signal the limit grows by
one per healthy answer that came back while the limit was in use (a doubling per round trip,
TCP's slow start); afterwards by ``increase`` per round trip, and ``patience`` times slower
as it comes back to the limit where the last overload happened (so an endpoint of two slots is
not probed for a third every other answer). An overload signal (429, 503, a queue overflow, a
``Retry-After``, an answer far slower than the endpoint's recent median, an answer that waited
in the endpoint's queue well beyond the inference seconds it reports) multiplies it by
``decrease``, at most once per round trip: the other attempts that were already under way when
the limit came down report the same overload, not a new one.
"""

from __future__ import annotations

import statistics
from collections import deque
from typing import Final

from attrs import field, frozen

from .._checks import POSITIVE_INT, Rule, is_number
from .._errors import ExecutionError

__all__ = ["OVERLOAD_CODES", "AdaptiveConcurrency", "AimdLimit", "is_overload"]

OVERLOAD_CODES: Final = frozenset(
    {
        "HTTP_429",
        "HTTP_503",
        "PROVIDER_HTTP_429",
        "PROVIDER_HTTP_503",
        "RATE_LIMITED",
        "QUEUE_FULL",
        "MODAL_QUEUE_FULL",
        "OVERLOADED",
    }
)
"""Error codes that say the endpoint had no room for the request (besides any ``retry_after``)."""


def is_overload(error: BaseException) -> bool:
    """Whether ``error`` says the endpoint is over its capacity (rather than broken)."""
    if not isinstance(error, ExecutionError):
        return False
    return error.retry_after is not None or (error.code or "") in OVERLOAD_CODES


_POSITIVE = Rule(lambda v: is_number(v) and v > 0, "expected a positive number", ceiling=1e6)
_FRACTION = Rule(
    lambda v: is_number(v) and 0 < v < 1, "expected a number between 0 and 1, both excluded"
)
_PATIENCE = Rule(lambda v: is_number(v) and v >= 1, "expected a number >= 1", ceiling=1e6)
_FACTOR = Rule(lambda v: is_number(v) and v > 1, "expected a number > 1", ceiling=1e6)


@frozen(kw_only=True)
class AdaptiveConcurrency:
    """How each endpoint's concurrency limit adapts (pass as ``RunOptions(adaptive=...)``).

    The ceiling is ``Limits.per_endpoint``: with adaptive concurrency on, set it to the most an
    endpoint could ever take, and each endpoint's limit moves between 1 and it.

    Attributes:
        initial: The limit each endpoint starts at (capped at the ceiling).
        increase: Added to the limit per round trip of healthy answers after the first overload
            signal (before it, the limit doubles per round trip).
        decrease: The limit is multiplied by this on an overload signal (0 < decrease < 1).
        latency_factor: An answer slower than this many times the endpoint's recent median
            is an overload signal (the endpoint queues requests it cannot serve).
        window: How many recent answers the median is taken over.
        min_samples: Answers needed before slowness counts as a signal.
        patience: How many times slower the limit grows back to where the last overload
            happened than elsewhere.
        queue_tolerance: An answer whose provider reports its inference seconds, and that
            took longer than them by more than this fraction of them (and a second), waited
            in the endpoint's queue: an overload signal. An endpoint that queues rather than
            refuses is found this way before its requests time out.

    Raises:
        SpecError: For a value out of range; the message names the field.
    """

    initial: int = field(default=1, validator=POSITIVE_INT.validator())
    increase: float = field(default=1.0, validator=_POSITIVE.validator())
    decrease: float = field(default=0.7, validator=_FRACTION.validator())
    latency_factor: float = field(default=3.0, validator=_FACTOR.validator())
    window: int = field(default=20, validator=POSITIVE_INT.validator())
    min_samples: int = field(default=5, validator=POSITIVE_INT.validator())
    patience: float = field(default=10.0, validator=_PATIENCE.validator())
    queue_tolerance: float = field(default=0.5, validator=_POSITIVE.validator())


class AimdLimit:
    """One endpoint's adaptive limit (synchronous; the runner keeps one per endpoint).

    Args:
        policy: How the limit adapts.
        ceiling: The most it may reach (``Limits.per_endpoint``).
    """

    __slots__ = (
        "_limit",
        "ceiling",
        "decreased_at",
        "latencies",
        "plateau",
        "policy",
        "slow_start",
    )

    def __init__(self, policy: AdaptiveConcurrency, ceiling: int) -> None:
        self.policy = policy
        self.ceiling = ceiling
        self._limit = float(min(policy.initial, ceiling))
        self.slow_start = True
        self.decreased_at = float("-inf")
        self.plateau: int | None = None  # the limit at the last overload, until passed
        self.latencies: deque[float] = deque(maxlen=policy.window)

    @property
    def limit(self) -> int:
        """The number of executions the endpoint may have in flight now."""
        return max(1, min(self.ceiling, int(self._limit)))

    def answered(
        self, started: float, ended: float, in_flight: int, served: float | None = None
    ) -> bool:
        """An attempt that started at ``started`` answered at ``ended``; whether the limit changed.

        Args:
            started: When the attempt started.
            ended: When it answered.
            in_flight: Executions of the endpoint in flight when it answered (itself included);
                the limit only grows while it is in use.
            served: The inference seconds the provider reported, if it did.
        """
        latency = ended - started
        p = self.policy
        lat = self.latencies
        if served is not None and latency - served > max(1.0, p.queue_tolerance * served):
            return self.overloaded(started, ended)  # it waited in the endpoint's queue
        if len(lat) >= p.min_samples and latency > p.latency_factor * statistics.median(lat):
            # Not added to the window: a queue's latencies would become the new normal.
            return self.overloaded(started, ended)
        lat.append(latency)
        before = self.limit
        if in_flight < before:
            return False  # the limit was not what held the endpoint back
        if self.slow_start:
            self._limit += 1.0
        else:
            step = p.increase / max(self._limit, 1.0)
            plateau = self.plateau
            if plateau is not None:
                if before > plateau:
                    self.plateau = None  # it grew past the old overload: the endpoint did too
                elif before + 1 >= plateau:
                    step /= p.patience  # the next step up is where it overloaded last
            self._limit += step
        self._limit = min(self._limit, float(self.ceiling))
        return self.limit != before

    def overloaded(self, started: float, ended: float) -> bool:
        """An attempt that started at ``started`` met an overload signal at ``ended``.

        Returns:
            Whether the limit changed. Attempts that started before the last decrease saw the
            same overload, so they do not lower it again.
        """
        self.slow_start = False
        if started < self.decreased_at:
            return False
        before = self.limit
        self.plateau = before
        self._limit = max(1.0, self._limit * self.policy.decrease)
        self.decreased_at = ended
        return self.limit != before
