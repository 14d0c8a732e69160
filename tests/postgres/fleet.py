"""The multi-process harness: a loopback fake endpoint and worker subprocesses.

The endpoint is an HTTP server on 127.0.0.1 in a thread of the test process. It logs every
request's arrival and end *on the server side* (a request keeps running there when its
client is paused or killed, as on a GPU server) and the concurrency per endpoint.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Arrival:
    """One request as the endpoint saw it."""

    key: tuple[str, str, str]
    pid: str
    arrived: float
    ended: float | None = None
    dropped: float | None = None  # when the client closed the connection before the answer


class FakeEndpoint:
    """A loopback server answering after ``latency`` seconds; logs arrivals and concurrency."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.lock = threading.Lock()
        self.arrivals: list[Arrival] = []
        self.in_flight: dict[tuple[str, str], int] = {}
        self.max_in_flight: dict[tuple[str, str], int] = {}
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                endpoint.serve(self, body)

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def serve(self, handler: BaseHTTPRequestHandler, body: Mapping[str, Any]) -> None:
        question, model, region, sample = body["key"]
        # The fleet's jobs have one sample per cell: a cell is its key.
        assert sample == 0, body["key"]
        key = (str(question), str(model), str(region))
        arrival = Arrival(key, str(body["pid"]), time.time())
        endpoint = (key[1], key[2])
        with self.lock:
            self.arrivals.append(arrival)
            n = self.in_flight[endpoint] = self.in_flight.get(endpoint, 0) + 1
            self.max_in_flight[endpoint] = max(self.max_in_flight.get(endpoint, 0), n)
        _wait_or_drop(handler, arrival, arrival.arrived + self.latency)
        with self.lock:
            self.in_flight[endpoint] -= 1
            arrival.ended = time.time()
        payload = json.dumps({"text": f"answer to {key[0]}"}).encode()
        try:
            handler.send_response(200)
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except OSError:
            pass  # the client went away (killed, cancelled): the work was done anyway

    @contextmanager
    def running(self) -> Iterator[FakeEndpoint]:
        """Serve in a thread for the duration of the block."""
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()
            thread.join(5)


def _wait_or_drop(handler: BaseHTTPRequestHandler, arrival: Arrival, until: float) -> None:
    """Serve until ``until``; when the client closed its connection meanwhile (the body is read,
    so the socket turns readable only at its end), note when on ``arrival`` at once (a test may
    read it before the work ends). The work goes on either way."""
    while (left := until - time.time()) > 0:
        if arrival.dropped is not None:
            time.sleep(left)
            break
        readable, _, _ = select.select([handler.connection], [], [], left)
        if readable:
            try:
                closed = handler.connection.recv(1, socket.MSG_PEEK) == b""
            except OSError:
                closed = True
            if closed:
                arrival.dropped = time.time()
            else:
                time.sleep(left)  # more bytes than the request's: nothing to watch


_STARTED: list[subprocess.Popen[str]] = []


@contextmanager
def reaped() -> Iterator[None]:
    """Kill and reap every worker started in the block that is still running at its end."""
    before = len(_STARTED)
    try:
        yield
    finally:
        for w in _STARTED[before:]:
            if w.returncode is None:
                if w.poll() is None:
                    w.kill()
                w.communicate()
        del _STARTED[before:]


def start_worker(dsn: str, schema: str, url: str, **options: object) -> subprocess.Popen[str]:
    """A worker subprocess running the fleet job (options: questions, models, lease, ...)."""
    args = [sys.executable, "-m", "tests.postgres.fleet_worker", "--dsn", dsn]
    args += ["--schema", schema, "--url", url]
    for name, value in options.items():
        args += [f"--{name}", str(value)]
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    worker = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _STARTED.append(worker)
    return worker


def wait_all(workers: list[subprocess.Popen[str]], timeout: float) -> list[str]:
    """Each worker's output once it exits; all are killed if one outlives ``timeout``."""
    deadline = time.monotonic() + timeout
    outs: list[str] = []
    late: list[str] = []
    for w in workers:
        try:
            out, err = w.communicate(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            w.kill()
            out, err = w.communicate()
            late.append(f"worker {w.pid} did not finish: {err[-2000:]}")
        outs.append(out + err)
    if late:
        raise AssertionError("; ".join(late))
    return outs


def overlaps(arrivals: list[Arrival]) -> dict[tuple[str, str], int]:
    """The most requests one endpoint served at once, from the arrival log."""
    events: dict[tuple[str, str], list[tuple[float, int]]] = {}
    for a in arrivals:
        ends = a.ended if a.ended is not None else float("inf")
        events.setdefault((a.key[1], a.key[2]), []).extend([(a.arrived, 1), (ends, -1)])
    most = {}
    for endpoint, points in events.items():
        n = best = 0
        for _, step in sorted(points, key=lambda p: (p[0], p[1])):
            n += step
            best = max(best, n)
        most[endpoint] = best
    return most
