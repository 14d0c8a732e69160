"""The library's logging: the lines a job writes, no secret in any, nothing per execution.

Jobs run through the hybrid-router executor against a respx mock that echoes the canary token
back in error bodies, with every ``beacon_orchestrator`` logger captured at ``DEBUG``.
"""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
import respx

from beacon_orchestrator import (
    ExecutionKey,
    ExecutionRecord,
    ExecutionStatus,
    JobSpec,
    JobStatus,
    Limits,
    ModelTarget,
    PreflightError,
    Question,
    RetryPolicy,
    SQLiteStore,
    run_job,
    start_job,
)
from beacon_orchestrator.adapters import HybridRouterExecutor
from beacon_orchestrator.stores.sqlite import _schema
from beacon_orchestrator.testing import FakeExecutor, Step, run_virtual

CANARY = "canary-3b9e-log-SECRET-do-not-leak"
BASE = "http://router.test:8000"
LOGGER = "beacon_orchestrator"
RETRY = RetryPolicy(attempts=3, wait_initial=0.01, wait_max=0.01, wait_jitter=0.0)


def _answer(request: httpx.Request) -> httpx.Response:
    """The router: a prompt says what to do; error bodies quote the Authorization header."""
    body = json.loads(request.content)
    prompt, auth = body["prompt"], request.headers.get("authorization", "")
    if prompt == "flaky" and "#1" in request.headers.get("x-trace-id", ""):
        return httpx.Response(503, text=f"overloaded; you sent {auth}")
    if prompt == "refused":
        return httpx.Response(400, json={"detail": f"bad request with header {auth}"})
    return httpx.Response(
        200,
        json={
            "success": True,
            "response": f"answer to {prompt}",
            "provider_used": "modal-us-east",
            "metadata": {"region": body["region_preference"], "echo": auth},
        },
    )


def _providers(healthy: bool) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "providers": [
                {"name": "p", "type": "modal", "region": "us-east", "healthy": healthy},
                {"name": "q", "type": "modal", "region": "eu-west", "healthy": True},
            ]
        },
    )


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        mock.post("/inference").mock(side_effect=_answer)
        yield mock


@pytest.fixture
def captured(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    return caplog


def spec(job_id: str, prompts: dict[str, str]) -> JobSpec:
    return JobSpec(
        id=job_id,
        questions=[Question(qid, prompt) for qid, prompt in prompts.items()],
        models=[ModelTarget("llama3.2-1b", ["us-east", "eu-west"])],
    )


def everything_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Each record's message, its raw arguments and its formatted line."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    texts: list[str] = []
    for r in caplog.records:
        texts += [r.getMessage(), formatter.format(r), repr(r.args)]
    return texts


def lines(caplog: pytest.LogCaptureFixture, level: int | None = None) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith(LOGGER) and (level is None or r.levelno == level)
    ]


