"""Tokens that cannot be sent are refused when an executor is built, without quoting them;
and every form a token may be quoted in is scrubbed."""

from __future__ import annotations

import json
import logging
import re
import string
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import anyio
import pytest
from attrs import define
from click.testing import CliRunner
from hypothesis import given, reject
from hypothesis import strategies as st

from beacon_orchestrator import (
    ExecutionStatus,
    JobSpec,
    ModelTarget,
    PermanentError,
    Question,
    UsageError,
    run_job,
)
from beacon_orchestrator.adapters import (
    MODAL_TOKEN_ENV,
    OPENAI_API_KEY_ENV,
    ROUTER_API_KEY_ENV,
    AdapterConfigError,
    HybridRouterExecutor,
    ModalExecutor,
    OpenAICompatExecutor,
    Secret,
)
from beacon_orchestrator.adapters._secrets import Scrubber, bearer, secret_forms, token_problem
from beacon_orchestrator.cli import cli

from .fake_beacon import HostileServer, serve_hostile
from .support import CANARY, AnyHttpExecutor, make_request


def router(**kw: Any) -> AnyHttpExecutor:
    return HybridRouterExecutor("http://router.test", **kw)


def modal(**kw: Any) -> AnyHttpExecutor:
    return ModalExecutor({"us-east": "https://m.test"}, **kw)


def openai(**kw: Any) -> AnyHttpExecutor:
    return OpenAICompatExecutor("http://llm.test", **kw)


# adapter -> (how to build it, the name of its token argument, its environment variable)
BUILD: dict[str, tuple[Callable[..., AnyHttpExecutor], str, str]] = {
    "router": (router, "api_key", ROUTER_API_KEY_ENV),
    "modal": (modal, "token", MODAL_TOKEN_ENV),
    "openai": (openai, "api_key", OPENAI_API_KEY_ENV),
}

# A bad token, and words its error must hold.
BAD_TOKENS: list[tuple[str, str]] = [
    (CANARY + "\n", "strip the trailing newline"),
    (CANARY + "\r\n", "strip the trailing newline"),
    (CANARY + "\r", "ends with a carriage return"),
    (" " + CANARY, "starts with a space"),
    (CANARY + "\t", "ends with a tab"),
    (CANARY[:10] + "\n" + CANARY[10:], "contains a newline (\\n) at position 11"),
    (CANARY[:10] + "\r" + CANARY[10:], "contains a carriage return"),
    (CANARY[:10] + "\x00" + CANARY[10:], "contains a NUL byte"),
    (CANARY[:10] + "\x7f" + CANARY[10:], "control character U+007F"),
    (CANARY[:10] + "\x85" + CANARY[10:], "control character U+0085"),
    (CANARY[:10] + "é" + CANARY[10:], "not ASCII at position 11"),
    ("\n", "only white space"),
]
BAD_IDS = [
    "LF",
    "CRLF",
    "CR",
    "space",
    "tab",
    "inner-LF",
    "CR",
    "NUL",
    "DEL",
    "C1",
    "non-ASCII",
    "ws",
]


def parts_of(token: str, size: int = 4) -> set[str]:
    """Every run of ``size`` characters of the token: none may show in an error."""
    core = token.strip()
    return {core[i : i + size] for i in range(len(core) - size + 1)}


def assert_hidden(message: str, token: str) -> None:
    shown = sorted(p for p in parts_of(token) if p in message)
    assert shown == [], f"{message!r} shows {shown}"


@pytest.mark.parametrize("adapter", sorted(BUILD))
@pytest.mark.parametrize(("token", "words"), BAD_TOKENS, ids=BAD_IDS)
def test_a_bad_token_argument_is_refused_naming_the_argument_not_the_token(
    adapter: str, token: str, words: str
) -> None:
    build, argument, _ = BUILD[adapter]
    for given_as in (token, Secret(token)):
        with pytest.raises(AdapterConfigError) as info:
            build(**{argument: given_as})
        message = str(info.value)
        assert isinstance(info.value, UsageError)
        assert message.startswith(f"{argument}: unusable token (value hidden): ")
        assert words in message
        assert_hidden(message, token)
        assert_hidden(repr(info.value), token)


