"""Loopback imitations of Beacon's services: a well-behaved one and a hostile one.

The well-behaved services are served by uvicorn in a thread of the test process (:func:`serve`);
the hostile server (:func:`serve_hostile`, at the end of this module) is written on raw asyncio
streams to misbehave byte by byte.

One Starlette app answers as the hybrid router (``/router/...``), as per-region Modal web
endpoints (``/modal/{region}/...``) and as an OpenAI-compatible server (``/openai/v1/...``).
What it does is chosen by the prompt (the question, when it comes inside Beacon's system prompt
text), so one server serves every test:

=====================  =============================================================
prompt                 answer
=====================  =============================================================
``ok:<text>``          success with ``<text>``
``empty``              success with ``""``
``legacy-empty``       router: ``EMPTY_MODEL_RESPONSE`` (other services: empty success)
``unavailable``        router: ``PROVIDER_UNAVAILABLE`` without a ``transient`` flag
``unknown-model``      a permanent "Unknown model" failure in each service's form
``gpu-error``          Modal: ``{status: "error"}`` from the worker (transient)
``status:<n>``         HTTP ``<n>`` (429 and 503 carry ``Retry-After: 0``)
``flaky:<n>:<text>``   HTTP 503 for the first ``<n>`` requests of this key, then success
``chain:<n>:<text>``   Modal: 303 to a poll URL, ``<n>`` times in all, then success
``forever``            Modal: 303 to a poll URL, for ever
``drop``               headers and half a body, then the connection is closed
``malformed``          HTTP 200 with a body that is not JSON
``hang``               no answer until the client disconnects (the time is recorded)
``echo-auth``          HTTP 400 whose body quotes the ``Authorization`` header
``echo-receipt``       success whose receipt and text-free fields quote that header
``wrong-region``       router: success served by ``us-east`` whatever was asked
=====================  =============================================================

Beacon's multi-region Modal app is imitated at ``/modal-multi/inference`` (and at
``/modal/multi/inference``, for the documentation's ``serve modal/multi=URL``): it runs each request
in the region its body's ``region`` names (absent or anything else: ``us-east``) and reports
it (``asia-southeast`` for asia-pacific), answering ``ran in <region>: <prompt>``. An app that
ignores ``region`` (every request runs in ``us-east``, as the multi-region app does for a client
that never sends one) answers at ``/modal-us-only/inference``.

The server runs in its own thread with its own asyncio loop, so tests on trio use it too.
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
from urllib.parse import parse_qs, quote, urlsplit

import uvicorn
from attrs import define, field, frozen
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send


@frozen
class Seen:
    """One request the server received."""

    method: str
    path: str
    query: str
    prompt: str | None
    authorization: str | None
    trace_id: str | None
    body: Any = None


@define
class ServerLog:
    """What the server saw, shared with the test thread under a lock."""

    lock: threading.Lock = field(factory=threading.Lock)
    seen: list[Seen] = field(factory=list)
    counts: Counter[str] = field(factory=Counter)
    hang_started: list[float] = field(factory=list)
    disconnected: list[float] = field(factory=list)

    def add(self, seen: Seen) -> None:
        with self.lock:
            self.seen.append(seen)

    def bump(self, key: str) -> int:
        with self.lock:
            self.counts[key] += 1
            return self.counts[key]

    def snapshot(self) -> list[Seen]:
        with self.lock:
            return list(self.seen)

    def reset(self) -> None:
        with self.lock:
            self.seen.clear()
            self.counts.clear()
            self.hang_started.clear()
            self.disconnected.clear()


class _DropResponse(Response):
    """Sends headers and part of the promised body, then fails so uvicorn closes the socket."""

    def __init__(self) -> None:
        super().__init__()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"500")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"success": tr', "more_body": True})
        raise ConnectionAbortedError("dropping the connection on purpose")


def question_of(prompt: str) -> str:
    """The question inside Beacon's text form (``system/…/user/…/assistant``), or the prompt."""
    if prompt.startswith("system\n") and "\nuser\n" in prompt:
        return prompt.split("\nuser\n", 1)[1].removesuffix("\nassistant\n")
    return prompt


