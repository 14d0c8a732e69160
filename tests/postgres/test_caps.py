"""Caps across workers: ``per_region`` and ``max_concurrency`` as slot rows in PostgreSQL.

Store-level tests of the slot SQL (taking, waiting, releasing, a stale fence freeing nothing,
expiry after the lease and never before, renewal, concurrent gates racing for the last slot)
and the worker's use of them in one process. The multi-process scenario with a SIGKILL is in
``test_many_workers_caps.py``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import anyio
import psycopg
import pytest
from attrs import evolve

from beacon_orchestrator import ExecutionKey, ExecutionRecord, ExecutionStatus, JobStatus, Limits
from beacon_orchestrator._scheduler._options import RunOptions
from beacon_orchestrator._scheduler._shared import SharedOptions, run_shared
from beacon_orchestrator.stores import Claim
from beacon_orchestrator.stores.postgres import PostgresStore, _slots
from beacon_orchestrator.testing import FakeExecutor

from ..stores.support import make_spec
from .server import fresh_schema

C = ExecutionStatus.COMPLETED


@pytest.fixture
def schema(postgres_dsn: str) -> Iterator[str]:
    with fresh_schema() as name:
        yield name


def _capped(job: str, *, per_region: int | None = None, max_concurrency: int | None = None,
            models: int = 3) -> Any:  # fmt: skip
    spec = make_spec(job, questions=3, models=models)
    return evolve(spec, limits=Limits(per_region=per_region, max_concurrency=max_concurrency))


def _record(c: Claim, question: str) -> ExecutionRecord:
    key = ExecutionKey(question, c.model_id, c.region)
    return ExecutionRecord(key=key, status=C, text="ok", attempts=1)


def _held(dsn: str, schema: str) -> list[tuple[str, str | None, str | None]]:
    """Every slot row: scope, holder, the region of the endpoint holding it."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            f"SELECT scope, holder, region FROM {schema}.slots "
            "WHERE holder IS NOT NULL AND lease_until > clock_timestamp() ORDER BY scope, n"
        ).fetchall()
    return [(s, h, r) for s, h, r in rows]


def _by_region(claims: list[Claim], region: str) -> list[Claim]:
    return [c for c in claims if c.region == region]


def test_a_region_cap_of_two_starts_two_and_the_third_waits_until_a_finish_frees_one(
    postgres_dsn: str, schema: str
) -> None:
    """Three endpoints of one region under per_region 2: two start, the third's gate answers
    None (not now) and changes nothing, and starts once a finish freed a slot."""
    spec = _capped("cap2", per_region=2)

    async def scenario() -> None:
        async with PostgresStore(postgres_dsn, schema=schema) as store:
            await store.publish_job(spec)
            claims = await store.claim("w1", 9, 30.0, spec.id)
            a, b, c = _by_region(claims, "us-east")
            assert await store.start(a, 0) is True
            assert await store.start(b, 0) is True
            assert await store.start(c, 0) is None
            # The waiting endpoint's next slot is still its next: nothing moved.
            assert await store.start(c, 0) is None
            # Another region is not held up by this one's cap.
            (other, *_) = _by_region(claims, "eu-west")
            assert await store.start(other, 0) is True
            assert await store.finish(a, 0, _record(a, "q0"))
            assert await store.start(c, 0) is True
            assert await store.start(a, 1) is None  # both slots held again (b, c)

    anyio.run(scenario)
    held = _held(postgres_dsn, schema)
    assert [(s, r) for s, _, r in held if s == "region:us-east"] == [
        ("region:us-east", "us-east"),
        ("region:us-east", "us-east"),
    ]


def test_the_job_cap_holds_over_every_region(postgres_dsn: str, schema: str) -> None:
    """max_concurrency 2 is one set for the whole job: the third start, in any region, waits."""
    spec = _capped("jobcap", max_concurrency=2, models=1)

    async def scenario() -> list[bool | None]:
        async with PostgresStore(postgres_dsn, schema=schema) as store:
            await store.publish_job(spec)
            claims = await store.claim("w1", 9, 30.0, spec.id)
            assert len({c.region for c in claims}) == 3
            return [await store.start(c, 0) for c in claims]

    assert anyio.run(scenario) == [True, True, None]


