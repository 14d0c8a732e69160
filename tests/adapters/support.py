"""Helpers shared by the adapter tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from beacon_orchestrator import ExecutionKey, ExecutionRequest
from beacon_orchestrator.adapters import HybridRouterExecutor, ModalExecutor, OpenAICompatExecutor

AnyHttpExecutor = HybridRouterExecutor | ModalExecutor | OpenAICompatExecutor

CANARY = "canary-7f3a9c1e-SECRET-do-not-leak"


def make_request(
    prompt: str = "What is the capital of France?",
    *,
    model: str = "llama3.2-1b",
    region: str = "us-east",
    question_id: str = "q1",
    params: Mapping[str, Any] | None = None,
    deadline: float | None = None,
    attempt: int = 1,
    job_id: str = "job-1",
) -> ExecutionRequest:
    """An execution request with sensible defaults."""
    return ExecutionRequest(
        job_id=job_id,
        key=ExecutionKey(question_id, model, region),
        prompt=prompt,
        params=dict(params or {}),
        attempt=attempt,
        deadline=deadline,
    )
