"""What every HTTP executor shares: secrets, client ownership, deadlines and error classes.

The classification of HTTP failures lives here once, so the three adapters agree on it:

================================================  ==================  ======================
what happened                                     exception           code
================================================  ==================  ======================
could not connect / connect timed out             ``TransientError``  ``CONNECT_ERROR`` /
                                                                      ``CONNECT_TIMEOUT``
no answer in time (read, write, pool)             ``TransientError``  ``READ_TIMEOUT``, ...
connection dropped before / while answering       ``TransientError``  ``CONNECTION_DROPPED``
HTTP 408, 429, 5xx                                ``TransientError``  ``HTTP_<status>``
                                                  (``retry_after`` from ``Retry-After``)
other HTTP 3xx/4xx                                ``PermanentError``  ``HTTP_<status>``
a body that is not JSON                           ``PermanentError``  ``MALFORMED_RESPONSE``
JSON of an unexpected shape                       ``PermanentError``  ``UNEXPECTED_RESPONSE``
================================================  ==================  ======================

Secrets never leave this layer: they are held in :class:`Secret` (whose ``repr`` and ``str``
are ``***``), sent only in request headers, and scrubbed from every text an error carries.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Self

import anyio
import httpx
from attrs import define, field, frozen

from .._errors import PermanentError, TransientError, UsageError
from .._executor import ExecutionRequest

__all__ = [
    "AdapterConfigError",
    "Secret",
    "parse_retry_after",
]

logger = logging.getLogger("beacon_orchestrator.adapters")

_EXCERPT_LIMIT = 300
_WS = re.compile(r"\s+")
_UNESCAPED_RUN = re.compile(r"[A-Za-z0-9 !#$%()*+,.:;=?@^_`{|}~-]+")
_HEADER_UNSAFE = re.compile(r"[^A-Za-z0-9._:@/#+=-]")


class AdapterConfigError(UsageError, ValueError):
    """An adapter was configured with an invalid argument (the message names it)."""


@frozen(repr=False)
class Secret:
    """A token or API key that never shows itself by accident.

    ``repr``, ``str`` and f-strings give ``***``; only :meth:`reveal` returns the value, and the
    adapters call it only to build a request header.

    Example:
        >>> key = Secret("sk-123")
        >>> key, f"{key}"
        (***, '***')
        >>> key.reveal()
        'sk-123'
    """

    _value: str = field(alias="value")

    def reveal(self) -> str:
        """The secret value itself (for a request header, nothing else)."""
        return self._value

    def __repr__(self) -> str:
        return "***"

    __str__ = __repr__


def to_secret(value: str | Secret | None) -> Secret | None:
    """Wrap a token given as an argument; ``None`` and ``""`` mean "no token"."""
    if value is None:
        return None
    if isinstance(value, Secret):
        return value if value.reveal() else None
    if not isinstance(value, str):
        raise AdapterConfigError(
            f"a token must be a str or Secret, got a {type(value).__name__} (value hidden)"
        )
    return Secret(value) if value else None


def secret_from_env(name: str) -> Secret | None:
    """The token in environment variable ``name``, if it is set and not empty."""
    return to_secret(os.environ.get(name))


def env_secret_factory(name: str) -> Callable[[], Secret | None]:
    """An attrs default factory reading ``name`` from the environment at construction."""

    def factory() -> Secret | None:
        return secret_from_env(name)

    return factory


@frozen
class Scrubber:
    """Replaces every secret it knows with ``***`` in text and in nested JSON values."""

    secrets: tuple[str, ...] = ()

    @classmethod
    def of(cls, *secrets: Secret | None) -> Scrubber:
        """A scrubber for the given secrets (``None`` ignored)."""
        return cls(tuple(s.reveal() for s in secrets if s is not None))

    def for_body(self, content: bytes) -> Scrubber:
        """This scrubber if a secret may occur in a JSON body, else one that does nothing.

        Scrubbing a parsed answer walks all of it; a substring test on the raw bytes makes the
        common case (no secret in the answer) free. The test looks for the longest run of the
        secret made of characters JSON encoders leave alone, so it finds the secret however
        the server encoded ``/``, quotes, ``<>&`` (Go escapes them) or non-ASCII characters;
        a secret without such a run of 4 characters is always scrubbed.
        """
        for secret in self.secrets:
            runs = _UNESCAPED_RUN.findall(secret)
            longest = max(runs, key=len, default="")
            if len(longest) < min(4, len(secret)) or longest.encode() in content:
                return self
        return _NO_SCRUB

    def text(self, value: str) -> str:
        """``value`` with each secret replaced by ``***``."""
        for secret in self.secrets:
            value = value.replace(secret, "***")
        return value

    def value(self, value: Any) -> Any:
        """A copy of a JSON value with each secret replaced in every string (keys included)."""
        if not self.secrets:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value


_NO_SCRUB = Scrubber()


def trim(text: str, limit: int = _EXCERPT_LIMIT) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    text = _WS.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def excerpt(response: httpx.Response, scrubber: Scrubber) -> str:
    """A short, scrubbed, one-line excerpt of a response body for an error message."""
    try:
        body = response.text
    except (UnicodeDecodeError, LookupError):
        body = response.content.decode("utf-8", "replace")
    body = scrubber.text(body)
    return trim(body) if body.strip() else "<empty body>"


def display_url(url: httpx.URL | str) -> str:
    """The URL without user info, query or fragment (those may carry credentials)."""
    u = httpx.URL(url)
    port = f":{u.port}" if u.port is not None else ""
    return f"{u.scheme}://{u.host}{port}{u.path}"


def same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    """Whether two URLs share scheme, host and port (where a token may be sent)."""
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)


def check_url(value: Any, what: str) -> str:
    """Validate an absolute http(s) URL given for ``what``; return it without a trailing ``/``."""
    if not isinstance(value, str):
        raise AdapterConfigError(
            f"{what}: expected an http(s) URL string, got {type(value).__name__} {value!r}"
        )
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise AdapterConfigError(
            f"{what}: expected an absolute http:// or https:// URL, got {value!r}"
        )
    return value.rstrip("/")


def trace_id(request: ExecutionRequest) -> str:
    """A header-safe id naming this attempt, so router logs can be joined with records."""
    key = request.key
    raw = f"{request.job_id}/{key.question_id}/{key.model_id}@{key.region}#{request.attempt}"
    return _HEADER_UNSAFE.sub("_", raw)[:200]


# -- parameters -------------------------------------------------------------------------


def number_param(params: Mapping[str, Any], name: str, default: float) -> float:
    """``params[name]`` as a number, or ``default``; a wrong type is a permanent failure."""
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PermanentError(
            f"params.{name}: expected a finite number, got {trim(repr(value), 80)}",
            code="INVALID_PARAMS",
        )
    return value


def int_param(params: Mapping[str, Any], name: str, default: int) -> int:
    """``params[name]`` as a positive int, or ``default``; anything else is permanent."""
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PermanentError(
            f"params.{name}: expected a positive integer, got {trim(repr(value), 80)}",
            code="INVALID_PARAMS",
        )
    return value


# -- Retry-After ------------------------------------------------------------------------


def parse_retry_after(value: str | None, *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait according to an HTTP ``Retry-After`` header value.

    Accepts both forms of RFC 9110: a number of seconds (``"120"``; a fraction is tolerated)
    and an HTTP-date (``"Wed, 21 Oct 2015 07:28:00 GMT"``), which is compared with ``now()``
    (seconds since the epoch). A date in the past gives ``0.0``.

    Args:
        value: The header value, or ``None`` when the header is absent.
        now: The wall clock, for HTTP-dates.

    Returns:
        Seconds (``>= 0``), or ``None`` when the header is absent or unreadable.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        # RFC 9110 dates are always GMT; a naive result means the zone was "-0000".
        return None
    return max(when.timestamp() - now(), 0.0)


# -- deadlines and timeouts -------------------------------------------------------------


def effective_deadline(request: ExecutionRequest, timeout: float | None) -> float | None:
    """The attempt's deadline, else ``now + timeout``, else ``None`` (unbounded)."""
    if request.deadline is not None:
        return request.deadline
    if timeout is None:
        return None
    return anyio.current_time() + timeout