def test_a_release_frees_the_claims_slots_and_a_stale_fence_frees_nothing(
    postgres_dsn: str, schema: str
) -> None:
    spec = _capped("stale", per_region=1)

    async def scenario() -> None:
        async with PostgresStore(postgres_dsn, schema=schema) as store:
            await store.publish_job(spec)
            a, b, *_ = _by_region(await store.claim("w1", 9, 30.0, spec.id), "us-east")
            assert await store.start(a, 0) is True
            stale = evolve(a, fence=a.fence - 1)
            await store.release(stale)
            assert not await store.finish(stale, 0, _record(a, "q0"))
            assert await store.start(b, 0) is None, "a stale fence freed the slot"
            other = evolve(a, worker="w2")
            await store.release(other)
            assert await store.start(b, 0) is None, "another worker's release freed the slot"
            await store.release(a)
            assert await store.start(b, 0) is True

    anyio.run(scenario)


def test_a_dead_holders_slot_comes_back_when_its_lease_passes_and_never_before(
    postgres_dsn: str, schema: str
) -> None:
    """w1 takes the region's only slot, renews its lease to 1 s and dies; w2's start waits
    while the renewed lease holds and starts once it passed."""
    spec = _capped("expiry", per_region=1, models=2)

    async def scenario() -> tuple[float, float, float]:
        async with PostgresStore(postgres_dsn, schema=schema) as store:
            await store.publish_job(spec)
            claims = await store.claim("w1", 1, 2.0, spec.id)
            (mine,) = claims
            others = await store.claim("w2", 9, 30.0, spec.id)
            (theirs,) = [c for c in others if c.region == mine.region]
            assert await store.start(mine, 0) is True
            t0 = time.monotonic()
            await anyio.sleep(0.3)
            sent = time.monotonic()
            status = await store.renew("w1", 1.0)  # renewed: held 1 s from the renewal
            renewed = time.monotonic()
            assert (mine.job_id, mine.model_id, mine.region, mine.fence) in status.held
            while (started := await store.start(theirs, 0)) is None:
                await anyio.sleep(0.02)
            assert started is True
            # The database set the lease between sent and renewed.
            return renewed - t0, time.monotonic() - sent, renewed - sent

    before_renewal, after_renewal, renewal = anyio.run(scenario)
    assert before_renewal < 2.0
    # Never before the renewed lease passed, and soon after it.
    assert 1.0 <= after_renewal < 1.6 + renewal, (after_renewal, renewal)


def test_an_expired_slot_is_not_renewed(postgres_dsn: str, schema: str) -> None:
    spec = _capped("norenew", per_region=1, models=2)

    async def scenario() -> bool | None:
        async with PostgresStore(postgres_dsn, schema=schema) as store:
            await store.publish_job(spec)
            (mine,) = await store.claim("w1", 1, 0.3, spec.id)
            (theirs, *_) = [
                c for c in await store.claim("w2", 9, 30.0, spec.id) if c.region == mine.region
            ]
            assert await store.start(mine, 0) is True
            await anyio.sleep(0.5)
            started = await store.start(theirs, 0)
            await store.renew("w1", 30.0)  # too late: the slot is w2's
            return started

    assert anyio.run(scenario) is True
    held = _held(postgres_dsn, schema)
    assert [h for _, h, _ in held] == ["w2"]


def test_the_caps_are_fixed_by_the_first_publication(postgres_dsn: str, schema: str) -> None:
    spec = _capped("fixed", per_region=1, max_concurrency=2)

    async def scenario() -> None:
        async with PostgresStore(postgres_dsn, schema=schema) as store:
            await store.publish_job(spec, limits=Limits(per_region=2, max_concurrency=4))
            await store.publish_job(spec, limits=Limits(per_region=9))
            await store.publish_job(spec)

    anyio.run(scenario)
    with psycopg.connect(postgres_dsn) as conn:
        rows = conn.execute(
            f"SELECT scope, count(*) FROM {schema}.slots GROUP BY scope ORDER BY scope"
        ).fetchall()
    assert rows == [
        ("job", 4),
        ("region:asia-pacific", 2),
        ("region:eu-west", 2),
        ("region:us-east", 2),
    ]


def test_a_job_without_caps_has_no_slots_and_starts_freely(postgres_dsn: str, schema: str) -> None:
    spec = _capped("free")

    async def scenario() -> list[bool | None]:
        async with PostgresStore(postgres_dsn, schema=schema) as store:
            await store.publish_job(spec)
            return [await store.start(c, 0) for c in await store.claim("w", 9, 30.0, spec.id)]

    assert anyio.run(scenario) == [True] * 9
    with psycopg.connect(postgres_dsn) as conn:
        assert conn.execute(f"SELECT count(*) FROM {schema}.slots").fetchone() == (0,)


