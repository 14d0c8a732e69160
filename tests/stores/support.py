"""Helpers shared by the store tests: small specs, records and byte-level file snapshots."""

from __future__ import annotations

import os
from pathlib import Path

from beacon_orchestrator import (
    ExecutionKey,
    ExecutionRecord,
    ExecutionStatus,
    JobSpec,
    ModelTarget,
    Question,
)

REGIONS = ("us-east", "eu-west", "asia-pacific")


def make_spec(
    job_id: str = "job", questions: int = 3, models: int = 2, *, temperature: float = 0.1
) -> JobSpec:
    """A job of ``questions`` x ``models`` x 3 regions."""
    qs: tuple[Question, ...] = tuple(Question(f"q{i}", f"prompt {i}?") for i in range(questions))
    ms: tuple[ModelTarget, ...] = tuple(ModelTarget(f"m{i}", REGIONS) for i in range(models))
    return JobSpec(id=job_id, questions=qs, models=ms, params={"temperature": temperature})


def record(
    key: ExecutionKey,
    status: ExecutionStatus = ExecutionStatus.COMPLETED,
    *,
    text: str | None = "answer",
    attempts: int = 1,
) -> ExecutionRecord:
    """A record with plausible fields for its status."""
    completed = status is ExecutionStatus.COMPLETED
    return ExecutionRecord(
        key=key,
        status=status,
        text=text if completed else None,
        empty=completed and not (text or "").strip(),
        error_code=None if completed else "HTTP_503",
        error_message=None if completed else "service unavailable",
        attempts=attempts,
        started_at=1_700_000_000.25,
        finished_at=1_700_000_001.5,
        provider="modal",
        metadata={"inference_time": 1.25, "tokens": [3, 4]},
        receipt={"id": "r-1"} if completed else None,
    )


def snapshot(path: Path) -> tuple[bytes, int, list[str]]:
    """A file's bytes, its mtime in ns, and the names in its directory (to spot side files)."""
    return path.read_bytes(), os.stat(path).st_mtime_ns, sorted(os.listdir(path.parent))
