"""Executor for Beacon's per-region Modal GPU web endpoints.

Each region has its own Modal app; :class:`ModalExecutor` sends a request only to the endpoint
configured for the request's own region. A region without one is a
:class:`~beacon_orchestrator.PermanentError` naming it, never another region's URL.

Modal caps one HTTP request at 150 s. When the work takes longer, Modal answers **303** with a
``Location`` that names the running call; a ``GET`` of it waits for the result (or answers
another 303 after 150 s more). The executor follows those redirects with ``GET`` (never a
second ``POST``, which would start the work again) while the attempt's deadline allows, at
most ``max_polls`` times, and at least ``poll_interval`` apart. Modal's polls block, so the
deadline ends a real chain first; the count and the pace only matter against a server that
answers 303 at once, which would otherwise be polled as fast as the network allows.

Answers come in two forms, both accepted: ``{"success": true/false, ...}`` (single-region apps)
and ``{"status": "success"/"error", ...}`` (the multi-region app). A failure whose error says
the request itself is wrong (``Unknown model: X``, ``Prompt is required``) is permanent; any
other failure the app reports is transient (a GPU worker failing once says little about the
next attempt; the retry policy's attempts and budget bound what it costs).

The token comes from the ``token`` argument or the ``BEACON_MODAL_TOKEN`` environment variable
(not Modal's own ``MODAL_TOKEN_ID``/``MODAL_TOKEN_SECRET``, which are SDK credentials) and is
sent as ``Authorization: Bearer <token>``, only to the endpoint's own origin.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import httpx
from attrs import Factory, define, evolve, field, frozen

from .._errors import PermanentError, TransientError
from .._executor import ExecutionRequest, Response, request_sha256
from .._spec import RegionTable
from ._base import HttpExecutorBase
from ._config import AdapterConfigError, check_url, non_negative, per_region, positive_count
from ._decoding import (
    answer,
    answer_text,
    ok_json,
    optional_float,
    optional_str,
    reported_failure,
    str_tuple,
    timestamp,
    unexpected,
)
from ._params import generation_params
from ._preflight import check_regions
from ._regions import beacon_prompt, flag, normalised_keys, region_table, served_region
from ._secrets import Scrubber, Secret, env_secret_factory, same_origin, to_secret
from ._text import display_url, trim
from ._transport import Call, logger, send
from ._usage import modal_usage

__all__ = ["MODAL_TOKEN_ENV", "ModalEndpoint", "ModalExecutor", "ModalHealth"]

MODAL_TOKEN_ENV = "BEACON_MODAL_TOKEN"
"""Environment variable read for the endpoints' token when ``token`` is not given."""

_PERMANENT_ERRORS = (
    (re.compile(r"unknown model", re.IGNORECASE), "UNKNOWN_MODEL"),
    (re.compile(r"prompt is required", re.IGNORECASE), "INVALID_REQUEST"),
)


def _derive_health_url(inference_url: str) -> str | None:
    # Beacon's own rule: "-inference" becomes "-health", in the host (Modal's URLs) or else at
    # the end of the path (an app behind a proxy or on loopback: ".../inference").
    url = httpx.URL(inference_url)
    host = url.host
    if "-inference." in host:
        return str(url.copy_with(host=host.replace("-inference.", "-health.", 1))).rstrip("/")
    path = url.path.rstrip("/")
    if path.endswith("inference"):
        return str(url.copy_with(path=path[: -len("inference")] + "health", query=None))
    return None


def _inference_url(value: Any) -> str:
    return check_url(value, "inference_url")


@frozen
class ModalEndpoint:
    """The web endpoints of one region's Modal app.

    Attributes:
        inference_url: The ``POST`` inference endpoint.
        health_url: The ``GET`` health endpoint. Derived as Beacon does when not given:
            ``…-inference.modal.run`` → ``…-health.modal.run``, or a path ending in
            ``inference`` → the same path ending in ``health``.
    """

    inference_url: str = field(converter=_inference_url)
    health_url: str | None = field(default=None)

    def __attrs_post_init__(self) -> None:
        if self.health_url is None:
            object.__setattr__(self, "health_url", _derive_health_url(self.inference_url))
        else:
            object.__setattr__(self, "health_url", check_url(self.health_url, "health_url"))


def _endpoints(value: Any) -> dict[str, ModalEndpoint]:
    if not isinstance(value, Mapping):
        raise AdapterConfigError(
            "endpoints: expected a mapping of region name to URL, "
            f"got {type(value).__name__} {trim(repr(value), 80)}"
        )
    return per_region(value, "endpoints", _endpoint)


