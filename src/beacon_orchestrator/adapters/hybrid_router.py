"""Executor for Beacon's hybrid router (``POST /inference``).

The router answers HTTP 200 whether the inference succeeded or not; the body says which:

- ``success: true`` → a :class:`~beacon_orchestrator.Response` (an empty ``response`` is a
  successful empty answer);
- ``error_code: "EMPTY_MODEL_RESPONSE"`` (older routers) → also a successful empty answer;
- ``success: false`` → :class:`~beacon_orchestrator.TransientError` when
  ``failure.transient`` is true, :class:`~beacon_orchestrator.PermanentError` when it is false.
  When the router does not say, the code decides: ``PROVIDER_UNAVAILABLE`` (no healthy
  provider in the region *now*: health checks flap and no GPU time was spent, so a retry is
  cheap; a region that is down for good is what :meth:`HybridRouterExecutor.preflight` is
  for), ``ROUTER_INTERNAL_ERROR``, ``MODAL_REQUEST_FAILED`` and ``PROVIDER_HTTP_408``,
  ``PROVIDER_HTTP_429`` and ``PROVIDER_HTTP_5xx`` are transient; every other code is permanent.

Non-200 answers (a proxy in front of the router) and transport failures are classified like
every adapter's (see :mod:`beacon_orchestrator.adapters`).

The API key comes from the ``api_key`` argument or the ``BEACON_ROUTER_API_KEY`` environment
variable and is sent as ``Authorization: Bearer <key>``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
from attrs import Factory, define, evolve, field, frozen

from .._errors import ExecutionError, PreflightError
from .._executor import ExecutionRequest, Response, request_sha256
from .._spec import RegionTable
from ._base import HttpExecutorBase
from ._config import AdapterConfigError, check_url, name_map
from ._decoding import (
    answer,
    answer_text,
    optional_float,
    optional_int,
    optional_str,
    reported_failure,
    str_tuple,
    timestamp,
    unexpected,
)
from ._params import generation_params, trace_id
from ._regions import beacon_prompt, flag, normalised_keys, region_table, served_region
from ._secrets import Scrubber, Secret, env_secret_factory, to_secret
from ._text import display_url
from ._usage import router_usage

__all__ = ["ROUTER_API_KEY_ENV", "HybridRouterExecutor", "RouterHealth", "RouterProvider"]

ROUTER_API_KEY_ENV = "BEACON_ROUTER_API_KEY"
"""Environment variable read for the router's API key when ``api_key`` is not given."""

_TRANSIENT_CODES = frozenset(
    {"PROVIDER_UNAVAILABLE", "ROUTER_INTERNAL_ERROR", "MODAL_REQUEST_FAILED", "PROVIDER_HTTP_408"}
)
_PROVIDER_HTTP = re.compile(r"PROVIDER_HTTP_(\d{3})")
_EMPTY_LEGACY = "EMPTY_MODEL_RESPONSE"


def code_is_transient(code: str) -> bool:
    """Whether a router error code is transient when the router's ``failure`` does not say."""
    if code in _TRANSIENT_CODES:
        return True
    match = _PROVIDER_HTTP.fullmatch(code)
    return match is not None and (match[1] == "429" or match[1] >= "500")


