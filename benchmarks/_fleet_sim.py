"""A simulated GPU fleet for the fleet benchmarks: endpoints whose capacity the client ignores.

Each endpoint serves ``capacity`` requests at once and queues up to ``queue`` more (in arrival
order, like a Modal app); beyond that it answers at once with an overload error (``HTTP_429``
with a ``Retry-After``, or Modal's queue overflow). Its first request pays a cold start. An
endpoint may also be broken (it answers ``HTTP_500`` to everything). Time is the event loop's,
so the simulations run on the virtual clock (:func:`beacon_orchestrator.testing.run_virtual`).
Every request is counted: sent, rejected as overload, failed, served.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping

import anyio
from attrs import define, field, frozen

from beacon_orchestrator import (
    ExecutionRequest,
    Response,
    TransientError,
    Usage,
)

__all__ = ["FleetExecutor", "SimEndpoint"]


@frozen(kw_only=True)
class SimEndpoint:
    """One simulated endpoint.

    Attributes:
        capacity: Requests it serves at once.
        service_s: Seconds one request takes, by question index (a constant or a function).
        queue: Requests it holds beyond ``capacity`` before it refuses more.
        cold_start_s: Added to the first request it serves.
        retry_after: The ``Retry-After`` of its overload errors (``None``: none).
        overload_code: The error code of an overload (``HTTP_429``, ``MODAL_QUEUE_FULL``).
        broken: Answers ``HTTP_500`` to every request (after ``broken_latency_s``).
        broken_latency_s: How long a broken endpoint takes to fail.
        tokens_out: Tokens each answer reports.
    """

    capacity: int
    service_s: float | Callable[[int], float]
    queue: int = 0
    cold_start_s: float = 0.0
    retry_after: float | None = 5.0
    overload_code: str = "HTTP_429"
    broken: bool = False
    broken_latency_s: float = 0.5
    tokens_out: int = 200


@define
class FleetExecutor:
    """An :class:`~beacon_orchestrator.Executor` over simulated endpoints, by ``model@region``.

    Args:
        endpoints: The fleet.
        question_index: Question id to index (for per-question service times).
    """

    endpoints: Mapping[str, SimEndpoint]
    question_index: Mapping[str, int]
    sent: Counter[str] = field(factory=Counter, init=False)
    rejected: Counter[str] = field(factory=Counter, init=False)
    failed: Counter[str] = field(factory=Counter, init=False)
    served: Counter[str] = field(factory=Counter, init=False)
    peak: Counter[str] = field(factory=Counter, init=False)
    _present: Counter[str] = field(factory=Counter, init=False)
    _slots: dict[str, anyio.Semaphore] = field(factory=dict, init=False)
    _warm: set[str] = field(factory=set, init=False)

    @property
    def attempts(self) -> int:
        """Requests sent to the fleet."""
        return sum(self.sent.values())

    async def execute(self, request: ExecutionRequest) -> Response:
        """Serve, queue, refuse or fail the request as its endpoint would."""
        name = f"{request.key.model_id}@{request.key.region}"
        ep = self.endpoints[name]
        self.sent[name] += 1
        if ep.broken:
            await anyio.sleep(ep.broken_latency_s)
            self.failed[name] += 1
            raise TransientError(f"HTTP 500 from {name}", code="HTTP_500")
        if self._present[name] >= ep.capacity + ep.queue:
            self.rejected[name] += 1
            raise TransientError(
                f"{name} is over capacity", code=ep.overload_code, retry_after=ep.retry_after
            )
        slots = self._slots.get(name)
        if slots is None:
            slots = self._slots[name] = anyio.Semaphore(ep.capacity)
        self._present[name] += 1
        self.peak[name] = max(self.peak[name], self._present[name])
        try:
            async with slots:
                q = self.question_index[request.key.question_id]
                seconds = ep.service_s(q) if callable(ep.service_s) else ep.service_s
                if name not in self._warm:
                    self._warm.add(name)
                    seconds += ep.cold_start_s
                await anyio.sleep(seconds)
        finally:
            self._present[name] -= 1
        self.served[name] += 1
        return Response(
            text=f"answer to {request.key.question_id}",
            provider=name,
            usage=Usage(
                tokens_in=len(request.prompt), tokens_out=ep.tokens_out, inference_seconds=seconds
            ),
        )
