"""Test configuration: hypothesis profiles and both anyio backends."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

# "dev" keeps the edit-test loop quick; "ci" is sized so the whole suite fits CI's time budget
# on a 2-core machine while still exploring each property with many examples. At 150 examples
# `.ci/run` took 18 of its 20 minutes (the property tests under coverage are most of it); 100
# leaves room for a slower machine and still runs four times what "dev" does.
settings.register_profile(
    "dev",
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(params=[pytest.param("asyncio", id="asyncio"), pytest.param("trio", id="trio")])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run every ``@pytest.mark.anyio`` test on asyncio and on trio."""
    return str(request.param)
