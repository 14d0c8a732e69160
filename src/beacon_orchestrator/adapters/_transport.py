"""Sending one request within the attempt's deadline, and naming what went wrong.

Transport failures and HTTP statuses are classified here once, so the three adapters agree:

================================================  ==================  ======================
what happened                                     exception           code
================================================  ==================  ======================
could not connect / connect timed out             ``TransientError``  ``CONNECT_ERROR`` /
                                                                      ``CONNECT_TIMEOUT``
no answer in time (read, write, pool)             ``TransientError``  ``READ_TIMEOUT``, ...
connection dropped before / while answering       ``TransientError``  ``CONNECTION_DROPPED``
the whole exchange outlasted its deadline          ``TransientError``  ``READ_TIMEOUT``
(a body trickling in: no single read times out)
HTTP 408, 429, 5xx                                ``TransientError``  ``HTTP_<status>``
                                                  (``retry_after`` from ``Retry-After``)
other HTTP 3xx/4xx                                ``PermanentError``  ``HTTP_<status>``
a 2xx body longer than the call's ``max_bytes``   ``PermanentError``  ``RESPONSE_TOO_LARGE``
================================================  ==================  ======================

A body that announces its length within the limit, uncompressed, is read as httpx reads it
(its framing bounds it); any other is read as a stream and counted as it arrives (after
decompression), so an endless or oversized answer costs at most ``max_bytes`` of memory before
it is refused. The body of an error status is only ever quoted, so it is cut at 64 KiB
instead. (What a 2xx body may be wrong
about is ``_decoding``'s business.)
"""

from __future__ import annotations

import email.utils
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import httpx
from attrs import frozen

from .._errors import ExecutionError, PermanentError, TransientError
from .._executor import ExecutionRequest
from ._secrets import Scrubber
from ._text import display_url, excerpt, trim

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "Call",
    "effective_deadline",
    "fixed_timeout",
    "httpx_timeout",
    "logger",
    "new_client",
    "parse_retry_after",
    "raise_for_status",
    "send",
]

logger = logging.getLogger("beacon_orchestrator.adapters")

DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024
"""The largest answer body an executor reads by default: 8 MiB (an LLM answer is kilobytes)."""

# An error status's body is only quoted in a message: this much is more than enough.
_ERROR_BODY_LIMIT = 64 * 1024
# Headers that describe the body as it came over the wire, not the decoded bytes kept.
_FRAMING = frozenset({"content-encoding", "content-length", "transfer-encoding"})


