"""The parts the three adapters share, each on its own (the adapters' tests cover them in use)."""

from __future__ import annotations

from typing import cast

import anyio
import httpx
import pytest

from beacon_orchestrator import PermanentError, PreflightError, TransientError
from beacon_orchestrator.adapters import AdapterConfigError, Secret
from beacon_orchestrator.adapters._config import name_map, per_region
from beacon_orchestrator.adapters._decoding import answer, answer_text, reported_failure
from beacon_orchestrator.adapters._params import generation_params
from beacon_orchestrator.adapters._preflight import check_regions
from beacon_orchestrator.adapters._secrets import Scrubber, bearer

SCRUB = Scrubber.of(Secret("tok-123"))


def response(content: bytes = b"{}") -> httpx.Response:
    return httpx.Response(200, content=content, request=httpx.Request("POST", "http://svc/x"))


# -- constructor arguments ----------------------------------------------------------------


def test_name_map_checks_values_and_optionally_keys() -> None:
    assert name_map(None, "m", of="a to b", kind="model", str_keys=True) == {}
    # model_map has always let a non-string key through (it can never match a model id).
    kept = name_map({1: "x"}, "m", of="a to b", kind="model", str_keys=False)
    assert cast("dict[object, str]", kept) == {1: "x"}
    with pytest.raises(AdapterConfigError, match=r"m\[1\]: expected a non-empty model name"):
        name_map({1: "x"}, "m", of="a to b", kind="model", str_keys=True)
    with pytest.raises(AdapterConfigError, match=r"m\['a'\]: .* got ''"):
        name_map({"a": ""}, "m", of="a to b", kind="model", str_keys=False)
    with pytest.raises(AdapterConfigError, match="m: expected a mapping of a to b, got list"):
        name_map([], "m", of="a to b", kind="model", str_keys=False)


def test_per_region_names_the_region_for_each_value() -> None:
    made = per_region({"us": 1, "eu": 2}, "urls", lambda region, v: f"{region}={v}")
    assert made == {"us": "us=1", "eu": "eu=2"}
    assert per_region(None, "urls", lambda region, v: v) == {}
    with pytest.raises(AdapterConfigError, match="urls: expected non-empty region names"):
        per_region({"": 1}, "urls", lambda region, v: v)


# -- requests -------------------------------------------------------------------------------


def test_generation_params_defaults_and_checks() -> None:
    assert generation_params({}) == {"temperature": 0.1, "max_tokens": 500}
    assert generation_params({"temperature": 0, "max_tokens": 7}) == {
        "temperature": 0,
        "max_tokens": 7,
    }
    with pytest.raises(PermanentError) as info:
        generation_params({"max_tokens": True})
    assert info.value.code == "INVALID_PARAMS"


def test_bearer_header_only_with_a_secret() -> None:
    assert bearer(None) == {}
    assert bearer(Secret("k")) == {"Authorization": "Bearer k"}


# -- answers --------------------------------------------------------------------------------


def test_answer_text_null_is_empty_and_a_non_string_is_unexpected() -> None:
    assert answer_text({"response": None}, response(), what="svc", scrubber=SCRUB) == ""
    assert answer_text({}, response(), what="svc", scrubber=SCRUB) == ""
    with pytest.raises(PermanentError) as info:
        answer_text({"response": 3}, response(), what="svc", scrubber=SCRUB)
    assert info.value.code == "UNEXPECTED_RESPONSE"


def test_answer_drops_none_scrubs_and_keeps_only_an_object_receipt() -> None:
    made = answer(
        "hi",
        provider="p",
        metadata=[("a", None), ("b", "x tok-123")],
        receipt={"k": "tok-123"},
        scrubber=SCRUB,
    )
    assert (made.text, made.provider) == ("hi", "p")
    assert made.metadata == {"b": "x ***"}
    assert made.receipt == {"k": "***"}
    assert answer("", provider=None, metadata=[], receipt=[1], scrubber=SCRUB).receipt is None


@pytest.mark.parametrize(("transient", "cls"), [(True, TransientError), (False, PermanentError)])
def test_reported_failure_is_scrubbed_trimmed_and_classified(
    transient: bool, cls: type[Exception]
) -> None:
    error = reported_failure(
        "svc: E: tok-123 " + "x" * 600, code="E", transient=transient, scrubber=SCRUB
    )
    assert type(error) is cls
    assert error.code == "E"
    assert "tok-123" not in error.message
    assert error.message.startswith("svc: E: *** ")
    assert len(error.message) <= 500


# -- preflight ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_check_regions_probes_each_region_once_and_names_every_problem() -> None:
    probed: list[str] = []

    async def probe(region: str) -> str | None:
        probed.append(region)
        await anyio.sleep(0)
        if region == "eu":
            raise TransientError("unreachable", code="CONNECT_ERROR")
        return "down" if region == "ap" else None

    with pytest.raises(PreflightError) as info:
        await check_regions(["ap", "us", "eu", "us"], probe, "Svc")
    assert sorted(probed) == ["ap", "eu", "us"]
    assert str(info.value) == "Svc regions not usable: 'ap': down; 'eu': unreachable"
    await check_regions(["us"], probe, "Svc")
