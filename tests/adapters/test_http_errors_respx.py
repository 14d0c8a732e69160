"""The error classification every HTTP adapter shares, checked on each of them with respx."""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest
import respx
from hypothesis import given
from hypothesis import strategies as st

from beacon_orchestrator import Executor, PermanentError, TransientError
from beacon_orchestrator.adapters import (
    HybridRouterExecutor,
    ModalExecutor,
    OpenAICompatExecutor,
    Secret,
    parse_retry_after,
)

from .support import AnyHttpExecutor, make_request

pytestmark = pytest.mark.anyio

ROUTER = "http://router.test:8000"
MODAL = "https://ws--beacon-us-inference.modal.run"
OPENAI = "http://vllm.test:8000"
TOKEN = "tok-abcdef-123456"

Factory = Callable[[httpx.AsyncClient], AnyHttpExecutor]

ADAPTERS: dict[str, tuple[Factory, str]] = {
    "router": (
        lambda c: HybridRouterExecutor(ROUTER, client=c, api_key=TOKEN),
        f"{ROUTER}/inference",
    ),
    "modal": (
        lambda c: ModalExecutor({"us-east": MODAL}, client=c, token=TOKEN, poll_interval=0),
        MODAL,
    ),
    "openai": (
        lambda c: OpenAICompatExecutor(OPENAI, client=c, api_key=TOKEN),
        f"{OPENAI}/v1/chat/completions",
    ),
}


@pytest.fixture(params=sorted(ADAPTERS))
def adapter(request: pytest.FixtureRequest) -> tuple[Factory, str]:
    return ADAPTERS[request.param]


async def run(executor: AnyHttpExecutor, **kwargs: Any) -> Any:
    assert isinstance(executor, Executor)
    return await executor.execute(make_request(**kwargs))


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
async def test_retryable_statuses_are_transient(
    adapter: tuple[Factory, str],
    mock_router: respx.MockRouter,
    mock_client: httpx.AsyncClient,
    status: int,
) -> None:
    factory, url = adapter
    mock_router.post(url).respond(status, text="busy, come back later")
    with pytest.raises(TransientError) as info:
        await run(factory(mock_client))
    assert info.value.code == f"HTTP_{status}"
    assert info.value.retry_after is None
    assert "busy, come back later" in info.value.message


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 422, 302, 307])
async def test_other_statuses_are_permanent_with_a_body_excerpt(
    adapter: tuple[Factory, str],
    mock_router: respx.MockRouter,
    mock_client: httpx.AsyncClient,
    status: int,
) -> None:
    factory, url = adapter
    body = '{"detail": "nope"}' + " filler" * 200
    mock_router.post(url).respond(status, text=body, headers={"location": "/elsewhere"})
    with pytest.raises(PermanentError) as info:
        await run(factory(mock_client))
    assert info.value.code == f"HTTP_{status}"
    assert '{"detail": "nope"}' in info.value.message
    assert info.value.message.endswith("…")
    assert len(info.value.message) < 500


