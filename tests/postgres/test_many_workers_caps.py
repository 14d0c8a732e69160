"""Scenario 5: per-region caps and ``max_concurrency`` under many worker processes.

Worker subprocesses (``fleet_worker.py``) run one capped job on a real PostgreSQL, all sending
to one loopback endpoint that logs every request's arrival and end on the server side; the
checks compute, from that log, how many requests each region (and the job) served at once.
A killed worker's slots must come back when its lease passes (read from the database) and not
before. The last test runs each scenario against workers with the cap broken (a mutant of the
slot SQL) and shows that the scenario fails.
"""

from __future__ import annotations

import random
import re
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import Popen

import psycopg
import pytest

from .fleet import Arrival, FakeEndpoint, reaped, start_worker, wait_all
from .server import fresh_schema

pytestmark = pytest.mark.slow

CAP = 2


@pytest.fixture
def schema(postgres_dsn: str) -> Iterator[str]:
    """A fresh schema; every worker the test started is reaped at its end, however it ends."""
    with fresh_schema() as name, reaped():
        yield name


def most_at_once(
    arrivals: list[Arrival],
    group: Callable[[Arrival], str],
    since: float = float("-inf"),
    until: float = float("inf"),
) -> dict[str, int]:
    """The most requests each group served at once within [since, until), from the log."""
    points: dict[str, list[tuple[float, int]]] = {}
    for a in arrivals:
        end = a.ended if a.ended is not None else float("inf")
        points.setdefault(group(a), []).extend([(a.arrived, 1), (end, -1)])
    most: dict[str, int] = {}
    for g, steps in points.items():
        n = best = 0
        for at, step in sorted(steps, key=lambda p: (p[0], p[1])):
            n += step
            if since <= at < until:
                best = max(best, n)
        most[g] = best
    return most


def first_reaching(arrivals: list[Arrival], region: str, n: int, since: float) -> float | None:
    """The first time at or after ``since`` that ``region`` served ``n`` requests at once."""
    steps = []
    for a in arrivals:
        if a.key[2] == region:
            steps += [(a.arrived, 1), (a.ended if a.ended is not None else float("inf"), -1)]
    now = 0
    for at, step in sorted(steps, key=lambda p: (p[0], p[1])):
        now += step
        if at >= since and now >= n:
            return at
    return None


def _region(a: Arrival) -> str:
    return a.key[2]


