"""HTTP adapters' throughput against a loopback server, relative to a bare httpx loop.

A uvicorn server runs in a separate process (so it does not share the client's event loop or
GIL) and answers each service's success shape at once. The same ``httpx.AsyncClient`` and the
same number of concurrent workers then send requests either through an adapter's
``execute`` or as bare ``client.post(...)`` + ``response.json()`` calls with the same body and
headers. Short rounds alternate between the two, and the ratio reported is the median of the
ratios of adjacent rounds, so a noisy neighbour hurts both alike. Throughput is given per
wall-clock second (the target's measure) and per second of the client process's CPU time
(the client's own cost, which other load on the machine does not distort). Target
(DESIGN §8): the adapter reaches at least 0.9 times the bare loop's requests/s.

Run: ``python -m benchmarks.bench_http [--quick]`` (or ``python benchmarks/bench_http.py``).
"""

from __future__ import annotations

import json
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx

from beacon_orchestrator import ExecutionKey, ExecutionRequest
from beacon_orchestrator.adapters import (
    HybridRouterExecutor,
    ModalExecutor,
    OpenAICompatExecutor,
)

TARGET = 0.9
CONCURRENCY = 16
TOKEN = "bench-token"

_ROUTER_BODY = json.dumps(
    {
        "success": True,
        "response": "Paris is the capital of France.",
        "provider_used": "modal-us-east",
        "inference_time": 0.5,
        "cost_estimate": 0.0001,
        "metadata": {
            "provider_type": "modal",
            "region": "us-east",
            "model": "m1",
            "receipt": {"schema_version": "v0.1.0", "output": {"response": "Paris."}},
        },
    }
).encode()
_MODAL_BODY = json.dumps(
    {
        "success": True,
        "response": "Paris is the capital of France.",
        "model": "m1",
        "inference_time": 0.5,
        "region": "us-east",
        "tokens_generated": 7,
        "receipt": {"schema_version": "v0.1.0"},
    }
).encode()
_OPENAI_BODY = json.dumps(
    {
        "id": "chatcmpl-1",
        "model": "m1",
        "choices": [
            {"message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}
        ],
        "usage": {"total_tokens": 9},
    }
).encode()
_BODIES = {"/router/inference": _ROUTER_BODY, "/modal": _MODAL_BODY}


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A minimal ASGI app: read the request, answer the path's success body."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    body = _BODIES.get(scope["path"], _OPENAI_BODY)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _serve() -> None:
    """Child process: serve ``_app`` on a free loopback port and print the port."""
    import uvicorn

    # IPPROTO_TCP explicitly: asyncio enables TCP_NODELAY only on sockets that say TCP.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    config = uvicorn.Config(
        _app, loop="asyncio", http="h11", lifespan="off", log_config=None, access_log=False
    )
    uvicorn.Server(config).run(sockets=[sock])


def _request(i: int) -> ExecutionRequest:
    return ExecutionRequest(
        job_id="bench",
        key=ExecutionKey(f"q{i}", "m1", "us-east"),
        prompt="What is the capital of France?",
        params={},
    )


async def _drive(n: int, call: Callable[[int], Awaitable[object]]) -> tuple[float, float]:
    """Requests per wall-clock second and per client-CPU second of ``n`` calls.

    The calls are spread over ``CONCURRENCY`` workers. CPU time is this process's only (the
    server runs in another), so it measures the client's cost whatever else loads the machine.
    """
    per_worker = n // CONCURRENCY

    async def worker(w: int) -> None:
        for i in range(per_worker):
            await call(w * per_worker + i)

    start, cpu = time.perf_counter(), time.process_time()
    async with anyio.create_task_group() as tg:
        for w in range(CONCURRENCY):
            tg.start_soon(worker, w)
    done = per_worker * CONCURRENCY
    return done / (time.perf_counter() - start), done / (time.process_time() - cpu)


