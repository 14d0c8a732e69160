"""Each adapter puts what its service reports an execution used into ``Response.usage``."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import respx

from beacon_orchestrator import Usage
from beacon_orchestrator.adapters._usage import modal_usage, openai_usage, router_usage

from . import test_hybrid_router_respx as router
from . import test_modal_respx as modal
from . import test_openai_compat_respx as openai
from .support import make_request

pytestmark = pytest.mark.anyio


async def test_the_router_reports_inference_seconds_and_its_cost_estimate(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    mock_router.post(f"{router.BASE}/inference").respond(200, json=router.ok_body())
    response = await router.executor(mock_client).execute(make_request())
    assert response.usage == Usage(inference_seconds=1.25, provider_cost=0.0003)


async def test_a_modal_app_reports_inference_seconds_and_tokens_generated(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    mock_router.post(modal.US).respond(200, json=modal.success())
    response = await modal.executor(mock_client).execute(make_request())
    assert response.usage == Usage(inference_seconds=3.5, tokens_out=12)


async def test_an_openai_server_reports_prompt_and_completion_tokens(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    mock_router.post(f"{openai.BASE}/v1/chat/completions").respond(200, json=openai.completion())
    response = await openai.executor(mock_client).execute(make_request())
    assert response.usage == Usage(tokens_in=5, tokens_out=2)


@pytest.mark.parametrize("bad", [None, "1.5", True, -1, float("inf"), float("nan"), [3], {"n": 1}])
def test_a_malformed_usage_field_is_taken_as_not_reported(bad: Any) -> None:
    assert router_usage({"inference_time": bad, "cost_estimate": bad}) is None
    assert modal_usage({"inference_time": bad, "tokens_generated": bad}) is None
    assert openai_usage({"usage": {"prompt_tokens": bad, "completion_tokens": bad}}) is None
    assert openai_usage({"usage": bad}) is None
    assert router_usage({"inference_time": 2, "cost_estimate": bad}) == Usage(inference_seconds=2.0)