def _endpoint(region: str, spec: Any) -> ModalEndpoint:
    if isinstance(spec, ModalEndpoint):
        return spec
    if isinstance(spec, str):
        return ModalEndpoint(check_url(spec, f"endpoints[{region!r}]"))
    raise AdapterConfigError(
        f"endpoints[{region!r}]: expected a URL string or ModalEndpoint, got {type(spec).__name__}"
    )


@frozen
class ModalHealth:
    """One region's ``GET health`` answer.

    Attributes:
        region: The canonical region this endpoint is configured for.
        status: The app's status word (``healthy``, ...).
        reported_region: The region the app reports about itself (may be an alias such as
            ``asia-southeast``).
        timestamp: When it answered, in seconds since the epoch (Modal writes a number; an
            ISO 8601 text is read too), or ``None``.
        models_available: Model ids it can serve (the keys when it reports an object).
        models_ready: Model ids loaded and ready (likewise).
        raw: The whole JSON answer.
    """

    region: str
    status: str | None
    reported_region: str | None = None
    timestamp: float | None = None
    models_available: tuple[str, ...] = ()
    models_ready: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(factory=dict, repr=False)

    @property
    def healthy(self) -> bool:
        """Whether the app says it is healthy."""
        return self.status == "healthy"


def _token(value: str | Secret | None) -> Secret | None:
    return to_secret(value, "token")