def new_client(connect_timeout: float) -> httpx.AsyncClient:
    """A client for an executor to own: no pool cap, no redirects, per-request timeouts."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(connect_timeout, read=None, write=None, pool=None),
        # The scheduler bounds concurrency; a pool cap here would only queue work silently
        # behind it.
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=100),
        follow_redirects=False,
    )


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


def fixed_timeout(bound: float, connect: float) -> httpx.Timeout:
    """Httpx timeouts ending an exchange after ``bound`` seconds (connecting: ``connect``)."""
    return httpx.Timeout(connect=min(connect, bound), read=bound, write=bound, pool=bound)


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


# -- sending and classifying --------------------------------------------------------------


@frozen
class Call:
    """One HTTP request to send.

    Attributes:
        method: ``GET`` or ``POST``.
        url: Where to send it.
        what: What error messages and log lines call the exchange (``"Modal us-east, …"``).
        timeout: Its httpx timeouts (see :func:`httpx_timeout` and :func:`fixed_timeout`).
        headers: Its headers (the only place a secret is sent).
        json_body: A value to send as JSON, or ``None`` for no body.
        params: Its query parameters.
        deadline: When (on the event loop's clock) the whole exchange, body included, must be
            over; ``None`` for no bound beyond httpx's per-operation timeouts, which a body
            trickling in a byte at a time never trips.
        max_bytes: The most bytes of a 2xx body to read; a longer one is refused.
    """

    method: str
    url: str | httpx.URL
    what: str
    timeout: httpx.Timeout
    headers: Mapping[str, str] | None = None
    json_body: Any = None
    params: Mapping[str, str] | None = None
    deadline: float | None = None
    max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES


async def send(client: httpx.AsyncClient, call: Call, scrubber: Scrubber) -> httpx.Response:
    """Send one request and return its response, body read, whatever its status.

    Transport failures become :class:`TransientError` / :class:`PermanentError` (see the module
    docstring); the original httpx exception is not chained, because it holds the request and
    therefore its headers. Cancellation is not caught: httpx closes the connection on the way
    out, which is how the provider learns to stop.
    """
    what, method, url = call.what, call.method, call.url
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("%s: %s %s", what, method, scrubber.text(display_url(url)))
    try:
        return await _exchange(client, call, scrubber)
    except httpx.InvalidURL:
        shown = scrubber.text(display_url(url))
        error: Exception = PermanentError(f"{what}: invalid URL {shown}", code="INVALID_URL")
    except httpx.HTTPError as exc:
        shown = scrubber.text(display_url(url))
        error = _transport_error(exc, what, shown, scrubber)
    except ExecutionError as exc:
        shown, error = scrubber.text(display_url(url)), exc
    logger.debug("%s: %s %s failed: %s", what, method, shown, error)
    raise error


async def _exchange(client: httpx.AsyncClient, call: Call, scrubber: Scrubber) -> httpx.Response:
    """The request sent and its whole (bounded) answer read, by the call's deadline."""
    request = client.build_request(
        call.method,
        call.url,
        headers=call.headers,
        json=call.json_body,
        params=call.params,
        timeout=call.timeout,
    )
    if call.deadline is None:
        return await _answer(client, request, call, scrubber)
    with anyio.CancelScope(deadline=call.deadline):
        return await _answer(client, request, call, scrubber)
    # Only this scope's deadline gets here: any other cancellation propagates.
    shown = scrubber.text(display_url(call.url))
    raise TransientError(
        f"{call.what}: the answer from {shown} was still arriving when its deadline passed",
        code="READ_TIMEOUT",
    )


async def _answer(
    client: httpx.AsyncClient, request: httpx.Request, call: Call, scrubber: Scrubber
) -> httpx.Response:
    response = await client.send(request, stream=True, follow_redirects=False)
    try:
        if _fits(response, _limit(response, call)):
            # The common case, read as httpx reads it: the framing (h11 and h2 both hold a
            # body to its Content-Length) already bounds it, and nothing decompresses it.
            await response.aread()
            return response
        body = await _read_body(response, call, scrubber)
    finally:
        await response.aclose()
    return _with_body(response, body)


def _limit(response: httpx.Response, call: Call) -> int:
    """How much of this response's body may be read (an error's is only quoted)."""
    if 200 <= response.status_code < 300:
        return call.max_bytes
    return min(call.max_bytes, _ERROR_BODY_LIMIT)


def _fits(response: httpx.Response, limit: int) -> bool:
    """Whether the body announces a length within ``limit``, and is not compressed."""
    declared = _content_length(response)
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    return declared is not None and declared <= limit and encoding in ("", "identity")


async def _read_body(response: httpx.Response, call: Call, scrubber: Scrubber) -> bytes:
    """The body, read a chunk at a time and never past its limit.

    Raises:
        PermanentError: ``RESPONSE_TOO_LARGE``, as soon as a 2xx body is known to exceed
            ``call.max_bytes`` (from its ``Content-Length``, or while counting).
    """
    ok = 200 <= response.status_code < 300
    limit = _limit(response, call)
    declared = _content_length(response)
    if ok and declared is not None and declared > limit:
        raise _too_large(call, scrubber, f"it announces {declared} bytes")
    chunks: list[bytes] = []
    size, over = 0, False
    # Stopping early is a cancellation, not a break: it unwinds httpx's chain of async
    # generators from the socket read up, where a break would abandon them half-way (trio
    # warns of each, and nothing would close them).
    with anyio.CancelScope() as reading:
        async for chunk in response.aiter_bytes():
            if over:
                continue  # what was already decoded; the next read raises the cancellation
            if size + len(chunk) > limit:
                over = True
                # An error's body is only quoted: keep its start, drop the rest unread.
                chunks.append(chunk[: limit - size])
                reading.cancel()
                continue
            size += len(chunk)
            chunks.append(chunk)
    if over and ok:
        raise _too_large(call, scrubber, "more bytes arrived")
    return b"".join(chunks)


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length", "")
    return int(value) if value.isdigit() else None


def _too_large(call: Call, scrubber: Scrubber, why: str) -> PermanentError:
    shown = scrubber.text(display_url(call.url))
    return PermanentError(
        f"{call.what}: the answer from {shown} is larger than max_response_bytes "
        f"({call.max_bytes} bytes): {why}; it was not read further",
        code="RESPONSE_TOO_LARGE",
    )


def _with_body(response: httpx.Response, body: bytes) -> httpx.Response:
    """A complete response holding ``body`` (decoded), in place of the streamed one."""
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _FRAMING]
    return httpx.Response(
        response.status_code, headers=headers, content=body, request=response.request
    )


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
