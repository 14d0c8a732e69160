"""Stores: where jobs and their execution records live, and who runs each job.

``MemoryStore`` keeps everything in the process; ``SQLiteStore`` is the durable default;
``PostgresStore`` (extra ``postgres``) is shared by many processes on many machines.
Write your own by implementing :class:`Store` and running
``beacon_orchestrator.testing`` 's conformance suite on it; the lease rules
(:func:`grant_lease`, :func:`renewed_lease`, :func:`is_current_lease`) and the write rule
(:func:`should_replace`) are functions here, so every store applies the same ones, and so is
the check of ``iter_records``' batch size (:func:`check_batch`).
"""

from ._claims import Claim, ClaimStatus, SupportsClaims
from ._export import ROW_FIELDS, Extra, export_csv, export_jsonl, load_jsonl, records_to_rows
from ._lease import Holder, Lease, grant_lease, holder_alive, is_current_lease, renewed_lease
from ._protocol import (
    EndpointKeys,
    JobInfo,
    RecordFilter,
    Store,
    StoredProgress,
    check_batch,
    group_keys,
    should_replace,
)
from .memory import MemoryStore
from .postgres import PostgresStore
from .sqlite import SQLiteStore

__all__ = [
    "ROW_FIELDS",
    "Claim",
    "ClaimStatus",
    "EndpointKeys",
    "Extra",
    "Holder",
    "JobInfo",
    "Lease",
    "MemoryStore",
    "PostgresStore",
    "RecordFilter",
    "SQLiteStore",
    "Store",
    "StoredProgress",
    "SupportsClaims",
    "check_batch",
    "export_csv",
    "export_jsonl",
    "grant_lease",
    "group_keys",
    "holder_alive",
    "is_current_lease",
    "load_jsonl",
    "records_to_rows",
    "renewed_lease",
    "should_replace",
]
