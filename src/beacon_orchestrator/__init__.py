"""beacon_orchestrator: run cross-region LLM probe jobs, safely.

A job is a battery of questions asked of a set of models in each region they are served from;
every cell of that cube is one execution sent through a pluggable :class:`Executor`, scheduled by
the :class:`RegionQueue` under bounded concurrency, with cancellation that stops all new work, a
min-success-rate verdict, and durable, resumable storage.
"""

from ._errors import (
    BeaconError,
    ExecutionError,
    JobConflictError,
    PermanentError,
    PreflightError,
    SpecError,
    SpecProblem,
    StoreError,
    TransientError,
    UsageError,
)
from ._events import (
    CancelSource,
    Counter,
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
from ._executor import ExecutionRequest, Executor, FunctionExecutor, Response, SupportsPreflight
from ._retry import RetryPolicy
from ._scheduler import (
    JobHandle,
    RegionQueue,
    RunOptions,
    Strategy,
    run_job,
    run_job_sync,
    start_job,
)
from ._spec import (
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
from .stores import (
    JobInfo,
    MemoryStore,
    SQLiteStore,
    Store,
    StoredProgress,
    export_csv,
    export_jsonl,
    load_jsonl,
    records_to_rows,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "BeaconError",
    "CancelSource",
    "Counter",
    "Endpoint",
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
    "JobCancelled",
    "JobConflictError",
    "JobFinished",
    "JobHandle",
    "JobInfo",
    "JobResult",
    "JobSpec",
    "JobStarted",
    "JobStatus",
    "Limits",
    "MemoryStore",
    "MinSuccessRate",
    "ModelTarget",
    "PermanentError",
    "PreflightError",
    "Progress",
    "Question",
    "QuestionFinished",
    "QuestionStarted",
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
    "Tally",
    "TransientError",
    "UsageError",
    "Verdict",
    "__version__",
    "export_csv",
    "export_jsonl",
    "load_jobspec",
    "load_jsonl",
    "normalize_region",
    "records_to_rows",
    "run_job",
    "run_job_sync",
    "start_job",
]
