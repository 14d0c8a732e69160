"""The executor extension point: what an executor receives, returns and raises."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import anyio
from attrs import field, frozen

from ._types import ExecutionKey
from ._usage import Usage

__all__ = [
    "ExecutionRequest",
    "Executor",
    "FunctionExecutor",
    "Response",
    "SupportsPreflight",
]


@frozen
class ExecutionRequest:
    """One attempt of one execution, as handed to an :class:`Executor`.

    Attributes:
        job_id: The job this execution belongs to.
        key: The cell of the job: question, model and region.
        prompt: The question's prompt text.
        params: Generation parameters from the job spec (``temperature``, ``max_tokens``, ...).
        attempt: 1 for the first attempt, 2 for the first retry, and so on.
        deadline: When this attempt will be interrupted, on the event loop's clock
            (:func:`anyio.current_time`), or ``None`` when nothing bounds it. Executors that
            poll (Modal's 303 redirects) use it to bound their polling.
    """

    job_id: str
    key: ExecutionKey
    prompt: str
    params: Mapping[str, Any]
    attempt: int = 1
    deadline: float | None = None

    @property
    def model(self) -> str:
        """The model id (``key.model_id``)."""
        return self.key.model_id

    @property
    def region(self) -> str:
        """The canonical region name (``key.region``)."""
        return self.key.region

    def time_left(self) -> float | None:
        """Seconds until :attr:`deadline` (may be negative), or ``None`` if unbounded."""
        if self.deadline is None:
            return None
        return self.deadline - anyio.current_time()


@frozen
class Response:
    """A successful answer from an executor.

    An empty ``text`` is still a success of the execution; whether it counts as a success of
    the *job* is the status policy's decision.

    Attributes:
        text: The model's answer (may be ``""``).
        provider: Which provider or endpoint answered, if known.
        metadata: Anything worth keeping (inference time, tokens, reported region).
        receipt: The provider's execution receipt, if any.
        usage: What the provider reported the execution used (tokens, seconds, its cost).
    """

    text: str
    provider: str | None = None
    metadata: Mapping[str, Any] = field(factory=dict)
    receipt: Mapping[str, Any] | None = None
    usage: Usage | None = None


@runtime_checkable
class Executor(Protocol):
    """Sends one execution attempt to a model endpoint.

    Implementations return a :class:`Response` on success and raise
    :class:`~beacon_orchestrator.TransientError` or :class:`~beacon_orchestrator.PermanentError`
    on failure. Any other exception is recorded as a permanent failure of that execution.
    Cancellation arrives as the async library's cancellation exception: let it propagate, and
    close whatever connection is open so the provider stops working.
    """

    async def execute(self, request: ExecutionRequest) -> Response:
        """Run one attempt and return its answer."""
        ...


@runtime_checkable
class SupportsPreflight(Protocol):
    """An executor that can check, before a job starts, that its regions are healthy."""

    async def preflight(self, regions: Sequence[str]) -> None:
        """Raise :class:`~beacon_orchestrator.PreflightError` naming any unusable region."""
        ...


@frozen
class FunctionExecutor:
    """Use a plain ``async def fn(request) -> Response`` as an :class:`Executor`.

    Example:
        >>> async def echo(request: ExecutionRequest) -> Response:
        ...     return Response(text=request.prompt)
        >>> executor = FunctionExecutor(echo)
    """

    fn: Callable[[ExecutionRequest], Awaitable[Response]]

    async def execute(self, request: ExecutionRequest) -> Response:
        """Call the wrapped function."""
        return await self.fn(request)
