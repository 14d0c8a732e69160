"""Helpers for testing jobs, executors, policies and stores (public and documented).

- :class:`FakeExecutor` and :class:`Step`: scripted latencies, failures, empty answers, hangs,
  endpoints that serve one request at a time and queue the rest.
- :func:`virtual_clock` / :func:`run_virtual` / :class:`VirtualClockEventLoop`: run on virtual
  time on asyncio and on trio, so minutes of simulated work take milliseconds.
- :func:`check_invariants` / :func:`find_violations`: verify the invariants (see the
  "Invariants" page of the documentation) on a finished job.
- hypothesis strategies for job specs, fault scripts and cancellation plans, and the store
  conformance suite (:func:`store_conformance_test`) every store must pass. These need
  hypothesis (the ``test`` extra); everything else here works without it.
"""

from typing import TYPE_CHECKING, Any

from ._clock import VirtualClockEventLoop, run_virtual, virtual_clock
from ._fake import Call, FakeExecutor, Outcome, Script, Step
from ._invariants import (
    INVARIANTS,
    InvariantName,
    InvariantViolation,
    Violation,
    check_invariants,
    find_violations,
)

__all__ = [
    "INVARIANTS",
    "Call",
    "CancelPlan",
    "CancelPlanSource",
    "FakeExecutor",
    "InvariantName",
    "InvariantViolation",
    "Outcome",
    "Script",
    "Snapshot",
    "Step",
    "StoreFactory",
    "StoreStateMachine",
    "Violation",
    "VirtualClockEventLoop",
    "cancel_plans",
    "check_invariants",
    "conformance_records",
    "fault_scripts",
    "find_violations",
    "job_specs",
    "retry_policies",
    "run_virtual",
    "scheduling_limits",
    "scheduling_specs",
    "steps",
    "store_conformance_test",
    "virtual_clock",
]

# Strategies import hypothesis, which a user of FakeExecutor alone need not install.
_LAZY = {
    "store_conformance_test": "._store_conformance",
    "StoreStateMachine": "._store_conformance",
    "StoreFactory": "._store_conformance",
    "conformance_records": "._store_conformance",
    "Snapshot": "._store_conformance",
    "job_specs": "._spec_strategies",
    "CancelPlan": "._strategies",
    "CancelPlanSource": "._strategies",
    "cancel_plans": "._strategies",
    "fault_scripts": "._strategies",
    "retry_policies": "._strategies",
    "scheduling_limits": "._strategies",
    "scheduling_specs": "._strategies",
    "steps": "._strategies",
}

if TYPE_CHECKING:
    from ._spec_strategies import job_specs
    from ._store_conformance import (
        Snapshot,
        StoreFactory,
        StoreStateMachine,
        conformance_records,
        store_conformance_test,
    )
    from ._strategies import (
        CancelPlan,
        CancelPlanSource,
        cancel_plans,
        fault_scripts,
        retry_policies,
        scheduling_limits,
        scheduling_specs,
        steps,
    )


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module, __name__), name)
