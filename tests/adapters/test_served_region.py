"""Every answer provably comes from the region it was asked in, over real HTTP.

A loopback imitation of Beacon's multi-region Modal app routes each request on its body's
``region``; a job through it lands every execution in its region. A server that answers from
another region yields ``WRONG_REGION`` failures, never ``COMPLETED``, for each adapter that can
tell. The system prompt reaches each provider in its form, and records keep what was sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from beacon_orchestrator import (
    ExecutionStatus,
    JobSpec,
    MemoryStore,
    ModelTarget,
    PreflightError,
    Question,
    RegionTable,
    RetryPolicy,
    request_sha256,
    run_job,
)
from beacon_orchestrator.adapters import (
    AdapterConfigError,
    HybridRouterExecutor,
    ModalExecutor,
    OpenAICompatExecutor,
)

from .fake_beacon import LiveServer, serve

pytestmark = pytest.mark.anyio

REGIONS = ("us-east", "eu-west", "asia-pacific")
RETRY = RetryPolicy(attempts=3, wait_max=0.002, wait_jitter=0.0)


@pytest.fixture(scope="module")
def live_server() -> Iterator[LiveServer]:
    with serve() as server:
        yield server


@pytest.fixture
def server(live_server: LiveServer) -> LiveServer:
    live_server.log.reset()
    return live_server


def spec(prompts: tuple[str, ...] = ("ok:a", "ok:b"), **kw: Any) -> JobSpec:
    return JobSpec(
        id="regional",
        questions=[Question(f"q{i}", p) for i, p in enumerate(prompts)],
        models=[ModelTarget("m1", REGIONS)],
        **kw,
    )


def multi_region_modal(server: LiveServer, path: str = "modal-multi", **kw: Any) -> ModalExecutor:
    # One app behind one URL serves every region, as Beacon deploys it; the keys are spelt as
    # the portal spells them and normalised by the executor.
    url = f"{server.base_url}/{path}/inference"
    return ModalExecutor({"US": url, "EU": url, "APAC": url}, token=None, poll_interval=0, **kw)


async def test_a_three_region_job_through_the_multi_region_app_lands_each_execution_in_its_region(
    server: LiveServer,
) -> None:
    async with multi_region_modal(server) as executor:
        result = await run_job(spec(), executor, retry=RETRY)
    assert len(result.records) == 2 * 3
    for record in result.records:
        assert record.status is ExecutionStatus.COMPLETED, record
        assert record.served_region == record.key.region
        assert record.text is not None
        assert record.text.startswith(f"ran in {record.key.region}:")
    # The app saw the region of every execution in the body, and nothing else routed it.
    sent = sorted(s.body["region"] for s in server.log.snapshot())
    assert sent == sorted(REGIONS * 2)


async def test_an_app_that_ignores_the_region_yields_wrong_region_never_completed(
    server: LiveServer,
) -> None:
    async with multi_region_modal(server, "modal-us-only") as executor:
        result = await run_job(spec(), executor, retry=RETRY)
    by_region: dict[str, set[Any]] = {}
    for record in result.records:
        by_region.setdefault(record.key.region, set()).add(
            (record.status, record.error_code, record.served_region, record.attempts)
        )
    assert by_region == {
        "us-east": {(ExecutionStatus.COMPLETED, None, "us-east", 1)},
        # Permanent: one attempt, no retry; the record names the region that served it.
        "eu-west": {(ExecutionStatus.FAILED, "WRONG_REGION", "us-east", 1)},
        "asia-pacific": {(ExecutionStatus.FAILED, "WRONG_REGION", "us-east", 1)},
    }
    failed = next(r for r in result.records if r.key.region == "eu-west")
    assert "'eu-west'" in (failed.error_message or "")
    assert "'us-east'" in (failed.error_message or "")
    # What was asked stays on the record: the request the app got, by its hash.
    sent = {request_sha256(s.body) for s in server.log.snapshot()}
    assert failed.request_sha256 in sent
    assert failed.text is None


async def test_a_router_answer_from_another_region_is_wrong_region(server: LiveServer) -> None:
    executor = HybridRouterExecutor(f"{server.base_url}/router", api_key=None)
    async with executor:
        job = spec(("wrong-region",), system_prompt="In {place}.")
        result = await run_job(job, executor, retry=RETRY)
    assert {r.key.region: r.system_prompt for r in result.records} == {
        "us-east": "In the US.",
        "eu-west": "In Europe.",
        "asia-pacific": "In Asia.",
    }
    outcome = {r.key.region: (r.status, r.error_code, r.served_region) for r in result.records}
    assert outcome == {
        "us-east": (ExecutionStatus.COMPLETED, None, "us-east"),
        "eu-west": (ExecutionStatus.FAILED, "WRONG_REGION", "us-east"),
        "asia-pacific": (ExecutionStatus.FAILED, "WRONG_REGION", "us-east"),
    }


async def test_verification_can_be_switched_off_for_a_provider_that_reports_nothing(
    server: LiveServer,
) -> None:
    async with multi_region_modal(server, "modal-us-only", verify_region=False) as executor:
        result = await run_job(spec(("ok:a",)), executor, retry=RETRY)
    assert {r.status for r in result.records} == {ExecutionStatus.COMPLETED}
    assert {r.served_region for r in result.records} == {None}
    # What the app said is still kept, unjudged.
    assert {r.metadata["region"] for r in result.records} == {"us-east"}


async def test_an_answer_that_names_no_region_is_not_completed_while_verifying(
    server: LiveServer,
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"success": True, "response": "somewhere"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        executor = ModalExecutor(dict.fromkeys(REGIONS, "http://m.test/inference"), client=client)
        result = await run_job(spec(("ok:a",)), executor, retry=RETRY)
    assert {(r.status, r.error_code) for r in result.records} == {
        (ExecutionStatus.FAILED, "REGION_NOT_REPORTED")
    }


async def test_the_system_prompt_reaches_each_provider_in_its_form_and_the_record_keeps_it(
    server: LiveServer,
) -> None:
    job = spec(
        ("ok:hi",),
        system_prompt="Based in {place}.",
        system_prompts={"asia-pacific": "Asia-Pacific desk ({region})."},
    )
    expected = {
        "us-east": "Based in the US.",
        "eu-west": "Based in Europe.",
        "asia-pacific": "Asia-Pacific desk (asia-pacific).",
    }
    url = f"{server.base_url}/modal-multi/inference"
    executors: list[ModalExecutor | HybridRouterExecutor | OpenAICompatExecutor] = [
        ModalExecutor(dict.fromkeys(REGIONS, url), token=None),
        HybridRouterExecutor(f"{server.base_url}/router", api_key=None),
        OpenAICompatExecutor(f"{server.base_url}/openai", api_key=None),
    ]
    for executor in executors:
        server.log.reset()
        async with executor:
            result = await run_job(job, executor, retry=RETRY, store=MemoryStore())
        bodies = {json.dumps(s.body, sort_keys=True): s.body for s in server.log.snapshot()}
        for record in result.records:
            system = expected[record.key.region]
            assert record.status is ExecutionStatus.COMPLETED, record
            assert record.system_prompt == system
            body = next(b for b in bodies.values() if request_sha256(b) == record.request_sha256)
            if isinstance(executor, OpenAICompatExecutor):
                assert body["messages"] == [
                    {"role": "system", "content": system},
                    {"role": "user", "content": "ok:hi"},
                ]
            else:
                assert body["prompt"] == f"system\n{system}\nuser\nok:hi\nassistant\n"


async def test_a_region_without_an_endpoint_refuses_the_job_before_anything_runs(
    server: LiveServer,
) -> None:
    url = f"{server.base_url}/modal-multi/inference"
    executor = ModalExecutor({"US": url, "EU": url}, token=None)
    store = MemoryStore()
    with pytest.raises(PreflightError) as info:
        await run_job(spec(), executor, store=store)
    message = str(info.value)
    assert "ModalExecutor" in message
    assert "'asia-pacific'" in message
    assert "'eu-west', 'us-east'" in message
    assert server.log.snapshot() == []
    assert await store.jobs() == []


async def test_openai_compat_with_base_urls_only_is_checked_statically_too(
    server: LiveServer,
) -> None:
    executor = OpenAICompatExecutor(base_urls={"EU": f"{server.base_url}/openai"}, api_key=None)
    with pytest.raises(PreflightError, match=r"OpenAICompatExecutor.*'us-east', 'asia-pacific'"):
        await run_job(spec(), executor, store=MemoryStore())
    assert server.log.snapshot() == []


async def test_a_model_map_per_region_targets_each_regional_deployment(
    server: LiveServer,
) -> None:
    model_map = {"m1": {"US": "m1-us", "EU": "m1-eu", "asia-pacific": "m1-ap"}}
    executor = OpenAICompatExecutor(f"{server.base_url}/openai", api_key=None, model_map=model_map)
    async with executor:
        result = await run_job(spec(("ok:x",)), executor, retry=RETRY)
    assert {r.status for r in result.records} == {ExecutionStatus.COMPLETED}
    assert sorted(s.body["model"] for s in server.log.snapshot()) == ["m1-ap", "m1-eu", "m1-us"]


async def test_a_model_map_missing_a_region_fails_that_region_permanently(
    server: LiveServer,
) -> None:
    executor = OpenAICompatExecutor(
        f"{server.base_url}/openai", api_key=None, model_map={"m1": {"us-east": "m1-us"}}
    )
    async with executor:
        result = await run_job(spec(("ok:x",)), executor, retry=RETRY)
    outcome = {r.key.region: (r.status, r.error_code, r.attempts) for r in result.records}
    assert outcome["us-east"] == (ExecutionStatus.COMPLETED, None, 1)
    assert outcome["eu-west"] == (ExecutionStatus.FAILED, "NO_ENDPOINT", 1)
    assert "model_map['m1'] names no served model for region 'eu-west'" in str(
        next(r.error_message for r in result.records if r.key.region == "eu-west")
    )


# -- construction errors, each naming the key --------------------------------------------------


@pytest.mark.parametrize(
    ("build", "fragment"),
    [
        (lambda: ModalExecutor({"Mars": "http://m.test/i"}), "endpoints['Mars']: unknown region"),
        (
            lambda: ModalExecutor({"EU": "http://m.test/a", "eu-west": "http://m.test/b"}),
            "endpoints: keys 'EU' and 'eu-west' both name region 'eu-west'",
        ),
        (
            lambda: ModalExecutor({"\u212aR": "http://m.test/i"}),
            "U+212A KELVIN SIGN",
        ),
        (
            lambda: OpenAICompatExecutor(base_urls={"eu-wset": "http://o.test"}),
            "base_urls['eu-wset']: unknown region; expected one of",
        ),
        (
            lambda: OpenAICompatExecutor("http://o.test", model_map={"m": {"Mars": "m-mars"}}),
            "model_map['m']['Mars']: unknown region",
        ),
        (
            lambda: HybridRouterExecutor("http://r.test", region_map={"Europa": "eu"}),
            "region_map['Europa']: unknown region",
        ),
        (
            lambda: HybridRouterExecutor("http://r.test", cost_priority="no"),  # type: ignore[arg-type]
            "cost_priority: expected True, False or None",
        ),
        (
            lambda: ModalExecutor({"us-east": "http://m.test/i"}, verify_region=1),  # type: ignore[arg-type]
            "verify_region: expected True or False",
        ),
        (
            lambda: ModalExecutor({"us-east": "http://m.test/i"}, regions={"us-east": "x"}),
            "regions: expected a RegionTable",
        ),
    ],
)
def test_a_misconfigured_executor_fails_at_construction_naming_the_key(
    build: Any, fragment: str
) -> None:
    with pytest.raises(AdapterConfigError) as info:
        build()
    assert fragment in str(info.value)


def test_endpoint_maps_are_normalised_through_the_table_at_construction() -> None:
    modal = ModalExecutor({"EU": "http://m.test/i", "asia-southeast": "http://m.test/j"})
    assert modal.endpoint_regions() == frozenset({"eu-west", "asia-pacific"})
    openai = OpenAICompatExecutor(base_urls={"US": "http://o.test"})
    assert openai.endpoint_regions() == frozenset({"us-east"})
    assert OpenAICompatExecutor("http://o.test").endpoint_regions() is None
    table = RegionTable.default().with_regions("sa-east").with_aliases({"BR": "sa-east"})
    custom = ModalExecutor({"BR": "http://m.test/i"}, regions=table)
    assert custom.endpoint_regions() == frozenset({"sa-east"})
    router = HybridRouterExecutor("http://r.test", region_map={"EU": "europe-1"})
    assert router.region_map == {"eu-west": "europe-1"}
