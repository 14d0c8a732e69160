"""Fixtures for the adapter tests: respx-backed httpx clients."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import respx


@pytest.fixture
def mock_router() -> respx.MockRouter:
    """A respx router; every route used by a test must be declared on it."""
    return respx.MockRouter(assert_all_called=False)


@pytest.fixture
async def mock_client(mock_router: respx.MockRouter) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client whose transport is the respx router (works on asyncio and trio)."""
    async with httpx.AsyncClient(transport=httpx.MockTransport(mock_router.async_handler)) as c:
        yield c