@define
class ModalExecutor(HttpExecutorBase):
    """Sends executions to per-region Modal web endpoints, following their 303 redirects.

    Example:
        >>> executor = ModalExecutor(
        ...     endpoints={
        ...         "us-east": "https://ws--beacon-us-inference.modal.run",
        ...         "eu-west": "https://ws--beacon-eu-inference.modal.run",
        ...     }
        ... )

    Args:
        endpoints: Region → inference URL (or :class:`ModalEndpoint` to give the health URL
            explicitly). Keys are normalised through ``regions`` when the executor is built
            (``EU`` is ``eu-west``); an unknown key, or two keys for one region, is an
            :class:`AdapterConfigError` naming them. One URL may serve several regions:
            Beacon's multi-region app routes on the ``region`` every request carries.
        regions: The :class:`~beacon_orchestrator.RegionTable` that normalises the keys and
            the regions answers report (default: Beacon's three regions and their aliases).
        verify_region: Check the region each answer reports (``region``; the APAC app says
            ``asia-southeast``) against the one asked (default ``True``): another region
            fails the execution with the permanent ``WRONG_REGION``, an answer naming none
            with ``REGION_NOT_REPORTED``. ``False`` for an app that reports nothing.
        token: The endpoints' token (``str`` or :class:`Secret`). Default: the
            ``BEACON_MODAL_TOKEN`` environment variable; pass ``None`` to send none.
        poll_interval: Least seconds between the starts of two requests of a 303 chain
            (default 1). Modal's ``GET`` blocks until the result is ready (or 150 s), so this
            only paces a server answering 303 at once.
        max_polls: Most 303 redirects followed in one attempt (default 10), so an attempt
            sends at most ``max_polls + 1`` requests. Ten of Modal's 150 s polls are 25
            minutes, past the default attempt timeout; raise it with a longer one. One more
            303 fails the attempt with the permanent ``TOO_MANY_POLLS``: a chain that long
            before the deadline means polls come back faster than Modal's, from a server
            that will not finish.
        client: See :class:`~beacon_orchestrator.adapters.HttpExecutorBase`.
        timeout: See :class:`~beacon_orchestrator.adapters.HttpExecutorBase`; it also bounds
            the 303 chain of a request that carries no deadline.
        connect_timeout: See :class:`~beacon_orchestrator.adapters.HttpExecutorBase`.
        deadline_margin: See :class:`~beacon_orchestrator.adapters.HttpExecutorBase`.
        health_timeout: See :class:`~beacon_orchestrator.adapters.HttpExecutorBase`.
        max_response_bytes: See :class:`~beacon_orchestrator.adapters.HttpExecutorBase`.

    Each request's body is ``{model, prompt, temperature, max_tokens, region}``: the
    generation parameters (defaults 0.1 and 500) come from the request's ``params``, and the
    canonical region routes Beacon's multi-region app (which runs anything else in
    ``us-east``). A system prompt is sent in Beacon's text form (lines ``system``, the
    system prompt, ``user``, the question, ``assistant``).
    """

    endpoints: Mapping[str, ModalEndpoint] = field(converter=_endpoints)
    token: Secret | None = field(
        default=Factory(env_secret_factory(MODAL_TOKEN_ENV)),
        kw_only=True,
        converter=_token,
    )
    poll_interval: float = field(default=1.0, kw_only=True, validator=non_negative("poll_interval"))
    max_polls: int = field(
        default=10, kw_only=True, validator=positive_count("max_polls", "redirects")
    )
    regions: RegionTable = field(default=None, kw_only=True, converter=region_table)
    verify_region: bool = field(default=True, kw_only=True, validator=flag("verify_region"))

    def __attrs_post_init__(self) -> None:
        self.endpoints = normalised_keys(self.endpoints, "endpoints", self.regions)

    def endpoint_regions(self) -> frozenset[str]:
        """The canonical regions this executor has an endpoint for."""
        return frozenset(self.endpoints)

    def _secret(self) -> Secret | None:
        return self.token

    def _hop_headers(self, origin: httpx.URL, url: httpx.URL) -> dict[str, str]:
        # A redirect may point elsewhere; the token goes only to the endpoint's own origin.
        return self._headers() if same_origin(origin, url) else {}

    def _endpoint(self, region: str) -> ModalEndpoint:
        endpoint = self.endpoints.get(region)
        if endpoint is None:
            configured = ", ".join(repr(r) for r in sorted(self.endpoints)) or "none"
            raise PermanentError(
                f"no Modal endpoint configured for region {region!r} (configured: {configured})",
                code="NO_ENDPOINT",
            )
        return endpoint

    async def execute(self, request: ExecutionRequest) -> Response:
        """Send one attempt to the request's region and wait for its result.

        Raises:
            TransientError: The app or the network failed in a way another attempt may fix,
                or the 303 chain was still running when the attempt's deadline passed
                (``DEADLINE_EXCEEDED``).
            PermanentError: The region has no endpoint (``NO_ENDPOINT``), the request is
                invalid, or the answer is malformed.
        """
        endpoint = self._endpoint(request.region)
        body = {
            "model": request.model,
            "prompt": beacon_prompt(request.prompt, request.system_prompt),
            **generation_params(request.params),
            "region": request.region,
        }
        what = f"Modal {request.region}, {request.key}"
        origin = httpx.URL(endpoint.inference_url)
        scrubber = self._scrubber()
        response, polls = await self._follow(origin, body, what, self._deadline(request), scrubber)
        data = ok_json(response, what=what, scrubber=scrubber)
        result = _interpret(data, response, what=what, polls=polls, scrubber=scrubber)
        served = None
        if self.verify_region:
            served = served_region(data.get("region"), self.regions, what=what, field="'region'")
        return evolve(
            result,
            served_region=served,
            system_prompt=request.system_prompt,
            request_sha256=request_sha256(body),
        )

    async def _follow(
        self, origin: httpx.URL, body: Any, what: str, deadline: float | None, scrubber: Scrubber
    ) -> tuple[httpx.Response, int]:
        """POST ``body``, then GET each 303's ``Location`` until a final answer.

        Returns:
            The final answer, whatever its status, and how many 303s were followed.

        Raises:
            PermanentError: ``TOO_MANY_POLLS`` after ``max_polls`` redirects.
            TransientError: ``DEADLINE_EXCEEDED`` when the next poll could not start before
                the deadline.
        """
        method, url, json_body, polls = "POST", origin, body, 0
        while True:
            hop_started = anyio.current_time()
            call = Call(
                method,
                url,
                what=what,
                timeout=self._timeout(deadline),
                headers=self._hop_headers(origin, url),
                json_body=json_body,
                deadline=self._cutoff(deadline),
                max_bytes=self.max_response_bytes,
            )
            response = await send(self._http(), call, scrubber)
            if response.status_code != 303:
                return response, polls
            url = _location(response, what)
            if polls >= self.max_polls:
                raise PermanentError(
                    f"{what}: still redirected after {polls} polls (max_polls={self.max_polls}) "
                    f"by {display_url(response.request.url)}; the answer never came",
                    code="TOO_MANY_POLLS",
                )
            await self._pause(hop_started, deadline, what=what, polls=polls)
            polls += 1
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("%s: following 303 #%d to %s", what, polls, display_url(url))
            # Never a second POST: that would start the work again.
            method, json_body = "GET", None

    async def _pause(
        self, hop_started: float, deadline: float | None, *, what: str, polls: int
    ) -> None:
        """Wait until ``poll_interval`` after the last hop began; never past the deadline."""
        now = anyio.current_time()
        pause = max(self.poll_interval - (now - hop_started), 0.0)
        if deadline is not None and now + pause >= deadline:
            raise TransientError(
                f"{what}: still running after {polls} polls when the attempt's deadline passed",
                code="DEADLINE_EXCEEDED",
            )
        if pause > 0:
            await anyio.sleep(pause)

    async def health(self, region: str) -> ModalHealth:
        """The health of one region's app (``GET`` its health endpoint).

        Raises:
            PermanentError: The region has no endpoint (``NO_ENDPOINT``) or no health URL
                (``NO_HEALTH_ENDPOINT``), or the answer is not a JSON object.
            TransientError: The app could not be reached or failed (5xx, timeout).
        """
        region = self.regions.lookup(region) or region
        endpoint = self._endpoint(region)
        if endpoint.health_url is None:
            raise PermanentError(
                f"no health URL for region {region!r}: give ModalEndpoint(..., health_url=...)",
                code="NO_HEALTH_ENDPOINT",
            )
        what = f"Modal {region} health"
        data = await self._get_scrubbed(httpx.URL(endpoint.health_url), what=what)
        return ModalHealth(
            region=region,
            status=optional_str(data.get("status")),
            reported_region=optional_str(data.get("region")),
            timestamp=timestamp(data.get("timestamp")),
            models_available=str_tuple(data.get("models_available")),
            models_ready=str_tuple(data.get("models_ready")),
            raw=data,
        )

    async def preflight(self, regions: Sequence[str]) -> None:
        """Check every region has an endpoint whose app reports itself healthy.

        The regions are checked concurrently.

        Raises:
            PreflightError: Naming every region without an endpoint, without a health URL,
                unreachable, or not healthy, with the reason for each.
        """
        await check_regions(regions, self._health_problem, "Modal")

    async def _health_problem(self, region: str) -> str | None:
        health = await self.health(region)
        return None if health.healthy else f"status is {health.status!r}, not 'healthy'"


