"""OpenAICompatExecutor against respx: chat completions, per-region servers, model listing."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from beacon_orchestrator import PermanentError, PreflightError
from beacon_orchestrator.adapters import AdapterConfigError, OpenAICompatExecutor

from .support import make_request

pytestmark = pytest.mark.anyio

BASE = "http://vllm.test:8000"
EU = "http://eu.vllm.test"
KEY = "sk-test-0123456789"


def completion(content: Any = "Paris.", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "meta-llama/Llama-3.2-1B",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }
    body.update(extra)
    return body


def executor(client: httpx.AsyncClient, **kwargs: Any) -> OpenAICompatExecutor:
    kwargs.setdefault("api_key", KEY)
    base = kwargs.pop("base_url", BASE)
    return OpenAICompatExecutor(base, client=client, **kwargs)


async def test_success_maps_content_and_sends_a_chat_request(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    route = mock_router.post(f"{BASE}/v1/chat/completions").respond(200, json=completion())
    ex = executor(mock_client, model_map={"llama3.2-1b": "meta-llama/Llama-3.2-1B"})
    response = await ex.execute(
        make_request("Capital?", params={"max_tokens": 32, "seed": 7, "ignored": True})
    )
    assert response.text == "Paris."
    assert response.provider == "vllm.test:8000"
    assert response.metadata == {
        "id": "chatcmpl-1",
        "model": "meta-llama/Llama-3.2-1B",
        "finish_reason": "stop",
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }
    sent = route.calls.last.request
    assert json.loads(sent.content) == {
        "model": "meta-llama/Llama-3.2-1B",
        "messages": [{"role": "user", "content": "Capital?"}],
        "temperature": 0.1,
        "max_tokens": 32,
        "seed": 7,
    }
    assert sent.headers["authorization"] == f"Bearer {KEY}"


async def test_system_prompt_is_sent_first(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    route = mock_router.post(f"{BASE}/v1/chat/completions").respond(200, json=completion())
    await executor(mock_client).execute(make_request("Q", params={"system_prompt": "Be brief."}))
    messages = json.loads(route.calls.last.request.content)["messages"]
    assert messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Q"},
    ]


async def test_base_url_ending_in_v1_is_not_doubled(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    route = mock_router.post("https://api.test/v1/chat/completions").respond(200, json=completion())
    await executor(mock_client, base_url="https://api.test/v1/").execute(make_request())
    assert route.called


@pytest.mark.parametrize("content", ["", None])
async def test_empty_content_is_a_successful_empty_answer(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient, content: str | None
) -> None:
    mock_router.post(f"{BASE}/v1/chat/completions").respond(200, json=completion(content))
    response = await executor(mock_client).execute(make_request())
    assert response.text == ""


async def test_content_parts_are_joined(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    parts = [
        {"type": "text", "text": "Par"},
        {"type": "image_url", "image_url": {}},
        {"type": "text", "text": "is."},
    ]
    mock_router.post(f"{BASE}/v1/chat/completions").respond(200, json=completion(parts))
    response = await executor(mock_client).execute(make_request())
    assert response.text == "Paris."


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"id": "x"}, "'choices'"),
        ({"choices": []}, "'choices'"),
        ({"choices": ["text"]}, "'choices'"),
        ({"choices": [{"text": "legacy"}]}, "'choices[0].message'"),
        ({"choices": [{"message": {"content": 5}}]}, "'choices[0].message.content'"),
    ],
)
async def test_unexpected_shapes_are_permanent(
    mock_router: respx.MockRouter,
    mock_client: httpx.AsyncClient,
    body: dict[str, Any],
    fragment: str,
) -> None:
    mock_router.post(f"{BASE}/v1/chat/completions").respond(200, json=body)
    with pytest.raises(PermanentError) as info:
        await executor(mock_client).execute(make_request())
    assert info.value.code == "UNEXPECTED_RESPONSE"
    assert fragment in info.value.message


@pytest.mark.parametrize(
    "error", [{"message": "model not loaded", "type": "x"}, "model not loaded"]
)
async def test_error_object_in_a_200_is_permanent(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient, error: Any
) -> None:
    mock_router.post(f"{BASE}/v1/chat/completions").respond(200, json={"error": error})
    with pytest.raises(PermanentError, match="model not loaded") as info:
        await executor(mock_client).execute(make_request())
    assert info.value.code == "PROVIDER_ERROR"


async def test_per_region_servers_and_default(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    default = mock_router.post(f"{BASE}/v1/chat/completions").respond(200, json=completion("d"))
    eu = mock_router.post(f"{EU}/v1/chat/completions").respond(200, json=completion("eu"))
    ex = executor(mock_client, base_urls={"eu-west": EU})
    assert (await ex.execute(make_request(region="eu-west"))).text == "eu"
    assert (await ex.execute(make_request(region="us-east"))).text == "d"
    assert (default.call_count, eu.call_count) == (1, 1)


async def test_region_without_server_is_permanent_when_there_is_no_default(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    eu = mock_router.post(f"{EU}/v1/chat/completions").respond(200, json=completion())
    ex = executor(mock_client, base_url=None, base_urls={"eu-west": EU})
    with pytest.raises(PermanentError) as info:
        await ex.execute(make_request(region="us-east"))
    assert info.value.code == "NO_ENDPOINT"
    assert "'us-east'" in info.value.message
    assert not eu.called


async def test_models_and_preflight(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    mock_router.get(f"{BASE}/v1/models").respond(
        200, json={"object": "list", "data": [{"id": "a"}, {"id": "b"}]}
    )
    mock_router.get(f"{EU}/v1/models").respond(503, text="loading")
    ex = executor(mock_client, base_urls={"eu-west": EU})
    assert await ex.models() == ("a", "b")
    assert await ex.models("us-east") == ("a", "b")
    await ex.preflight(["us-east"])
    with pytest.raises(PreflightError) as info:
        await ex.preflight(["us-east", "eu-west"])
    assert "'eu-west'" in str(info.value)
    assert "HTTP 503" in str(info.value)
    assert "'us-east'" not in str(info.value)


async def test_models_of_wrong_shape_is_permanent(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    mock_router.get(f"{BASE}/v1/models").respond(200, json={"data": ["a"]})
    with pytest.raises(PermanentError, match="'data'"):
        await executor(mock_client).models()


async def test_preflight_names_a_region_without_server(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    mock_router.get(f"{EU}/v1/models").respond(200, json={"data": []})
    ex = executor(mock_client, base_url=None, base_urls={"eu-west": EU})
    with pytest.raises(PreflightError, match="'asia-pacific': no OpenAI-compatible server"):
        await ex.preflight(["eu-west", "asia-pacific"])


async def test_bad_system_prompt_names_the_field(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    with pytest.raises(PermanentError, match=r"params.system_prompt: expected a string, got 3"):
        await executor(mock_client).execute(make_request(params={"system_prompt": 3}))


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"base_url": None}, "base_url: expected a server URL"),
        ({"base_url": "localhost:8000"}, "base_url"),
        ({"base_url": None, "base_urls": {"eu-west": "eu"}}, "base_urls['eu-west']"),
        ({"base_urls": ["x"]}, "base_urls: expected a mapping"),
        ({"model_map": {"m": ""}}, "model_map['m']"),
    ],
)
def test_bad_configuration_is_rejected_naming_the_field(
    kwargs: dict[str, Any], fragment: str
) -> None:
    base = kwargs.pop("base_url", BASE)
    with pytest.raises(AdapterConfigError) as info:
        OpenAICompatExecutor(base, **kwargs)
    assert fragment in str(info.value)


def test_api_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    ex = OpenAICompatExecutor(BASE)
    assert ex.api_key is not None
    assert ex.api_key.reveal() == "sk-env"
    assert "sk-env" not in repr(ex)
