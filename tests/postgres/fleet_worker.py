"""One worker of the multi-process tests: ``python -m tests.postgres.fleet_worker ...``.

It runs ``run_job`` on a PostgresStore (the shared mode), sending every attempt to the tests'
loopback endpoint over HTTP, and prints ``RESULT <status>`` when the job has its verdict.
Options: the DSN, the schema, the job's size, the endpoint's URL, the lease (seconds).
"""

from __future__ import annotations

import argparse
import inspect
import logging
import os
import sys
from pathlib import Path

import anyio
import httpx
from attrs import evolve

from beacon_orchestrator import (
    ExecutionRequest,
    FunctionExecutor,
    JobSpec,
    Limits,
    ModelTarget,
    Question,
    Response,
    RetryPolicy,
    RunOptions,
    TransientError,
)
from beacon_orchestrator._scheduler import _shared
from beacon_orchestrator._scheduler._shared import SharedOptions, run_shared
from beacon_orchestrator.stores.postgres import PostgresStore, _claims, _slots
from beacon_orchestrator.stores.postgres._shared import SharedJobs

# Mutants: one guarantee broken each, to show the scenario that checks it fails. Each is a text
# edit of the function's source (asserted present, so a mutant cannot silently go stale).
MUTANTS: dict[str, list[tuple[str, str, str]]] = {
    # claim endpoints other workers hold
    "storm": [("claim", "AND (e.holder IS NULL OR e.lease_until < clock_timestamp()) ", "")],
    # never take over an expired endpoint
    "kill": [("claim", " OR e.lease_until < clock_timestamp()", "")],
    # store a result without checking the endpoint's current holder and lease
    "zombie": [
        (
            "finish",
            "\"AND x.slot = %(slot)s AND x.state = 'running' AND x.fence = %(fence)s \"",
            '"AND x.slot = %(slot)s "',
        ),
        ("finish", '"AND e.fence = %(fence)s AND e.holder = %(worker)s "', '""'),
        (
            "finish",
            '"AND e.lease_until > clock_timestamp() RETURNING e.n_slots"',
            '"RETURNING e.n_slots"',
        ),
    ],
    # the start gate and the cancel ignore each other
    # the sweep without its guard: it closes a cell whatever its state, overwriting its record
    "sweep": [
        ("sweep", "AND c.state = 'running' AND c.fence = e.fence ", ""),
        ("sweep", "sql.upsert,", "sql.upsert.partition(' WHERE records.')[0],"),
    ],
    # a takeover sends the old holder's finished cells back to pending too
    "takeover": [
        ("_take_over", "AND state = 'running' RETURNING", "AND state <> 'pending' RETURNING")
    ],
    # the verdict without the job row's lock and state: every worker that sees the cells done
    # stores its own
    "verdict": [
        ("try_finish", ' FOR UPDATE",', '",'),
        ("try_finish", 'if row is None or row[0] != "open":', "if row is None:"),
    ],
    # a cancel reaches a worker by its notice only: neither the heartbeat nor the listener's
    # catch-up after a reconnection reports the flag
    "deaf": [("renew", "AND (cancelled_at IS NOT NULL OR state <> 'open')", "AND false")],
    # self-fencing off: a worker that cannot renew lets its requests run past its lease
    "selffence": [],
    "cancel": [
        ("start", "\"AND state = 'open' AND cancelled_at IS NULL FOR SHARE), \"", '"), "'),
        ("cancel_job", "AND state = 'pending' ", "AND false "),
    ],
}


def apply_mutant(name: str) -> None:
    """Replace functions of ``_claims`` by their mutated source."""
    sources: dict[str, str] = {}
    for function, old, new in MUTANTS[name]:
        source = sources.get(function) or inspect.getsource(getattr(_claims, function))
        assert old in source, f"mutant {name}: {old!r} not in {function}"
        sources[function] = source.replace(old, new)
    for source in sources.values():
        exec(source, _claims.__dict__)
    if name == "cancel":
        _shared.SharedRun._on_cancel = lambda self, job_id: None  # type: ignore[method-assign]
    if name == "deaf":
        SharedJobs._cancelled_jobs = lambda self, conn: []  # type: ignore[method-assign]
    if name == "zombie":  # and no heartbeat: nothing tells the zombie it lost its endpoints
        _shared.SharedRun._heartbeat = _no_heartbeat  # type: ignore[method-assign]