async def test_retry_after_in_seconds(
    adapter: tuple[Factory, str], mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    factory, url = adapter
    mock_router.post(url).respond(429, headers={"Retry-After": "7"})
    with pytest.raises(TransientError) as info:
        await run(factory(mock_client))
    assert info.value.retry_after == 7.0
    assert info.value.code == "HTTP_429"


async def test_retry_after_as_http_date(
    adapter: tuple[Factory, str], mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    factory, url = adapter
    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    mock_router.post(url).respond(503, headers={"Retry-After": when})
    with pytest.raises(TransientError) as info:
        await run(factory(mock_client))
    assert info.value.retry_after is not None
    assert 115 <= info.value.retry_after <= 121


async def test_malformed_json_is_permanent_with_excerpt(
    adapter: tuple[Factory, str], mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    factory, url = adapter
    mock_router.post(url).respond(200, text="<html>Gateway says hello</html>")
    with pytest.raises(PermanentError) as info:
        await run(factory(mock_client))
    assert info.value.code == "MALFORMED_RESPONSE"
    assert "<html>Gateway says hello</html>" in info.value.message


@pytest.mark.parametrize("payload", [[1, 2], "text", 3, None])
async def test_json_that_is_not_an_object_is_permanent(
    adapter: tuple[Factory, str],
    mock_router: respx.MockRouter,
    mock_client: httpx.AsyncClient,
    payload: object,
) -> None:
    factory, url = adapter
    mock_router.post(url).respond(200, text=json.dumps(payload))
    with pytest.raises(PermanentError) as info:
        await run(factory(mock_client))
    assert info.value.code == "UNEXPECTED_RESPONSE"


@pytest.mark.parametrize(
    ("exc", "expected", "code"),
    [
        (httpx.ConnectError("refused"), TransientError, "CONNECT_ERROR"),
        (httpx.ConnectTimeout("slow"), TransientError, "CONNECT_TIMEOUT"),
        (httpx.ReadTimeout("slow"), TransientError, "READ_TIMEOUT"),
        (httpx.WriteTimeout("slow"), TransientError, "WRITE_TIMEOUT"),
        (httpx.PoolTimeout("slow"), TransientError, "POOL_TIMEOUT"),
        (httpx.RemoteProtocolError("gone"), TransientError, "CONNECTION_DROPPED"),
        (httpx.ReadError("reset"), TransientError, "CONNECTION_DROPPED"),
        (httpx.WriteError("reset"), TransientError, "CONNECTION_DROPPED"),
        (httpx.ProxyError("proxy"), TransientError, "PROXY_ERROR"),
        (httpx.NetworkError("weird"), TransientError, "NETWORK_ERROR"),
        (httpx.UnsupportedProtocol("gopher"), PermanentError, "INVALID_REQUEST"),
        (httpx.DecodingError("gzip"), PermanentError, "MALFORMED_RESPONSE"),
    ],
)
async def test_transport_errors_are_classified(
    adapter: tuple[Factory, str],
    mock_router: respx.MockRouter,
    mock_client: httpx.AsyncClient,
    exc: Exception,
    expected: type[Exception],
    code: str,
) -> None:
    factory, url = adapter
    mock_router.post(url).mock(side_effect=exc)
    with pytest.raises(expected) as info:
        await run(factory(mock_client))
    error = info.value
    assert isinstance(error, TransientError | PermanentError)
    assert error.code == code
    assert type(exc).__name__ in error.message
    # The httpx exception holds the request, headers included: it must not be chained.
    assert error.__cause__ is None


async def test_token_echoed_in_a_body_is_scrubbed_from_the_error(
    adapter: tuple[Factory, str], mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    factory, url = adapter
    mock_router.post(url).respond(401, text=f"bad token Bearer {TOKEN}!")
    with pytest.raises(PermanentError) as info:
        await run(factory(mock_client))
    assert TOKEN not in str(info.value)
    assert TOKEN not in repr(info.value)
    assert "Bearer ***!" in info.value.message


# -- timeouts -----------------------------------------------------------------------------


async def test_with_a_deadline_httpx_never_gives_up_before_it(
    adapter: tuple[Factory, str], mock_router: respx.MockRouter
) -> None:
    factory, url = adapter
    seen: dict[str, Any] = {}

    def capture(request: httpx.Request) -> httpx.Response:
        seen.update(request.extensions["timeout"])
        return httpx.Response(503)

    mock_router.post(url).mock(side_effect=capture)
    # The production bug: a client whose own timeout (here 5 s) is below the work's length.
    transport = httpx.MockTransport(mock_router.async_handler)
    async with httpx.AsyncClient(transport=transport, timeout=5.0) as client:
        deadline = anyio.current_time() + 200.0
        with pytest.raises(TransientError):
            await run(factory(client), deadline=deadline)
    assert seen["read"] >= 199.0
    assert seen["write"] >= 199.0
    assert seen["pool"] >= 199.0
    assert seen["connect"] == 10.0


async def test_without_deadline_or_timeout_reads_are_unbounded(
    adapter: tuple[Factory, str], mock_router: respx.MockRouter
) -> None:
    factory, url = adapter
    seen: dict[str, Any] = {}

    def capture(request: httpx.Request) -> httpx.Response:
        seen.update(request.extensions["timeout"])
        return httpx.Response(503)

    mock_router.post(url).mock(side_effect=capture)
    transport = httpx.MockTransport(mock_router.async_handler)
    async with httpx.AsyncClient(transport=transport, timeout=5.0) as client:
        with pytest.raises(TransientError):
            await run(factory(client))
    assert seen["read"] is None
    assert seen["connect"] == 10.0


async def test_executor_timeout_bounds_a_request_without_deadline(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    seen: dict[str, Any] = {}

    def capture(request: httpx.Request) -> httpx.Response:
        seen.update(request.extensions["timeout"])
        return httpx.Response(503)

    mock_router.post(f"{ROUTER}/inference").mock(side_effect=capture)
    executor = HybridRouterExecutor(
        ROUTER, client=mock_client, timeout=30.0, connect_timeout=3.0, deadline_margin=0.5
    )
    with pytest.raises(TransientError):
        await run(executor)
    assert 30.0 <= seen["read"] <= 30.5
    assert seen["connect"] == 3.0


# -- client ownership -----------------------------------------------------------------------


async def test_owned_client_is_made_on_use_and_closed_on_exit() -> None:
    with respx.mock(assert_all_called=True) as mock:
        answer = {"success": True, "response": "hi", "metadata": {"region": "us-east"}}
        mock.post(f"{ROUTER}/inference").respond(200, json=answer)
        async with HybridRouterExecutor(ROUTER, api_key=None) as executor:
            response = await run(executor)
            client = executor._http()
            assert not client.is_closed
        assert response.text == "hi"
        assert client.is_closed


async def test_injected_client_is_left_open(mock_client: httpx.AsyncClient) -> None:
    async with OpenAICompatExecutor(OPENAI, client=mock_client, api_key=None) as executor:
        assert executor._http() is mock_client
    await executor.aclose()
    assert not mock_client.is_closed


def test_client_of_the_wrong_type_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"client: expected an httpx\.AsyncClient"):
        HybridRouterExecutor(ROUTER, client=httpx.Client())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timeout", 0),
        ("timeout", -1.0),
        ("connect_timeout", 0),
        ("deadline_margin", -1),
        ("health_timeout", 0),
    ],
)
def test_bad_timeouts_are_rejected_naming_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"{field}: expected .* got {value!r}"):
        HybridRouterExecutor(ROUTER, **{field: value})  # type: ignore[arg-type]


# -- Secret and Retry-After -----------------------------------------------------------------


def test_secret_hides_itself_everywhere_but_reveal() -> None:
    secret = Secret(TOKEN)
    assert repr(secret) == "***"
    assert str(secret) == "***"
    assert f"{secret}" == "***"
    assert TOKEN not in repr([secret, {"k": secret}])
    assert secret.reveal() == TOKEN


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("  ", None),
        ("0", 0.0),
        ("120", 120.0),
        (" 1.5 ", 1.5),
        ("-3", 0.0),
        ("nan", None),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
    ],
)
def test_parse_retry_after_examples(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=lambda: 1e10) == expected


