"""A job's verdict as the durable stores keep it: JSON of everything but the records."""

from __future__ import annotations

import json
from collections.abc import Sequence

from .._status import JobResult, JobStatus
from .._types import ExecutionRecord, ExecutionStatus

__all__ = ["result_from_json", "result_json"]


def result_json(result: JobResult) -> str:
    """The verdict as a store's ``result`` column holds it: everything but the records."""
    # Records live in their own table; repeating them here would double what is stored.
    return json.dumps(
        {
            "status": result.status.value,
            "reason": result.reason,
            "counts": {ExecutionStatus(s).value: n for s, n in result.counts.items()},
            "success_rate": result.success_rate,
            "planned": result.planned,
            "started_at": result.started_at,
            "finished_at": result.finished_at,
            "cancelled_by": result.cancelled_by,
        },
        separators=(",", ":"),
    )


def result_from_json(job_id: str, text: str, failures: Sequence[ExecutionRecord]) -> JobResult:
    """The verdict :func:`result_json` wrote, with its first failures.

    The result holds no other record: its ``records`` are the caller's to attach.
    """
    data = json.loads(text)
    return JobResult(
        job_id=job_id,
        status=JobStatus(data["status"]),
        reason=data["reason"],
        counts={ExecutionStatus(s): n for s, n in data["counts"].items()},
        success_rate=data["success_rate"],
        planned=data["planned"],
        failures=tuple(failures),
        started_at=data["started_at"],
        finished_at=data["finished_at"],
        cancelled_by=data["cancelled_by"],
    )
