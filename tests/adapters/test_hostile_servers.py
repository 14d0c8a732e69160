"""Every adapter against a hostile server on loopback: each execution ends, classified, in
bounded time and memory, and the canary token appears nowhere a user or a log could see it.

The server (``fake_beacon.serve_hostile``) misbehaves at the byte level: answers too big to keep, a
chunked body without end, bytes trickling in, silence, a 303 to itself, absurd
``Retry-After`` values, and an error page quoting the ``Authorization`` header. The tests use
short timeouts, so the suite's wall time stays small; the test code itself never sleeps.
"""

from __future__ import annotations

import email.utils
import json
import logging
import time
import traceback
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner

from beacon_orchestrator import (
    ExecutionError,
    ExecutionRecord,
    ExecutionStatus,
    JobSpec,
    Limits,
    ModelTarget,
    PermanentError,
    Question,
    RetryPolicy,
    SQLiteStore,
    TransientError,
    export_csv,
    export_jsonl,
    run_job,
)
from beacon_orchestrator.adapters import (
    HybridRouterExecutor,
    ModalEndpoint,
    ModalExecutor,
    OpenAICompatExecutor,
)
from beacon_orchestrator.cli import cli

from .fake_beacon import SAFETY_LIMIT, HostileServer, MiB, serve_hostile
from .support import CANARY, AnyHttpExecutor, make_request

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ADAPTERS = ("router", "modal", "openai")
DATE_2100 = email.utils.formatdate(4_102_444_800, usegmt=True)  # 2100-01-01


def fast_retry(**kw: Any) -> RetryPolicy:
    """Two attempts, waits capped by wait_max (see test_live_server.py on wait_initial)."""
    return RetryPolicy(attempts=2, wait_max=0.002, wait_jitter=0.001, **kw)


LOGGERS = ("", "httpx", "httpcore", "beacon_orchestrator", "hpack", "h11")


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileServer]:
    with serve_hostile() as server:
        yield server


@pytest.fixture
def server(hostile: HostileServer) -> HostileServer:
    hostile.log.reset()
    return hostile


def make(adapter: str, server: HostileServer, **kw: Any) -> AnyHttpExecutor:
    """The adapter, pointed at the hostile server, holding the canary token."""
    base = server.base_url
    if adapter == "router":
        return HybridRouterExecutor(f"{base}/router", api_key=CANARY, **kw)
    if adapter == "modal":
        kw.setdefault("poll_interval", 0.005)
        kw.setdefault("max_polls", 5)
        endpoint = ModalEndpoint(f"{base}/modal/us-east/inference")
        return ModalExecutor({"us-east": endpoint}, token=CANARY, **kw)
    return OpenAICompatExecutor(f"{base}/openai", api_key=CANARY, **kw)


async def failure(executor: AnyHttpExecutor, prompt: str, **request: Any) -> ExecutionError:
    """The error one attempt of ``prompt`` ends with (it must end with one, naming no token)."""
    async with executor:
        with pytest.raises(ExecutionError) as info:
            await executor.execute(make_request(prompt, **request))
    shown = [
        str(info.value),
        repr(info.value),
        repr(executor),
        *traceback.format_exception(info.value),
    ]
    assert [text for text in shown if CANARY in text] == []
    return info.value


