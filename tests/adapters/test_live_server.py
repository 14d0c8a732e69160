"""The adapters over real HTTP: uvicorn on loopback imitating the router, Modal and vLLM.

Covers what respx cannot: real sockets, 303 chains over the wire, dropped connections, and
that cancelling an attempt closes its connection at once (measured by the server). The last
part drives whole jobs through ``run_job`` / ``start_job`` and checks the records.
"""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import httpx
import pytest

from beacon_orchestrator import (
    ExecutionRecord,
    ExecutionStatus,
    JobSpec,
    Limits,
    ModelTarget,
    PermanentError,
    PreflightError,
    Question,
    RetryPolicy,
    TransientError,
    run_job,
    start_job,
)
from beacon_orchestrator.adapters import (
    HybridRouterExecutor,
    ModalEndpoint,
    ModalExecutor,
    OpenAICompatExecutor,
)

from .fake_beacon import LiveServer, serve
from .support import AnyHttpExecutor, make_request

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

REGIONS = ("us-east", "eu-west", "asia-pacific")
# Waits are capped by wait_max; wait_initial keeps its default because tenacity deprecates any
# other value of it (a DeprecationWarning, an error under this suite's warning filter).
FAST_RETRY = RetryPolicy(attempts=3, wait_max=0.002, wait_jitter=0.0)


@pytest.fixture(scope="module")
def live_server() -> Iterator[LiveServer]:
    with serve() as server:
        yield server


@pytest.fixture
def server(live_server: LiveServer) -> LiveServer:
    live_server.log.reset()
    return live_server


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as c:
        yield c


def router(server: LiveServer, client: httpx.AsyncClient | None, **kw: Any) -> HybridRouterExecutor:
    kw.setdefault("api_key", "router-key")
    return HybridRouterExecutor(f"{server.base_url}/router", client=client, **kw)


def modal(server: LiveServer, client: httpx.AsyncClient | None, **kw: Any) -> ModalExecutor:
    kw.setdefault("token", "modal-token")
    kw.setdefault("poll_interval", 0)
    endpoints = {
        r: ModalEndpoint(
            f"{server.base_url}/modal/{r}/inference",
            health_url=f"{server.base_url}/modal/{r}/health",
        )
        for r in REGIONS
    }
    return ModalExecutor(endpoints, client=client, **kw)


def openai(server: LiveServer, client: httpx.AsyncClient | None, **kw: Any) -> OpenAICompatExecutor:
    kw.setdefault("api_key", "sk-key")
    return OpenAICompatExecutor(f"{server.base_url}/openai", client=client, **kw)


MAKERS: dict[str, Callable[..., AnyHttpExecutor]] = {
    "router": router,
    "modal": modal,
    "openai": openai,
}

# (adapter, prompt, expected text or (error class, code, retry_after))
CASES: list[tuple[str, str, Any]] = [
    ("router", "ok:Paris.", "Paris."),
    ("router", "empty", ""),
    ("router", "legacy-empty", ""),
    ("router", "unavailable", (TransientError, "PROVIDER_UNAVAILABLE", None)),
    ("router", "unknown-model", (PermanentError, "PROVIDER_EXECUTION_FAILED", None)),
    ("router", "status:429", (TransientError, "HTTP_429", 0.0)),
    ("router", "status:500", (TransientError, "HTTP_500", None)),
    ("router", "status:404", (PermanentError, "HTTP_404", None)),
    ("router", "drop", (TransientError, "CONNECTION_DROPPED", None)),
    ("router", "malformed", (PermanentError, "MALFORMED_RESPONSE", None)),
    ("modal", "ok:Paris.", "Paris."),
    ("modal", "empty", ""),
    ("modal", "chain:4:after polls", "after polls"),
    ("modal", "unknown-model", (PermanentError, "UNKNOWN_MODEL", None)),
    ("modal", "gpu-error", (TransientError, "MODAL_EXECUTION_FAILED", None)),
    ("modal", "status:503", (TransientError, "HTTP_503", 0.0)),
    ("modal", "drop", (TransientError, "CONNECTION_DROPPED", None)),
    ("modal", "malformed", (PermanentError, "MALFORMED_RESPONSE", None)),
    ("openai", "ok:Paris.", "Paris."),
    ("openai", "empty", ""),
    ("openai", "unknown-model", (PermanentError, "HTTP_404", None)),
    ("openai", "status:429", (TransientError, "HTTP_429", 0.0)),
    ("openai", "status:502", (TransientError, "HTTP_502", None)),
    ("openai", "drop", (TransientError, "CONNECTION_DROPPED", None)),
    ("openai", "malformed", (PermanentError, "MALFORMED_RESPONSE", None)),
]