@pytest.mark.parametrize("adapter", sorted(BUILD))
@pytest.mark.parametrize(("token", "words"), BAD_TOKENS[:3], ids=BAD_IDS[:3])
def test_a_bad_token_in_the_environment_is_refused_naming_the_variable(
    adapter: str, token: str, words: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    build, _, variable = BUILD[adapter]
    monkeypatch.setenv(variable, token)
    with pytest.raises(AdapterConfigError) as info:
        build()
    message = str(info.value)
    assert message.startswith(f"environment variable {variable}: unusable token")
    assert words in message
    assert_hidden(message, token)


def test_setting_a_bad_token_later_is_refused_too() -> None:
    executor = HybridRouterExecutor("http://router.test", api_key=CANARY)
    with pytest.raises(AdapterConfigError, match="api_key: unusable token"):
        executor.api_key = Secret(CANARY + "\n")
    assert executor.api_key is not None
    assert executor.api_key.reveal() == CANARY


@pytest.mark.parametrize("empty", [None, "", Secret("")])
def test_no_token_is_still_no_token(empty: Any) -> None:
    assert HybridRouterExecutor("http://router.test", api_key=empty).api_key is None


def test_token_problem_accepts_every_printable_ascii_token() -> None:
    assert token_problem(string.ascii_letters + string.digits + string.punctuation) is None
    assert token_problem("sk-proj-a b") is None  # an inner space is a valid header value


def test_bearer_refuses_a_token_that_met_no_converter() -> None:
    with pytest.raises(PermanentError) as info:
        bearer(Secret(CANARY + "\n"))
    assert info.value.code == "INVALID_TOKEN"
    assert_hidden(str(info.value), CANARY)


def test_the_command_line_names_the_variable_and_the_fix(tmp_path: Path) -> None:
    job = tmp_path / "job.json"
    spec = JobSpec(
        id="token-job", questions=[Question("q", "hi")], models=[ModelTarget("m", ["us-east"])]
    )
    job.write_text(json.dumps(spec.to_dict()))
    result = CliRunner().invoke(
        cli,
        [
            *("run", str(job), "--store", str(tmp_path / "b.db"), "--progress", "off"),
            *("--executor", "openai", "--openai-base-url", "http://127.0.0.1:9"),
        ],
        env={OPENAI_API_KEY_ENV: CANARY + "\n"},
    )
    assert result.exit_code == 2, result.output
    assert f"environment variable {OPENAI_API_KEY_ENV}: unusable token" in result.stderr
    assert "strip the trailing newline" in result.stderr
    assert_hidden(result.output, CANARY)


# -- every quoted form is scrubbed ----------------------------------------------------------

FORMS: dict[str, Callable[[str], str]] = {
    "plain": str,
    "repr": repr,
    "ascii": ascii,
    "bytes repr": lambda t: repr(t.encode()),
    "json": json.dumps,
    "json unicode": lambda t: json.dumps(t, ensure_ascii=False),
    "json slashes": lambda t: json.dumps(t).replace("/", "\\/"),
    "percent": lambda t: quote(t, safe=""),
    "percent lower": lambda t: re.sub("%[0-9A-F]{2}", lambda m: m[0].lower(), quote(t, safe="")),
    "form": lambda t: quote_plus(t, safe=""),
}


# "*" is left out: "***" replaces the token, and must not make it up again with the text.
@given(
    token=st.text(st.characters(exclude_characters="*"), min_size=6),
    form=st.sampled_from(sorted(FORMS)),
)
def test_every_quoted_form_of_a_token_is_scrubbed(token: str, form: str) -> None:
    """Invariant: a message quoting the token in any common escaped form keeps none of it."""
    try:
        quoted = FORMS[form](token)
    except UnicodeEncodeError:
        reject()  # a lone surrogate has no UTF-8 form to quote it in
    scrubbed = Scrubber.of(Secret(token)).text(f"header refused: {quoted}; again: {quoted}")
    assert token not in scrubbed
    assert quoted not in scrubbed
    assert scrubbed.count("***") >= 2


def test_a_token_with_a_lone_surrogate_is_scrubbed_not_an_error() -> None:
    # os.environ holds bytes that are not UTF-8 as lone surrogates: a token read from there
    # must still be scrubbed, in its plain and its percent-quoted forms.
    token = "sk-abc\udc80def"
    scrubber = Scrubber.of(Secret(token))
    assert scrubber.text(f"a {token} b") == "a *** b"
    assert scrubber.text("a sk-abc%80def b") == "a *** b"


def test_the_forms_of_a_token_are_listed_longest_first() -> None:
    forms = secret_forms("a/b c\n")
    assert "a/b c\n" in forms
    assert "a/b c\\n" in forms
    assert "a%2Fb%20c%0A" in forms
    assert list(forms) == sorted(forms, key=len, reverse=True)


# -- a token that bypasses the checks is still never sent nor shown ---------------------------


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileServer]:
    with serve_hostile() as server:
        yield server


@define
class CarelessRouter(HybridRouterExecutor):
    """A subclass whose secret meets no converter (a custom executor might do this)."""

    def _secret(self) -> Secret | None:
        return Secret(CANARY + "\n")


@pytest.mark.anyio
async def test_a_token_that_skipped_the_checks_fails_the_attempt_unsent(
    hostile: HostileServer, caplog: pytest.LogCaptureFixture
) -> None:
    hostile.log.reset()
    for name in (None, "httpx", "httpcore", "beacon_orchestrator"):
        caplog.set_level(logging.DEBUG, logger=name)
    async with CarelessRouter(f"{hostile.base_url}/router", api_key=None) as executor:
        with pytest.raises(PermanentError) as info:
            await executor.execute(make_request("ok"))
        spec = JobSpec(
            id="careless", questions=[Question("q", "ok")], models=[ModelTarget("m1", ["us-east"])]
        )
        result = await run_job(spec, executor)
    assert info.value.code == "INVALID_TOKEN"
    (record,) = result.records
    assert (record.status, record.error_code) == (ExecutionStatus.FAILED, "INVALID_TOKEN")
    await anyio.sleep(0)
    assert hostile.log.snapshot() == []  # nothing was sent
    texts = [str(info.value), repr(info.value), repr(result), json.dumps(record.to_dict())]
    texts += [r.getMessage() for r in caplog.records]
    for text in texts:
        assert_hidden(text, CANARY)