def httpx_timeout(deadline: float | None, connect: float, margin: float) -> httpx.Timeout:
    """Httpx timeouts that never end an exchange before the attempt's deadline.

    Reading, writing and waiting for a pooled connection may go on until ``margin`` seconds
    after the deadline, so whoever set the deadline (the scheduler) interrupts the attempt
    first and records a timeout; httpx's own timeouts only catch a deadline nobody enforces.
    Connecting is bounded by ``connect`` too: a host that does not accept a connection in that
    time is not going to do the work.
    """
    if deadline is None:
        return httpx.Timeout(connect=connect, read=None, write=None, pool=None)
    left = max(deadline - anyio.current_time(), 0.0) + margin
    return httpx.Timeout(connect=min(connect, left), read=left, write=left, pool=left)


# -- sending and classifying --------------------------------------------------------------


def _transport_error(exc: httpx.HTTPError, what: str, url: str, scrubber: Scrubber) -> Exception:
    kind = type(exc).__name__
    detail = trim(scrubber.text(str(exc)), 160)
    suffix = f" ({kind}: {detail})" if detail else f" ({kind})"
    transient: dict[type[httpx.HTTPError], tuple[str, str]] = {
        httpx.ConnectTimeout: ("CONNECT_TIMEOUT", "timed out connecting to"),
        httpx.ReadTimeout: ("READ_TIMEOUT", "timed out waiting for an answer from"),
        httpx.WriteTimeout: ("WRITE_TIMEOUT", "timed out sending the request to"),
        httpx.PoolTimeout: ("POOL_TIMEOUT", "timed out waiting for a free connection to"),
        httpx.ConnectError: ("CONNECT_ERROR", "could not connect to"),
        httpx.RemoteProtocolError: ("CONNECTION_DROPPED", "connection dropped by"),
        httpx.ReadError: ("CONNECTION_DROPPED", "connection broken while reading from"),
        httpx.WriteError: ("CONNECTION_DROPPED", "connection broken while sending to"),
        httpx.ProxyError: ("PROXY_ERROR", "proxy failed for"),
    }
    for cls in type(exc).__mro__:
        if cls in transient:
            code, text = transient[cls]
            return TransientError(f"{what}: {text} {url}{suffix}", code=code)
    if isinstance(exc, httpx.DecodingError):
        return PermanentError(
            f"{what}: undecodable body from {url}{suffix}", code="MALFORMED_RESPONSE"
        )
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError):
        return PermanentError(f"{what}: cannot send to {url}{suffix}", code="INVALID_REQUEST")
    if isinstance(exc, httpx.TransportError):
        return TransientError(f"{what}: network error with {url}{suffix}", code="NETWORK_ERROR")
    return PermanentError(f"{what}: HTTP error with {url}{suffix}", code="HTTP_ERROR")


