"""What users copy first must work: the examples directory and the README's Python snippet."""

from __future__ import annotations

import ast
import importlib
import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from beacon_orchestrator import load_jobspec

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.mark.slow
def test_run_job_example_runs_and_resumes(tmp_path: Path) -> None:
    """examples/run_job.py runs on the fake executor, stores its records, and resumes."""
    env = {"PATH": "", "PYTHONPATH": str(ROOT / "src")}
    for _ in range(2):  # the second run resumes from the same file
        done = subprocess.run(
            [sys.executable, str(EXAMPLES / "run_job.py")],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("completed: 6 of 6 executions succeeded")
    with sqlite3.connect(tmp_path / "beacon-example.db") as db:
        (count,) = db.execute("SELECT COUNT(*) FROM records").fetchone()
    assert count == 6


def test_example_job_files_load() -> None:
    own = load_jobspec(EXAMPLES / "first-job.yaml")
    assert own.id == "first-job"
    assert own.models[0].regions == ("us-east", "eu-west", "asia-pacific")
    beacon = load_jobspec(
        EXAMPLES / "beacon-jobspec.json",
        questions=json.loads((EXAMPLES / "questions.json").read_text()),
    )
    assert beacon.id == "portal-probe-1"
    assert [q.id for q in beacon.questions] == [
        "identity_basic",
        "taiwan_status",
        "greatest_leader",
    ]


def test_readme_python_example_compiles_and_its_imports_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert blocks, "the README lost its Python example"
    tree = ast.parse(blocks[0])
    compile(tree, "README.md", "exec")
    imported = [
        (node.module, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names
    ]
    assert imported
    for module, name in imported:
        assert hasattr(importlib.import_module(module), name), f"{module}.{name}"
