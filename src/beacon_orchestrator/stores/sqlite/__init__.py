"""SQLiteStore: the durable, embedded default store (one SQLite file in WAL mode).

Its parts: ``_store`` (the store: a worker thread per call, jobs and records; group commit is
``stores/_group_commit``), ``_rows`` (the records table, whose columns come from the record codec),
``_jobs`` (the jobs table and progress counts), ``_transactions`` (the two kinds of
transaction) and ``_schema`` (the file format: which files are ours, the versioned schema,
creating and opening a file).
"""

from ._schema import APPLICATION_ID, SCHEMA_VERSION
from ._store import SQLiteStore, Synchronous

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "SQLiteStore", "Synchronous"]
