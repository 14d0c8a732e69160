"""HybridRouterExecutor against respx: every response shape of the router's wire format."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from beacon_orchestrator import PermanentError, PreflightError, TransientError
from beacon_orchestrator.adapters import (
    AdapterConfigError,
    HybridRouterExecutor,
    RouterHealth,
    RouterProvider,
)
from beacon_orchestrator.adapters.hybrid_router import code_is_transient

from .support import make_request

pytestmark = pytest.mark.anyio

BASE = "http://router.test:8000"
RECEIPT = {
    "schema_version": "v0.1.0",
    "execution_details": {"provider_id": "modal-us-east", "region": "us-east", "model": "m"},
    "output": {"response": "Paris.", "prompt": "p"},
    "provenance": {"provider": "modal"},
}


def ok_body(text: str | None = "Paris.", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "success": True,
        "response": text,
        "error": None,
        "provider_used": "modal-us-east",
        "inference_time": 1.25,
        "cost_estimate": 0.0003,
        "metadata": {
            "provider_type": "modal",
            "region": "us-east",
            "model": "llama3.2-1b",
            "receipt": RECEIPT,
        },
    }
    body.update(extra)
    return body


def fail_body(code: str, *, transient: bool | None = None, where: str = "top") -> dict[str, Any]:
    failure: dict[str, Any] = {
        "code": code,
        "stage": "provider_call",
        "component": "router",
        "message": f"failure {code}",
        "region": "us-east",
    }
    if transient is not None:
        failure["transient"] = transient
    body: dict[str, Any] = {
        "success": False,
        "response": None,
        "error": f"the provider said {code}",
        "error_code": code,
        "metadata": {},
    }
    if where == "top":
        body["failure"] = failure
    elif where == "metadata":
        body["metadata"]["failure"] = failure
    return body


def executor(client: httpx.AsyncClient, **kwargs: Any) -> HybridRouterExecutor:
    kwargs.setdefault("api_key", "router-key-123")
    return HybridRouterExecutor(BASE, client=client, **kwargs)


async def test_success_maps_text_provider_metadata_and_receipt(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    route = mock_router.post(f"{BASE}/inference").respond(200, json=ok_body())
    response = await executor(mock_client).execute(
        make_request("Capital?", region="eu-west", attempt=2)
    )
    assert response.text == "Paris."
    assert response.provider == "modal-us-east"
    assert response.receipt == RECEIPT
    assert response.metadata["inference_time"] == 1.25
    assert response.metadata["cost_estimate"] == 0.0003
    assert response.metadata["provider_type"] == "modal"
    assert response.metadata["model"] == "llama3.2-1b"
    sent = route.calls.last.request
    assert json.loads(sent.content) == {
        "model": "llama3.2-1b",
        "prompt": "Capital?",
        "temperature": 0.1,
        "max_tokens": 500,
        "region_preference": "eu-west",
        "cost_priority": False,  # what Beacon's runner sends
    }
    assert sent.headers["authorization"] == "Bearer router-key-123"
    assert sent.headers["x-trace-id"] == "job-1/q1/llama3.2-1b@eu-west#2"
    assert response.metadata["trace_id"] == sent.headers["x-trace-id"]


async def test_params_region_map_and_cost_priority_are_sent(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    route = mock_router.post(f"{BASE}/v1/inference").respond(200, json=ok_body())
    ex = executor(
        mock_client, path="/v1/inference", region_map={"asia-pacific": "apac"}, cost_priority=True
    )
    await ex.execute(
        make_request(region="asia-pacific", params={"temperature": 0.7, "max_tokens": 64})
    )
    body = json.loads(route.calls.last.request.content)
    assert body["temperature"] == 0.7
    assert body["max_tokens"] == 64
    assert body["region_preference"] == "apac"
    assert body["cost_priority"] is True


@pytest.mark.parametrize("text", ["", None])
async def test_empty_answer_is_a_successful_empty_response(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient, text: str | None
) -> None:
    mock_router.post(f"{BASE}/inference").respond(200, json=ok_body(text))
    response = await executor(mock_client).execute(make_request())
    assert response.text == ""
    assert response.provider == "modal-us-east"


@pytest.mark.parametrize("success", [False, None])
async def test_legacy_empty_model_response_is_a_successful_empty_answer(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient, success: bool | None
) -> None:
    body: dict[str, Any] = {
        "response": "",
        "error": "model returned empty response",
        "error_code": "EMPTY_MODEL_RESPONSE",
        "provider_used": "modal-eu-west",
    }
    if success is not None:
        body["success"] = success
    mock_router.post(f"{BASE}/inference").respond(200, json=body)
    response = await executor(mock_client).execute(make_request())
    assert response.text == ""
    assert response.provider == "modal-eu-west"
    assert response.metadata["legacy_error_code"] == "EMPTY_MODEL_RESPONSE"


@pytest.mark.parametrize("where", ["top", "metadata"])
@pytest.mark.parametrize(
    ("code", "transient", "expected"),
    [
        ("PROVIDER_EXECUTION_FAILED", True, TransientError),
        ("MODAL_REQUEST_FAILED", False, PermanentError),
        ("PROVIDER_UNAVAILABLE", False, PermanentError),
        ("PROVIDER_HTTP_400", True, TransientError),
    ],
)
async def test_failure_transient_flag_decides_the_error_class(
    mock_router: respx.MockRouter,
    mock_client: httpx.AsyncClient,
    where: str,
    code: str,
    transient: bool,
    expected: type[Exception],
) -> None:
    mock_router.post(f"{BASE}/inference").respond(
        200, json=fail_body(code, transient=transient, where=where)
    )
    with pytest.raises(expected) as info:
        await executor(mock_client).execute(make_request())
    error = info.value
    assert isinstance(error, TransientError | PermanentError)
    assert error.code == code
    assert f"the provider said {code}" in str(error)
    assert "stage=provider_call" in str(error)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("PROVIDER_UNAVAILABLE", TransientError),
        ("ROUTER_INTERNAL_ERROR", TransientError),
        ("MODAL_REQUEST_FAILED", TransientError),
        ("PROVIDER_HTTP_503", TransientError),
        ("PROVIDER_HTTP_429", TransientError),
        ("PROVIDER_HTTP_408", TransientError),
        ("PROVIDER_HTTP_400", PermanentError),
        ("PROVIDER_HTTP_404", PermanentError),
        ("MODAL_RESPONSE_PARSE_ERROR", PermanentError),
        ("PROVIDER_EXECUTION_FAILED", PermanentError),
        ("SOME_FORWARDED_CODE", PermanentError),
    ],
)
async def test_without_a_transient_flag_the_code_decides(
    mock_router: respx.MockRouter,
    mock_client: httpx.AsyncClient,
    code: str,
    expected: type[Exception],
) -> None:
    mock_router.post(f"{BASE}/inference").respond(200, json=fail_body(code, where="none"))
    with pytest.raises(expected, match=code):
        await executor(mock_client).execute(make_request())
    assert code_is_transient(code) is (expected is TransientError)


async def test_failure_without_any_code_or_message_is_still_reported(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    mock_router.post(f"{BASE}/inference").respond(200, json={"success": False})
    with pytest.raises(PermanentError) as info:
        await executor(mock_client).execute(make_request())
    assert info.value.code == "ROUTER_ERROR"
    assert "no error message" in info.value.message


async def test_code_taken_from_failure_when_error_code_absent(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    body = fail_body("PROVIDER_UNAVAILABLE")
    del body["error_code"]
    mock_router.post(f"{BASE}/inference").respond(200, json=body)
    with pytest.raises(TransientError) as info:
        await executor(mock_client).execute(make_request())
    assert info.value.code == "PROVIDER_UNAVAILABLE"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"response": "x"}, "'success'"),
        ({"success": "yes", "response": "x"}, "'success'"),
        ({"success": True, "response": 42}, "'response'"),
        ({"success": True, "response": ["a"]}, "'response'"),
    ],
)
async def test_unexpected_shapes_are_permanent(
    mock_router: respx.MockRouter,
    mock_client: httpx.AsyncClient,
    body: dict[str, Any],
    fragment: str,
) -> None:
    mock_router.post(f"{BASE}/inference").respond(200, json=body)
    with pytest.raises(PermanentError) as info:
        await executor(mock_client).execute(make_request())
    assert info.value.code == "UNEXPECTED_RESPONSE"
    assert fragment in info.value.message


@pytest.mark.parametrize(
    ("params", "field"),
    [({"temperature": "hot"}, "temperature"), ({"max_tokens": 0}, "max_tokens")],
)
async def test_invalid_params_name_the_field(
    mock_router: respx.MockRouter,
    mock_client: httpx.AsyncClient,
    params: dict[str, Any],
    field: str,
) -> None:
    route = mock_router.post(f"{BASE}/inference").respond(200, json=ok_body())
    with pytest.raises(PermanentError, match=f"params.{field}") as info:
        await executor(mock_client).execute(make_request(params=params))
    assert info.value.code == "INVALID_PARAMS"
    assert not route.called


# -- helpers: health, providers, preflight -------------------------------------------------

PROVIDERS = {
    "providers": [
        {
            "name": "modal-us-east",
            "type": "modal",
            "region": "us-east",
            "healthy": True,
            "cost_per_second": 0.0001,
            "avg_latency": 2.5,
            "success_rate": 0.98,
            "last_health_check": "2025-01-01T00:00:00Z",
        },
        {"name": "modal-eu-west", "type": "modal", "region": "eu-west", "healthy": False},
        {"name": "modal-apac", "type": "modal", "region": "asia-pacific", "healthy": True},
    ]
}


async def test_health_returns_typed_value(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    mock_router.get(f"{BASE}/health").respond(
        200,
        json={
            "status": "healthy",
            "timestamp": "2025-01-01T00:00:00Z",
            "version": "1.2.3",
            "providers_total": 3,
            "providers_healthy": 2,
            "regions": ["us-east", "eu-west", "asia-pacific"],
        },
    )
    health = await executor(mock_client).health()
    assert isinstance(health, RouterHealth)
    assert health.healthy
    assert health.version == "1.2.3"
    assert (health.providers_total, health.providers_healthy) == (3, 2)
    assert health.regions == ("us-east", "eu-west", "asia-pacific")


async def test_providers_returns_typed_values_and_filters_by_region(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    route = mock_router.get(f"{BASE}/providers").respond(200, json=PROVIDERS)
    providers = await executor(mock_client, region_map={"eu-west": "eu"}).providers("eu-west")
    assert route.calls.last.request.url.params["region"] == "eu"
    assert all(isinstance(p, RouterProvider) for p in providers)
    first = providers[0]
    assert (first.name, first.region, first.healthy) == ("modal-us-east", "us-east", True)
    assert (first.cost_per_second, first.avg_latency, first.success_rate) == (0.0001, 2.5, 0.98)
    assert providers[1].healthy is False
    assert providers[1].cost_per_second is None


async def test_providers_of_wrong_shape_is_permanent(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    mock_router.get(f"{BASE}/providers").respond(200, json={"providers": "all of them"})
    with pytest.raises(PermanentError, match="'providers'"):
        await executor(mock_client).providers()


async def test_preflight_passes_when_every_region_has_a_healthy_provider(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    mock_router.get(f"{BASE}/providers").respond(200, json=PROVIDERS)
    await executor(mock_client).preflight(["us-east", "asia-pacific"])


async def test_preflight_names_only_regions_without_a_healthy_provider(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    mock_router.get(f"{BASE}/providers").respond(200, json=PROVIDERS)
    with pytest.raises(PreflightError) as info:
        await executor(mock_client).preflight(["us-east", "eu-west", "mars-1"])
    text = str(info.value)
    assert "'eu-west'" in text
    assert "'mars-1'" in text
    assert "'us-east'" not in text


async def test_preflight_when_the_router_is_down(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    mock_router.get(f"{BASE}/providers").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(PreflightError, match="could not check regions 'us-east'"):
        await executor(mock_client).preflight(["us-east"])


# -- configuration and secrets ---------------------------------------------------------------


@pytest.mark.parametrize("bad", ["router:8000", "ftp://router", "", 42])
def test_bad_base_url_is_rejected_naming_the_field(bad: object) -> None:
    with pytest.raises(AdapterConfigError, match="base_url") as info:
        HybridRouterExecutor(bad)
    assert repr(bad) in str(info.value) or type(bad).__name__ in str(info.value)


def test_bad_path_and_region_map_are_rejected() -> None:
    with pytest.raises(AdapterConfigError, match="path"):
        HybridRouterExecutor(BASE, path="inference")
    with pytest.raises(AdapterConfigError, match=r"region_map\['eu-west'\]"):
        HybridRouterExecutor(BASE, region_map={"eu-west": ""})


async def test_api_key_from_environment_and_none_disables_it(
    mock_router: respx.MockRouter,
    mock_client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BEACON_ROUTER_API_KEY", "from-env-456")
    route = mock_router.post(f"{BASE}/inference").respond(200, json=ok_body())
    await HybridRouterExecutor(BASE, client=mock_client).execute(make_request())
    assert route.calls.last.request.headers["authorization"] == "Bearer from-env-456"
    await HybridRouterExecutor(BASE, client=mock_client, api_key=None).execute(make_request())
    assert "authorization" not in route.calls.last.request.headers
