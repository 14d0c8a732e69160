"""Stores: where jobs and their execution records live.

``MemoryStore`` keeps everything in the process; ``SQLiteStore`` is the durable default.
Write your own by implementing :class:`Store` and running
``beacon_orchestrator.testing`` 's conformance suite on it.
"""

from ._export import ROW_FIELDS, export_csv, export_jsonl, load_jsonl, records_to_rows
from ._protocol import JobInfo, Store, StoredProgress, should_replace
from .memory import MemoryStore
from .sqlite import SQLiteStore

__all__ = [
    "ROW_FIELDS",
    "JobInfo",
    "MemoryStore",
    "SQLiteStore",
    "Store",
    "StoredProgress",
    "export_csv",
    "export_jsonl",
    "load_jsonl",
    "records_to_rows",
    "should_replace",
]
