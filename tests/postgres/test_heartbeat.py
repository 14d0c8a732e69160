"""A renewal's answer is about the claims committed before it was sent, no later ones.

After the database comes back from a restart, every worker claims endpoints while its
heartbeat's renewal is on its way: a renewal whose statement ran before a claim committed does
not list that claim. The worker must not take that for a lost endpoint (it used to, cancelling
its own fresh request; with the interruption of the outage itself, the key's third run was then
stored FAILED, "the worker running it stopped, 2 times").
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import anyio
import pytest
from attrs import define

from beacon_orchestrator import JobStatus
from beacon_orchestrator._scheduler import _shared
from beacon_orchestrator._scheduler._options import RunOptions
from beacon_orchestrator._scheduler._shared import SharedOptions, run_shared
from beacon_orchestrator.stores.postgres import PostgresStore
from beacon_orchestrator.testing import FakeExecutor

from ..stores.support import make_spec

pytestmark = pytest.mark.anyio


@define
class _EveryClaimOld(_shared._Held):
    """The mutant: every claim counts as older than any renewal (the check before the fix)."""

    def __attrs_post_init__(self) -> None:
        self.claimed = float("-inf")


async def claims_during_renewals(dsn: str, schema: str, seed: int) -> None:
    """One endpoint at a time, each claimed while a renewal's answer is on its way: no request
    is cancelled as lost, every key runs once, the job completes."""
    spec = make_spec(f"beat-{seed}", questions=2, models=1)
    fake = FakeExecutor.random(seed=seed, latency=(0.1, 0.2))
    shared = SharedOptions(lease=1.5, poll=0.02, capacity=1)
    async with PostgresStore(dsn, schema=schema, pool_size=4) as store:
        renew, claim = store.renew, store.claim
        late: list[int] = []
        answering = anyio.Event()  # set while a renewal's answer is on its way

        async def slow_renew(worker: str, lease: float) -> Any:
            nonlocal answering
            status = await renew(worker, lease)
            answering.set()
            await anyio.sleep(0.25)  # the answer comes back late: a claim commits meanwhile
            answering = anyio.Event()
            late.append(len(status.held))
            return status

        async def claim_while_answering(*args: Any) -> Any:
            await answering.wait()
            return await claim(*args)

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(store, "renew", slow_renew, raising=False)
            mp.setattr(store, "claim", claim_while_answering, raising=False)
            result = await run_shared(spec, fake, store, RunOptions(), shared)
    assert late, "no renewal happened during the run"
    cancelled = [c for c in fake.log if c.kind == "end" and c.outcome == "cancelled"]
    assert cancelled == [], f"requests cancelled as if their endpoint were lost: {cancelled}"
    starts = Counter(c.key for c in fake.starts())
    assert max(starts.values()) == 1
    assert result.status is JobStatus.COMPLETED


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_a_claim_newer_than_the_renewal_answering_is_not_taken_for_lost(
    postgres_dsn: str, pg_schema: str, seed: int
) -> None:
    await claims_during_renewals(postgres_dsn, pg_schema, seed)


async def test_the_renewal_scenario_fails_when_every_claim_counts_as_older(
    postgres_dsn: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_shared, "_Held", _EveryClaimOld)
    with pytest.raises(AssertionError, match="cancelled as if their endpoint were lost"):
        await claims_during_renewals(postgres_dsn, pg_schema, 1)


async def test_a_renewal_does_not_wait_behind_a_pool_that_has_no_connection(
    postgres_dsn: str, pg_schema: str
) -> None:
    """With every pooled connection taken, a renewal connects on its own and renews the lease.

    After an outage psycopg_pool reconnects with a backoff (1, 2, 4 s...) and may hand out no
    connection for seconds after the server is back; a renewal stuck behind it let the worker's
    lease lapse (the restart scenario's rare failure under load). Here the pool's one connection
    is held instead: the renewal waits a third of its lease for it (10 ms), then connects
    directly, and the claim comes back renewed. Without that, it would wait the pool's 30 s.
    """
    spec = make_spec("pool-busy", questions=1, models=1)
    async with PostgresStore(
        postgres_dsn, schema=pg_schema, pool_size=1, connect_timeout=30
    ) as store:
        await store.publish_job(spec)
        [claim] = await store.claim("w1", 1, 60.0, spec.id)
        pool = store._pool
        assert pool is not None
        held = await anyio.to_thread.run_sync(pool.getconn)
        try:
            with anyio.fail_after(10):
                status = await store.renew("w1", 0.03)
        finally:
            pool.putconn(held)
    assert status.held == {(claim.job_id, claim.model_id, claim.region, claim.fence)}
    assert status.cancelled == frozenset()