def _location(response: httpx.Response, what: str) -> httpx.URL:
    """Where a 303 answer points, resolved against the URL that gave it."""
    location = response.headers.get("location")
    if not location:
        raise PermanentError(
            f"{what}: HTTP 303 without a Location header from {display_url(response.request.url)}",
            code="MALFORMED_REDIRECT",
        )
    return response.request.url.join(location)


def _succeeded(
    data: dict[str, Any], response: httpx.Response, what: str, scrubber: Scrubber
) -> bool:
    """Whether the app reports success, in either of its two answer forms."""
    if "success" in data:
        flag = data["success"]
        if not isinstance(flag, bool):
            raise unexpected(what, f"expected 'success': a bool, got {flag!r}", response, scrubber)
        return flag
    if "status" in data:
        status = data["status"]
        if status not in ("success", "error"):
            problem = f"expected 'status': 'success' or 'error', got {status!r}"
            raise unexpected(what, problem, response, scrubber)
        return bool(status == "success")
    raise unexpected(what, "expected a 'success' or 'status' field", response, scrubber)


def _interpret(
    data: dict[str, Any], response: httpx.Response, *, what: str, polls: int, scrubber: Scrubber
) -> Response:
    scrubber = scrubber.for_body(response.content)
    if _succeeded(data, response, what, scrubber):
        return answer(
            answer_text(data, response, what=what, scrubber=scrubber),
            provider="modal",
            metadata=[
                ("inference_time", optional_float(data.get("inference_time"))),
                ("region", optional_str(data.get("region"))),
                ("model", optional_str(data.get("model"))),
                ("tokens_generated", data.get("tokens_generated")),
                ("gpu_memory_used", data.get("gpu_memory_used")),
                ("polls", polls),
            ],
            receipt=data.get("receipt"),
            usage=modal_usage(data),
            scrubber=scrubber,
        )
    error = optional_str(data.get("error")) or "no error message"
    code = optional_str(data.get("error_code"))
    permanent = False
    for pattern, pattern_code in _PERMANENT_ERRORS:
        if pattern.search(error):
            permanent = True
            code = code or pattern_code
            break
    code = code or "MODAL_EXECUTION_FAILED"
    raise reported_failure(
        f"{what}: {code}: {error}", code=code, transient=not permanent, scrubber=scrubber
    )
