"""Building executors from command-line options, and the resume hint they produce."""

from __future__ import annotations

import shlex

import pytest

from beacon_orchestrator import UsageError
from beacon_orchestrator.adapters import HybridRouterExecutor, ModalExecutor, OpenAICompatExecutor
from beacon_orchestrator.cli._executors import ExecutorOptions
from beacon_orchestrator.testing import FakeExecutor


def test_demo_is_a_simulated_fake_with_a_retry_policy_scaled_to_its_pace() -> None:
    slow = ExecutorOptions(executor="demo", speed=1.0)
    fast = ExecutorOptions(executor="demo", speed=10.0, attempts=5)
    assert isinstance(slow.build(), FakeExecutor)
    assert slow.simulated
    slow_retry, fast_retry = slow.retry(), fast.retry()
    assert slow_retry is not None
    assert fast_retry is not None
    assert fast_retry.wait_initial == pytest.approx(slow_retry.wait_initial / 10)
    assert fast_retry.attempts == 5


def test_real_executors_use_the_default_retry_policy_unless_attempts_are_given() -> None:
    assert ExecutorOptions(executor="hybrid-router", router_url="http://r").retry() is None
    policy = ExecutorOptions(executor="hybrid-router", router_url="http://r", attempts=1).retry()
    assert policy is not None
    assert policy.attempts == 1


def test_hybrid_router_gets_its_url_and_reads_its_key_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BEACON_ROUTER_API_KEY", "router-secret")
    options = ExecutorOptions(executor="hybrid-router", router_url="http://router:8000")
    executor = options.build()
    assert isinstance(executor, HybridRouterExecutor)
    assert executor.base_url == "http://router:8000"
    assert executor.api_key is not None
    assert executor.api_key.reveal() == "router-secret"
    assert "router-secret" not in " ".join(options.args())
    assert not options.simulated


def test_modal_endpoints_are_normalised_region_names() -> None:
    options = ExecutorOptions(
        executor="modal",
        modal_endpoints=("EU=https://eu.modal.run", " us-east = https://us.modal.run "),
    )
    executor = options.build()
    assert isinstance(executor, ModalExecutor)
    assert set(executor.endpoints) == {"eu-west", "us-east"}
    assert executor.endpoints["us-east"].inference_url == "https://us.modal.run"


@pytest.mark.parametrize(
    ("endpoints", "message"),
    [
        (("eu-west=https://a", "EU=https://b"), "names region 'eu-west' twice"),
        (("=https://a",), "expects REGION=URL"),
        (("Not A Region!=https://a",), "unknown region"),
    ],
)
def test_bad_modal_endpoints_are_usage_errors(endpoints: tuple[str, ...], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        ExecutorOptions(executor="modal", modal_endpoints=endpoints).build()


def test_openai_gets_its_url_and_model_map() -> None:
    options = ExecutorOptions(
        executor="openai",
        openai_base_url="http://localhost:11434",
        model_map=("llama3.2-1b=llama3.2:1b",),
    )
    executor = options.build()
    assert isinstance(executor, OpenAICompatExecutor)
    assert executor.model_map == {"llama3.2-1b": "llama3.2:1b"}


def test_model_map_is_refused_for_other_executors() -> None:
    with pytest.raises(UsageError, match="--model-map applies to --executor openai only"):
        ExecutorOptions(executor="demo", model_map=("a=b",)).build()
    with pytest.raises(UsageError, match="names model 'a' twice"):
        ExecutorOptions(
            executor="openai", openai_base_url="http://x", model_map=("a=b", "a=c")
        ).build()


def test_args_rebuild_the_same_options() -> None:
    options = ExecutorOptions(
        executor="openai",
        openai_base_url="http://localhost:11434",
        model_map=("llama3.2-1b=llama3.2:1b",),
        attempts=2,
    )
    assert shlex.split(shlex.join(options.args())) == [
        "--executor",
        "openai",
        "--openai-base-url",
        "http://localhost:11434",
        "--model-map",
        "llama3.2-1b=llama3.2:1b",
        "--attempts",
        "2",
    ]
    demo = ExecutorOptions(executor="demo", speed=0.05, modal_endpoints=())
    assert demo.args() == ["--executor", "demo", "--speed", "0.05"]
