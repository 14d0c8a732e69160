"""The constraints of a Beacon jobspec: regions, policy and timeouts, with Beacon's defaults.

Durations are Go ``time.Duration`` nanoseconds, and 0 (Go's zero value) means "not given", as
does a missing or null field. The portal's submission may override the regions
(``target_regions``) and the policy; the policy fields it omits take the defaults of Beacon's
cross-region endpoint (``min_regions`` 3, ``min_success_rate`` 0.67).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from attrs import define, field

from .._checks import MAX_SECONDS, NON_NEGATIVE_INT, NON_NEGATIVE_NUMBER, RATE, Rule, is_int
from .._errors import SpecProblem
from .._status import MinSuccessRate
from ._documents import INVALID, Invalid, Problems, is_list, join, region_list
from ._regions import RegionTable
from ._values import Limits

__all__ = ["Constraints", "apply_wrapper", "read_constraints"]

_CONSTRAINT_FIELDS: Final = ("regions", "min_regions", "min_success_rate", "timeout")
_CONSTRAINT_FIELDS_ALL: Final = (*_CONSTRAINT_FIELDS, "provider_timeout", "max_cost")
_NS_PER_S: Final = 1_000_000_000
_JOB_TIMEOUT_S: Final = 600.0
_PROVIDER_TIMEOUT_S: Final = 300.0
_MIN_SUCCESS_RATE: Final = 0.67
_MIN_REGIONS: Final = 1
# What Beacon's cross-region endpoint uses when the portal's submission omits the field.
_WRAPPER_MIN_REGIONS: Final = 3
_BELOW_A_MILLISECOND_NS: Final = 1_000_000
_MAX_NS: Final = MAX_SECONDS * _NS_PER_S


@define
class Constraints:
    """Beacon constraints after defaults, ``0 means unset`` and the wrapper's overrides.

    Attributes:
        regions: The regions models inherit when they list none (``None``: not given).
        min_regions: The policy's ``min_regions``.
        rate: The policy's minimum success rate.
        job_timeout: Seconds the whole job may take.
        attempt_timeout: Seconds one attempt may take (Beacon's ``provider_timeout``).
        max_cost: The job's spending budget (``None``: none; Beacon's 0 means none).
        extras: Constraint fields the library does not map, kept for the metadata.
    """

    regions: list[str] | Invalid | None = None
    min_regions: int | Invalid = _MIN_REGIONS
    rate: float | Invalid = _MIN_SUCCESS_RATE
    job_timeout: float | Invalid = _JOB_TIMEOUT_S
    attempt_timeout: float | Invalid = _PROVIDER_TIMEOUT_S
    max_cost: float | Invalid | None = None
    extras: dict[str, Any] = field(factory=dict)

    def limits(self) -> Limits | Invalid:
        """The job's limits: its timeouts."""
        if isinstance(self.job_timeout, Invalid) or isinstance(self.attempt_timeout, Invalid):
            return INVALID
        if isinstance(self.max_cost, Invalid):
            return INVALID
        return Limits(
            attempt_timeout=self.attempt_timeout,
            job_timeout=self.job_timeout,
            max_cost=None if self.max_cost is None else float(self.max_cost),
        )

    def wrapper_defaults(self, wrapper: Mapping[str, Any], regions: set[str]) -> None:
        """Beacon's cross-region defaults for the policy fields a submission omits.

        ``min_regions`` 3 (or every region, for a job in fewer), ``min_success_rate`` 0.67.
        """
        if wrapper.get("min_regions") is None:
            self.min_regions = min(_WRAPPER_MIN_REGIONS, max(len(regions), 1))
        if wrapper.get("min_success_rate") is None:
            self.rate = _MIN_SUCCESS_RATE

    def policy(self) -> MinSuccessRate | Invalid:
        """The job's status policy."""
        if isinstance(self.rate, Invalid) or isinstance(self.min_regions, Invalid):
            return INVALID
        return MinSuccessRate(rate=self.rate, min_regions=self.min_regions)


