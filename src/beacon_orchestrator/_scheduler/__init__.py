"""The scheduler: plan, picker, attempt loop, ledger and runner, behind the entry points.

How a job runs, module by module (see also the "Architecture" page of the documentation):

- ``_options``: :class:`RunOptions`, how one run behaves, shared by every entry point.
- ``_plan``: endpoints, regions and groups built from the spec and the keys already stored.
- ``_picker``: which execution may start next (synchronous; ready queue, parking, gates).
- ``_attempts``: one execution's attempts, retries and backoffs, to one record.
- ``_ledger``: records built and counted into progress, the tally and the verdict.
- ``_runner``: :class:`RegionQueue`: the workers, cancellation, and accounting at the end.
- ``_adaptive``, ``_breaker``, ``_budget``, ``_fleet``: each endpoint's adaptive limit and
  circuit breaker, the spending budget, and the guard that applies them to a run.
- ``_entry``: :func:`run_job`, :func:`start_job`, :func:`run_job_sync`, :class:`JobHandle`.
"""

from ._adaptive import AdaptiveConcurrency
from ._breaker import ENDPOINT_DOWN, BreakerState, CircuitBreaker
from ._entry import JobHandle, run_job, run_job_sync, start_job
from ._options import STRATEGIES, RunOptionArgs, RunOptions, Strategy
from ._runner import RegionQueue

__all__ = [
    "ENDPOINT_DOWN",
    "STRATEGIES",
    "AdaptiveConcurrency",
    "BreakerState",
    "CircuitBreaker",
    "JobHandle",
    "RegionQueue",
    "RunOptionArgs",
    "RunOptions",
    "Strategy",
    "run_job",
    "run_job_sync",
    "start_job",
]