def build_app(log: ServerLog) -> Starlette:
    """The fake services' ASGI app, recording into ``log``."""

    async def hang(request: Request) -> Response:
        with log.lock:
            log.hang_started.append(time.monotonic())
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                with log.lock:
                    log.disconnected.append(time.monotonic())
                return PlainTextResponse("gone")

    async def common(request: Request, prompt: str, key: str) -> Response | None:
        """Behaviours shared by every service; ``None`` when the service must answer."""
        if prompt == "drop":
            return _DropResponse()
        if prompt == "malformed":
            return PlainTextResponse("not json {", status_code=200)
        if prompt == "hang":
            return await hang(request)
        if prompt == "echo-auth":
            auth = request.headers.get("authorization", "")
            return PlainTextResponse(f"rejected credentials: {auth}", status_code=400)
        if prompt.startswith("status:"):
            status = int(prompt.split(":")[1])
            headers = {"Retry-After": "0"} if status in (429, 503) else {}
            return PlainTextResponse(f"status {status}", status_code=status, headers=headers)
        if prompt.startswith("flaky:"):
            _, n, _text = prompt.split(":", 2)
            if log.bump(key) <= int(n):
                return PlainTextResponse("overloaded", status_code=503)
        return None

    def answer_text(prompt: str) -> str:
        if prompt.startswith(("ok:", "flaky:", "chain:")):
            return prompt.split(":", 2)[-1] if not prompt.startswith("ok:") else prompt[3:]
        return ""

    async def router_inference(request: Request) -> Response:
        body = await request.json()
        prompt = question_of(body["prompt"])
        auth = request.headers.get("authorization")
        log.add(
            Seen(
                "POST",
                request.url.path,
                request.url.query,
                prompt,
                auth,
                request.headers.get("x-trace-id"),
                body,
            )
        )
        key = f"router/{body['model']}/{body['region_preference']}/{prompt}"
        early = await common(request, prompt, key)
        if early is not None:
            return early
        if prompt == "unavailable":
            return JSONResponse(
                {
                    "success": False,
                    "error": f"no healthy provider in {body['region_preference']}",
                    "error_code": "PROVIDER_UNAVAILABLE",
                    "metadata": {},
                }
            )
        if prompt == "unknown-model":
            return JSONResponse(
                {
                    "success": False,
                    "error": f"Unknown model: {body['model']}",
                    "error_code": "PROVIDER_EXECUTION_FAILED",
                    "failure": {"code": "PROVIDER_EXECUTION_FAILED", "transient": False},
                }
            )
        if prompt == "legacy-empty":
            # Older routers: no metadata; the provider's name says where it ran.
            return JSONResponse(
                {
                    "success": False,
                    "response": "",
                    "error_code": "EMPTY_MODEL_RESPONSE",
                    "provider_used": f"modal-{body['region_preference']}",
                }
            )
        if prompt == "wrong-region":
            return JSONResponse(
                {
                    "success": True,
                    "response": "from the US",
                    "provider_used": "modal-us-east",
                    "metadata": {"provider_type": "modal", "region": "us-east"},
                }
            )
        receipt: dict[str, Any] = {
            "schema_version": "v0.1.0",
            "execution_details": {"region": body["region_preference"], "model": body["model"]},
            "output": {"response": answer_text(prompt), "prompt": prompt},
        }
        extra: dict[str, Any] = {}
        if prompt == "echo-receipt":
            receipt["provenance"] = {"auth_seen": auth}
            extra = {"auth_seen": auth}
        return JSONResponse(
            {
                "success": True,
                "response": answer_text(prompt),
                "provider_used": f"modal-{body['region_preference']}",
                "inference_time": 0.01,
                "cost_estimate": 0.0001,
                "metadata": {
                    "provider_type": "modal",
                    "region": body["region_preference"],
                    "model": body["model"],
                    "receipt": receipt,
                    **extra,
                },
            }
        )

    async def router_providers(request: Request) -> Response:
        providers = [
            {"name": "modal-us-east", "type": "modal", "region": "us-east", "healthy": True},
            {"name": "modal-eu-west", "type": "modal", "region": "eu-west", "healthy": True},
            {"name": "modal-apac", "type": "modal", "region": "asia-pacific", "healthy": False},
        ]
        region = request.query_params.get("region")
        if region:
            providers = [p for p in providers if p["region"] == region]
        return JSONResponse({"providers": providers})

    async def router_health(request: Request) -> Response:
        return JSONResponse(
            {
                "status": "healthy",
                "timestamp": "2025-01-01T00:00:00Z",
                "version": "fake-1",
                "providers_total": 3,
                "providers_healthy": 2,
                "regions": ["us-east", "eu-west", "asia-pacific"],
            }
        )

    def modal_success(region: str, model: str, text: str, extra: dict[str, Any]) -> Response:
        return JSONResponse(
            {
                "success": True,
                "response": text,
                "model": model,
                "inference_time": 0.01,
                "region": "asia-southeast" if region == "asia-pacific" else region,
                "tokens_generated": len(text.split()),
                "receipt": {"schema_version": "v0.1.0", **extra},
            }
        )

    async def modal_multi(request: Request) -> Response:
        body = await request.json()
        asked = body.get("region")
        log.add(Seen("POST", request.url.path, "", body.get("prompt"), None, None, body))
        ignores = request.url.path.startswith("/modal-us-only/")
        ran = (
            asked if asked in ("us-east", "eu-west", "asia-pacific") and not ignores else "us-east"
        )
        return JSONResponse(
            {
                "status": "success",
                "response": f"ran in {ran}: {body.get('prompt')}",
                "model": body.get("model"),
                "region": "asia-southeast" if ran == "asia-pacific" else ran,
                "inference_time": 0.01,
            }
        )

    async def modal_inference(request: Request) -> Response:
        region = request.path_params["region"]
        if region == "multi":
            return await modal_multi(request)
        auth = request.headers.get("authorization")
        call = request.query_params.get("call")
        if request.method == "GET":
            # A poll of a running call: the state lives in the call id.
            log.add(Seen("GET", request.url.path, request.url.query, None, auth, None))
            _seq, prompt, model = (call or "").split("|", 2)
            again = Response(status_code=303, headers={"Location": f"?call={quote(call or '')}"})
            if prompt == "forever":
                return again
            _, n, text = prompt.split(":", 2)
            if log.bump(f"modal/{region}/{call}") < int(n):
                return again
            return modal_success(region, model, text, {})
        body = await request.json()
        prompt = question_of(body["prompt"])
        log.add(Seen("POST", request.url.path, request.url.query, prompt, auth, None, body))
        key = f"modal/{region}/{body['model']}/{prompt}"
        early = await common(request, prompt, key)
        if early is not None:
            return early
        if prompt.startswith("chain:") or prompt == "forever":
            # Each POST starts a new call, as on Modal; its id names it in every poll.
            target = f"{log.bump('calls')}|{prompt}|{body['model']}"
            return Response(status_code=303, headers={"Location": f"?call={quote(target)}"})
        if prompt == "unknown-model":
            return JSONResponse(
                {"status": "error", "error": f"Unknown model: {body['model']}", "region": region}
            )
        if prompt == "gpu-error":
            return JSONResponse(
                {"status": "error", "error": "CUDA error: device-side assert", "region": region}
            )
        extra = {"provenance": {"auth_seen": auth}} if prompt == "echo-receipt" else {}
        return modal_success(region, body["model"], answer_text(prompt), extra)

    async def modal_health(request: Request) -> Response:
        region = request.path_params["region"]
        auth = request.headers.get("authorization")
        log.add(Seen("GET", request.url.path, "", None, auth, None))
        status = "loading" if region == "asia-pacific" else "healthy"
        return JSONResponse(
            {"status": status, "region": region, "models_available": ["m1"], "models_ready": []}
        )

    async def openai_chat(request: Request) -> Response:
        body = await request.json()
        prompt = body["messages"][-1]["content"]
        auth = request.headers.get("authorization")
        log.add(Seen("POST", request.url.path, request.url.query, prompt, auth, None, body))
        early = await common(request, prompt, f"openai/{body['model']}/{prompt}")
        if early is not None:
            return early
        if prompt == "unknown-model":
            return JSONResponse(
                {"error": {"message": f"model {body['model']} not found"}}, status_code=404
            )
        content: str | None = answer_text(prompt) or None
        if prompt == "echo-receipt":
            content = "fine"
        return JSONResponse(
            {
                "id": "chatcmpl-fake",
                "model": body["model"],
                "choices": [{"message": {"role": "assistant", "content": content}}],
                "usage": {"total_tokens": 3},
            }
        )

    async def openai_models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "m1"}]})

    return Starlette(
        routes=[
            Route("/router/inference", router_inference, methods=["POST"]),
            Route("/router/providers", router_providers, methods=["GET"]),
            Route("/router/health", router_health, methods=["GET"]),
            Route("/modal/{region}/inference", modal_inference, methods=["POST", "GET"]),
            Route("/modal/{region}/health", modal_health, methods=["GET"]),
            Route("/modal-multi/inference", modal_multi, methods=["POST"]),
            Route("/modal-us-only/inference", modal_multi, methods=["POST"]),
            Route("/openai/v1/chat/completions", openai_chat, methods=["POST"]),
            Route("/openai/v1/models", openai_models, methods=["GET"]),
        ]
    )


