"""RunOptions: how one run of a job behaves, as one frozen value.

The entry points (:func:`run_job`, :func:`start_job`, :func:`run_job_sync`), the
:class:`RegionQueue` and the command line all take the same options; they are declared once
here, and the keyword arguments of the entry points are checked against them by mypy through
:class:`RunOptionArgs`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal, TypeAlias, TypedDict, get_args

from attrs import evolve, field, frozen

from .._cost import CostModel
from .._errors import UsageError
from .._events import EventHandler
from .._retry import RetryPolicy
from .._spec import Limits
from .._status import StatusPolicy
from ._adaptive import AdaptiveConcurrency
from ._breaker import CircuitBreaker

__all__ = ["STRATEGIES", "RunOptionArgs", "RunOptions", "Strategy", "resolve_options"]

Strategy: TypeAlias = Literal["endpoint", "region", "lockstep"]
"""How questions advance: per endpoint (default), per region, or in lockstep across regions."""

STRATEGIES: tuple[Strategy, ...] = get_args(Strategy)


def _check_strategy(_: object, __: object, value: object) -> None:
    if value not in STRATEGIES:
        raise UsageError(
            f"strategy must be one of {', '.join(map(repr, STRATEGIES))}, got {value!r}"
        )


def _retry_or_default(value: RetryPolicy | None) -> RetryPolicy:
    return RetryPolicy() if value is None else value


def _adaptive(value: AdaptiveConcurrency | bool | None) -> AdaptiveConcurrency | None:
    if value is True:
        return AdaptiveConcurrency()
    if value is False or value is None or isinstance(value, AdaptiveConcurrency):
        return value or None
    raise UsageError(
        f"adaptive must be True, False, None or an AdaptiveConcurrency, got {type(value).__name__}"
    )


def _breaker(value: CircuitBreaker | bool | None) -> CircuitBreaker | None:
    if value is True:
        return CircuitBreaker()
    if value is False or value is None or isinstance(value, CircuitBreaker):
        return value or None
    raise UsageError(
        f"breaker must be True, False, None or a CircuitBreaker, got {type(value).__name__}"
    )


def _cost_model(value: CostModel | None) -> CostModel | None:
    if value is not None and not isinstance(value, CostModel):
        raise UsageError(f"cost_model must be a CostModel or None, got {type(value).__name__}")
    return value


@frozen(kw_only=True)
class RunOptions:
    """How a run of a job behaves: everything but the job, the executor and the store.

    The keyword arguments of :func:`run_job`, :func:`start_job`, :func:`run_job_sync` and
    :class:`RegionQueue` are these fields; pass a ready value as ``options=`` and override single
    fields by keyword.

    Attributes:
        strategy: ``"endpoint"`` (default), ``"region"`` or ``"lockstep"`` (see the
            "Scheduling strategies" page of the documentation).
        policy: The status policy (default: the spec's :class:`MinSuccessRate`).
        limits: Bounds on what is in flight and timeouts (default: the spec's).
        retry: Retry policy (default ``RetryPolicy()``: 3 attempts, exponential backoff).
        on_event: Called synchronously with each event, in order.
        early_stop: Stop once the policy's verdict can no longer change (saves GPU time).
        rerun_failed: On resume, run ``FAILED``/``TIMEOUT`` keys again (default) or keep them.
            ``CANCELLED``/``SKIPPED``/missing keys always run; ``COMPLETED`` ones never do.
        preflight: Ask the executor to health-check the job's regions first; raises
            :class:`PreflightError` naming an unusable region before anything starts.
        wall_clock: Source of wall time for record timestamps (default ``time.time``).
        adaptive: Adapt each endpoint's concurrency between 1 and ``Limits.per_endpoint``
            (``True`` for the default :class:`AdaptiveConcurrency`; off by default).
        breaker: Stop sending to an endpoint that keeps failing (``True`` for the default
            :class:`CircuitBreaker`; off by default).
        cost_model: Gives each execution a cost (its record's ``cost``); needed by
            ``Limits.max_cost``.
    """

    strategy: Strategy = field(default="endpoint", validator=_check_strategy)
    policy: StatusPolicy | None = None
    limits: Limits | None = None
    retry: RetryPolicy = field(default=None, converter=_retry_or_default)
    on_event: EventHandler | None = None
    early_stop: bool = False
    rerun_failed: bool = True
    preflight: bool = False
    wall_clock: Callable[[], float] = time.time
    adaptive: AdaptiveConcurrency | None = field(default=None, converter=_adaptive)
    breaker: CircuitBreaker | None = field(default=None, converter=_breaker)
    cost_model: CostModel | None = field(default=None, converter=_cost_model)


class RunOptionArgs(TypedDict, total=False):
    """The fields of :class:`RunOptions` as keyword arguments (for ``**kwargs`` typing)."""

    strategy: Strategy
    policy: StatusPolicy | None
    limits: Limits | None
    retry: RetryPolicy | None
    on_event: EventHandler | None
    early_stop: bool
    rerun_failed: bool
    preflight: bool
    wall_clock: Callable[[], float]
    adaptive: AdaptiveConcurrency | bool | None
    breaker: CircuitBreaker | bool | None
    cost_model: CostModel | None


def resolve_options(options: RunOptions | None, overrides: RunOptionArgs) -> RunOptions:
    """``options`` (or the defaults) with the fields given by keyword replaced and checked."""
    base = RunOptions() if options is None else options
    if not isinstance(base, RunOptions):
        raise UsageError(f"options must be a RunOptions, got {type(base).__name__}")
    if not overrides:
        return base
    try:
        return evolve(base, **overrides)
    except TypeError as exc:
        # An unknown keyword: name the options that exist rather than attrs' internals.
        known = ", ".join(sorted(RunOptionArgs.__annotations__))
        raise UsageError(f"{exc}; the run options are: {known}") from None
