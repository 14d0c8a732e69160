"""Helpers for testing jobs, executors, policies and stores (public and documented).

- :class:`FakeExecutor` and :class:`Step`: scripted latencies, failures, empty answers, hangs,
  endpoints that serve one request at a time and queue the rest.
- :func:`virtual_clock` / :func:`run_virtual` / :class:`VirtualClockEventLoop`: run on virtual
  time on asyncio and on trio, so minutes of simulated work take milliseconds.
- :func:`check_invariants` / :func:`find_violations`: verify DESIGN §4 on a finished job.
- hypothesis strategies for job specs, fault scripts and cancellation plans.
"""

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
    "FakeExecutor",
    "InvariantName",
    "InvariantViolation",
    "Outcome",
    "Script",
    "Step",
    "Violation",
    "VirtualClockEventLoop",
    "check_invariants",
    "find_violations",
    "run_virtual",
    "virtual_clock",
]
