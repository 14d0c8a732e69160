"""Executor for any OpenAI-compatible ``/v1/chat/completions`` server.

vLLM, Ollama, llama.cpp's server, LiteLLM and OpenAI itself speak this protocol, so users can
probe models that are not behind Beacon's router. The prompt is sent as one user message,
preceded by a system message when the job sends a system prompt (or, for older code,
``params["system_prompt"]`` is set); the answer is
``choices[0].message.content``, where ``null`` or ``""`` is a successful empty answer.

The API key comes from the ``api_key`` argument or the ``OPENAI_API_KEY`` environment variable
and is sent as ``Authorization: Bearer <key>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx
from attrs import Factory, define, evolve, field

from .._errors import PermanentError
from .._executor import ExecutionRequest, Response, request_sha256
from .._spec import RegionTable
from ._base import HttpExecutorBase
from ._config import AdapterConfigError, check_url, name_map, per_region
from ._decoding import answer, optional_str, reported_failure, unexpected
from ._params import generation_params
from ._preflight import check_regions
from ._regions import normalised_keys, region_table
from ._secrets import Scrubber, Secret, env_secret_factory, to_secret
from ._text import trim
from ._usage import openai_usage

__all__ = ["OPENAI_API_KEY_ENV", "OpenAICompatExecutor"]

OPENAI_API_KEY_ENV = "OPENAI_API_KEY"
"""Environment variable read for the API key when ``api_key`` is not given."""

# Sampling parameters passed through from the job's params when present.
_PASSTHROUGH = ("top_p", "seed", "stop", "presence_penalty", "frequency_penalty")


def _api_root(base_url: str) -> str:
    # OpenAI's documented base URL already ends in /v1; local servers are given without it.
    base = base_url.rstrip("/")
    return base if base.endswith("/v1") else base + "/v1"


def _optional_url(value: Any) -> str | None:
    return None if value is None else check_url(value, "base_url")


def _url_map(value: Any) -> dict[str, str]:
    return per_region(
        value, "base_urls", lambda region, url: check_url(url, f"base_urls[{region!r}]")
    )


ModelNames = str | Mapping[str, str]
"""What ``model_map`` gives a model: one served name, or a served name per region."""


def _model_map(value: Any) -> dict[str, ModelNames]:
    if value is not None and not isinstance(value, Mapping):
        raise AdapterConfigError(
            f"model_map: expected a mapping of model id to served name, got {type(value).__name__}"
        )
    plain = {k: v for k, v in (value or {}).items() if not isinstance(v, Mapping)}
    result: dict[str, ModelNames] = dict(
        name_map(plain, "model_map", of="model id to served name", kind="model", str_keys=False)
    )
    for model, names in (value or {}).items():
        if isinstance(names, Mapping):
            where = f"model_map[{model!r}]"
            result[model] = name_map(
                names, where, of="region to served name", kind="model", str_keys=True
            )
    return result


def _api_key(value: str | Secret | None) -> Secret | None:
    return to_secret(value, "api_key")


@define
class OpenAICompatExecutor(HttpExecutorBase):
    """Sends executions to an OpenAI-compatible chat-completions server.

    Example:
        >>> executor = OpenAICompatExecutor(
        ...     "http://localhost:8000", model_map={"llama3.2-1b": "meta-llama/Llama-3.2-1B"}
        ... )

    Args:
        base_url: The server for every region not in ``base_urls`` (``http://host:8000`` or
            ``https://api.openai.com/v1``; ``/v1`` is added when missing). ``None`` when
            ``base_urls`` lists every region; a request for another region then fails with
            a :class:`~beacon_orchestrator.PermanentError` naming it.
        base_urls: Region → server, for models served per region. Keys are normalised
            through ``regions`` (``EU`` is ``eu-west``); an unknown key, or two keys for one
            region, is an :class:`AdapterConfigError` naming them.
        model_map: Job model id → the name the server knows it by (default: the same), or
            → a mapping of region → name, for a gateway that serves each region's deployment
            under its own name (a LiteLLM proxy: ``{"llama3.2-1b": {"eu-west":
            "llama3.2-1b-eu", ...}}``). A region missing from such a mapping fails its
            executions with the permanent ``NO_ENDPOINT``.
        regions: The :class:`~beacon_orchestrator.RegionTable` that normalises region names
            (default: Beacon's three regions and their aliases).
        api_key: The server's API key (``str`` or :class:`Secret`). Default: the
            ``OPENAI_API_KEY`` environment variable; pass ``None`` to send none.
        client: See :class:`~beacon_orchestrator.adapters.HttpExecutorBase`.
        timeout: See :class:`~beacon_orchestrator.adapters.HttpExecutorBase`.
        connect_timeout: See :class:`~beacon_orchestrator.adapters.HttpExecutorBase`.
        deadline_margin: See :class:`~beacon_orchestrator.adapters.HttpExecutorBase`.
        health_timeout: See :class:`~beacon_orchestrator.adapters.HttpExecutorBase`.
        max_response_bytes: See :class:`~beacon_orchestrator.adapters.HttpExecutorBase`.

    ``temperature`` (default 0.1) and ``max_tokens`` (default 500) come from the request's
    ``params``, as do ``top_p``, ``seed``, ``stop``, ``presence_penalty`` and
    ``frequency_penalty`` when present, and ``system_prompt``.

    Raises:
        AdapterConfigError: Neither ``base_url`` nor ``base_urls`` given, or a malformed URL.
    """

    base_url: str | None = field(default=None, converter=_optional_url)
    base_urls: Mapping[str, str] = field(factory=dict, kw_only=True, converter=_url_map)
    model_map: Mapping[str, ModelNames] = field(factory=dict, kw_only=True, converter=_model_map)
    api_key: Secret | None = field(
        default=Factory(env_secret_factory(OPENAI_API_KEY_ENV)),
        kw_only=True,
        converter=_api_key,
    )

    regions: RegionTable = field(default=None, kw_only=True, converter=region_table)

    def __attrs_post_init__(self) -> None:
        if self.base_url is None and not self.base_urls:
            raise AdapterConfigError(
                "base_url: expected a server URL (or base_urls per region), got None"
            )
        self.base_urls = normalised_keys(self.base_urls, "base_urls", self.regions)
        self.model_map = {
            model: names
            if isinstance(names, str)
            else normalised_keys(names, f"model_map[{model!r}]", self.regions)
            for model, names in self.model_map.items()
        }

    def endpoint_regions(self) -> frozenset[str] | None:
        """The regions of ``base_urls``; ``None`` (any region) when ``base_url`` is given."""
        return None if self.base_url is not None else frozenset(self.base_urls)

    def _served_model(self, model: str, region: str) -> str:
        names = self.model_map.get(model, model)
        if isinstance(names, str):
            return names
        served = names.get(region)
        if served is None:
            raise PermanentError(
                f"model_map[{model!r}] names no served model for region {region!r} "
                f"(it names: {', '.join(map(repr, sorted(names)))})",
                code="NO_ENDPOINT",
            )
        return served

    def _secret(self) -> Secret | None:
        return self.api_key

    def _root(self, region: str | None) -> str:
        url = self.base_url if region is None else self.base_urls.get(region, self.base_url)
        if url is None:
            configured = ", ".join(repr(r) for r in sorted(self.base_urls))
            raise PermanentError(
                f"no OpenAI-compatible server configured for region {region!r} "
                f"(configured: {configured}; no default base_url)",
                code="NO_ENDPOINT",
            )
        return _api_root(url)

    async def execute(self, request: ExecutionRequest) -> Response:
        """Send one attempt as a chat completion and return the first choice's text.

        Raises:
            TransientError: Connect errors, timeouts, 408, 429 (with ``retry_after``), 5xx.
            PermanentError: Other 4xx, no server for the region, a malformed answer.
        """
        root = self._root(request.region)
        params = request.params
        served = self._served_model(request.model, request.region)
        system = request.system_prompt
        if system is None:
            system = params.get("system_prompt")
        body: dict[str, Any] = {
            "model": served,
            "messages": _messages(request.prompt, system),
            **generation_params(params),
        }
        for name in _PASSTHROUGH:
            if name in params:
                body[name] = params[name]
        what = f"OpenAI-compatible server, {request.key}"
        response, data = await self._post_json(
            root + "/chat/completions", body, what=what, deadline=self._deadline(request)
        )
        result = _interpret(data, response, what=what, served=served, scrubber=self._scrubber())
        # Such a server does not say where it ran: nothing to verify (served_region stays None).
        return evolve(result, system_prompt=system, request_sha256=request_sha256(body))

    async def models(self, region: str | None = None) -> tuple[str, ...]:
        """The model ids the server for ``region`` (default: ``base_url``) lists at ``/v1/models``.

        Raises:
            TransientError: The server could not be reached or failed (5xx, timeout).
            PermanentError: No server for the region, or an answer that is not a model list.
        """
        what = "OpenAI-compatible server models"
        response, data = await self._get_json(self._root(region) + "/models", what=what)
        scrubber = self._scrubber()
        items = data.get("data")
        if not isinstance(items, list) or not all(
            isinstance(m, dict) and isinstance(m.get("id"), str) for m in items
        ):
            problem = "expected 'data': a list of objects with an 'id'"
            raise unexpected(what, problem, response, scrubber)
        return tuple(scrubber.text(m["id"]) for m in items)

    async def preflight(self, regions: Sequence[str]) -> None:
        """Check every region has a server that answers ``GET /v1/models``.

        Raises:
            PreflightError: Naming every region without a server or whose server failed.
        """
        await check_regions(regions, self._models_problem, "OpenAI-compatible")

    async def _models_problem(self, region: str) -> str | None:
        await self.models(region)
        return None


def _messages(prompt: str, system: Any) -> list[dict[str, str]]:
    """The chat: the prompt as one user message, after ``system_prompt`` when there is one."""
    if system is None:
        return [{"role": "user", "content": prompt}]
    if not isinstance(system, str):
        raise PermanentError(
            f"params.system_prompt: expected a string, got {trim(repr(system), 80)}",
            code="INVALID_PARAMS",
        )
    return [{"role": "system", "content": system}, {"role": "user", "content": prompt}]


def _netloc(url: httpx.URL) -> str:
    return url.host if url.port is None else f"{url.host}:{url.port}"


def _content_text(content: Any) -> str | None:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    # Some servers answer with a list of typed parts; the text parts make the answer.
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        return "".join(
            p["text"] for p in content if p.get("type") == "text" and isinstance(p.get("text"), str)
        )
    return None


def _interpret(
    data: dict[str, Any], response: httpx.Response, *, what: str, served: str, scrubber: Scrubber
) -> Response:
    scrubber = scrubber.for_body(response.content)
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        error = data.get("error")
        if isinstance(error, dict | str):
            detail = error.get("message") if isinstance(error, dict) else error
            raise reported_failure(
                f"{what}: server reported an error: {detail}",
                code="PROVIDER_ERROR",
                transient=False,
                scrubber=scrubber,
            )
        raise unexpected(what, "expected 'choices': a non-empty list", response, scrubber)
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        raise unexpected(what, "expected 'choices[0].message': an object", response, scrubber)
    text = _content_text(message.get("content"))
    if text is None:
        problem = "expected 'choices[0].message.content': a string or null"
        raise unexpected(what, problem, response, scrubber)
    usage = data.get("usage")
    return answer(
        text,
        provider=_netloc(response.request.url),
        metadata=[
            ("id", optional_str(data.get("id"))),
            ("model", optional_str(data.get("model")) or served),
            ("finish_reason", optional_str(choice.get("finish_reason"))),
            ("usage", usage if isinstance(usage, dict) else None),
        ],
        usage=openai_usage(data),
        scrubber=scrubber,
    )
