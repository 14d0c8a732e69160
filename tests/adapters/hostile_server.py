"""A hostile HTTP server on loopback, written on raw asyncio streams to misbehave byte by byte.

It answers as the hybrid router (``/router/inference``), a Modal web endpoint
(``/modal/<region>/inference``) and an OpenAI-compatible server
(``/openai/v1/chat/completions``). What it does is chosen by the request's prompt (a Modal poll,
a ``GET``, carries it as ``?b=<behaviour>``):

=======================  ==================================================================
behaviour                answer
=======================  ==================================================================
``ok``                   a success in the service's own form
``big``                  200 announcing 100 MiB (``Content-Length``), then sending zeros
``big-undeclared``       200 without a length, 100 MiB of zeros until the connection closes
``endless``              200 with a chunked body that never ends
``big-error``            500 announcing 100 MiB, then sending zeros
``trickle``              200 announcing 10 000 bytes, then one byte every 20 ms
``silent``               the request is read, and nothing is ever sent back
``loop``                 303 to itself, for ever (Modal's "still running, poll here")
``ra:<value>``           429 with ``Retry-After: <value>`` the first time, then a success
``echo-auth``            400 whose body quotes the ``Authorization`` header it received
=======================  ==================================================================

The server runs in a thread with its own event loop, so tests on trio use it too. Whatever
the client does, the server stops sending after :data:`SAFETY_LIMIT` bytes, so a regression
that stops bounding answers fails its test instead of filling the machine's memory.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any
from urllib.parse import parse_qs, urlsplit

from attrs import define, field, frozen

MiB = 1024 * 1024
SAFETY_LIMIT = 256 * MiB
_CHUNK = b"0" * (64 * 1024)
_REASONS = {200: "OK", 303: "See Other", 400: "Bad Request", 429: "Too Many Requests", 500: "Oops"}


@frozen
class Seen:
    """One request the server read."""

    method: str
    service: str
    behaviour: str
    authorization: str | None


@define
class HostileLog:
    """What the server saw and sent, shared with the test thread under a lock."""

    lock: threading.Lock = field(factory=threading.Lock)
    seen: list[Seen] = field(factory=list)
    counts: Counter[str] = field(factory=Counter)
    sent: Counter[str] = field(factory=Counter)
    closed: list[float] = field(factory=list)

    def add(self, seen: Seen) -> None:
        with self.lock:
            self.seen.append(seen)

    def bump(self, key: str) -> int:
        with self.lock:
            self.counts[key] += 1
            return self.counts[key]

    def add_sent(self, behaviour: str, n: int) -> None:
        with self.lock:
            self.sent[behaviour] += n

    def snapshot(self) -> list[Seen]:
        with self.lock:
            return list(self.seen)

    def reset(self) -> None:
        with self.lock:
            self.seen.clear()
            self.counts.clear()
            self.sent.clear()
            self.closed.clear()


def _success(service: str) -> dict[str, Any]:
    if service == "openai":
        return {"choices": [{"message": {"role": "assistant", "content": "ok"}}]}
    # Served from the job's region, in the router's form and Modal's.
    return {
        "success": True,
        "response": "ok",
        "region": "us-east",
        "metadata": {"region": "us-east"},
    }


def _head(status: int, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Whatever')}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class _Handler:
    """Serves one connection: reads requests, misbehaves as asked."""

    def __init__(
        self, log: HostileLog, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.log = log
        self.reader = reader
        self.writer = writer

    async def serve(self) -> None:
        try:
            while await self.one():
                pass
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            with self.log.lock:
                self.log.closed.append(time.monotonic())
            self.writer.close()
            with suppress(ConnectionError):
                await self.writer.wait_closed()

    async def one(self) -> bool:
        """Read and answer one request; whether the connection may serve another."""
        head = await self.reader.readuntil(b"\r\n\r\n")
        request_line, *lines = head.decode("latin-1").split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = {}
        for line in lines:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body = await self.reader.readexactly(length) if length else b""
        url = urlsplit(target)
        service = url.path.strip("/").split("/")[0]
        if method == "GET":
            behaviour = parse_qs(url.query).get("b", ["ok"])[0]
        else:
            data = json.loads(body)
            prompt = data["messages"][-1]["content"] if service == "openai" else data["prompt"]
            behaviour = str(prompt)
        self.log.add(Seen(method, service, behaviour, headers.get("authorization")))
        return await self.answer(service, behaviour, url.path, headers)

    async def send(self, status: int, headers: list[tuple[str, str]], body: bytes = b"") -> bool:
        headers = [*headers, ("Content-Length", str(len(body)))]
        self.writer.write(_head(status, headers) + body)
        await self.writer.drain()
        return True

    async def answer(
        self, service: str, behaviour: str, path: str, headers: dict[str, str]
    ) -> bool:
        json_type = ("Content-Type", "application/json")
        if behaviour == "ok":
            return await self.send(200, [json_type], json.dumps(_success(service)).encode())
        if behaviour.startswith("ra:"):
            if self.log.bump(f"{service}/{behaviour}") == 1:
                retry_after = ("Retry-After", behaviour[3:])
                return await self.send(429, [retry_after], b"slow down")
            return await self.send(200, [json_type], json.dumps(_success(service)).encode())
        if behaviour == "loop":
            return await self.send(303, [("Location", f"{path}?b=loop")])
        if behaviour == "echo-auth":
            auth = headers.get("authorization", "")
            return await self.send(400, [], f"rejected credentials: {auth}".encode())
        if behaviour == "silent":
            await self.reader.read()  # until the client closes the connection
            return False
        await self.stream(behaviour, json_type)
        return False

    async def stream(self, behaviour: str, json_type: tuple[str, str]) -> None:
        """The answers that are all body: too big, endless, or trickling."""
        if behaviour == "big":
            self.writer.write(_head(200, [json_type, ("Content-Length", str(100 * MiB))]))
            await self.pour(behaviour, 100 * MiB, chunked=False)
        elif behaviour == "big-error":
            self.writer.write(_head(500, [("Content-Length", str(100 * MiB))]))
            await self.pour(behaviour, 100 * MiB, chunked=False)
        elif behaviour == "big-undeclared":
            self.writer.write(_head(200, [json_type, ("Connection", "close")]))
            await self.pour(behaviour, 100 * MiB, chunked=False)
        elif behaviour == "endless":
            self.writer.write(_head(200, [json_type, ("Transfer-Encoding", "chunked")]))
            await self.pour(behaviour, SAFETY_LIMIT, chunked=True)
        elif behaviour == "trickle":
            self.writer.write(_head(200, [json_type, ("Content-Length", "10000")]))
            for _ in range(10_000):
                self.writer.write(b" ")
                await self.writer.drain()
                self.log.add_sent(behaviour, 1)
                await asyncio.sleep(0.02)
        else:
            await self.send(400, [], f"unknown behaviour {behaviour!r}".encode())

    async def pour(self, behaviour: str, total: int, *, chunked: bool) -> None:
        sent = 0
        while sent < min(total, SAFETY_LIMIT):
            chunk = _CHUNK[: total - sent]
            frame = b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk
            self.writer.write(frame)
            await self.writer.drain()
            sent += len(chunk)
            self.log.add_sent(behaviour, len(chunk))


@define
class HostileServer:
    """The hostile services, listening on ``base_url``."""

    base_url: str
    log: HostileLog


@contextmanager
def serve_hostile() -> Iterator[HostileServer]:
    """Run the hostile server on a free loopback port, in a thread with its own event loop."""
    log = HostileLog()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    tasks: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await _Handler(log, reader, writer).serve()
        finally:
            tasks.discard(task)

    async def start() -> asyncio.Server:
        return await asyncio.start_server(handle, sock=sock)

    def run() -> None:
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(start())
        ready.set()
        loop.run_forever()
        server.close()
        for task in list(tasks):
            task.cancel()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        if not ready.wait(10):
            raise RuntimeError("the hostile server did not start")
        yield HostileServer(f"http://127.0.0.1:{port}", log)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        sock.close()
