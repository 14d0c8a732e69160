"""Counting a stored job from its keys (``Store.keys``), never from every record."""

from __future__ import annotations

from collections import Counter

from .._types import Endpoint, ExecutionKey, ExecutionStatus
from ..stores import EndpointKeys, Store

__all__ = ["Cells", "endpoint_counts", "tally_keys"]


async def endpoint_counts(store: Store, job_id: str) -> dict[Endpoint, Counter[str]]:
    """Per endpoint, a job's records by status value (``empty`` apart), read via ``keys``."""
    counted, _, _ = tally_keys([e async for e in store.keys(job_id)], frozenset())
    return counted


Cells = tuple[dict[Endpoint, Counter[str]], dict[ExecutionKey, ExecutionStatus], list[ExecutionKey]]


def tally_keys(found: list[EndpointKeys], shown: frozenset[str]) -> Cells:
    """Counts per endpoint, and the cells (and empty ones) of the questions ``shown``."""
    completed = ExecutionStatus.COMPLETED
    counted: dict[Endpoint, Counter[str]] = {}
    cells: dict[ExecutionKey, ExecutionStatus] = {}
    empties: list[ExecutionKey] = []
    for e in found:
        tally = counted[Endpoint(e.model_id, e.region)] = Counter(s.value for s in e.statuses)
        empty = sum(
            1 for s, flag in zip(e.statuses, e.empty, strict=True) if flag and s is completed
        )
        if empty:
            tally["empty"] += empty
            tally["completed"] -= empty
        if not shown:
            continue
        for qid, status, flag in zip(e.question_ids, e.statuses, e.empty, strict=True):
            if qid in shown:
                key = ExecutionKey(qid, e.model_id, e.region)
                cells[key] = status
                if flag:
                    empties.append(key)
    return counted, cells, empties
