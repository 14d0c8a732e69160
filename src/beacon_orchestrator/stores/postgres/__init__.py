"""PostgresStore: the store many processes on many machines share (extra ``postgres``).

Its parts: ``_store`` (the store: pooled synchronous connections driven from anyio worker
threads; its group commit is ``stores/_group_commit``), ``_rows`` (the records table, whose
columns come from the record codec), ``_jobs`` (the jobs and leases tables, progress
counts), ``_schema`` (the versioned schema and its migrations) and ``_dsn`` (connection
strings without their passwords). psycopg is imported only when a store connects, so the
package imports without it.
"""

from ._dsn import is_postgres_dsn, redact_dsn
from ._schema import SCHEMA_VERSION
from ._store import PostgresStore

__all__ = ["SCHEMA_VERSION", "PostgresStore", "is_postgres_dsn", "redact_dsn"]