@pytest.mark.anyio
async def test_a_job_logs_start_preflight_retries_executions_and_end_without_the_token(
    router: respx.MockRouter, captured: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    router.get("/providers").mock(return_value=_providers(healthy=True))
    job = spec("logged", {"plain": "hello", "flaky": "flaky", "refused": "refused"})
    async with (
        HybridRouterExecutor(BASE, api_key=CANARY) as executor,
        SQLiteStore(tmp_path / "jobs.db") as store,
    ):
        result = await run_job(job, executor, store=store, retry=RETRY, preflight=True)
    # The token really went out, and really came back in error bodies and metadata.
    sent = [call.request.headers["authorization"] for call in router.calls]
    assert len(sent) == 9  # the preflight, 6 executions and 2 retries
    assert set(sent) == {f"Bearer {CANARY}"}
    assert sum(CANARY in call.response.text for call in router.calls) == 8
    assert result.counts[ExecutionStatus.FAILED] == 2  # refused, in both regions

    assert not [text for text in everything_logged(captured) if CANARY in text]
    info = lines(captured, logging.INFO)
    assert (
        "job logged started: 6 planned, 6 to run, 0 kept from an earlier run, strategy endpoint"
        in info
    )
    assert "job logged: preflight passed for us-east, eu-west" in info
    retries = [line for line in info if "retrying" in line]
    assert sorted(retries) == [
        f"job logged: flaky/llama3.2-1b@{region} attempt 1 failed (HTTP_503); retrying in 0.01 s"
        for region in ("eu-west", "us-east")
    ]
    assert info[-1] == (f"job logged finished: failed: {result.reason} (completed 4, failed 2)")
    assert any(line.endswith("creating a new database file") for line in info)
    debug = lines(captured, logging.DEBUG)
    assert "job logged: plain/llama3.2-1b@us-east completed after 1 attempt(s)" in debug
    assert "job logged: flaky/llama3.2-1b@eu-west completed after 2 attempt(s)" in debug
    assert "job logged: refused/llama3.2-1b@us-east failed after 1 attempt(s) (HTTP_400)" in debug
    assert all(r.name.startswith(f"{LOGGER}.") for r in captured.records if LOGGER in r.name)


@pytest.mark.anyio
async def test_a_failed_preflight_is_a_warning_naming_the_region(
    router: respx.MockRouter, captured: pytest.LogCaptureFixture
) -> None:
    router.get("/providers").mock(return_value=_providers(healthy=False))
    async with HybridRouterExecutor(BASE, api_key=CANARY) as executor:
        with pytest.raises(PreflightError):
            await run_job(spec("unhealthy", {"q": "hello"}), executor, preflight=True)
    warnings = lines(captured, logging.WARNING)
    assert len(warnings) == 1
    assert warnings[0].startswith("job unhealthy: preflight failed: no healthy provider")
    assert "'us-east'" in warnings[0]
    assert not [text for text in everything_logged(captured) if CANARY in text]


@pytest.mark.anyio
async def test_a_preflight_that_cannot_reach_the_router_logs_no_token(
    router: respx.MockRouter, captured: pytest.LogCaptureFixture
) -> None:
    router.get("/providers").mock(
        side_effect=lambda request: httpx.Response(
            401, text=f"who is {request.headers['authorization']}?"
        )
    )
    async with HybridRouterExecutor(BASE, api_key=CANARY) as executor:
        with pytest.raises(PreflightError):
            await run_job(spec("denied", {"q": "hello"}), executor, preflight=True)
    assert [line for line in lines(captured, logging.WARNING) if "preflight failed" in line]
    assert not [text for text in everything_logged(captured) if CANARY in text]


def test_a_cancellation_logs_who_asked_and_why(captured: pytest.LogCaptureFixture) -> None:
    job = spec("stopped", {f"q{i}": "hello" for i in range(4)})

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            handle = await start_job(tg, job, FakeExecutor(default=Step(latency=1.0)))
            await anyio.sleep(1.5)
            handle.cancel("enough for today")
            assert (await handle.wait()).status is JobStatus.CANCELLED

    run_virtual(main)
    info = lines(captured, logging.INFO)
    assert "job stopped: cancelled by handle: enough for today" in info
    assert info[-1].startswith("job stopped finished: cancelled: Cancelled (enough for today)")


def test_a_job_deadline_is_logged_as_the_cancellation_source(
    captured: pytest.LogCaptureFixture,
) -> None:
    job = spec("late", {f"q{i}": "hello" for i in range(4)})
    fake = FakeExecutor(default=Step(latency=1.0))
    run_virtual(lambda: run_job(job, fake, limits=Limits(job_timeout=2.5)))
    assert "job late: cancelled by deadline: the job deadline of 2.5 s passed" in lines(captured)


def test_nothing_is_logged_per_execution_unless_debug_is_on(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The level is asked once per job: a job of 200 executions at INFO asks as often as one of
    2, and writes no line per execution."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    asked: list[int] = []
    real = logging.Logger.isEnabledFor

    def counting(self: logging.Logger, level: int) -> bool:
        if self.name.startswith(LOGGER):
            asked.append(level)
        return real(self, level)

    monkeypatch.setattr(logging.Logger, "isEnabledFor", counting)

    def asks_for(n_questions: int) -> int:
        asked.clear()
        job = spec(f"quiet-{n_questions}", {f"q{i}": "hello" for i in range(n_questions)})
        run_virtual(lambda: run_job(job, FakeExecutor(default=Step(latency=1.0))))
        return len(asked)

    assert asks_for(100) == asks_for(1)
    assert not lines(caplog, logging.DEBUG)
    assert len(lines(caplog)) == 4  # started and finished, twice


def test_the_package_attaches_only_a_null_handler() -> None:
    handlers = logging.getLogger(LOGGER).handlers
    assert [type(h) for h in handlers] == [logging.NullHandler]


# -- the SQLite store ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_store_recovering_a_write_ahead_log_says_so_and_keeps_every_record(
    tmp_path: Path, captured: pytest.LogCaptureFixture
) -> None:
    """A copy of the file and its write-ahead log taken while a store is open is what a crash
    leaves behind: opening it logs the recovery, and the records are there."""
    job = spec("crashed", {"q": "hello"})
    key = ExecutionKey("q", "llama3.2-1b", "us-east")
    original, copy = tmp_path / "live.db", tmp_path / "crashed.db"
    async with SQLiteStore(original) as live:
        await live.open_job(job)
        await live.write(job.id, ExecutionRecord(key=key, status=ExecutionStatus.COMPLETED))
        shutil.copy(original, copy)
        shutil.copy(f"{original}-wal", f"{copy}-wal")
    assert Path(f"{copy}-wal").stat().st_size > 0
    captured.clear()
    async with SQLiteStore(copy) as recovered:
        assert [r.key for r in await recovered.records(job.id)] == [key]
    (line,) = [m for m in lines(captured, logging.INFO) if "write-ahead log" in m]
    assert line.startswith(f"SQLite store {copy}: found a write-ahead log of ")
    assert "recovers the transactions it committed" in line


@pytest.mark.anyio
async def test_a_store_migrating_a_file_logs_both_versions(
    tmp_path: Path, captured: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.db"
    async with SQLiteStore(path):
        pass
    newer = (*_schema._MIGRATIONS, ("CREATE TABLE notes (text TEXT)",))
    monkeypatch.setattr(_schema, "_MIGRATIONS", newer)
    monkeypatch.setattr(_schema, "SCHEMA_VERSION", len(newer))
    captured.clear()
    async with SQLiteStore(path):
        pass
    old, new = len(newer) - 1, len(newer)
    assert f"SQLite store {path}: migrating from schema version {old} to {new}" in lines(captured)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == new