async def send(
    client: httpx.AsyncClient,
    method: str,
    url: str | httpx.URL,
    *,
    what: str,
    scrubber: Scrubber,
    timeout: httpx.Timeout,
    headers: Mapping[str, str] | None = None,
    json_body: Any = None,
    params: Mapping[str, str] | None = None,
) -> httpx.Response:
    """Send one request and return its response, whatever its status.

    Transport failures become :class:`TransientError` / :class:`PermanentError` (see the module
    docstring); the original httpx exception is not chained, because it holds the request and
    therefore its headers. Cancellation is not caught: httpx closes the connection on the way
    out, which is how the provider learns to stop.
    """
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("%s: %s %s", what, method, scrubber.text(display_url(url)))
    try:
        return await client.request(
            method,
            url,
            headers=headers,
            json=json_body,
            params=params,
            timeout=timeout,
            follow_redirects=False,
        )
    except httpx.InvalidURL:
        shown = scrubber.text(display_url(url))
        error: Exception = PermanentError(f"{what}: invalid URL {shown}", code="INVALID_URL")
    except httpx.HTTPError as exc:
        shown = scrubber.text(display_url(url))
        error = _transport_error(exc, what, shown, scrubber)
    logger.debug("%s: %s %s failed: %s", what, method, shown, error)
    raise error


