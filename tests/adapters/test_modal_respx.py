"""ModalExecutor against respx: both answer forms, 303 chains, health and preflight."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest
import respx

from beacon_orchestrator import PermanentError, PreflightError, RegionTable, TransientError
from beacon_orchestrator.adapters import (
    AdapterConfigError,
    ModalEndpoint,
    ModalExecutor,
    ModalHealth,
)

from .support import make_request

pytestmark = pytest.mark.anyio

US = "https://ws--beacon-us-inference.modal.run"
US_HEALTH = "https://ws--beacon-us-health.modal.run"
EU = "https://ws--beacon-eu-inference.modal.run"
EU_HEALTH = "https://ws--beacon-eu-health.modal.run"
TOKEN = "modal-token-xyz"
RECEIPT = {"schema_version": "v0.1.0", "execution_details": {"region": "us-east"}}


def success(text: str | None = "Paris.", form: str = "success") -> dict[str, Any]:
    body: dict[str, Any] = {
        "response": text,
        "model": "llama3.2-1b",
        "inference_time": 3.5,
        "region": "us-east",
        "tokens_generated": 12,
        "gpu_memory_used": 1024,
        "receipt": RECEIPT,
    }
    if form == "success":
        body["success"] = True
    else:
        body["status"] = "success"
    return body


def failure(error: str, form: str = "success") -> dict[str, Any]:
    body: dict[str, Any] = {"error": error, "region": "us-east", "inference_time": 0.1}
    if form == "success":
        body["success"] = False
    else:
        body["status"] = "error"
    return body


def executor(client: httpx.AsyncClient, **kwargs: Any) -> ModalExecutor:
    kwargs.setdefault("token", TOKEN)
    kwargs.setdefault("poll_interval", 0)
    return ModalExecutor({"us-east": US, "eu-west": EU}, client=client, **kwargs)


@pytest.mark.parametrize("form", ["success", "status"])
async def test_success_in_both_forms(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient, form: str
) -> None:
    route = mock_router.post(US).respond(200, json=success(form=form))
    response = await executor(mock_client).execute(
        make_request("Capital?", params={"temperature": 0.3})
    )
    assert response.text == "Paris."
    assert response.provider == "modal"
    assert response.receipt == RECEIPT
    assert response.metadata == {
        "inference_time": 3.5,
        "region": "us-east",
        "model": "llama3.2-1b",
        "tokens_generated": 12,
        "gpu_memory_used": 1024,
        "polls": 0,
    }
    sent = route.calls.last.request
    assert json.loads(sent.content) == {
        "model": "llama3.2-1b",
        "prompt": "Capital?",
        "temperature": 0.3,
        "max_tokens": 500,
        "region": "us-east",  # routes Beacon's multi-region app
    }
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize("form", ["success", "status"])
@pytest.mark.parametrize("text", ["", None])
async def test_empty_answer_is_success_in_both_forms(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient, form: str, text: str | None
) -> None:
    mock_router.post(US).respond(200, json=success(text, form=form))
    response = await executor(mock_client).execute(make_request())
    assert response.text == ""


async def test_request_goes_only_to_its_own_region(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    us = mock_router.post(US).respond(200, json=success("us"))
    eu = mock_router.post(EU).respond(200, json=success("eu"))
    response = await executor(mock_client).execute(make_request(region="eu-west"))
    assert response.text == "eu"
    assert (us.call_count, eu.call_count) == (0, 1)


async def test_region_without_endpoint_is_permanent_and_sends_nothing(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    us = mock_router.post(US).respond(200, json=success())
    with pytest.raises(PermanentError) as info:
        await executor(mock_client).execute(make_request(region="asia-pacific"))
    assert info.value.code == "NO_ENDPOINT"
    assert "'asia-pacific'" in info.value.message
    assert "'eu-west', 'us-east'" in info.value.message
    assert not us.called


@pytest.mark.parametrize("form", ["success", "status"])
@pytest.mark.parametrize(
    ("error", "expected", "code"),
    [
        ("Prompt is required", PermanentError, "INVALID_REQUEST"),
        ("Unknown model: gpt-17", PermanentError, "UNKNOWN_MODEL"),
        ("CUDA out of memory", TransientError, "MODAL_EXECUTION_FAILED"),
        ("worker crashed", TransientError, "MODAL_EXECUTION_FAILED"),
    ],
)
async def test_failures_in_both_forms(
    mock_router: respx.MockRouter,
    mock_client: httpx.AsyncClient,
    form: str,
    error: str,
    expected: type[Exception],
    code: str,
) -> None:
    mock_router.post(US).respond(200, json=failure(error, form))
    with pytest.raises(expected) as info:
        await executor(mock_client).execute(make_request())
    assert isinstance(info.value, TransientError | PermanentError)
    assert info.value.code == code
    assert error in info.value.message


async def test_failure_without_error_text(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    mock_router.post(US).respond(200, json={"success": False})
    with pytest.raises(TransientError, match="no error message"):
        await executor(mock_client).execute(make_request())


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"response": "x"}, "'success' or 'status'"),
        ({"success": "true", "response": "x"}, "'success'"),
        ({"status": "pending"}, "'status'"),
        ({"status": "healthy"}, "'status'"),
        ({"success": True, "response": {"text": "x"}}, "'response'"),
    ],
)
async def test_unexpected_shapes_are_permanent(
    mock_router: respx.MockRouter,
    mock_client: httpx.AsyncClient,
    body: dict[str, Any],
    fragment: str,
) -> None:
    mock_router.post(US).respond(200, json=body)
    with pytest.raises(PermanentError) as info:
        await executor(mock_client).execute(make_request())
    assert info.value.code == "UNEXPECTED_RESPONSE"
    assert fragment in info.value.message


# -- 303 chains ------------------------------------------------------------------------------


async def test_303_chain_is_followed_with_gets_never_a_second_post(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    post = mock_router.post(US).respond(303, headers={"Location": "?__modal_function_call_id=fc-1"})
    get = mock_router.get(US, params={"__modal_function_call_id": "fc-1"}).mock(
        side_effect=[
            httpx.Response(303, headers={"Location": f"{US}/?__modal_function_call_id=fc-1"}),
            httpx.Response(303, headers={"Location": "/?__modal_function_call_id=fc-1"}),
            httpx.Response(200, json=success("finally")),
        ]
    )
    response = await executor(mock_client).execute(make_request())
    assert response.text == "finally"
    assert response.metadata["polls"] == 3
    assert post.call_count == 1
    assert get.call_count == 3
    for call in get.calls:
        assert call.request.method == "GET"
        assert call.request.content == b""
        assert call.request.headers["authorization"] == f"Bearer {TOKEN}"


async def test_long_303_chains_are_followed_up_to_max_polls(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    mock_router.post(US).respond(303, headers={"Location": f"{US}/result?id=fc-9"})
    answers = [httpx.Response(303, headers={"Location": f"{US}/result?id=fc-9"})] * 40
    get = mock_router.get(f"{US}/result").mock(
        side_effect=[*answers, httpx.Response(200, json=success())]
    )
    deadline = anyio.current_time() + 60.0
    # 41 redirects in all: the POST's and 40 GETs'.
    response = await executor(mock_client, max_polls=41).execute(make_request(deadline=deadline))
    assert response.text == "Paris."
    assert response.metadata["polls"] == 41
    assert get.call_count == 41


async def test_one_303_past_max_polls_is_a_permanent_failure(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    post = mock_router.post(US).respond(303, headers={"Location": f"{US}/result?id=fc-9"})
    get = mock_router.get(f"{US}/result").respond(303, headers={"Location": "?id=fc-9"})
    with pytest.raises(PermanentError) as info:
        await executor(mock_client, max_polls=5).execute(make_request())
    assert info.value.code == "TOO_MANY_POLLS"
    assert "after 5 polls (max_polls=5)" in info.value.message
    assert (post.call_count, get.call_count) == (1, 5)


async def test_303_chain_stops_at_the_attempts_deadline(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    post = mock_router.post(US).respond(303, headers={"Location": "?id=fc-2"})
    get = mock_router.get(US).respond(303, headers={"Location": "?id=fc-2"})
    deadline = anyio.current_time() + 0.02
    with pytest.raises(TransientError) as info:
        await executor(mock_client, poll_interval=0.004).execute(make_request(deadline=deadline))
    assert info.value.code == "DEADLINE_EXCEEDED"
    # It ends as soon as the next poll could not start before the deadline, not after it.
    assert anyio.current_time() >= deadline - 0.004
    assert post.call_count == 1
    # Paced by poll_interval: a few polls in 20 ms, not a hot loop.
    assert 1 <= get.call_count <= 8


async def test_303_chain_without_deadline_is_bounded_by_the_executor_timeout(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    mock_router.post(US).respond(303, headers={"Location": "?id=fc-3"})
    mock_router.get(US).respond(303, headers={"Location": "?id=fc-3"})
    with pytest.raises(TransientError, match="deadline") as info:
        await executor(mock_client, timeout=0.01, poll_interval=0.002).execute(make_request())
    assert info.value.code == "DEADLINE_EXCEEDED"


async def test_token_is_not_sent_to_another_origin(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    mock_router.post(US).respond(303, headers={"Location": "https://elsewhere.test/poll?id=1"})
    get = mock_router.get("https://elsewhere.test/poll").respond(200, json=success())
    await executor(mock_client).execute(make_request())
    assert "authorization" not in get.calls.last.request.headers


async def test_303_without_location_is_permanent(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    mock_router.post(US).respond(303)
    with pytest.raises(PermanentError) as info:
        await executor(mock_client).execute(make_request())
    assert info.value.code == "MALFORMED_REDIRECT"


@pytest.mark.parametrize(
    ("final", "expected", "code"),
    [
        (httpx.Response(500, text="boom"), TransientError, "HTTP_500"),
        (httpx.Response(429, headers={"Retry-After": "3"}), TransientError, "HTTP_429"),
        (httpx.Response(200, text="not json"), PermanentError, "MALFORMED_RESPONSE"),
        (httpx.Response(404, text="call expired"), PermanentError, "HTTP_404"),
    ],
)
async def test_failures_at_the_end_of_a_chain_are_classified(
    mock_router: respx.MockRouter,
    mock_client: httpx.AsyncClient,
    final: httpx.Response,
    expected: type[Exception],
    code: str,
) -> None:
    mock_router.post(US).respond(303, headers={"Location": "?id=fc-4"})
    mock_router.get(US).mock(
        side_effect=[httpx.Response(303, headers={"Location": "?id=fc-4"}), final]
    )
    with pytest.raises(expected) as info:
        await executor(mock_client).execute(make_request())
    assert isinstance(info.value, TransientError | PermanentError)
    assert info.value.code == code


async def test_connection_error_while_polling_is_transient(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    mock_router.post(US).respond(303, headers={"Location": "?id=fc-5"})
    mock_router.get(US).mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(TransientError) as info:
        await executor(mock_client).execute(make_request())
    assert info.value.code == "READ_TIMEOUT"


# -- health and preflight ----------------------------------------------------------------------


def health_body(status: str = "healthy", region: str = "us-east") -> dict[str, Any]:
    return {
        "status": status,
        "timestamp": "2025-01-01T00:00:00Z",
        "models_available": ["llama3.2-1b", "qwen2.5-1.5b"],
        "models_ready": {"llama3.2-1b": True},
        "region": region,
        "gpu": "T4",
    }


async def test_health_uses_the_derived_health_url(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    route = mock_router.get(US_HEALTH).respond(200, json=health_body())
    health = await executor(mock_client).health("us-east")
    assert isinstance(health, ModalHealth)
    assert health.healthy
    assert health.region == "us-east"
    assert health.reported_region == "us-east"
    assert health.models_available == ("llama3.2-1b", "qwen2.5-1.5b")
    assert health.models_ready == ("llama3.2-1b",)
    assert health.raw["gpu"] == "T4"
    assert route.calls.last.request.headers["authorization"] == f"Bearer {TOKEN}"


async def test_health_url_can_be_given(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    mock_router.get("http://gpu.test/healthz").respond(200, json=health_body("degraded"))
    ex = ModalExecutor(
        {"us-east": ModalEndpoint("http://gpu.test/infer", health_url="http://gpu.test/healthz")},
        client=mock_client,
        token=None,
    )
    health = await ex.health("us-east")
    assert health.status == "degraded"
    assert not health.healthy


async def test_preflight_passes_when_all_regions_are_healthy(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    mock_router.get(US_HEALTH).respond(200, json=health_body())
    mock_router.get(EU_HEALTH).respond(200, json=health_body(region="eu-west"))
    await executor(mock_client).preflight(["us-east", "eu-west"])


async def test_preflight_names_every_unusable_region_with_its_reason(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    mock_router.get(US_HEALTH).respond(200, json=health_body("loading"))
    mock_router.get(EU_HEALTH).mock(side_effect=httpx.ConnectError("refused"))
    ex = ModalExecutor(
        {"us-east": US, "eu-west": EU, "custom": "http://gpu.test/infer"},
        client=mock_client,
        token=None,
        regions=RegionTable.default().with_regions("custom"),
    )
    with pytest.raises(PreflightError) as info:
        await ex.preflight(["us-east", "eu-west", "asia-pacific", "custom"])
    text = str(info.value)
    assert "'us-east': status is 'loading'" in text
    assert "'eu-west':" in text
    assert "CONNECT_ERROR" in text or "could not connect" in text
    assert "'asia-pacific': no Modal endpoint configured" in text
    assert "'custom': no health URL" in text


async def test_preflight_of_a_healthy_subset_ignores_other_regions(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    mock_router.get(US_HEALTH).respond(200, json=health_body())
    eu = mock_router.get(EU_HEALTH).respond(500)
    await executor(mock_client).preflight(["us-east"])
    assert not eu.called


# -- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoints", "fragment"),
    [
        (["https://x.modal.run"], "endpoints: expected a mapping"),
        ({"us-east": "not a url"}, "endpoints['us-east']"),
        ({"us-east": 5}, "endpoints['us-east']"),
        ({"": US}, "non-empty region names"),
    ],
)
def test_bad_endpoints_are_rejected_naming_the_entry(endpoints: Any, fragment: str) -> None:
    with pytest.raises(AdapterConfigError) as info:
        ModalExecutor(endpoints)
    assert fragment in str(info.value)


def test_negative_poll_interval_is_rejected() -> None:
    with pytest.raises(AdapterConfigError, match="poll_interval"):
        ModalExecutor({"us-east": US}, poll_interval=-1)


def test_token_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEACON_MODAL_TOKEN", "env-token")
    ex = ModalExecutor({"us-east": US})
    assert ex.token is not None
    assert ex.token.reveal() == "env-token"
    assert "env-token" not in repr(ex)
    assert ModalExecutor({"us-east": US}, token=None).token is None