# Mutants of the caps (``_slots``), the same way: a cap skipped once full, slots that never
# expire (a dead worker's slots never come back), no first come, first served among waiters.
SLOT_MUTANTS: dict[str, list[tuple[str, str, str]]] = {
    "nocap": [
        ("_take", "_wait_in_line(conn, schema, c, scope)\n            return None", "continue")
    ],
    "leak": [("_take", "AND {_FREE} ", "AND holder IS NULL ")],
    # no line: a start takes a free slot even when another endpoint waits for one since earlier
    "unfair": [("_take", "if not _waited_for_longer(", "if True or _waited_for_longer(")],
}


def apply_slot_mutant(name: str) -> None:
    """Replace functions of ``_slots`` by their mutated source."""
    for function, old, new in SLOT_MUTANTS[name]:
        source = inspect.getsource(getattr(_slots, function))
        assert old in source, f"mutant {name}: {old!r} not in {function}"
        exec(source.replace(old, new), _slots.__dict__)


async def ready_and_wait(folder: Path, store: PostgresStore) -> None:
    """Say this worker is up (``<pid>.ready`` in ``folder``), wait for ``go``, say it goes.

    So a test starts its workers together, however long each process takes to start.
    """
    await store.open()
    (folder / f"{os.getpid()}.ready").touch()
    while not (folder / "go").exists():
        await anyio.sleep(0.005)
    (folder / f"{os.getpid()}.going").touch()


async def _no_heartbeat(self: object) -> None:
    await anyio.sleep_forever()


def fleet_spec(job_id: str, questions: int, models: int, regions: int) -> JobSpec:
    """``questions`` x ``models`` x ``regions`` executions; every model in every region."""
    names = tuple(f"r{i}" for i in range(regions))
    return JobSpec(
        id=job_id,
        questions=tuple(Question(f"q{i:02d}", f"question {i}?") for i in range(questions)),
        models=tuple(ModelTarget(f"m{i}", names) for i in range(models)),
        limits=Limits(attempt_timeout=30.0),
    )


async def main(args: argparse.Namespace) -> None:
    spec = fleet_spec(args.job, args.questions, args.models, args.regions)
    if args.per_region or args.max_concurrency:
        caps = {"per_region": args.per_region, "max_concurrency": args.max_concurrency}
        spec = evolve(spec, limits=evolve(spec.limits, **caps))
    pid = str(os.getpid())
    async with (
        httpx.AsyncClient(base_url=args.url, timeout=30.0) as client,
        PostgresStore(args.dsn, schema=args.schema, pool_size=3) as store,
    ):

        async def send(request: ExecutionRequest) -> Response:
            key = request.key
            try:
                reply = await client.post(
                    "/run",
                    json={"key": list(key), "attempt": request.attempt, "pid": pid},
                )
            except httpx.HTTPError as exc:
                raise TransientError(f"endpoint: {exc}") from None
            return Response(text=f"{reply.json()['text']} for {pid}")

        options = RunOptions(retry=RetryPolicy(attempts=1))
        # The zombie's mutant also turns self-fencing off, so its late write is attempted.
        margin = -1e6 if args.mutant in ("zombie", "selffence") else None
        shared = SharedOptions(lease=args.lease, poll=0.05, capacity=args.capacity, margin=margin)
        if args.ready is not None:
            await ready_and_wait(Path(args.ready), store)
        result = await run_shared(spec, FunctionExecutor(send), store, options, shared)
    print(f"RESULT {result.status.value}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--schema", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--job", default="fleet")
    parser.add_argument("--questions", type=int, default=6)
    parser.add_argument("--models", type=int, default=2)
    parser.add_argument("--regions", type=int, default=3)
    parser.add_argument("--lease", type=float, default=2.0)
    parser.add_argument("--capacity", type=int, default=8)
    parser.add_argument("--mutant", choices=sorted(MUTANTS), default=None)
    parser.add_argument("--per_region", type=int, default=None)
    parser.add_argument("--max_concurrency", type=int, default=None)
    parser.add_argument("--slot_mutant", choices=sorted(SLOT_MUTANTS), default=None)
    parser.add_argument("--ready", default=None)
    parsed = parser.parse_args()
    if parsed.slot_mutant is not None:
        apply_slot_mutant(parsed.slot_mutant)
    # The worker's warnings (renewals failed, endpoints lost) go with its output to the test.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    if parsed.mutant is not None:
        apply_mutant(parsed.mutant)
    anyio.run(main, parsed)
    sys.exit(0)