# -- one attempt at a time ----------------------------------------------------------------


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("behaviour", ["big", "big-undeclared", "endless"])
async def test_an_oversized_answer_is_refused_with_bounded_memory(
    server: HostileServer, adapter: str, behaviour: str
) -> None:
    executor = make(adapter, server)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        started = time.monotonic()
        error = await failure(executor, behaviour)
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(error, PermanentError)
    assert error.code == "RESPONSE_TOO_LARGE"
    assert f"max_response_bytes ({8 * MiB} bytes)" in error.message
    # The default cap is 8 MiB: the whole process (server thread included) stayed far below
    # what reading the answer would take (100 MiB, or without end).
    assert peak < 50 * MiB, f"peak {peak / MiB:.1f} MiB"
    assert elapsed < 10
    sent = server.log.sent[behaviour]
    assert sent < SAFETY_LIMIT
    if behaviour == "big":
        # Refused on its Content-Length: hardly a byte of the body was needed.
        assert "announces 104857600 bytes" in error.message


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_a_huge_error_page_is_quoted_from_its_first_64_kib_only(
    server: HostileServer, adapter: str
) -> None:
    error = await failure(make(adapter, server), "big-error")
    # Still the server error it is (transient), not a refused answer: only its start was read.
    assert (type(error), error.code) == (TransientError, "HTTP_500")
    assert "HTTP 500" in error.message
    assert "000000" in error.message
    assert server.log.sent["big-error"] < 32 * MiB  # socket buffers, not the 100 MiB


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_a_smaller_cap_is_enforced_as_the_body_arrives(
    server: HostileServer, adapter: str
) -> None:
    error = await failure(make(adapter, server, max_response_bytes=100_000), "endless")
    assert error.code == "RESPONSE_TOO_LARGE"
    assert "more bytes arrived" in error.message
    # Counted while reading: stopped within a few chunks of the cap, not at a timeout. (No lower
    # bound on the server's count: its thread may not have counted what the client already read.)
    assert server.log.sent["endless"] < 8 * MiB


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_a_trickling_answer_ends_by_the_attempts_deadline(
    server: HostileServer, adapter: str
) -> None:
    executor = make(adapter, server, deadline_margin=0.05)
    # Long enough for the server thread to start trickling on a busy machine.
    deadline = anyio.current_time() + 0.4
    error = await failure(executor, "trickle", deadline=deadline)
    assert isinstance(error, TransientError)
    assert error.code == "READ_TIMEOUT"
    assert "still arriving" in error.message
    # Nobody enforced the deadline here: the executor's own cut-off (deadline + margin) did,
    # although a trickle never leaves any single read waiting long. (Silence is the job
    # test's, and test_live_server's: httpx's read timeout is enough for it.)
    assert deadline <= anyio.current_time() < deadline + 1.0
    assert 1 <= server.log.sent["trickle"] < 100


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_the_executor_timeout_bounds_a_trickle_without_a_request_deadline(
    server: HostileServer, adapter: str
) -> None:
    executor = make(adapter, server, timeout=0.2, deadline_margin=0)
    started = anyio.current_time()
    error = await failure(executor, "trickle")
    assert error.code == "READ_TIMEOUT"
    assert 0.2 <= anyio.current_time() - started < 1.2


async def test_a_modal_self_loop_ends_after_max_polls_with_few_requests(
    server: HostileServer,
) -> None:
    started = anyio.current_time()
    error = await failure(make("modal", server, poll_interval=0.01, max_polls=5), "loop")
    assert isinstance(error, PermanentError)
    assert error.code == "TOO_MANY_POLLS"
    seen = server.log.snapshot()
    assert [s.method for s in seen] == ["POST"] + ["GET"] * 5
    # Paced by poll_interval: five pauses of 10 ms, not a hot loop.
    assert 0.05 <= anyio.current_time() - started < 2


@pytest.mark.parametrize("adapter", ["router", "openai"])
async def test_a_303_elsewhere_is_a_permanent_http_error(
    server: HostileServer, adapter: str
) -> None:
    error = await failure(make(adapter, server), "loop")
    assert (type(error), error.code) == (PermanentError, "HTTP_303")
    assert len(server.log.snapshot()) == 1


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize(
    ("value", "check"),
    [
        ("1e9", lambda s: s == 1e9),
        (DATE_2100, lambda s: s > 2e9),
        ("-5", lambda s: s == 0.0),
        ("abc", lambda s: s is None),
    ],
    ids=["1e9", "2100", "-5", "abc"],
)
async def test_retry_after_of_any_form_is_read_or_ignored(
    server: HostileServer, adapter: str, value: str, check: Callable[[float | None], bool]
) -> None:
    error = await failure(make(adapter, server), f"ra:{value}")
    assert (type(error), error.code) == (TransientError, "HTTP_429")
    assert check(error.retry_after)


# -- whole jobs: records, store, exports, logs ----------------------------------------------

# behaviour -> (status, error code, attempts) under the fast policy of run_hostile_job.
EXPECTED: dict[str, tuple[ExecutionStatus, str | None, int]] = {
    "ok": (ExecutionStatus.COMPLETED, None, 1),
    "big": (ExecutionStatus.FAILED, "RESPONSE_TOO_LARGE", 1),
    "big-undeclared": (ExecutionStatus.FAILED, "RESPONSE_TOO_LARGE", 1),
    "endless": (ExecutionStatus.FAILED, "RESPONSE_TOO_LARGE", 1),
    "trickle": (ExecutionStatus.TIMEOUT, "TIMEOUT", 2),
    "silent": (ExecutionStatus.TIMEOUT, "TIMEOUT", 2),
    "loop": (ExecutionStatus.FAILED, "HTTP_303", 1),
    # A Retry-After past the job's deadline is not waited on: no retry could follow it.
    "ra:1e9": (ExecutionStatus.FAILED, "HTTP_429", 1),
    f"ra:{DATE_2100}": (ExecutionStatus.FAILED, "HTTP_429", 1),
    # Unreadable or negative: the backoff applies, and the retry succeeds.
    "ra:-5": (ExecutionStatus.COMPLETED, None, 2),
    "ra:abc": (ExecutionStatus.COMPLETED, None, 2),
    "echo-auth": (ExecutionStatus.FAILED, "HTTP_400", 1),
}