def read_constraints(raw: Any, base: str, table: RegionTable, problems: Problems) -> Constraints:
    """The constraints of the jobspec at ``base`` (``raw`` is its ``constraints`` field)."""
    path = join(base, "constraints")
    result = Constraints()
    if raw is None:
        return result
    if not isinstance(raw, Mapping):
        problems.append(SpecProblem(path, "expected an object of constraints", raw))
        result.regions = INVALID
        return result
    result.extras = {
        key: copy.deepcopy(value) for key, value in raw.items() if key not in _CONSTRAINT_FIELDS_ALL
    }
    if raw.get("regions") is not None:
        where = join(path, "regions")
        result.regions = region_list(raw["regions"], where, table, problems, allow_empty=True)
    _read_policy(raw, path, result, problems)
    job = _nanoseconds(raw.get("timeout"), join(path, "timeout"), problems)
    if job is not None:
        result.job_timeout = job
    attempt = _nanoseconds(raw.get("provider_timeout"), join(path, "provider_timeout"), problems)
    if attempt is not None:
        result.attempt_timeout = attempt
    result.max_cost = _given(
        raw.get("max_cost"), join(path, "max_cost"), NON_NEGATIVE_NUMBER, problems
    )
    return result


def apply_wrapper(
    wrapper: Mapping[str, Any], constraints: Constraints, table: RegionTable, problems: Problems
) -> None:
    """Let the portal's submission override the jobspec's regions and policy."""
    target = wrapper.get("target_regions")
    if target is not None and not (is_list(target) and not target):
        constraints.regions = region_list(
            target, "target_regions", table, problems, allow_empty=True
        )
    _read_policy(wrapper, "", constraints, problems)


def _read_policy(
    source: Mapping[str, Any], path: str, into: Constraints, problems: Problems
) -> None:
    """Override the policy of ``into`` with ``min_regions`` and ``min_success_rate``, if given."""
    where = join(path, "min_regions")
    min_regions = _given(source.get("min_regions"), where, NON_NEGATIVE_INT, problems)
    if min_regions is not None:
        into.min_regions = min_regions
    rate = _given(source.get("min_success_rate"), join(path, "min_success_rate"), RATE, problems)
    if rate is not None:
        into.rate = rate if isinstance(rate, Invalid) else float(rate)


def _given(value: Any, path: str, rule: Rule, problems: Problems) -> Any:
    """``value`` if given and valid; ``None`` if unset; :data:`INVALID` after recording a problem.

    Unset is absent, null, or Go's zero value 0.
    """
    if value is None:
        return None
    problem = rule.problem(value, path)
    if problem is not None:
        problems.append(problem)
        return INVALID
    return None if value == 0 else value


def _nanoseconds(value: Any, path: str, problems: Problems) -> float | Invalid | None:
    """Seconds from Go ``time.Duration`` nanoseconds; ``None`` when unset (absent, null, 0)."""
    if value is None or (is_int(value) and value == 0):
        return None
    if not is_int(value):
        problems.append(
            SpecProblem(
                path,
                "expected a whole number of nanoseconds (600000000000 is 10 minutes)",
                value,
            )
        )
        return INVALID
    if value < 0:
        problems.append(SpecProblem(path, "expected a positive duration in nanoseconds", value))
        return INVALID
    if value < _BELOW_A_MILLISECOND_NS:
        # Almost certainly seconds written where Beacon expects nanoseconds; a sub-millisecond
        # timeout would fail every execution.
        problems.append(
            SpecProblem(
                path,
                f"{value} ns is under a millisecond; durations are in nanoseconds "
                f"({value} s would be {value * _NS_PER_S})",
                value,
            )
        )
        return INVALID
    if value > _MAX_NS:
        # Checked before dividing: 10**400 ns would overflow a float.
        problems.append(
            SpecProblem(
                path,
                f"expected at most 30 days ({_MAX_NS} ns); leave it out (or 0) for Beacon's "
                "default",
                value,
            )
        )
        return INVALID
    return value / _NS_PER_S