@define
class LiveServer:
    """The fake services, listening on ``base_url``."""

    base_url: str
    log: ServerLog


@contextmanager
def serve() -> Iterator[LiveServer]:
    """Run the fake services on a free loopback port in a thread with its own event loop."""
    log = ServerLog()
    # IPPROTO_TCP explicitly: asyncio enables TCP_NODELAY only on sockets whose proto says TCP,
    # and without it every small response waits 40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        build_app(log),
        loop="asyncio",
        http="h11",
        lifespan="off",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake Beacon server did not start")
            time.sleep(0.001)
        yield LiveServer(f"http://127.0.0.1:{port}", log)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


# -- the hostile server ------------------------------------------------------------------
#
# A hostile HTTP server on loopback, written on raw asyncio streams to misbehave byte by byte.
#
# It answers as the hybrid router (``/router/inference``), a Modal web endpoint
# (``/modal/<region>/inference``) and an OpenAI-compatible server
# (``/openai/v1/chat/completions``). What it does is chosen by the request's prompt (a Modal poll,
# a ``GET``, carries it as ``?b=<behaviour>``):
#
# =======================  ==================================================================
# behaviour                answer
# =======================  ==================================================================
# ``ok``                   a success in the service's own form
# ``big``                  200 announcing 100 MiB (``Content-Length``), then sending zeros
# ``big-undeclared``       200 without a length, 100 MiB of zeros until the connection closes
# ``endless``              200 with a chunked body that never ends
# ``big-error``            500 announcing 100 MiB, then sending zeros
# ``trickle``              200 announcing 10 000 bytes, then one byte every 20 ms
# ``silent``               the request is read, and nothing is ever sent back
# ``loop``                 303 to itself, for ever (Modal's "still running, poll here")
# ``ra:<value>``           429 with ``Retry-After: <value>`` the first time, then a success
# ``echo-auth``            400 whose body quotes the ``Authorization`` header it received
# =======================  ==================================================================
#
# The server runs in a thread with its own event loop, so tests on trio use it too. Whatever
# the client does, the server stops sending after :data:`SAFETY_LIMIT` bytes, so a regression
# that stops bounding answers fails its test instead of filling the machine's memory.

MiB = 1024 * 1024
SAFETY_LIMIT = 256 * MiB
_CHUNK = b"0" * (64 * 1024)
_REASONS = {200: "OK", 303: "See Other", 400: "Bad Request", 429: "Too Many Requests", 500: "Oops"}


@frozen
class HostileSeen:
    """One request the server read."""

    method: str
    service: str
    behaviour: str
    authorization: str | None


@define
class HostileLog:
    """What the server saw and sent, shared with the test thread under a lock."""

    lock: threading.Lock = field(factory=threading.Lock)
    seen: list[HostileSeen] = field(factory=list)
    counts: Counter[str] = field(factory=Counter)
    sent: Counter[str] = field(factory=Counter)
    closed: list[float] = field(factory=list)

    def add(self, seen: HostileSeen) -> None:
        with self.lock:
            self.seen.append(seen)

    def bump(self, key: str) -> int:
        with self.lock:
            self.counts[key] += 1
            return self.counts[key]

    def add_sent(self, behaviour: str, n: int) -> None:
        with self.lock:
            self.sent[behaviour] += n

    def snapshot(self) -> list[HostileSeen]:
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
        self.log.add(HostileSeen(method, service, behaviour, headers.get("authorization")))
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
