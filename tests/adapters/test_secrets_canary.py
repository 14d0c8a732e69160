"""A canary token given to each adapter must appear nowhere a user or a log could see it."""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Iterator

import httpx
import pytest

from beacon_orchestrator import (
    ExecutionError,
    ExecutionStatus,
    JobSpec,
    ModelTarget,
    Question,
    RetryPolicy,
    run_job,
)
from beacon_orchestrator.adapters import (
    HybridRouterExecutor,
    ModalEndpoint,
    ModalExecutor,
    OpenAICompatExecutor,
    Secret,
)

from .fake_beacon import LiveServer, serve
from .support import CANARY, AnyHttpExecutor, make_request

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

PROMPTS = {
    "echo_auth": "echo-auth",
    "echo_receipt": "echo-receipt",
    "server_error": "status:500",
    "throttled": "status:429",
    "malformed": "malformed",
    "dropped": "drop",
    "unknown": "unknown-model",
}


@pytest.fixture(scope="module")
def live_server() -> Iterator[LiveServer]:
    with serve() as server:
        yield server


def adapters(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> list[AnyHttpExecutor]:
    monkeypatch.setenv("BEACON_ROUTER_API_KEY", CANARY)
    base = server.base_url
    return [
        HybridRouterExecutor(f"{base}/router"),
        ModalExecutor(
            {
                "us-east": ModalEndpoint(
                    f"{base}/modal/us-east/inference", health_url=f"{base}/modal/us-east/health"
                )
            },
            token=Secret(CANARY),
            poll_interval=0,
        ),
        OpenAICompatExecutor(f"{base}/openai", api_key=CANARY),
    ]


@pytest.mark.parametrize("index", [0, 1, 2], ids=["router", "modal", "openai"])
async def test_canary_token_never_leaks(
    live_server: LiveServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    index: int,
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "beacon_orchestrator", "uvicorn"):
        caplog.set_level(logging.DEBUG, logger=name)
    live_server.log.reset()
    executor = adapters(live_server, monkeypatch)[index]
    exposed: list[str] = [repr(executor), str(executor)]

    async with executor:
        # Directly: every failure's text, repr and traceback.
        for prompt in PROMPTS.values():
            try:
                response = await executor.execute(make_request(prompt))
            except ExecutionError as exc:
                exposed += [str(exc), repr(exc), *map(str, exc.args)]
                exposed += traceback.format_exception(exc)
            else:
                exposed.append(repr(response))
        # And through a job: its records.
        spec = JobSpec(
            id="canary-job",
            questions=[Question(qid, prompt) for qid, prompt in PROMPTS.items()],
            models=[ModelTarget("m1", regions=["us-east"])],
        )
        result = await run_job(
            spec, executor, retry=RetryPolicy(attempts=2, wait_max=0.001, wait_jitter=0)
        )
        await executor.preflight(["us-east"])
    exposed += [repr(result), json.dumps([r.to_dict() for r in result.records])]
    exposed += [r.getMessage() for r in caplog.records]
    exposed.append(caplog.text)

    # The token was really sent (so this test could fail) ...
    seen = live_server.log.snapshot()
    assert seen
    assert all(s.authorization == f"Bearer {CANARY}" for s in seen)
    # ... and the server really echoed it back, in an error body and in a receipt.
    echoed = {r.key.question_id: r for r in result.records}
    assert "Bearer ***" in (echoed["echo_auth"].error_message or "")
    assert echoed["echo_receipt"].status is ExecutionStatus.COMPLETED
    if index < 2:
        assert echoed["echo_receipt"].receipt is not None
        assert "Bearer ***" in json.dumps(echoed["echo_receipt"].receipt)
    # httpx's own loggers did log the exchanges.
    assert any(r.name.startswith("httpx") for r in caplog.records)
    assert any(r.name.startswith("httpcore") for r in caplog.records)

    leaks = [text for text in exposed if CANARY in text]
    assert leaks == []


async def test_the_canary_is_not_in_a_client_made_with_auth_headers() -> None:
    """The repr of an executor holding an injected client does not show its headers."""
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {CANARY}"}) as client:
        executor = HybridRouterExecutor("http://router.test", client=client, api_key=None)
        assert CANARY not in repr(executor)
