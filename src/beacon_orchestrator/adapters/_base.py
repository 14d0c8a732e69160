"""The base every HTTP executor extends: its client and its timeouts.

The how-to "Probe real endpoints" (``docs/how-to/real-endpoints.md``) shows the three
executors in use.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

import httpx
from attrs import define, field

from ._config import check_client, non_negative, optional_positive, positive
from ._secrets import Scrubber
from ._transport import fixed_timeout, httpx_timeout, new_client

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
    _owned_client: httpx.AsyncClient | None = field(init=False, default=None, repr=False)

    # -- client and timeouts -------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        if self.client is not None:
            return self.client
        if self._owned_client is None:
            self._owned_client = new_client(self.connect_timeout)
        return self._owned_client

    def _scrubber(self) -> Scrubber:
        return Scrubber()

    def _timeout(self, deadline: float | None) -> httpx.Timeout:
        return httpx_timeout(deadline, self.connect_timeout, self.deadline_margin)

    def _health_timeout(self) -> httpx.Timeout:
        return fixed_timeout(self.health_timeout, self.connect_timeout)

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
