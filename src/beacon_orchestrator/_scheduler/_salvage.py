"""Writing the records of a job's end after the store refused a batch of them.

The end of a job writes its remaining records in batches. A store that refuses a batch may be
refusing only one of its records (metadata the table cannot hold, text that is not Unicode), so
the batch is written again one record at a time, and a record the store refuses is replaced by a
``FAILED`` record that says why: every key still gets one record. A store that refuses that
too is broken, and its error ends the job.
"""

from __future__ import annotations

from collections.abc import Sequence

from .._types import ExecutionRecord, ExecutionStatus
from ..stores import Store

__all__ = ["STORE_REFUSED", "refused_record", "salvage"]

STORE_REFUSED = "STORE_REFUSED"
"""The ``error_code`` of a record that replaces one the store could not hold."""


def refused_record(record: ExecutionRecord, error: Exception) -> ExecutionRecord:
    """A plain ``FAILED`` record in place of ``record``, which the store refused."""
    return ExecutionRecord(
        key=record.key,
        status=ExecutionStatus.FAILED,
        error_code=STORE_REFUSED,
        error_message=(
            f"the store refused this execution's {record.status.value} record: "
            f"{type(error).__name__}: {error}"
        ),
        attempts=record.attempts,
        started_at=record.started_at,
        finished_at=record.finished_at,
        provider=record.provider,
    )


async def salvage(
    store: Store, job_id: str, records: Sequence[ExecutionRecord]
) -> list[ExecutionRecord]:
    """Write ``records`` one by one; return what was stored for each, in order.

    Raises:
        Exception: Whatever the store raises for the ``FAILED`` record replacing one it refused.
    """
    stored: list[ExecutionRecord] = []
    for record in records:
        try:
            await store.write(job_id, record)
        except Exception as exc:
            await store.write(job_id, replacement := refused_record(record, exc))
            record = replacement
        stored.append(record)
    return stored