async def request_json(
    client: httpx.AsyncClient,
    method: str,
    url: str | httpx.URL,
    *,
    what: str,
    scrubber: Scrubber,
    timeout: httpx.Timeout,
    headers: Mapping[str, str] | None = None,
    json_body: Any = None,
    params: Mapping[str, str] | None = None,
) -> tuple[httpx.Response, dict[str, Any]]:
    """Send a request; return the answer and its JSON object (see ``send`` and ``ok_json``)."""
    response = await send(
        client,
        method,
        url,
        what=what,
        scrubber=scrubber,
        timeout=timeout,
        headers=headers,
        json_body=json_body,
        params=params,
    )
    return response, ok_json(response, what=what, scrubber=scrubber)


def ok_json(response: httpx.Response, *, what: str, scrubber: Scrubber) -> dict[str, Any]:
    """The JSON object of a 2xx answer; the right error for any other status or body."""
    raise_for_status(response, what=what, scrubber=scrubber)
    return json_object(response, what=what, scrubber=scrubber)


def raise_for_status(response: httpx.Response, *, what: str, scrubber: Scrubber) -> None:
    """Raise the right error for a non-2xx response (see the module docstring)."""
    status = response.status_code
    if 200 <= status < 300:
        return
    url = scrubber.text(display_url(response.request.url))
    message = f"{what}: HTTP {status} from {url}: {excerpt(response, scrubber)}"
    code = f"HTTP_{status}"
    if status in (408, 429) or status >= 500:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        raise TransientError(message, code=code, retry_after=retry_after)
    raise PermanentError(message, code=code)


def json_object(response: httpx.Response, *, what: str, scrubber: Scrubber) -> dict[str, Any]:
    """The response body as a JSON object, or a :class:`PermanentError` quoting it."""
    try:
        data = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        url = scrubber.text(display_url(response.request.url))
        raise PermanentError(
            f"{what}: body from {url} is not JSON: {excerpt(response, scrubber)}",
            code="MALFORMED_RESPONSE",
        ) from None
    if not isinstance(data, dict):
        problem = f"expected a JSON object, got {type(data).__name__}"
        raise unexpected(what, problem, response, scrubber)
    return data


def unexpected(
    what: str, problem: str, response: httpx.Response, scrubber: Scrubber
) -> PermanentError:
    """A :class:`PermanentError` for JSON of the wrong shape, naming the problem."""
    url = scrubber.text(display_url(response.request.url))
    return PermanentError(
        f"{what}: unexpected answer from {url}: {problem}: {excerpt(response, scrubber)}",
        code="UNEXPECTED_RESPONSE",
    )


def optional_str(value: Any) -> str | None:
    """``value`` if it is a string, else ``None`` (for loosely typed status documents)."""
    return value if isinstance(value, str) else None


def optional_float(value: Any) -> float | None:
    """``value`` as a float if it is a number (not a bool), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def optional_int(value: Any) -> int | None:
    """``value`` if it is an int (not a bool), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def str_tuple(value: Any) -> tuple[str, ...]:
    """Strings of a list, or the keys of an object; anything else gives ``()``."""
    if isinstance(value, Mapping):
        return tuple(str(k) for k in value)
    if isinstance(value, list | tuple):
        return tuple(v for v in value if isinstance(v, str))
    return ()


