"""Counting a stored job from its keys (``Store.keys``), never from every record."""

from __future__ import annotations

from collections import Counter

from .._types import Endpoint, ExecutionKey, ExecutionStatus
from ..stores import EndpointKeys, Store

__all__ = ["Cells", "costs", "endpoint_counts", "tally_keys"]


async def endpoint_counts(
    store: Store, job_id: str
) -> tuple[dict[Endpoint, Counter[str]], dict[Endpoint, float]]:
    """Per endpoint, a job's records by status value (``empty`` apart) and what they cost.

    Read via ``keys``; an endpoint none of whose records has a cost is not in the costs.
    """
    found = [e async for e in store.keys(job_id)]
    counted, _, _ = tally_keys(found, frozenset())
    return counted, costs(found)


def costs(found: list[EndpointKeys]) -> dict[Endpoint, float]:
    """What each endpoint's records cost (endpoints without a cost left out)."""
    return {Endpoint(e.model_id, e.region): e.cost for e in found if e.cost is not None}


Cells = tuple[dict[Endpoint, Counter[str]], dict[ExecutionKey, ExecutionStatus], list[ExecutionKey]]


def tally_keys(found: list[EndpointKeys], shown: frozenset[str]) -> Cells:
    """Counts per endpoint, and the cells (and empty ones) of the questions ``shown``.

    A cell of several samples has a key per sample: each is counted and drawn as its own.
    """
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
        for qid, sample, status, flag in zip(
            e.question_ids, e.samples, e.statuses, e.empty, strict=True
        ):
            if qid in shown:
                key = ExecutionKey(qid, e.model_id, e.region, sample)
                cells[key] = status
                if flag:
                    empties.append(key)
    return counted, cells, empties
