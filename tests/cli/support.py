"""Helpers for the CLI tests: job files, the command runner and a look into SQLite files."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from beacon_orchestrator._demo import demo_data
from beacon_orchestrator.cli import cli

# What `python -m beacon_orchestrator.cli` runs: the `beacon` command, whatever PATH holds.
BEACON = [sys.executable, "-m", "beacon_orchestrator.cli"]

TERMINAL = frozenset({"completed", "failed", "timeout", "cancelled", "skipped"})


def invoke(args: Sequence[str], *, env: Mapping[str, str] | None = None) -> Result:
    """Run ``beacon ARGS`` in-process; output is not a terminal, so progress is plain."""
    runner = CliRunner()
    return runner.invoke(cli, list(args), env={"COLUMNS": "120", **(env or {})})


def write_json(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    return path


def demo_job_file(path: Path, job_id: str = "demo-job") -> Path:
    """The demo job, in the library's own format, with id ``job_id``."""
    doc = demo_data().spec.to_dict()
    doc["id"] = job_id
    return write_json(path, doc)


def statuses(db: Path, job_id: str) -> Counter[str]:
    """Record counts per status, read straight from the SQLite file."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT status, COUNT(*) FROM records WHERE job_id = ? GROUP BY status", (job_id,)
        ).fetchall()
    return Counter(dict(rows))


def keys(db: Path, job_id: str) -> list[tuple[str, str, str]]:
    """Every stored key of a job (duplicates would show twice)."""
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT question_id, model_id, region FROM records WHERE job_id = ?", (job_id,)
        ).fetchall()


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a `beacon` subprocess: no colour or width surprises from the host."""
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "COLUMNS")}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env
