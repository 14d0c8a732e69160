"""beacon_orchestrator: run cross-region LLM probe jobs, safely.

A job asks a battery of questions of a set of models, in every region each model is served
from; each question x model x region cell is one execution, sent through a pluggable
:class:`Executor` and scheduled by the :class:`RegionQueue` under bounded concurrency, with
cancellation that stops all new work, a status verdict decided last, and durable, resumable
storage (:class:`SQLiteStore`).

The smallest complete job, with a fake executor standing in for a model server::

    from beacon_orchestrator import JobSpec, ModelTarget, Question, run_job_sync
    from beacon_orchestrator.testing import FakeExecutor

    spec = JobSpec(
        id="hello",
        questions=[Question("capital", "What is the capital of Australia?")],
        models=[ModelTarget("llama3.2-1b", ["us-east", "eu-west"])],
    )
    result = run_job_sync(spec, FakeExecutor.random(seed=1))
    print(result.status, result.reason)

In async code (and in a notebook) ``await run_job(spec, executor, store=...)`` instead.

Documentation, in the repository's ``README.md`` and ``docs/`` (``nox -s docs`` builds the
site): the tutorial ``docs/tutorial.md`` (your first job in five minutes); how-to guides in
``docs/how-to/`` (write an executor, test it, write a store, run against real endpoints, use it
in a notebook, cancel and resume); the reference ``docs/reference/`` (also ``help()`` on any
name here, and ``beacon --help`` for the command line).

The library logs through the ``beacon_orchestrator`` logger and its children (job start and
end, retries, cancellations, preflight results, SQLite files created or migrated); it only
attaches a ``NullHandler``, so nothing is printed until the application configures logging.
"""

import logging as _logging
from typing import TYPE_CHECKING as _TYPE_CHECKING

from ._cost import CostModel, Price
from ._errors import (
    BeaconError,
    ExecutionError,
    JobConflictError,
    JobLockedError,
    LeaseLostError,
    PermanentError,
    PreflightError,
    SpecError,
    SpecProblem,
    StoreError,
    TransientError,
    UsageError,
    WrongRegionError,
)
from ._events import (
    CancelSource,
    Counter,
    EndpointChanged,
    Event,
    EventHandler,
    ExecutionFinished,
    ExecutionStarted,
    JobCancelled,
    JobFinished,
    JobStarted,
    Progress,
    QuestionFinished,
    QuestionStarted,
)
from ._executor import (
    ExecutionRequest,
    Executor,
    FunctionExecutor,
    Response,
    SupportsPreflight,
    SupportsRegions,
    request_sha256,
)
from ._records import RecordFilter, Records
from ._retry import RetryPolicy
from ._spec import (
    BEACON_SYSTEM_PROMPT,
    JobSpec,
    Limits,
    ModelTarget,
    Question,
    RegionTable,
    load_jobspec,
    normalize_region,
)
from ._status import (
    JobResult,
    JobStatus,
    MinSuccessRate,
    RegionTally,
    StatusPolicy,
    Tally,
    Verdict,
)
from ._types import Endpoint, ExecutionKey, ExecutionRecord, ExecutionStatus
from ._usage import Usage
from .stores import (
    Holder,
    JobInfo,
    Lease,
    MemoryStore,
    SQLiteStore,
    Store,
    StoredProgress,
    export_csv,
    export_jsonl,
    load_jsonl,
    records_to_rows,
)

if _TYPE_CHECKING:
    from ._scheduler import (
        ENDPOINT_DOWN,
        AdaptiveConcurrency,
        BreakerState,
        CircuitBreaker,
        JobHandle,
        RegionQueue,
        RunOptions,
        Strategy,
        run_job,
        run_job_sync,
        start_job,
    )

# The scheduler is imported on first use of one of its names: a command that only reads a
# store (`beacon status`) does not pay for importing what runs a job.
_SCHEDULER_NAMES = frozenset(
    {
        "ENDPOINT_DOWN",
        "AdaptiveConcurrency",
        "BreakerState",
        "CircuitBreaker",
        "JobHandle",
        "RegionQueue",
        "RunOptions",
        "Strategy",
        "run_job",
        "run_job_sync",
        "start_job",
    }
)


def __getattr__(name: str) -> object:
    if name in _SCHEDULER_NAMES:
        import importlib

        value = getattr(importlib.import_module("._scheduler", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__version__ = "0.1.0.dev0"

# A library never configures logging; this only keeps Python's last-resort handler from
# printing the library's warnings when the application has configured nothing.
_logging.getLogger(__name__).addHandler(_logging.NullHandler())

__all__ = [
    "BEACON_SYSTEM_PROMPT",
    "ENDPOINT_DOWN",
    "AdaptiveConcurrency",
    "BeaconError",
    "BreakerState",
    "CancelSource",
    "CircuitBreaker",
    "CostModel",
    "Counter",
    "Endpoint",
    "EndpointChanged",
    "Event",
    "EventHandler",
    "ExecutionError",
    "ExecutionFinished",
    "ExecutionKey",
    "ExecutionRecord",
    "ExecutionRequest",
    "ExecutionStarted",
    "ExecutionStatus",
    "Executor",
    "FunctionExecutor",
    "Holder",
    "JobCancelled",
    "JobConflictError",
    "JobFinished",
    "JobHandle",
    "JobInfo",
    "JobLockedError",
    "JobResult",
    "JobSpec",
    "JobStarted",
    "JobStatus",
    "Lease",
    "LeaseLostError",
    "Limits",
    "MemoryStore",
    "MinSuccessRate",
    "ModelTarget",
    "PermanentError",
    "PreflightError",
    "Price",
    "Progress",
    "Question",
    "QuestionFinished",
    "QuestionStarted",
    "RecordFilter",
    "Records",
    "RegionQueue",
    "RegionTable",
    "RegionTally",
    "Response",
    "RetryPolicy",
    "RunOptions",
    "SQLiteStore",
    "SpecError",
    "SpecProblem",
    "StatusPolicy",
    "Store",
    "StoreError",
    "StoredProgress",
    "Strategy",
    "SupportsPreflight",
    "SupportsRegions",
    "Tally",
    "TransientError",
    "Usage",
    "UsageError",
    "Verdict",
    "WrongRegionError",
    "__version__",
    "export_csv",
    "export_jsonl",
    "load_jobspec",
    "load_jsonl",
    "normalize_region",
    "records_to_rows",
    "request_sha256",
    "run_job",
    "run_job_sync",
    "start_job",
]