def hostile_spec(behaviours: list[str], job_id: str) -> JobSpec:
    return JobSpec(
        id=job_id,
        questions=[Question(f"q{i}", b) for i, b in enumerate(behaviours)],
        models=[ModelTarget("m1", regions=["us-east"])],
    )


def debug_logging(caplog: pytest.LogCaptureFixture) -> None:
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name or None)


def canary_leaks(texts: list[str], files: list[Path]) -> list[str]:
    """Where the canary shows: the texts that hold it and the files whose bytes do."""
    leaks = [text[:200] for text in texts if CANARY in text]
    leaks += [str(f) for f in files if f.exists() and CANARY.encode() in f.read_bytes()]
    return leaks


def beacon_export(db: Path, job_id: str, fmt: str) -> str:
    """What ``beacon export`` prints (it runs its own event loop: call it from a thread)."""
    result = CliRunner().invoke(cli, ["export", job_id, "--store", str(db), "--format", fmt])
    assert result.exit_code == 0, result.output
    return result.output


async def exported(
    db: Path, job_id: str, tmp_path: Path, records: list[ExecutionRecord]
) -> list[str]:
    """The job's records as the library exports them and as ``beacon export`` prints them."""
    export_jsonl(records, tmp_path / "records.jsonl")
    export_csv(records, tmp_path / "records.csv")
    texts = [(tmp_path / "records.jsonl").read_text(), (tmp_path / "records.csv").read_text()]
    for fmt in ("jsonl", "csv"):
        texts.append(await anyio.to_thread.run_sync(beacon_export, db, job_id, fmt))
    return texts


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_a_hostile_job_ends_classified_fast_and_leaks_nothing(
    server: HostileServer, adapter: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    debug_logging(caplog)
    expected = dict(EXPECTED)
    if adapter == "modal":
        expected["loop"] = (ExecutionStatus.FAILED, "TOO_MANY_POLLS", 1)
    job_id = f"hostile-{adapter}"
    db = tmp_path / "hostile.db"
    # A 1 MiB cap (the default's bound is shown above) keeps the oversized answers quick to
    # refuse on a busy machine, well inside the attempt timeout.
    executor = make(adapter, server, max_response_bytes=MiB)
    spec = hostile_spec(list(expected), job_id)
    started = time.monotonic()
    async with executor, SQLiteStore(db) as store:
        result = await run_job(
            spec,
            executor,
            store=store,
            retry=fast_retry(),
            # A job deadline far beyond the test's wall time: what ends the Retry-After
            # executions early is knowing the retry could not come in time, not the deadline.
            limits=Limits(per_endpoint=len(expected), attempt_timeout=0.5, job_timeout=60),
        )
        records = await store.records(job_id)
    elapsed = time.monotonic() - started

    prompts = {q.id: q.prompt for q in spec.questions}
    by_behaviour = {prompts[r.key.question_id]: r for r in records}
    outcomes = {b: (r.status, r.error_code, r.attempts) for b, r in by_behaviour.items()}
    assert outcomes == expected
    assert elapsed < 10, f"the job took {elapsed:.1f} s"
    assert "Bearer ***" in (by_behaviour["echo-auth"].error_message or "")
    # The token was really sent (so this test could fail) ...
    assert {s.authorization for s in server.log.snapshot()} == {f"Bearer {CANARY}"}
    # ... and httpx and httpcore really logged at DEBUG.
    assert {r.name.split(".")[0] for r in caplog.records} >= {"httpx", "httpcore"}

    texts = [repr(executor), str(executor), repr(result), repr(records)]
    texts += [json.dumps([r.to_dict() for r in records])]
    texts += await exported(db, job_id, tmp_path, records)
    texts += [r.getMessage() for r in caplog.records] + [caplog.text]
    files = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
    assert canary_leaks(texts, files) == []


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_retry_after_max_caps_a_provider_asked_wait_in_a_job(
    server: HostileServer, adapter: str
) -> None:
    behaviours = ["ra:1e9", f"ra:{DATE_2100}"]
    started = time.monotonic()
    async with make(adapter, server) as executor:
        result = await run_job(
            hostile_spec(behaviours, f"capped-{adapter}"),
            executor,
            retry=fast_retry(retry_after_max=0.05),
            limits=Limits(per_endpoint=2),
        )
    elapsed = time.monotonic() - started
    assert {(r.status, r.attempts) for r in result.records} == {(ExecutionStatus.COMPLETED, 2)}
    # Waited the cap (plus at most the jitter), not the decades asked for.
    assert 0.05 <= elapsed < 5
