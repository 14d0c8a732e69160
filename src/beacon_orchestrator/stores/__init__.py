"""Stores: where jobs and their execution records live.

``MemoryStore`` keeps everything in the process; ``SQLiteStore`` is the durable default.
Write your own by implementing :class:`Store` and running
``beacon_orchestrator.testing`` 's conformance suite on it.
"""

from ._protocol import JobInfo, Store, StoredProgress, should_replace
from .memory import MemoryStore

__all__ = ["JobInfo", "MemoryStore", "Store", "StoredProgress", "should_replace"]
