"""The base every HTTP executor extends: its client, its timeouts, and how it sends.

A subclass says which secret it sends (:meth:`HttpExecutorBase._secret`) and what its
service's answers mean; sending, classifying failures and scrubbing come from here. The how-to
"Probe real endpoints" (``docs/how-to/real-endpoints.md``) shows the three executors in use.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

import anyio
import httpx
from attrs import define, field

from .._executor import ExecutionRequest
from ._config import check_client, non_negative, optional_positive, positive, positive_count
from ._decoding import ok_json
from ._secrets import Scrubber, Secret, bearer
from ._transport import (
    DEFAULT_MAX_RESPONSE_BYTES,
    Call,
    effective_deadline,
    fixed_timeout,
    httpx_timeout,
    new_client,
    send,
)

__all__ = ["HttpExecutorBase"]


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
        max_response_bytes: The largest answer body read, after decompression (default
            8 MiB; an LLM answer is kilobytes). The body is counted as it arrives and a
            longer one fails the attempt at once with the permanent ``RESPONSE_TOO_LARGE``,
            so a hostile or broken server cannot fill the memory. The body of an error
            status is only quoted, so it is cut at 64 KiB instead.
    """

    client: httpx.AsyncClient | None = field(
        default=None, kw_only=True, repr=False, validator=check_client
    )
    timeout: float | None = field(
        default=None, kw_only=True, validator=optional_positive("timeout")
    )
    connect_timeout: float = field(
        default=10.0, kw_only=True, validator=positive("connect_timeout")
    )
    deadline_margin: float = field(
        default=1.0, kw_only=True, validator=non_negative("deadline_margin")
    )
    health_timeout: float = field(default=30.0, kw_only=True, validator=positive("health_timeout"))
    max_response_bytes: int = field(
        default=DEFAULT_MAX_RESPONSE_BYTES,
        kw_only=True,
        validator=positive_count("max_response_bytes", "bytes"),
    )
    _owned_client: httpx.AsyncClient | None = field(init=False, default=None, repr=False)
    # The scrubber of the secret last seen: deriving every form of a token costs more than
    # checking that it is still the same object.
    _scrubs: tuple[Secret | None, Scrubber] | None = field(init=False, default=None, repr=False)

    # -- what a subclass may override ----------------------------------------------------

    def _secret(self) -> Secret | None:
        """The secret this executor sends in ``Authorization`` and scrubs (default: none)."""
        return None

    def _scrubber(self) -> Scrubber:
        secret, cached = self._secret(), self._scrubs
        if cached is None or cached[0] is not secret:
            cached = self._scrubs = (secret, Scrubber.of(secret))
        return cached[1]

    def _headers(self) -> dict[str, str]:
        return bearer(self._secret())

    # -- client and timeouts -------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        if self.client is not None:
            return self.client
        if self._owned_client is None:
            self._owned_client = new_client(self.connect_timeout)
        return self._owned_client

    def _deadline(self, request: ExecutionRequest) -> float | None:
        return effective_deadline(request, self.timeout)

    def _timeout(self, deadline: float | None) -> httpx.Timeout:
        return httpx_timeout(deadline, self.connect_timeout, self.deadline_margin)

    def _health_timeout(self) -> httpx.Timeout:
        return fixed_timeout(self.health_timeout, self.connect_timeout)

    def _cutoff(self, deadline: float | None) -> float | None:
        """When an exchange of an attempt with ``deadline`` is cut off, body included."""
        return None if deadline is None else deadline + self.deadline_margin

    # -- sending -------------------------------------------------------------------------

    async def _json(self, call: Call) -> tuple[httpx.Response, dict[str, Any]]:
        """Send ``call``; its answer and the answer's JSON object (errors for anything else)."""
        scrubber = self._scrubber()
        response = await send(self._http(), call, scrubber)
        return response, ok_json(response, what=call.what, scrubber=scrubber)

    async def _post_json(
        self,
        url: str | httpx.URL,
        body: Any,
        *,
        what: str,
        deadline: float | None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[httpx.Response, dict[str, Any]]:
        """POST an attempt's ``body`` within its deadline (default headers: :meth:`_headers`)."""
        call = Call(
            "POST",
            url,
            what=what,
            timeout=self._timeout(deadline),
            headers=self._headers() if headers is None else headers,
            json_body=body,
            deadline=self._cutoff(deadline),
            max_bytes=self.max_response_bytes,
        )
        return await self._json(call)

    async def _get_json(
        self, url: str | httpx.URL, *, what: str, params: Mapping[str, str] | None = None
    ) -> tuple[httpx.Response, dict[str, Any]]:
        """GET a status document (health, providers, models) within ``health_timeout``."""
        call = Call(
            "GET",
            url,
            what=what,
            timeout=self._health_timeout(),
            headers=self._headers(),
            params=params,
            deadline=anyio.current_time() + self.health_timeout,
            max_bytes=self.max_response_bytes,
        )
        return await self._json(call)

    async def _get_scrubbed(self, url: str | httpx.URL, *, what: str) -> dict[str, Any]:
        """GET a status document to keep whole (as ``raw``): every secret in it scrubbed."""
        _, data = await self._get_json(url, what=what)
        scrubbed: dict[str, Any] = self._scrubber().value(data)
        return scrubbed

    # -- lifetime ------------------------------------------------------------------------

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