async def _compare(base: str, n: int, rounds: int) -> list[dict[str, object]]:
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    results: list[dict[str, object]] = []
    async with httpx.AsyncClient(limits=limits, timeout=None) as client:
        router = HybridRouterExecutor(f"{base}/router", client=client, api_key=TOKEN)
        modal = ModalExecutor({"us-east": f"{base}/modal"}, client=client, token=TOKEN)
        openai = OpenAICompatExecutor(f"{base}/openai", client=client, api_key=TOKEN)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        prompt = "What is the capital of France?"
        cases: list[tuple[str, Any, str, dict[str, Any], dict[str, str]]] = [
            (
                "router",
                router,
                f"{base}/router/inference",
                {
                    "model": "m1",
                    "prompt": prompt,
                    "temperature": 0.1,
                    "max_tokens": 500,
                    "region_preference": "us-east",
                },
                {**auth, "X-Trace-Id": "bench/q1/m1@us-east#1"},
            ),
            (
                "modal",
                modal,
                f"{base}/modal",
                {"model": "m1", "prompt": prompt, "temperature": 0.1, "max_tokens": 500},
                auth,
            ),
            (
                "openai_compat",
                openai,
                f"{base}/openai/v1/chat/completions",
                {
                    "model": "m1",
                    "messages": [{"role": "user", "content": prompt}],
                    "temperature": 0.1,
                    "max_tokens": 500,
                },
                auth,
            ),
        ]
        for name, executor, url, payload, headers in cases:

            async def bare(
                _: int, url: str = url, payload: Any = payload, h: Any = headers
            ) -> None:
                response = await client.post(url, json=payload, headers=h)
                response.raise_for_status()
                response.json()

            async def adapter(i: int, executor: Any = executor) -> None:
                await executor.execute(_request(i))

            await _drive(CONCURRENCY * 20, bare)  # warm the connection pool
            await _drive(CONCURRENCY * 20, adapter)
            bares: list[tuple[float, float]] = []
            adapters: list[tuple[float, float]] = []
            for r in range(rounds):
                # Alternate which goes first, so a drift in the machine's load hits both.
                if r % 2:
                    adapters.append(await _drive(n, adapter))
                    bares.append(await _drive(n, bare))
                else:
                    bares.append(await _drive(n, bare))
                    adapters.append(await _drive(n, adapter))
            for i, (metric, unit, what) in enumerate(
                [
                    ("requests_per_s", "req/s", "wall-clock"),
                    ("requests_per_cpu_s", "req/cpu-s", "client-process CPU time"),
                ]
            ):
                bare_median = statistics.median(b[i] for b in bares)
                adapter_median = statistics.median(a[i] for a in adapters)
                best = max(a[i] for a in adapters) / max(b[i] for b in bares)
                paired = statistics.median(
                    a[i] / b[i] for a, b in zip(adapters, bares, strict=True)
                )
                results.append(
                    {
                        "name": f"http_{name}_{metric}",
                        "value": round(adapter_median, 1),
                        "unit": unit,
                        "target": TARGET,
                        "target_of": "ratio",
                        "target_op": ">=",
                        "baseline": round(bare_median, 1),
                        "ratio": round(paired, 3),
                        "note": (
                            f"{name} adapter vs bare httpx post+json ({what}), same client, "
                            f"concurrency {CONCURRENCY}; {rounds} alternating rounds of {n} "
                            "requests, medians, ratio = median of paired rounds' ratios "
                            f"(best-of ratio {best:.3f}); "
                            f"uvicorn (h11) in a separate process; target ratio >= {TARGET}"
                        ),
                    }
                )
    return results


def run(quick: bool) -> list[dict[str, object]]:
    """Measure every adapter against the bare loop; one dict per adapter."""
    n, rounds = (320, 12) if quick else (1_000, 24)
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        base = f"http://127.0.0.1:{port}"
        return anyio.run(_compare, base, n, rounds)
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    if "--serve" in sys.argv:
        _serve()
    else:
        for row in run(quick="--quick" in sys.argv):
            print(json.dumps(row))