@pytest.mark.parametrize("seed", range(3))
def test_concurrent_gates_never_take_more_slots_than_the_cap(
    postgres_dsn: str, schema: str, seed: int
) -> None:
    """Twelve gates, each on its own connection, released at once on twelve endpoints of one
    region under a cap of 3: exactly three start (SKIP LOCKED: none waits, none double-takes)."""
    spec = evolve(
        make_spec(f"race{seed}", questions=1, models=12),
        limits=Limits(per_region=3),
    )

    async def setup() -> list[Claim]:
        async with PostgresStore(postgres_dsn, schema=schema) as store:
            await store.publish_job(spec)
            claims = await store.claim("w", 36, 30.0, spec.id)
        return _by_region(claims, "eu-west")

    claims = anyio.run(setup)
    assert len(claims) == 12
    barrier = threading.Barrier(len(claims))
    answers: list[bool | None] = []
    lock = threading.Lock()

    def gate(c: Claim) -> None:
        with psycopg.connect(postgres_dsn) as conn:
            conn.execute("SELECT 1")
            conn.commit()
            barrier.wait()
            answer = _slots.start(conn, schema, c, 0)
            time.sleep(0.001 * seed)  # hold the locks a little: the others must not wait
            conn.commit()
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=gate, args=(c,)) for c in claims]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(answers, key=repr) == sorted([True] * 3 + [None] * 9, key=repr)
    assert len(_held(postgres_dsn, schema)) == 3


# -- the worker, in one process ---------------------------------------------------------------


def _most_at_once(fake: FakeExecutor, group: Any) -> dict[Any, int]:
    """The most attempts in flight at once per group (of a key), from the executor's log."""
    now: dict[Any, int] = {}
    most: dict[Any, int] = {}
    for call in fake.log:
        if call.key is None or call.kind == "mark":
            continue
        g = group(call.key)
        now[g] = now.get(g, 0) + (1 if call.kind == "start" else -1)
        most[g] = max(most.get(g, 0), now[g])
    return most


@pytest.mark.anyio
async def test_three_workers_hold_per_region_and_max_concurrency_together(
    postgres_dsn: str, pg_schema: str
) -> None:
    """Three SharedRuns under per_region 2 and max_concurrency 5: never more than 2 in one
    region nor 5 in the job, both reached, every key once, one verdict."""
    spec = evolve(
        make_spec("inproc", questions=4, models=3), limits=Limits(per_region=2, max_concurrency=5)
    )
    fake = FakeExecutor.random(seed=7, latency=(0.08, 0.12))
    shared = SharedOptions(lease=3.0, poll=0.05, capacity=9)
    results = []
    async with PostgresStore(postgres_dsn, schema=pg_schema) as store:

        async def one() -> None:
            results.append(await run_shared(spec, fake, store, RunOptions(), shared))

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(one)
        records = await store.records(spec.id)
    assert {r.status for r in results} == {JobStatus.COMPLETED}
    assert len(records) == spec.size
    starts = [c.key for c in fake.log if c.kind == "start"]
    assert len(starts) == len(set(starts)) == spec.size
    per_region = _most_at_once(fake, lambda k: k.region)
    assert max(per_region.values()) == 2, per_region
    assert max(_most_at_once(fake, lambda k: "job").values()) == 5


@pytest.mark.anyio
async def test_a_cancel_frees_every_slot_and_waiting_endpoints_stop(
    postgres_dsn: str, pg_schema: str
) -> None:
    """Cancelled mid-run under per_region 1 (endpoints running and endpoints waiting): every
    worker returns the cancelled verdict, and no slot is left held."""
    spec = evolve(make_spec("cancelled", questions=4, models=3), limits=Limits(per_region=1))
    fake = FakeExecutor.random(seed=3, latency=(0.3, 0.3))
    shared = SharedOptions(lease=3.0, poll=0.05, capacity=9)
    results = []
    async with PostgresStore(postgres_dsn, schema=pg_schema) as store:

        async def one() -> None:
            results.append(await run_shared(spec, fake, store, RunOptions(), shared))

        async def cancel() -> None:
            while sum(c.kind == "start" for c in fake.log) < 4:
                await anyio.sleep(0.01)
            assert await store.cancel_job(spec.id, "stopped by the test")

        async with anyio.create_task_group() as tg:
            for _ in range(2):
                tg.start_soon(one)
            tg.start_soon(cancel)
    assert [r.status for r in results] == [JobStatus.CANCELLED] * 2
    with psycopg.connect(postgres_dsn) as conn:
        rows = conn.execute(
            f"SELECT scope, n FROM {pg_schema}.slots WHERE holder IS NOT NULL"
        ).fetchall()
    assert rows == [], f"slots left held after the cancel: {rows}"
