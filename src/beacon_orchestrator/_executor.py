"""The executor extension point: what an executor receives, returns and raises."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import anyio
from attrs import field, frozen

from ._errors import PreflightError
from ._types import ExecutionKey
from ._usage import Usage

__all__ = [
    "ExecutionRequest",
    "Executor",
    "FunctionExecutor",
    "Response",
    "SupportsPreflight",
    "SupportsRegions",
    "check_endpoint_regions",
    "request_sha256",
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
        system_prompt: The system prompt the job sends to this region (its placeholders
            filled), or ``None``. Each adapter sends it in its provider's form.
    """

    job_id: str
    key: ExecutionKey
    prompt: str
    params: Mapping[str, Any]
    attempt: int = 1
    deadline: float | None = None
    system_prompt: str | None = None

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
        served_region: The region the provider says served the answer, as a canonical name
            (or a built-in alias such as ``asia-southeast``), or ``None`` when it does not
            say. When set, the scheduler compares it with the requested region: a
            difference fails the execution with the permanent ``WRONG_REGION``
            (:class:`~beacon_orchestrator.WrongRegionError`), never a ``COMPLETED`` record.
        system_prompt: The system prompt that was sent, if any (kept in the record).
        request_sha256: :func:`request_sha256` of the request body that was sent, if the
            executor computes it (kept in the record).
        usage: What the provider reported the execution used (tokens, seconds, its cost).
    """

    text: str
    provider: str | None = None
    metadata: Mapping[str, Any] = field(factory=dict)
    receipt: Mapping[str, Any] | None = None
    served_region: str | None = None
    system_prompt: str | None = None
    request_sha256: str | None = None
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


@runtime_checkable
class SupportsRegions(Protocol):
    """An executor that knows, before a job starts, which regions it has an endpoint for.

    :func:`~beacon_orchestrator.run_job` asks it before anything is stored or executed, and
    refuses a job with a region it lacks.
    """

    def endpoint_regions(self) -> Collection[str] | None:
        """The canonical regions it can send to, or ``None`` when it can send to any."""
        ...


def check_endpoint_regions(executor: object, regions: Sequence[str]) -> None:
    """Refuse a job whose regions the executor has no endpoint for (static; no network).

    An executor that does not implement :class:`SupportsRegions`, or answers ``None``, passes.

    Raises:
        PreflightError: Naming every region without an endpoint, the executor and the
            regions it has.
    """
    if not isinstance(executor, SupportsRegions):
        return
    known = executor.endpoint_regions()
    if known is None:
        return
    missing = [r for r in dict.fromkeys(regions) if r not in known]
    if missing:
        names = ", ".join(map(repr, missing))
        has = ", ".join(map(repr, sorted(known))) or "none"
        raise PreflightError(
            f"{type(executor).__name__} has no endpoint for region"
            f"{'s' if len(missing) > 1 else ''} {names} of the job (it has: {has}); "
            "nothing was run"
        )


def request_sha256(body: Any) -> str:
    """SHA-256 (hex) of a request body as canonical JSON (sorted keys, no white space).

    Executors put it in :attr:`Response.request_sha256` so a record shows exactly what was
    asked. Hash the body only: credentials travel in headers and never enter the hash.

    >>> request_sha256({"b": 1, "a": "x"}) == request_sha256({"a": "x", "b": 1})
    True
    """
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


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
