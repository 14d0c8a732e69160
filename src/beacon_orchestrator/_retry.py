"""RetryPolicy: how often and how long to wait before retrying a transient failure.

The backoff arithmetic is tenacity's (``wait_exponential`` plus ``wait_random``); the loop
that applies it is the scheduler's, because only the scheduler can guarantee that no retry
starts after the job was cancelled, and that no wait outlasts the job's deadline.
"""

from __future__ import annotations

import math

from attrs import field, frozen
from tenacity import RetryCallState, wait_exponential, wait_random

from ._checks import NON_NEGATIVE_INT, NON_NEGATIVE_SECONDS, POSITIVE_INT, is_number
from ._errors import ExecutionError

__all__ = ["RetryPolicy"]


@frozen(kw_only=True)
class RetryPolicy:
    """Exponential backoff with jitter, capped, honouring the provider's ``retry_after``.

    Only :class:`~beacon_orchestrator.TransientError` failures and attempt timeouts are retried.
    Every wait is bounded: the backoff by ``wait_max``, a provider's ``Retry-After`` by
    ``retry_after_max``, each plus at most ``wait_jitter``; and the scheduler never starts a
    wait that would end after the job's deadline (the execution ends at once with its last
    failure instead).

    Args:
        attempts: Attempts per execution, the first included (1 disables retries).
        wait_initial: Seconds before the first retry.
        wait_max: Cap of the exponential part of the wait.
        wait_jitter: Up to this many seconds are added at random to each wait, the
            provider-asked ones included, so that executions throttled together do not all
            come back at the same instant.
        retry_after_max: Cap of a wait a provider asks for (``Retry-After``), in seconds
            (default 300: five minutes). A provider asking for longer is waited on for this
            long, then retried; one ``Retry-After: 1e9`` cannot park a job for decades.
        budget: Retries allowed across the whole job (``None``: unlimited; 0: none). When a
            provider is down, a budget stops a large job from multiplying its cost.

    Raises:
        SpecError: For a value out of range, such as ``attempts=0``, a negative or non-finite
            wait, or a negative budget; the message names the field.
    """

    attempts: int = field(default=3, validator=POSITIVE_INT.validator())
    wait_initial: float = field(default=1.0, validator=NON_NEGATIVE_SECONDS.validator())
    wait_max: float = field(default=60.0, validator=NON_NEGATIVE_SECONDS.validator())
    wait_jitter: float = field(default=1.0, validator=NON_NEGATIVE_SECONDS.validator())
    retry_after_max: float = field(default=300.0, validator=NON_NEGATIVE_SECONDS.validator())
    # A budget of 0 is meaningful: no retries at all across the job, however many attempts.
    budget: int | None = field(default=None, validator=NON_NEGATIVE_INT.or_none().validator())

    @classmethod
    def none(cls) -> RetryPolicy:
        """A policy that never retries."""
        return cls(attempts=1)

    def retryable(self, error: BaseException, attempt: int) -> bool:
        """Whether a failure of attempt number ``attempt`` deserves another attempt."""
        return attempt < self.attempts and isinstance(error, ExecutionError) and error.transient

    def wait(self, attempt: int, error: BaseException | None = None) -> float:
        """Seconds to wait after attempt number ``attempt`` failed with ``error``.

        The provider's ``retry_after``, capped at ``retry_after_max`` and jittered, wins when
        it asks for longer than the backoff. A ``retry_after`` that is not a number, or is
        NaN, is ignored; an infinite one is capped like any other.
        """
        # Composed from tenacity's long-stable primitives: the exponential part is capped at
        # wait_max, and the jitter comes on top so that retries of many keys spread out.
        jitter = wait_random(0, self.wait_jitter)
        strategy = wait_exponential(multiplier=self.wait_initial, max=self.wait_max) + jitter
        state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        state.attempt_number = attempt
        backoff = float(strategy(state))
        asked = getattr(error, "retry_after", None)
        if not is_number(asked) and not (isinstance(asked, float) and asked == math.inf):
            return backoff
        provider = min(float(asked), self.retry_after_max) + float(jitter(state))
        return max(backoff, provider)
