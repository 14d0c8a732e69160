"""The scheduler's served-region check, the static endpoint check and the prompts a job sends.

The pure parts are tested without an event loop; the rest runs a job with a plain function as
its executor, so a user's own executor is held to the same rules as the built-in adapters.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection
from pathlib import Path

import pytest

from beacon_orchestrator import (
    ExecutionKey,
    ExecutionRecord,
    ExecutionRequest,
    ExecutionStatus,
    FunctionExecutor,
    JobSpec,
    MemoryStore,
    ModelTarget,
    PreflightError,
    Question,
    Response,
    SpecError,
    SupportsRegions,
    WrongRegionError,
    request_sha256,
    run_job,
)
from beacon_orchestrator._executor import check_endpoint_regions
from beacon_orchestrator._served import verify_served_region
from beacon_orchestrator.stores import SQLiteStore

pytestmark = pytest.mark.anyio

REGIONS = ("us-east", "eu-west", "asia-pacific")


def spec(**kw: object) -> JobSpec:
    return JobSpec(
        id="job",
        questions=[Question("q1", "Who are you?")],
        models=[ModelTarget("m", REGIONS)],
        **kw,  # type: ignore[arg-type]
    )


# -- the pure check ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("served", "requested"),
    [(None, "eu-west"), ("eu-west", "eu-west"), ("asia-southeast", "asia-pacific")],
)
def test_an_answer_from_the_region_asked_or_naming_none_passes(
    served: str | None, requested: str
) -> None:
    verify_served_region(requested, Response("x", served_region=served))


@pytest.mark.parametrize("served", ["us-east", "EU-WEST", "mars"])
def test_an_answer_from_another_region_is_a_permanent_wrong_region(served: str) -> None:
    with pytest.raises(WrongRegionError) as info:
        verify_served_region("asia-pacific", Response("x", served_region=served))
    error = info.value
    assert (error.code, error.transient) == ("WRONG_REGION", False)
    assert (error.requested, error.served) == ("asia-pacific", served)
    assert f"asked region 'asia-pacific', but the answer was served by {served!r}" in str(error)


class _Static:
    def __init__(self, regions: Collection[str] | None) -> None:
        self.regions = regions

    def endpoint_regions(self) -> Collection[str] | None:
        return self.regions

    async def execute(self, request: ExecutionRequest) -> Response:
        raise AssertionError("never called")


def test_the_static_check_names_every_missing_region_and_the_executor() -> None:
    executor = _Static({"us-east"})
    assert isinstance(executor, SupportsRegions)
    with pytest.raises(PreflightError) as info:
        check_endpoint_regions(executor, REGIONS)
    assert str(info.value) == (
        "_Static has no endpoint for regions 'eu-west', 'asia-pacific' of the job "
        "(it has: 'us-east'); nothing was run"
    )
    check_endpoint_regions(_Static(None), REGIONS)  # any region
    check_endpoint_regions(_Static(set(REGIONS)), REGIONS)
    check_endpoint_regions(object(), REGIONS)  # knows nothing statically


def test_the_request_hash_is_of_canonical_json() -> None:
    assert request_sha256({"b": [1, 2], "a": "é"}) == request_sha256({"a": "é", "b": [1, 2]})
    assert request_sha256({"a": 1}) != request_sha256({"a": 2})
    assert len(request_sha256({})) == 64


# -- the system prompt of a spec -------------------------------------------------------------------


def test_system_prompts_are_templated_per_region_with_display_names() -> None:
    job = spec(
        system_prompt="You are in {place} ({region}). {not a placeholder}",
        system_prompts={"eu-west": "Europe desk."},
        display_names={"asia-pacific": "Asia-Pacific"},
    )
    assert [job.system_prompt_for(r) for r in REGIONS] == [
        "You are in the US (us-east). {not a placeholder}",
        "Europe desk.",
        "You are in Asia-Pacific (asia-pacific). {not a placeholder}",
    ]
    assert spec().system_prompt_for("us-east") is None
    assert JobSpec.from_dict(job.to_dict()) == job


@pytest.mark.parametrize(
    ("kw", "path"),
    [
        ({"system_prompt": "  "}, "system_prompt"),
        ({"system_prompts": {"sa-east": "x"}}, "system_prompts['sa-east']"),
        ({"system_prompts": {"eu-west": 5}}, "system_prompts['eu-west']"),
        ({"display_names": {"eu-west": ""}}, "display_names['eu-west']"),
    ],
)
def test_a_bad_prompt_field_is_a_spec_error_naming_it(kw: dict[str, object], path: str) -> None:
    with pytest.raises(SpecError) as info:
        spec(**kw)
    assert [p.path for p in info.value.problems] == [path]


def test_a_document_declares_its_regions_and_prompts() -> None:
    doc = {
        "id": "j",
        "questions": [{"id": "q", "prompt": "p"}],
        "models": [{"id": "m", "regions": ["EU", "BR"]}],
        "regions": [{"name": "sa-east", "display_name": "Brazil", "aliases": ["BR"]}],
        "system_prompt": "Based in {place}.",
        "system_prompts": {"Europe": "Europe desk."},
    }
    job = JobSpec.from_dict(doc)
    assert job.regions == ("eu-west", "sa-east")
    assert job.display_names == {"sa-east": "Brazil"}
    assert job.system_prompts == {"eu-west": "Europe desk."}
    assert job.system_prompt_for("sa-east") == "Based in Brazil."
    assert JobSpec.from_dict(job.to_dict()) == job


@pytest.mark.parametrize(
    ("change", "path", "fragment"),
    [
        ({"models": [{"id": "m", "regions": ["Mars"]}]}, "models[0].regions[0]", "unknown region"),
        ({"models": [{"id": "m", "regions": ["eu-wset"]}]}, "models[0].regions[0]", "'eu-west'?"),
        ({"models": [{"id": "m", "regions": ["\u212a"]}]}, "models[0].regions[0]", "KELVIN"),
        ({"regions": [{"name": "sa east"}]}, "regions[0].name", "lower-case letters"),
        ({"regions": [{"name": "x1", "colour": "red"}]}, "regions[0].colour", "unknown field"),
        ({"regions": "sa-east"}, "regions", "expected a list of regions"),
        ({"system_prompts": {"mars": "x"}}, "system_prompts['mars']", "unknown region"),
        ({"system_prompt": 3}, "system_prompt", "expected the prompt text"),
    ],
)
def test_a_bad_region_or_prompt_in_a_document_is_named(
    change: dict[str, object], path: str, fragment: str
) -> None:
    doc: dict[str, object] = {
        "id": "j",
        "questions": [{"id": "q", "prompt": "p"}],
        "models": [{"id": "m", "regions": ["us-east"]}],
        **change,
    }
    with pytest.raises(SpecError) as info:
        JobSpec.from_dict(doc)
    problems = {p.path: p.message for p in info.value.problems}
    assert path in problems, problems
    assert fragment in problems[path]


# -- a user's executor in a job ------------------------------------------------------------------


async def test_a_users_executor_is_held_to_the_served_region_and_gets_the_system_prompt() -> None:
    seen: list[ExecutionRequest] = []

    async def answer(request: ExecutionRequest) -> Response:
        seen.append(request)
        # Asia is served by its GPU app, which calls itself asia-southeast; Europe is not.
        served = {"us-east": None, "eu-west": "us-east", "asia-pacific": "asia-southeast"}
        return Response(
            "fine",
            served_region=served[request.region],
            system_prompt=request.system_prompt,
            request_sha256=request_sha256({"prompt": request.prompt}),
        )

    job = spec(system_prompt="Based in {place}.")
    result = await run_job(job, FunctionExecutor(answer))
    records = {r.key.region: r for r in result.records}
    assert (records["us-east"].status, records["us-east"].served_region) == (
        ExecutionStatus.COMPLETED,
        None,
    )
    assert (records["asia-pacific"].status, records["asia-pacific"].served_region) == (
        ExecutionStatus.COMPLETED,
        "asia-pacific",
    )
    wrong = records["eu-west"]
    assert (wrong.status, wrong.error_code, wrong.served_region, wrong.attempts) == (
        ExecutionStatus.FAILED,
        "WRONG_REGION",
        "us-east",
        1,
    )
    assert wrong.text is None
    assert {r.region: r.system_prompt for r in seen} == {
        "us-east": "Based in the US.",
        "eu-west": "Based in Europe.",
        "asia-pacific": "Based in Asia.",
    }
    assert records["us-east"].system_prompt == "Based in the US."
    assert records["us-east"].request_sha256 == request_sha256({"prompt": "Who are you?"})


async def test_the_new_record_fields_survive_sqlite(tmp_path: Path) -> None:
    async def answer(request: ExecutionRequest) -> Response:
        return Response(
            "ok",
            served_region=request.region,
            system_prompt=request.system_prompt,
            request_sha256="ab" * 32,
        )

    async with SQLiteStore(tmp_path / "jobs.db") as store:
        result = await run_job(
            spec(system_prompt="In {place}."), FunctionExecutor(answer), store=store
        )
    async with SQLiteStore(tmp_path / "jobs.db") as store:
        stored = await store.records("job")
    assert sorted(stored, key=_key) == sorted(result.records, key=_key)
    assert {(r.served_region, r.request_sha256) for r in stored} == {
        (region, "ab" * 32) for region in REGIONS
    }
    assert {r.system_prompt for r in stored} == {"In the US.", "In Europe.", "In Asia."}


def _key(record: ExecutionRecord) -> ExecutionKey:
    return record.key


async def test_nothing_is_stored_when_the_static_check_refuses() -> None:
    store = MemoryStore()
    with pytest.raises(PreflightError, match="'asia-pacific'"):
        await run_job(spec(), _Static({"us-east", "eu-west"}), store=store)
    assert await store.jobs() == []


async def test_a_stored_spec_with_a_region_it_never_declared_still_loads(tmp_path: Path) -> None:
    """Earlier releases kept any slug as a region; their stored specs must still resume."""
    job = JobSpec(
        id="old", questions=[Question("q1", "Who?")], models=[ModelTarget("m", ["sa-east"])]
    )
    path = tmp_path / "jobs.db"
    async with SQLiteStore(path) as store:
        await store.open_job(job)
    old = job.to_dict()
    del old["regions"]  # as the previous release wrote it
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE jobs SET spec = ? WHERE id = 'old'", (json.dumps(old),))
    async with SQLiteStore(path) as store:
        assert await store.load_spec("old") == job
        await store.open_job(job)  # the same spec: no conflict