@given(st.integers(min_value=0, max_value=10**7))
def test_retry_after_seconds_round_trip(seconds: int) -> None:
    """Invariant: a delay in whole seconds parses back to exactly that many seconds."""
    assert parse_retry_after(str(seconds)) == seconds


@given(
    now=st.floats(min_value=1e9, max_value=2e9),
    delta=st.integers(min_value=-(10**6), max_value=10**6),
)
def test_retry_after_date_is_the_nonnegative_distance_to_now(now: float, delta: int) -> None:
    """Invariant: an HTTP-date gives max(date - now, 0) seconds, to the second."""
    when = int(now) + delta
    value = email.utils.formatdate(when, usegmt=True)
    result = parse_retry_after(value, now=lambda: now)
    assert result is not None
    assert result >= 0
    assert abs(result - max(when - now, 0.0)) < 1.0


async def test_health_helpers_are_bounded_by_health_timeout(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    seen: dict[str, Any] = {}

    def capture(request: httpx.Request) -> httpx.Response:
        seen.update(request.extensions["timeout"])
        return httpx.Response(200, json={"status": "healthy"})

    mock_router.get(f"{ROUTER}/health").mock(side_effect=capture)
    executor = HybridRouterExecutor(ROUTER, client=mock_client, health_timeout=2.5)
    assert (await executor.health()).healthy
    assert seen == {"connect": 2.5, "read": 2.5, "write": 2.5, "pool": 2.5}
