"""Status documents: the epoch-number timestamps Beacon's router and Modal apps write are read."""

from __future__ import annotations

import math

import httpx
import pytest
import respx

from beacon_orchestrator.adapters import HybridRouterExecutor, ModalExecutor
from beacon_orchestrator.adapters._decoding import timestamp

pytestmark = pytest.mark.anyio

ROUTER = "http://router.test"
MODAL = "https://ws--beacon-us-inference.modal.run"
MODAL_HEALTH = "https://ws--beacon-us-health.modal.run"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (1735689600, 1735689600.0),
        (1735689600.5, 1735689600.5),
        ("2025-01-01T00:00:00Z", 1735689600.0),
        ("2025-01-01T01:00:00+01:00", 1735689600.0),
        ("2025-01-01T00:00:00", 1735689600.0),  # no zone: UTC, as Beacon's services write
        ("yesterday", None),
        (True, None),
        (None, None),
        (math.inf, None),
        ([1], None),
    ],
)
def test_a_timestamp_is_read_from_a_number_or_iso_text(
    value: object, seconds: float | None
) -> None:
    assert timestamp(value) == seconds


async def test_router_health_and_providers_read_numeric_timestamps(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    mock_router.get(f"{ROUTER}/health").respond(
        200, json={"status": "healthy", "timestamp": 1735689600.25}
    )
    mock_router.get(f"{ROUTER}/providers").respond(
        200,
        json={
            "providers": [
                {"name": "p", "region": "us-east", "healthy": True, "last_health_check": 1735689600}
            ]
        },
    )
    executor = HybridRouterExecutor(ROUTER, client=mock_client, api_key=None)
    assert (await executor.health()).timestamp == 1735689600.25
    (provider,) = await executor.providers()
    assert provider.last_health_check == 1735689600.0


async def test_modal_health_reads_a_numeric_timestamp(
    mock_router: respx.MockRouter, mock_client: httpx.AsyncClient
) -> None:
    mock_router.get(MODAL_HEALTH).respond(
        200, json={"status": "healthy", "timestamp": 1735689600, "region": "asia-southeast"}
    )
    executor = ModalExecutor({"APAC": MODAL}, client=mock_client, token=None)
    health = await executor.health("asia")
    assert (health.region, health.timestamp) == ("asia-pacific", 1735689600.0)
    assert health.reported_region == "asia-southeast"