def _keys_stored(dsn: str, schema: str) -> Counter[tuple[str, str, str]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(f"SELECT question_id, model_id, region FROM {schema}.records")
        return Counter((q, m, r) for q, m, r in rows)


def _wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the scenario's moment"
        time.sleep(0.01)


# -- the scenarios --------------------------------------------------------------------------


def start_together(n: int, dsn: str, schema: str, url: str, **size: object) -> list[Popen[str]]:
    """``n`` workers that start the job at once, once every one of them is up."""
    with tempfile.TemporaryDirectory() as folder:
        workers = [start_worker(dsn, schema, url, ready=folder, **size) for _ in range(n)]
        _wait_for(lambda: len(list(Path(folder).glob("*.ready"))) == n, timeout=60)
        (Path(folder) / "go").touch()
        # The folder must outlive every worker's look for "go".
        _wait_for(lambda: len(list(Path(folder).glob("*.going"))) == n, timeout=60)
    return workers


def caps_held(dsn: str, schema: str, seed: int, mutant: str | None = None) -> None:
    """Four workers, per_region 2 over 3 regions and max_concurrency 5: never more than 2 at
    once in a region nor 5 in the job, both reached, every key sent and stored once."""
    size: dict[str, object] = {"questions": 6, "models": 3, "regions": 3, "lease": 10.0}
    size |= {"capacity": random.Random(seed).choice([2, 3, 9]), "per_region": CAP}
    size["max_concurrency"] = 5
    if mutant:
        size["slot_mutant"] = mutant
    with FakeEndpoint(latency=0.05).running() as endpoint:
        workers = start_together(4, dsn, schema, endpoint.url, **size)
        outs = wait_all(workers, timeout=120)
    assert all("RESULT completed" in out for out in outs), outs
    per_region = most_at_once(endpoint.arrivals, _region)
    assert max(per_region.values()) <= CAP, f"a region over its cap: {per_region}"
    job = most_at_once(endpoint.arrivals, lambda a: "job")["job"]
    assert job <= 5, f"{job} requests at once in the job, over its max_concurrency of 5"
    assert CAP in per_region.values(), f"no region ever reached its cap: {per_region}"
    assert len({a.pid for a in endpoint.arrivals}) >= 3, "the workers did not share the job"
    sent = Counter(a.key for a in endpoint.arrivals)
    assert len(sent) == 54
    assert max(sent.values()) == 1
    assert _keys_stored(dsn, schema) == Counter(dict.fromkeys(sent, 1))


def killed_holder(dsn: str, schema: str, seed: int, mutant: str | None = None) -> None:
    """A worker SIGKILLed while it holds slots: the region stays under its cap, its slots stay
    held until its lease passes (the time read from the database) and come back within a
    margin of it; the job completes with one record per key."""
    lease = 2.0
    size: dict[str, object] = {"questions": 24, "models": 4, "regions": 3, "lease": lease}
    size |= {"per_region": CAP, "capacity": 3}
    if mutant:
        size["slot_mutant"] = mutant
    rng = random.Random(seed)
    with FakeEndpoint(latency=0.15).running() as endpoint:
        # Each worker claims 3 endpoints, one per region: in every region, 4 endpoints of 4
        # workers share 2 slots.
        workers = start_together(4, dsn, schema, endpoint.url, **size)
        _wait_for(lambda: len({a.pid for a in endpoint.arrivals}) == 4)
        time.sleep(rng.uniform(0.0, 0.5))

        def in_flight() -> set[str]:
            with endpoint.lock:
                return {a.pid for a in endpoint.arrivals if a.ended is None}

        _wait_for(lambda: bool(in_flight()))
        chosen = rng.choice(sorted(in_flight()))
        victim = next(w for w in workers if str(w.pid) == chosen)
        victim.send_signal(signal.SIGKILL)
        killed_at = time.time()
        victim.communicate()
        mine = {(a.key[1], a.key[2]) for a in endpoint.arrivals if a.pid == str(victim.pid)}
        with psycopg.connect(dsn) as conn:
            rows = conn.execute(
                f"SELECT model_id, region, extract(epoch FROM lease_until)::float8 "
                f"FROM {schema}.slots WHERE holder IS NOT NULL"
            ).fetchall()
        held = [(r, until) for m, r, until in rows if (m, r) in mine]
        others = [w for w in workers if w is not victim]
        outs = wait_all(others, timeout=60 if mutant else 120)
    per_region = most_at_once(endpoint.arrivals, _region)
    assert max(per_region.values()) <= CAP, f"a region over its cap: {per_region}"
    assert held, "the victim held no slot when it was killed"
    assert all("RESULT completed" in out for out in outs), outs
    survivors = [a for a in endpoint.arrivals if a.pid != str(victim.pid)]
    for region, lease_until in held:
        assert killed_at < lease_until <= killed_at + lease + 0.5, (region, lease_until)
        # The victim's slot was not handed out while its lease held...
        before = most_at_once(survivors, _region, killed_at, lease_until).get(region, 0)
        assert before <= CAP - 1, f"{region}: the dead worker's slot was taken before its lease"
        # ...and was, soon after it passed.
        back = first_reaching(survivors, region, CAP, lease_until)
        assert back is not None, f"{region}: the dead worker's slot never came back"
        assert back - lease_until < 1.5, f"{region}: its slot came back {back - lease_until} s late"
    stored = _keys_stored(dsn, schema)
    assert set(stored.values()) == {1}
    assert sum(stored.values()) == 24 * 12


def taking_turns(dsn: str, schema: str, seed: int, mutant: str | None = None) -> None:
    """Two workers, one endpoint each, in one region capped at 1: they take turns, neither
    runs a stretch while the other waits (first come, first served among waiters)."""
    size: dict[str, object] = {"questions": 12, "models": 2, "regions": 1, "lease": 10.0}
    size |= {"per_region": 1, "capacity": 1}
    if mutant:
        size["slot_mutant"] = mutant
    with FakeEndpoint(latency=random.Random(seed).choice([0.03, 0.05])).running() as endpoint:
        workers = start_together(2, dsn, schema, endpoint.url, **size)
        outs = wait_all(workers, timeout=120)
    assert all("RESULT completed" in out for out in outs), outs
    assert max(most_at_once(endpoint.arrivals, _region).values()) == 1
    order = "".join(a.key[1] for a in sorted(endpoint.arrivals, key=lambda a: a.arrived))
    longest = max(len(run) for run in re.findall(r"(?:m0)+|(?:m1)+", order)) // 2
    assert longest <= 2, f"an endpoint ran {longest} in a row while the other waited: {order}"


# -- the tests ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_per_region_and_max_concurrency_hold_across_four_workers(
    postgres_dsn: str, schema: str, seed: int
) -> None:
    caps_held(postgres_dsn, schema, seed)


@pytest.mark.parametrize("seed", range(3))
def test_a_killed_workers_slots_come_back_when_its_lease_passes_and_not_before(
    postgres_dsn: str, schema: str, seed: int
) -> None:
    killed_holder(postgres_dsn, schema, seed)


@pytest.mark.parametrize("seed", range(2))
def test_endpoints_waiting_for_a_slot_take_turns(postgres_dsn: str, schema: str, seed: int) -> None:
    taking_turns(postgres_dsn, schema, seed)


@pytest.mark.parametrize(
    ("scenario", "mutant", "failure"),
    [
        (taking_turns, "unfair", "in a row"),
        (caps_held, "nocap", "over its cap"),
        (killed_holder, "nocap", "over its cap"),
        (killed_holder, "leak", "never came back|late"),
    ],
    ids=[
        "no-line-among-waiters",
        "caps-skipped-when-full",
        "kill-caps-skipped-when-full",
        "kill-slots-never-expire",
    ],
)
def test_each_caps_scenario_fails_when_the_cap_is_broken(
    postgres_dsn: str, schema: str, scenario: Callable[..., None], mutant: str, failure: str
) -> None:
    """Each mutant fails its scenario on the check it breaks (not on a crash or a timeout)."""
    with pytest.raises(AssertionError, match=failure):
        scenario(postgres_dsn, schema, 0, mutant=mutant)
