"""The command line on a PostgreSQL store: ``--store postgresql://...`` for run, resume, status,
export and jobs, and no password printed anywhere."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import anyio
import psycopg
import pytest

from ..cli.support import demo_job_file, invoke
from .server import fresh_database

FAST = ["--executor", "demo", "--speed", "1000", "--progress", "plain"]


@pytest.fixture
def dsn(postgres_dsn: str) -> Iterator[str]:
    """A fresh database's DSN, with a password in it (the test server trusts any)."""
    with fresh_database() as url:
        parts = urlsplit(url)
        netloc = f"postgres:hunter2-secret@{parts.netloc.rpartition('@')[2]}"
        yield urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _stored(dsn: str) -> list[tuple[str, str, str, str]]:
    with psycopg.connect(dsn) as conn:
        exists = conn.execute("SELECT to_regclass('beacon.records')").fetchone()
        if exists is None or exists[0] is None:
            return []  # the store is not created yet
        rows = conn.execute(
            "SELECT question_id, model_id, region, status FROM beacon.records"
        ).fetchall()
    return [tuple(r) for r in rows]


def _verdict(dsn: str) -> str | None:
    if not _stored(dsn):
        return None
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT status FROM beacon.jobs").fetchone()
    return None if row is None else row[0]


def test_run_status_export_and_jobs_on_a_postgres_store(tmp_path: Path, dsn: str) -> None:
    job = demo_job_file(tmp_path / "job.json", "pg-job")
    ran = invoke(["run", str(job), "--store", dsn, *FAST])
    assert ran.exit_code in (0, 1), ran.output
    stored = _stored(dsn)
    assert len(stored) == 64
    assert len({r[:3] for r in stored}) == 64

    status = invoke(["status", "pg-job", "--store", dsn, "--json"])
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["job_id"] == "pg-job"

    exported = invoke(["export", "pg-job", "--store", dsn, "--format", "jsonl"])
    assert exported.exit_code == 0, exported.output
    assert len(exported.stdout.splitlines()) == 64

    listed = invoke(["jobs", "--store", dsn, "--json"])
    assert listed.exit_code == 0, listed.output
    document = json.loads(listed.stdout)
    assert [j["job_id"] for j in document["jobs"]] == ["pg-job"]

    resumed = invoke(["resume", "pg-job", "--store", dsn, *FAST])
    assert resumed.exit_code == ran.exit_code, resumed.output
    assert sorted(_stored(dsn)) == sorted(stored)  # nothing completed ran again, nothing lost
    for result in (ran, status, exported, listed, resumed):
        assert "hunter2-secret" not in result.output
        assert "hunter2-secret" not in (result.stderr or "")


def test_a_postgres_store_that_cannot_be_reached_fails_without_the_password(
    tmp_path: Path,
) -> None:
    job = demo_job_file(tmp_path / "job.json", "pg-job")
    dsn = "postgresql://ann:hunter2-secret@127.0.0.1:1/jobs?connect_timeout=2"
    result = invoke(["run", str(job), "--store", dsn, *FAST])
    assert result.exit_code == 1, result.output
    assert "hunter2-secret" not in result.output
    assert "ann:***@127.0.0.1:1" in result.output


def test_beacon_worker_runs_the_jobs_it_is_given_and_stops_on_sigterm(
    tmp_path: Path, dsn: str
) -> None:
    job = demo_job_file(tmp_path / "job.json", "shared-job")
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    command = [sys.executable, "-m", "beacon_orchestrator.cli", "worker", str(job)]
    command += ["--store", dsn, "--executor", "demo", "--speed", "1000", "--lease", "5"]
    worker = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while _verdict(dsn) is None:
            assert time.monotonic() < deadline, "the worker did not finish the job"
            time.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err.decode()
    assert b"hunter2-secret" not in out + err
    assert len({r[:3] for r in _stored(dsn)}) == 64
    listed = invoke(["jobs", "--store", dsn, "--json"])
    assert json.loads(listed.stdout)["jobs"][0]["status"] == _verdict(dsn)


def test_beacon_cancel_stops_a_published_job(tmp_path: Path, dsn: str) -> None:
    job = demo_job_file(tmp_path / "job.json", "to-cancel")

    async def publish() -> None:
        from beacon_orchestrator._spec import load_jobspec
        from beacon_orchestrator.stores.postgres import PostgresStore

        async with PostgresStore(dsn) as store:
            await store.publish_job(load_jobspec(job))

    anyio.run(publish)
    result = invoke(["cancel", "to-cancel", "--store", dsn, "--reason", "not needed"])
    assert result.exit_code == 0, result.output
    assert "Cancelled to-cancel" in result.stderr
    statuses = {r[3] for r in _stored(dsn)}
    assert statuses == {"skipped"}  # nothing had started: every key is stored SKIPPED
    again = invoke(["cancel", "to-cancel", "--store", dsn])
    assert "already cancelled" in again.stderr


def test_worker_and_cancel_refuse_an_sqlite_store(tmp_path: Path) -> None:
    result = invoke(["cancel", "x", "--store", str(tmp_path / "b.db")])
    assert result.exit_code == 2, result.output
    assert "only in a PostgreSQL store" in result.output