@pytest.mark.parametrize(("adapter", "prompt", "expected"), CASES, ids=lambda v: str(v)[:20])
async def test_each_answer_over_real_http(
    server: LiveServer, client: httpx.AsyncClient, adapter: str, prompt: str, expected: Any
) -> None:
    executor = MAKERS[adapter](server, client)
    request = make_request(prompt, model="m1", region="eu-west")
    if isinstance(expected, str):
        response = await executor.execute(request)
        assert response.text == expected
        return
    error_class, code, retry_after = expected
    with pytest.raises(error_class) as info:
        await executor.execute(request)
    assert info.value.code == code
    assert info.value.retry_after == retry_after


async def test_modal_303_chain_over_the_wire_posts_once_then_gets(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    response = await modal(server, client).execute(
        make_request("chain:5:done", model="m1", region="asia-pacific")
    )
    assert response.text == "done"
    assert response.metadata["polls"] == 5
    assert response.metadata["region"] == "asia-southeast"
    seen = server.log.snapshot()
    assert [s.method for s in seen] == ["POST"] + ["GET"] * 5
    assert {s.path for s in seen} == {"/modal/asia-pacific/inference"}
    assert all(s.authorization == "Bearer modal-token" for s in seen)


async def test_modal_chain_ends_at_the_deadline_with_one_post(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    deadline = anyio.current_time() + 0.05
    with pytest.raises(TransientError) as info:
        # max_polls out of the way: here the deadline must end the chain.
        await modal(server, client, poll_interval=0.002, max_polls=10_000).execute(
            make_request("forever", region="us-east", deadline=deadline)
        )
    assert info.value.code == "DEADLINE_EXCEEDED"
    # It gives up when the next poll could not start before the deadline: at most one poll
    # interval early (asserting the deadline itself made this test flaky).
    assert anyio.current_time() >= deadline - 0.002
    methods = [s.method for s in server.log.snapshot()]
    assert methods.count("POST") == 1


async def test_connect_error_on_a_closed_port() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with HybridRouterExecutor(f"http://127.0.0.1:{port}", api_key=None) as executor:
        with pytest.raises(TransientError) as info:
            await executor.execute(make_request())
    assert info.value.code == "CONNECT_ERROR"


async def wait_for(predicate: Callable[[], bool], what: str, limit: float = 5.0) -> None:
    """Poll a condition the server thread sets, a millisecond at a time."""
    end = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await anyio.sleep(0.001)


@pytest.mark.parametrize("adapter", sorted(MAKERS))
async def test_cancelling_an_attempt_closes_its_connection_at_once(
    server: LiveServer, client: httpx.AsyncClient, adapter: str
) -> None:
    executor = MAKERS[adapter](server, client)
    log = server.log
    async with anyio.create_task_group() as tg:
        tg.start_soon(executor.execute, make_request("hang", region="us-east"))
        await wait_for(lambda: bool(log.hang_started), "the server to start hanging")
        cancelled_at = time.monotonic()
        tg.cancel_scope.cancel()
    await wait_for(lambda: bool(log.disconnected), "the server to see the disconnect")
    assert log.disconnected[0] - cancelled_at < 0.1


async def test_an_unenforced_deadline_ends_the_read_and_the_connection(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    executor = router(server, client, deadline_margin=0)
    # Warm the connection, so the deadline is spent waiting for the answer, not connecting.
    await executor.execute(make_request("ok:warm"))
    deadline = anyio.current_time() + 0.05
    with pytest.raises(TransientError) as info:
        await executor.execute(make_request("hang", deadline=deadline))
    assert info.value.code == "READ_TIMEOUT"
    assert anyio.current_time() >= deadline
    await wait_for(lambda: bool(server.log.disconnected), "the server to see the disconnect")


async def test_helpers_over_real_http(server: LiveServer, client: httpx.AsyncClient) -> None:
    health = await router(server, client).health()
    assert health.healthy
    assert health.version == "fake-1"
    providers = await router(server, client).providers("eu-west")
    assert [p.name for p in providers] == ["modal-eu-west"]
    modal_health = await modal(server, client).health("eu-west")
    assert modal_health.healthy
    assert await openai(server, client).models() == ("m1",)


# -- whole jobs through run_job ------------------------------------------------------------------


def spec_of(prompts: dict[str, str], regions: tuple[str, ...], job_id: str) -> JobSpec:
    return JobSpec(
        id=job_id,
        questions=[Question(qid, prompt) for qid, prompt in prompts.items()],
        models=[ModelTarget("m1", regions=list(regions))],
    )


def by_cell(records: tuple[ExecutionRecord, ...]) -> dict[tuple[str, str], ExecutionRecord]:
    return {(r.key.question_id, r.key.region): r for r in records}


async def test_router_job_end_to_end_records(server: LiveServer) -> None:
    prompts = {
        "ok": "ok:Paris.",
        "empty": "empty",
        "legacy": "legacy-empty",
        "flaky": "flaky:1:second time lucky",
        "unknown": "unknown-model",
        "malformed": "malformed",
        "throttled": "status:429",
    }
    regions = ("us-east", "eu-west")
    async with router(server, None) as executor:
        result = await run_job(
            spec_of(prompts, regions, "router-job"), executor, retry=FAST_RETRY, preflight=True
        )
    cells = by_cell(tuple(result.records))
    assert len(result.records) == len(prompts) * len(regions)
    for region in regions:
        ok = cells["ok", region]
        assert (ok.status, ok.text, ok.attempts) == (ExecutionStatus.COMPLETED, "Paris.", 1)
        assert ok.provider == f"modal-{region}"
        assert ok.receipt is not None
        assert ok.receipt["execution_details"]["region"] == region
        assert ok.metadata["trace_id"] == f"router-job/ok/m1@{region}#1"
        for q in ("empty", "legacy"):
            assert (cells[q, region].status, cells[q, region].text) == (
                ExecutionStatus.COMPLETED,
                "",
            )
            assert cells[q, region].empty
        flaky = cells["flaky", region]
        assert (flaky.status, flaky.text, flaky.attempts) == (
            ExecutionStatus.COMPLETED,
            "second time lucky",
            2,
        )
        unknown = cells["unknown", region]
        assert (unknown.status, unknown.error_code, unknown.attempts) == (
            ExecutionStatus.FAILED,
            "PROVIDER_EXECUTION_FAILED",
            1,
        )
        malformed = cells["malformed", region]
        assert (malformed.status, malformed.error_code, malformed.attempts) == (
            ExecutionStatus.FAILED,
            "MALFORMED_RESPONSE",
            1,
        )
        throttled = cells["throttled", region]
        assert (throttled.status, throttled.error_code, throttled.attempts) == (
            ExecutionStatus.FAILED,
            "HTTP_429",
            3,
        )
    traces = {s.trace_id for s in server.log.snapshot() if s.prompt == "flaky:1:second time lucky"}
    assert traces == {f"router-job/flaky/m1@{r}#{a}" for r in regions for a in (1, 2)}
    assert result.counts[ExecutionStatus.COMPLETED] == 8
    assert result.counts[ExecutionStatus.FAILED] == 6


async def test_modal_job_end_to_end_records(server: LiveServer) -> None:
    prompts = {"chain": "chain:3:worth the wait", "dropped": "drop", "gpu": "gpu-error"}
    regions = ("us-east", "eu-west")
    async with modal(server, None) as executor:
        result = await run_job(spec_of(prompts, regions, "modal-job"), executor, retry=FAST_RETRY)
    cells = by_cell(tuple(result.records))
    for region in regions:
        chain = cells["chain", region]
        assert (chain.status, chain.text) == (ExecutionStatus.COMPLETED, "worth the wait")
        assert chain.metadata["polls"] == 3
        dropped = cells["dropped", region]
        assert (dropped.status, dropped.error_code, dropped.attempts) == (
            ExecutionStatus.FAILED,
            "CONNECTION_DROPPED",
            3,
        )
        gpu = cells["gpu", region]
        assert (gpu.status, gpu.error_code, gpu.attempts) == (
            ExecutionStatus.FAILED,
            "MODAL_EXECUTION_FAILED",
            3,
        )
    # One POST per attempt: a 303 chain never re-posts.
    seen = server.log.snapshot()
    chain_posts = [s for s in seen if s.method == "POST" and s.prompt == "chain:3:worth the wait"]
    assert len(chain_posts) == len(regions)
    assert len([s for s in seen if s.method == "GET"]) == 3 * len(regions)


async def test_attempt_timeouts_close_the_connection_of_each_attempt(server: LiveServer) -> None:
    regions = ("us-east", "eu-west")
    async with modal(server, None) as executor:
        result = await run_job(
            spec_of({"hung": "hang"}, regions, "timeout-job"),
            executor,
            retry=FAST_RETRY,
            limits=Limits(attempt_timeout=0.03),
        )
    for region in regions:
        hung = by_cell(tuple(result.records))["hung", region]
        assert (hung.status, hung.error_code, hung.attempts) == (
            ExecutionStatus.TIMEOUT,
            "TIMEOUT",
            3,
        )
    # Every timed-out attempt's connection was closed, so the GPU app could stop. (Under
    # load an attempt may time out before the server even started its handler; a handler
    # that starts late finds its client gone at once, so the counts still meet.)
    log = server.log
    await wait_for(
        lambda: 1 <= len(log.hang_started) == len(log.disconnected),
        "every hung request to be disconnected",
    )


async def test_openai_job_end_to_end_records(server: LiveServer) -> None:
    prompts = {"ok": "ok:Bonjour", "empty": "empty", "missing": "unknown-model"}
    async with openai(server, None) as executor:
        result = await run_job(
            spec_of(prompts, ("us-east",), "openai-job"), executor, retry=FAST_RETRY
        )
    cells = by_cell(tuple(result.records))
    assert (cells["ok", "us-east"].status, cells["ok", "us-east"].text) == (
        ExecutionStatus.COMPLETED,
        "Bonjour",
    )
    assert cells["empty", "us-east"].empty
    assert (cells["missing", "us-east"].status, cells["missing", "us-east"].error_code) == (
        ExecutionStatus.FAILED,
        "HTTP_404",
    )


async def test_preflight_stops_a_job_before_anything_is_sent(server: LiveServer) -> None:
    async with modal(server, None) as executor:
        with pytest.raises(PreflightError, match="'asia-pacific': status is 'loading'"):
            await run_job(
                spec_of({"q": "ok:x"}, REGIONS, "preflight-job"), executor, preflight=True
            )
    assert [s for s in server.log.snapshot() if s.method == "POST"] == []


async def test_cancelling_a_job_closes_in_flight_requests_at_once(server: LiveServer) -> None:
    log = server.log
    async with modal(server, None) as executor, anyio.create_task_group() as tg:
        handle = await start_job(
            tg,
            spec_of({"hung": "hang", "next": "ok:never"}, ("us-east", "eu-west"), "cancel-job"),
            executor,
        )
        await wait_for(lambda: len(log.hang_started) == 2, "both regions to be in flight")
        cancelled_at = time.monotonic()
        handle.cancel()
        result = await handle.wait()
    await wait_for(lambda: len(log.disconnected) == 2, "both requests to be disconnected")
    assert max(log.disconnected) - cancelled_at < 0.1
    cells = by_cell(tuple(result.records))
    assert {cells["hung", r].status for r in ("us-east", "eu-west")} == {ExecutionStatus.CANCELLED}
    assert {cells["next", r].status for r in ("us-east", "eu-west")} == {ExecutionStatus.SKIPPED}
    assert [s.prompt for s in log.snapshot() if s.prompt == "ok:never"] == []
