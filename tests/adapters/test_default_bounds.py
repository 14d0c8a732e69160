"""With default settings no execution hangs: shown on virtual time, with in-process servers.

The hostile loopback suite uses short timeouts to stay fast; here the defaults themselves
(a 600 s attempt timeout, Modal's 1 s poll pace and 10 polls, a 300 s cap on
``Retry-After``) are run in full, minutes of virtual time in milliseconds. The servers are
``httpx.MockTransport`` handlers, which wait on the event loop's (virtual) clock.
"""

from __future__ import annotations

import email.utils
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import anyio
import httpx
import pytest

from beacon_orchestrator import (
    Event,
    ExecutionRecord,
    ExecutionStarted,
    ExecutionStatus,
    JobSpec,
    Limits,
    ModelTarget,
    Question,
    run_job,
)
from beacon_orchestrator.adapters import HybridRouterExecutor, ModalExecutor
from beacon_orchestrator.testing import run_virtual

BACKENDS = ["asyncio", "trio"]
SPEC = JobSpec(
    id="defaults", questions=[Question("q", "hi")], models=[ModelTarget("m", ["us-east"])]
)
# Served from the job's region, in the router's form (metadata.region) and Modal's (region).
OK = {"success": True, "response": "ok", "region": "us-east", "metadata": {"region": "us-east"}}

Handler = Callable[[httpx.Request], Coroutine[Any, Any, httpx.Response]]


async def run_one(
    handler: Handler, *, modal: bool = False, limits: Limits | None = None
) -> tuple[ExecutionRecord, list[float], float]:
    """Run the one-execution job against ``handler`` with default settings.

    Returns:
        Its record, when each attempt started and when the job ended (job start = 0).
    """
    events: list[Event] = []
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        executor: HybridRouterExecutor | ModalExecutor = (
            ModalExecutor({"us-east": "https://modal.test"}, client=client, token=None)
            if modal
            else HybridRouterExecutor("https://router.test", client=client, api_key=None)
        )
        t0 = anyio.current_time()
        result = await run_job(SPEC, executor, on_event=events.append, limits=limits)
        ended = anyio.current_time() - t0
    starts = [e.at - t0 for e in events if isinstance(e, ExecutionStarted)]
    (record,) = result.records
    return record, starts, ended


async def silent(request: httpx.Request) -> httpx.Response:
    await anyio.sleep_forever()
    raise AssertionError("unreachable")


class Trickle(httpx.AsyncByteStream):
    """A body that never ends: one byte a second."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            await anyio.sleep(1.0)
            yield b" "


async def trickle(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, stream=Trickle())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("server", [silent, trickle], ids=["silent", "trickle"])
def test_with_default_settings_a_hung_server_ends_in_timeout(backend: str, server: Handler) -> None:
    async def main() -> None:
        record, starts, ended = await run_one(server)
        assert (record.status, record.error_code, record.attempts) == (
            ExecutionStatus.TIMEOUT,
            "TIMEOUT",
            3,
        )
        # Three attempts of 600 s, two default backoffs (1 s and 2 s, plus up to 1 s each).
        assert starts[1] - starts[0] == pytest.approx(601, abs=1)
        assert 3 * 600 + 3 <= ended <= 3 * 600 + 5

    run_virtual(main, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_with_default_settings_a_modal_self_loop_ends_after_ten_polls(backend: str) -> None:
    seen: list[str] = []

    async def loop(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        return httpx.Response(303, headers={"Location": "/?__modal_function_call_id=fc-1"})

    async def main() -> None:
        record, _, ended = await run_one(loop, modal=True)
        assert (record.status, record.error_code, record.attempts) == (
            ExecutionStatus.FAILED,
            "TOO_MANY_POLLS",
            1,
        )
        # One POST, ten polls a second apart: 11 requests in 10 s, not a hot loop.
        assert seen == ["POST"] + ["GET"] * 10
        assert ended == pytest.approx(10.0, abs=0.01)

    run_virtual(main, backend=backend)


def throttled(retry_after: str) -> Handler:
    """A server answering 429 with ``Retry-After: retry_after`` once, then succeeding."""
    calls: list[float] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        calls.append(anyio.current_time())
        if len(calls) == 1:
            return httpx.Response(429, headers={"Retry-After": retry_after})
        return httpx.Response(200, json=OK)

    return handler


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "retry_after", ["1e9", email.utils.formatdate(4_102_444_800, usegmt=True)], ids=["1e9", "2100"]
)
def test_with_default_settings_a_far_retry_after_waits_five_minutes(
    backend: str, retry_after: str
) -> None:
    async def main() -> None:
        record, starts, _ = await run_one(throttled(retry_after))
        assert (record.status, record.attempts) == (ExecutionStatus.COMPLETED, 2)
        # retry_after_max (300 s) plus at most wait_jitter (1 s).
        assert 300 <= starts[1] - starts[0] <= 301

    run_virtual(main, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_retry_after_past_the_job_deadline_ends_the_execution_at_once(backend: str) -> None:
    async def main() -> None:
        record, starts, ended = await run_one(throttled("200"), limits=Limits(job_timeout=100))
        assert (record.status, record.error_code, record.attempts) == (
            ExecutionStatus.FAILED,
            "HTTP_429",
            1,
        )
        assert starts == [0.0]
        assert ended < 0.01  # not 100 s waiting for a retry that could not start

    run_virtual(main, backend=backend)


# -- the default attempt timeout in documents --------------------------------------------------


def test_a_job_document_without_limits_gets_the_default_attempt_timeout() -> None:
    doc = SPEC.to_dict()
    del doc["limits"]
    spec = JobSpec.from_dict(doc)
    assert spec.limits.attempt_timeout == Limits().attempt_timeout == 600.0
    assert JobSpec.from_dict(spec.to_dict()) == spec


def test_null_in_a_document_still_means_no_attempt_timeout_and_round_trips() -> None:
    doc = SPEC.to_dict()
    doc["limits"] = {"attempt_timeout": None}
    spec = JobSpec.from_dict(doc)
    assert spec.limits.attempt_timeout is None
    assert spec.to_dict()["limits"]["attempt_timeout"] is None
    assert JobSpec.from_dict(spec.to_dict()) == spec