def drop_none(items: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """A dict of the pairs whose value is not ``None``."""
    return {k: v for k, v in items if v is not None}


# -- the client-owning base ---------------------------------------------------------------


def _positive(name: str) -> Callable[[Any, Any, Any], None]:
    def check(_: Any, __: Any, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise AdapterConfigError(f"{name}: expected a number of seconds > 0, got {value!r}")

    return check


def _non_negative(name: str) -> Callable[[Any, Any, Any], None]:
    def check(_: Any, __: Any, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            raise AdapterConfigError(f"{name}: expected a number of seconds >= 0, got {value!r}")

    return check


def _optional_positive(name: str) -> Callable[[Any, Any, float | None], None]:
    inner = _positive(name)

    def check(inst: Any, attr: Any, value: float | None) -> None:
        if value is not None:
            inner(inst, attr, value)

    return check


def _check_client(_: Any, __: Any, value: Any) -> None:
    if value is not None and not isinstance(value, httpx.AsyncClient):
        raise AdapterConfigError(
            f"client: expected an httpx.AsyncClient or None, got {type(value).__name__}"
        )


@define
class HttpExecutorBase:
    """Client ownership, timeouts and secret scrubbing shared by the HTTP executors.

    Args:
        client: An ``httpx.AsyncClient`` to send with. Its own timeouts are overridden per
            request (see ``timeout``); closing it is the caller's job. Without one, the
            executor makes its own on entering ``async with`` (or on first use) and closes it
            in :meth:`aclose` / on leaving ``async with``.
        timeout: How long an attempt may take when its request carries no deadline
            (``None``: as long as the server works). With a deadline, the deadline rules:
            no httpx timeout ends an exchange before it.
        connect_timeout: Seconds to establish a connection.
        deadline_margin: httpx's read timeout is set this long after the deadline, so that
            the scheduler's own interruption (recorded as a timeout) comes first.
        health_timeout: Seconds a health, provider or model listing request may take
            (these do no GPU work, so a short bound keeps a hung service from stalling
            a preflight).
    """

    client: httpx.AsyncClient | None = field(
        default=None, kw_only=True, repr=False, validator=_check_client
    )
    timeout: float | None = field(
        default=None, kw_only=True, validator=_optional_positive("timeout")
    )
    connect_timeout: float = field(
        default=10.0, kw_only=True, validator=_positive("connect_timeout")
    )
    deadline_margin: float = field(
        default=1.0, kw_only=True, validator=_non_negative("deadline_margin")
    )
    health_timeout: float = field(default=30.0, kw_only=True, validator=_positive("health_timeout"))
    _owned_client: httpx.AsyncClient | None = field(init=False, default=None, repr=False)

    def _http(self) -> httpx.AsyncClient:
        if self.client is not None:
            return self.client
        if self._owned_client is None:
            self._owned_client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.connect_timeout, read=None, write=None, pool=None),
                # The scheduler bounds concurrency; a pool cap here would only queue work
                # silently behind it.
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=100),
                follow_redirects=False,
            )
        return self._owned_client

    def _scrubber(self) -> Scrubber:
        return Scrubber()

    def _timeout(self, deadline: float | None) -> httpx.Timeout:
        return httpx_timeout(deadline, self.connect_timeout, self.deadline_margin)

    def _health_timeout(self) -> httpx.Timeout:
        bound = self.health_timeout
        return httpx.Timeout(
            connect=min(self.connect_timeout, bound), read=bound, write=bound, pool=bound
        )

    async def aclose(self) -> None:
        """Close the client this executor made (an injected client is left open)."""
        owned, self._owned_client = self._owned_client, None
        if owned is not None:
            await owned.aclose()

    async def __aenter__(self) -> Self:
        # Making a client loads TLS certificates (a few hundred ms the first time): do it
        # here, before the job, rather than inside the first attempt and its timeout.
        self._http()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