@frozen
class RouterProvider:
    """One provider as the router's ``GET /providers`` lists it.

    Attributes:
        name: The provider's name.
        type: Its kind (``modal``, ...).
        region: The region it serves, in the router's naming.
        healthy: Whether the router's last health check passed.
        cost_per_second: Its cost, if reported.
        avg_latency: Its mean latency in seconds, if reported.
        success_rate: Its recent success rate, if reported.
        last_health_check: When it was last checked, in seconds since the epoch (the router
            writes a number; an ISO 8601 text is read too), or ``None``.
        raw: The provider's whole JSON object.
    """

    name: str
    type: str | None
    region: str | None
    healthy: bool
    cost_per_second: float | None = None
    avg_latency: float | None = None
    success_rate: float | None = None
    last_health_check: float | None = None
    raw: Mapping[str, Any] = field(factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RouterProvider:
        """Build from one entry of ``providers`` (missing fields become ``None``)."""
        return cls(
            name=str(data.get("name", "")),
            type=optional_str(data.get("type")),
            region=optional_str(data.get("region")),
            healthy=data.get("healthy") is True,
            cost_per_second=optional_float(data.get("cost_per_second")),
            avg_latency=optional_float(data.get("avg_latency")),
            success_rate=optional_float(data.get("success_rate")),
            last_health_check=timestamp(data.get("last_health_check")),
            raw=dict(data),
        )


@frozen
class RouterHealth:
    """The router's ``GET /health`` answer.

    Attributes:
        status: The router's own status word (``healthy``, ...).
        timestamp: When it answered, in seconds since the epoch (the router writes a number;
            an ISO 8601 text is read too), or ``None``.
        version: The router's version.
        providers_total: How many providers it knows.
        providers_healthy: How many of them passed their last health check.
        regions: The regions it serves (the keys, when it reports an object per region).
        raw: The whole JSON answer.
    """

    status: str | None
    timestamp: float | None = None
    version: str | None = None
    providers_total: int | None = None
    providers_healthy: int | None = None
    regions: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(factory=dict, repr=False)

    @property
    def healthy(self) -> bool:
        """Whether the router says it is healthy."""
        return self.status == "healthy"


def _base_url(value: Any) -> str:
    return check_url(value, "base_url")


def _path(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise AdapterConfigError(f"path: expected a URL path starting with '/', got {value!r}")
    return value


def _region_map(value: Any) -> dict[str, str]:
    return name_map(value, "region_map", of="region to router region", kind="region", str_keys=True)


def _api_key(value: str | Secret | None) -> Secret | None:
    return to_secret(value, "api_key")


@define
class HybridRouterExecutor(HttpExecutorBase):
    """Sends executions to Beacon's hybrid router, ``POST {base_url}/inference``.

    Example:
        >>> executor = HybridRouterExecutor("http://router:8000", api_key="...")
        >>> # result = await run_job(spec, executor)

    Args:
        base_url: The router's base URL (``http://router:8000``).
        api_key: The router's API key (``str`` or :class:`Secret`). Default: the
            ``BEACON_ROUTER_API_KEY`` environment variable; pass ``None`` to send none.
        path: The inference path (older deployments: ``/v1/inference``, ``/api/v1/inference``).
        region_map: Region → the router's region name, where they differ (the router's own
            names are the canonical ones, so usually empty). Keys are normalised through
            ``regions``; an unknown key, or two keys for one region, is an
            :class:`AdapterConfigError` naming them.
        cost_priority: Sent as ``cost_priority``: ``False`` by default, as Beacon's runner
            sends it; ``None`` leaves it out.
        regions: The :class:`~beacon_orchestrator.RegionTable` that normalises region names
            (default: Beacon's three regions and their aliases).
        verify_region: Check the region each answer reports (``metadata.region``, else the
            region ``provider_used`` ends with, as in ``modal-eu-west``) against the one asked
            (default ``True``): another region fails the execution with the permanent
            ``WRONG_REGION``, an answer naming none with ``REGION_NOT_REPORTED``.
        client: See :class:`~beacon_orchestrator.adapters.HttpExecutorBase`.
        timeout: See :class:`~beacon_orchestrator.adapters.HttpExecutorBase`.
        connect_timeout: See :class:`~beacon_orchestrator.adapters.HttpExecutorBase`.
        deadline_margin: See :class:`~beacon_orchestrator.adapters.HttpExecutorBase`.
        health_timeout: See :class:`~beacon_orchestrator.adapters.HttpExecutorBase`.
        max_response_bytes: See :class:`~beacon_orchestrator.adapters.HttpExecutorBase`.

    The generation parameters ``temperature`` (default 0.1) and ``max_tokens`` (default 500)
    come from the request's ``params``. A system prompt is sent in Beacon's text form (lines
    ``system``, the system prompt, ``user``, the question, ``assistant``) as the ``prompt``.
    Each request carries an ``X-Trace-Id`` header naming the job, key and attempt; it is kept
    in the response metadata as ``trace_id``.
    """

    base_url: str = field(converter=_base_url)
    api_key: Secret | None = field(
        default=Factory(env_secret_factory(ROUTER_API_KEY_ENV)),
        kw_only=True,
        converter=_api_key,
    )
    path: str = field(default="/inference", kw_only=True, converter=_path)
    region_map: Mapping[str, str] = field(factory=dict, kw_only=True, converter=_region_map)
    cost_priority: bool | None = field(default=False, kw_only=True)
    regions: RegionTable = field(default=None, kw_only=True, converter=region_table)
    verify_region: bool = field(default=True, kw_only=True, validator=flag("verify_region"))
    _canonical: dict[str, str] = field(init=False, factory=dict, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.cost_priority is not None and not isinstance(self.cost_priority, bool):
            raise AdapterConfigError(
                f"cost_priority: expected True, False or None, got {self.cost_priority!r}"
            )
        self.region_map = normalised_keys(self.region_map, "region_map", self.regions)
        # What the router reports back is in its own names: read them through this map too.
        self._canonical = {name: region for region, name in self.region_map.items()}

    def _secret(self) -> Secret | None:
        return self.api_key

    def _router_region(self, region: str) -> str:
        return self.region_map.get(region, region)

    async def execute(self, request: ExecutionRequest) -> Response:
        """Send one attempt to the router and map its answer.

        Raises:
            TransientError: The router (or the network) says another attempt may succeed.
            PermanentError: It will not (unknown model, bad request, malformed answer).
        """
        body: dict[str, Any] = {
            "model": request.model,
            "prompt": beacon_prompt(request.prompt, request.system_prompt),
            **generation_params(request.params),
            "region_preference": self._router_region(request.region),
        }
        if self.cost_priority is not None:
            body["cost_priority"] = self.cost_priority
        trace = trace_id(request)
        what = f"hybrid router, {request.key}"
        response, data = await self._post_json(
            self.base_url + self.path,
            body,
            what=what,
            deadline=self._deadline(request),
            headers={**self._headers(), "X-Trace-Id": trace},
        )
        result = _interpret(data, response, what=what, trace=trace, scrubber=self._scrubber())
        served = None
        if self.verify_region:
            served = served_region(
                self._reported_region(data), self.regions, what=what, field="'metadata.region'"
            )
        return evolve(
            result,
            served_region=served,
            system_prompt=request.system_prompt,
            request_sha256=request_sha256(body),
        )

    def _reported_region(self, data: Mapping[str, Any]) -> str | None:
        """``metadata.region``; else the region ``provider_used`` ends with (``modal-eu-west``)."""
        meta = data.get("metadata")
        reported = meta.get("region") if isinstance(meta, dict) else None
        if isinstance(reported, str) and reported.strip():
            return self._canonical.get(reported, reported)
        provider = data.get("provider_used")
        if not isinstance(provider, str) or not provider.isascii():
            return None
        words = provider.split("-")
        for i in range(1, len(words)):
            tail = "-".join(words[i:])
            tail = self._canonical.get(tail, tail)
            if self.regions.lookup(tail) is not None:
                return tail
        return None

    async def providers(self, region: str | None = None) -> tuple[RouterProvider, ...]:
        """The router's providers (``GET /providers``), optionally of one canonical region.

        Raises:
            TransientError: The router could not be reached or failed (5xx, timeout).
            PermanentError: It answered something that is not a list of providers.
        """
        what = "hybrid router providers"
        params = None if region is None else {"region": self._router_region(region)}
        response, data = await self._get_json(
            self.base_url + "/providers", what=what, params=params
        )
        scrubber = self._scrubber()
        items = data.get("providers")
        if not isinstance(items, list) or not all(isinstance(p, dict) for p in items):
            raise unexpected(what, "expected 'providers': a list of objects", response, scrubber)
        return tuple(RouterProvider.from_json(scrubber.value(p)) for p in items)

    async def health(self) -> RouterHealth:
        """The router's own health (``GET /health``).

        Raises:
            TransientError: The router could not be reached or failed (5xx, timeout).
            PermanentError: It answered something that is not a JSON object.
        """
        data = await self._get_scrubbed(self.base_url + "/health", what="hybrid router health")
        return RouterHealth(
            status=optional_str(data.get("status")),
            timestamp=timestamp(data.get("timestamp")),
            version=optional_str(data.get("version")),
            providers_total=optional_int(data.get("providers_total")),
            providers_healthy=optional_int(data.get("providers_healthy")),
            regions=str_tuple(data.get("regions")),
            raw=data,
        )

    async def preflight(self, regions: Sequence[str]) -> None:
        """Check that every region has at least one healthy provider.

        Raises:
            PreflightError: Naming every region without a healthy provider, or saying why the
                router's provider list could not be read.
        """
        try:
            providers = await self.providers()
        except ExecutionError as exc:
            raise PreflightError(
                f"could not check regions {', '.join(map(repr, regions))}: {exc.message}"
            ) from None
        healthy = {p.region for p in providers if p.healthy}
        missing = [r for r in regions if self._router_region(r) not in healthy]
        if missing:
            names = ", ".join(repr(r) for r in missing)
            raise PreflightError(
                f"no healthy provider at the hybrid router {display_url(self.base_url)} "
                f"for region{'s' if len(missing) > 1 else ''} {names}"
            )


def _interpret(
    data: dict[str, Any], response: httpx.Response, *, what: str, trace: str, scrubber: Scrubber
) -> Response:
    scrubber = scrubber.for_body(response.content)
    success = data.get("success")
    error_code = data.get("error_code")
    raw_meta = data.get("metadata")
    meta: Mapping[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
    if success is True or error_code == _EMPTY_LEGACY:
        return answer(
            answer_text(data, response, what=what, scrubber=scrubber),
            provider=optional_str(data.get("provider_used")),
            metadata=[
                ("inference_time", optional_float(data.get("inference_time"))),
                ("cost_estimate", optional_float(data.get("cost_estimate"))),
                ("provider_type", meta.get("provider_type")),
                ("region", meta.get("region")),
                ("model", meta.get("model")),
                ("trace_id", trace),
                ("legacy_error_code", _EMPTY_LEGACY if error_code == _EMPTY_LEGACY else None),
            ],
            receipt=meta.get("receipt"),
            usage=router_usage(data),
            scrubber=scrubber,
        )
    if success is not False:
        problem = f"expected 'success' to be true or false, got {success!r}"
        raise unexpected(what, problem, response, scrubber)
    raise _failure(data, meta, what=what, scrubber=scrubber)


def _failure(
    data: Mapping[str, Any], meta: Mapping[str, Any], *, what: str, scrubber: Scrubber
) -> ExecutionError:
    failure = data.get("failure")
    if not isinstance(failure, dict):
        failure = meta.get("failure")
    if not isinstance(failure, dict):
        failure = {}
    code = (
        optional_str(data.get("error_code")) or optional_str(failure.get("code")) or "ROUTER_ERROR"
    )
    flag = failure.get("transient")
    reason = (
        optional_str(data.get("error"))
        or optional_str(failure.get("message"))
        or "no error message"
    )
    where = [
        f"{k}={failure[k]}"
        for k in ("stage", "component", "provider", "http_status")
        if failure.get(k) is not None
    ]
    detail = f" ({', '.join(where)})" if where else ""
    return reported_failure(
        f"{what}: {code}: {reason}{detail}",
        code=code,
        transient=flag if isinstance(flag, bool) else code_is_transient(code),
        scrubber=scrubber,
    )
