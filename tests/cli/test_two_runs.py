"""Two ``beacon run`` of one job on one database: exactly one executes it.

Two runs of one job used to both execute every key (40 requests for 20 keys, no warning). Here
the runs are real processes sending their executions to a loopback imitation of Beacon's
hybrid router, served by this test, which counts every request whichever process sent it and
holds the answers back until the test lets them go, so the first run is still running when the
second starts. The second exits at once with a one-line error naming the holder (host, pid,
since) and a non-zero code; the router sees each key once. A run killed with SIGKILL is taken
over by the next one, which completes the job.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from attrs import define, field
from rich.console import Console

from beacon_orchestrator import Holder, Lease, LeaseLostError, MemoryStore
from beacon_orchestrator.cli._runner import CommandRun, run_cli_job
from beacon_orchestrator.cli._shell import leaf
from beacon_orchestrator.testing import FakeExecutor, Step, run_virtual

from ..stores.support import make_spec
from .support import BEACON, keys, subprocess_env, write_json

pytestmark = pytest.mark.slow

JOB = "two-runs"
MODELS = ("m1", "m2")
REGIONS = ("us-east", "eu-west")
QUESTIONS = 5
PLANNED = QUESTIONS * len(MODELS) * len(REGIONS)  # 20 keys
WAIT = 60.0  # seconds; generous for a loaded 2-core machine, never reached when all is well


@define
class Router:
    """What the loopback router saw; its answers wait until ``gate`` is set."""

    gate: threading.Event = field(factory=threading.Event)
    lock: threading.Lock = field(factory=threading.Lock)
    seen: Counter[tuple[str, str, str]] = field(factory=Counter)
    arrived: threading.Condition = field(init=False)
    url: str = ""

    def __attrs_post_init__(self) -> None:
        self.arrived = threading.Condition(self.lock)

    def requests(self) -> int:
        with self.lock:
            return sum(self.seen.values())

    def wait_for_requests(self, n: int) -> None:
        with self.arrived:
            assert self.arrived.wait_for(lambda: sum(self.seen.values()) >= n, WAIT), (
                f"the router saw {sum(self.seen.values())} requests, expected {n}"
            )


@contextmanager
def serve_router() -> Iterator[Router]:
    router = Router()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                body: dict[str, Any] = json.loads(raw)
            except ValueError:
                return  # cut short by a client killed mid-request: not a request
            key = (body["prompt"], body["model"], body["region_preference"])
            with router.arrived:
                router.seen[key] += 1
                router.arrived.notify_all()
            router.gate.wait(WAIT)
            answer = {
                "success": True,
                "response": f"answer to {body['prompt']}",
                "provider_used": "loopback",
                "metadata": {"region": body["region_preference"], "model": body["model"]},
            }
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            with contextlib.suppress(OSError):  # the client was killed
                self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    router.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield router
    finally:
        router.gate.set()
        server.shutdown()
        server.server_close()


def job_file(tmp_path: Path) -> Path:
    return write_json(
        tmp_path / "job.json",
        {
            "id": JOB,
            "questions": [{"id": f"q{i}", "prompt": f"question {i}?"} for i in range(QUESTIONS)],
            "models": [{"id": m, "regions": list(REGIONS)} for m in MODELS],
        },
    )


def beacon_run(job: Path, db: Path, router: Router) -> subprocess.Popen[str]:
    command = [
        *BEACON,
        "run",
        str(job),
        "--store",
        str(db),
        "--executor",
        "hybrid-router",
        "--router-url",
        router.url,
        "--progress",
        "off",
    ]
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(BEACON_ROUTER_API_KEY="test-key"),
    )


def lease_of(db: Path) -> tuple[Any, ...] | None:
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT owner, pid, host FROM leases WHERE job_id = ?", (JOB,)
        ).fetchone()
    return None if row is None or row[0] is None else tuple(row)


def test_of_two_runs_of_one_job_one_executes_and_the_other_is_refused_naming_it(
    tmp_path: Path,
) -> None:
    job, db = job_file(tmp_path), tmp_path / "jobs.db"
    with serve_router() as router:
        first = beacon_run(job, db, router)
        router.wait_for_requests(1)  # the first run holds the lease and is executing
        second = beacon_run(job, db, router)
        out, err = second.communicate(timeout=WAIT)
        requests_while_both_ran = router.requests()
        router.gate.set()
        first_out, first_err = first.communicate(timeout=WAIT)
    assert second.returncode == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"Error: job '{JOB}' is already running: its lease is held by ")
    assert f"host {socket.gethostname()!r}, pid {first.pid}, since " in lines[0]
    assert out == ""
    assert "Traceback" not in err
    assert first.returncode == 0, first_err
    assert "COMPLETED" in first_out
    # Every key was sent exactly once, all by the first run.
    assert requests_while_both_ran <= PLANNED
    assert sum(router.seen.values()) == PLANNED
    assert set(router.seen.values()) == {1}
    assert len(keys(db, JOB)) == len(set(keys(db, JOB))) == PLANNED
    assert lease_of(db) is None, "the finished run kept its lease"


def _settled(router: Router) -> int:
    """The router's request count once it stops moving (a dead client's last requests)."""
    last = -1
    while (now := router.requests()) != last:
        last = now
        time.sleep(0.05)
    return now


def test_a_run_killed_with_sigkill_is_taken_over_by_the_next_which_completes(
    tmp_path: Path,
) -> None:
    job, db = job_file(tmp_path), tmp_path / "jobs.db"
    with serve_router() as router:
        killed = beacon_run(job, db, router)
        router.wait_for_requests(1)
        assert lease_of(db) is not None
        killed.send_signal(signal.SIGKILL)  # no cleanup: the lease stays in the file
        killed.communicate(timeout=WAIT)
        held = lease_of(db)
        assert held is not None
        assert held[1] == killed.pid
        # Requests the killed run sent may still be being counted by the server's threads.
        before = _settled(router)
        router.gate.set()
        started = time.monotonic()
        resumed = beacon_run(job, db, router)
        out, err = resumed.communicate(timeout=WAIT)
        took = time.monotonic() - started
    assert resumed.returncode == 0, err
    assert "COMPLETED" in out
    # Taken over at once (the dead pid), not after the lease's 30 s time to live.
    assert took < 30.0
    assert router.requests() - before == PLANNED  # the killed run stored nothing
    assert len(keys(db, JOB)) == len(set(keys(db, JOB))) == PLANNED
    assert lease_of(db) is None
    assert os.path.exists(db)


class StolenLeaseStore(MemoryStore):
    """Every renewal finds the lease taken over by another runner."""

    async def renew_lease(self, lease: Lease) -> Lease:
        taker = Holder("taker", 99, "elsewhere.invalid")
        raise LeaseLostError(lease, Lease(lease.job_id, taker, 1.0, 1.0, 30.0, lease.token + 1))


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_run_that_loses_its_lease_ends_with_that_one_error_not_a_traceback(
    backend: str,
) -> None:
    """The job's task and the command's wait both raise the loss: the shell must get one
    exception (one line, exit 1), not a group of two that it would print as a traceback."""
    spec = make_spec(questions=2, models=1)

    async def main() -> BaseException:
        with pytest.raises(BaseException) as info:  # one exception, or a group of them
            await run_cli_job(
                spec,
                FakeExecutor(default=Step(latency=60.0)),
                StolenLeaseStore(),
                CommandRun(store_path=Path("x.db"), progress="off"),
                out=Console(file=io.StringIO()),
                err=Console(file=io.StringIO()),
            )
        return info.value

    raised = run_virtual(main, backend=backend)
    found = leaf(raised)
    assert isinstance(found, LeaseLostError), repr(raised)
    assert "now held by host 'elsewhere.invalid', pid 99" in str(found)
