"""A job's spec as the durable stores keep it: read back leniently, compared, told apart."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._errors import JobConflictError

if TYPE_CHECKING:
    from .._spec import JobSpec

__all__ = ["same_spec", "spec_conflict", "spec_from_json"]


def spec_from_json(stored_json: str) -> JobSpec:
    """A stored spec, read leniently (its region names are not checked against the table).

    It was checked when it was stored, and one stored by an earlier release may use regions
    that release never declared.
    """
    # Imported here: a command that only reads a store (status, export) never loads specs.
    from .._spec import JobSpec, RegionTable

    lenient = RegionTable.default(strict=False)
    return JobSpec.from_dict(json.loads(stored_json), regions=lenient)


def same_spec(stored_json: str, spec: JobSpec) -> bool:
    """Whether the stored JSON is ``spec``, though its bytes may differ (another release's)."""
    try:
        return spec_from_json(stored_json) == spec
    except Exception:  # an unreadable stored spec is simply not this one
        return False


def spec_conflict(spec: JobSpec, stored: Mapping[str, Any], where: str) -> JobConflictError:
    """The error for a job id stored in ``where`` with another spec, naming the fields."""
    mine = spec.to_dict()
    fields = sorted(k for k in set(mine) | set(stored) if mine.get(k) != stored.get(k))
    differs = f" (differs in: {', '.join(fields)})" if fields else ""
    return JobConflictError(
        f"job {spec.id!r} is already stored in {where} with a different spec"
        f"{differs}; use a new job id or the stored spec"
    )
