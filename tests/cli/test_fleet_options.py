"""`beacon run` with the fleet guards: adaptive, the breaker, a price per second and a budget."""

from __future__ import annotations

import json
from pathlib import Path

from beacon_orchestrator.cli._cmd_run import _run_args
from beacon_orchestrator.cli._options import LIMIT_OPTIONS

from .support import demo_job_file, invoke, statuses

FAST = ["--executor", "demo", "--speed", "1000", "--progress", "plain"]


def _job(tmp_path: Path, **limits: float) -> Path:
    job = demo_job_file(tmp_path / "job.json")
    doc = json.loads(job.read_text())
    doc["limits"] = limits
    job.write_text(json.dumps(doc))
    return job


def test_a_priced_run_shows_the_spend_and_resumes_the_same_way(tmp_path: Path) -> None:
    db = tmp_path / "beacon.db"
    job = _job(tmp_path, max_cost=100.0, attempt_timeout=60)
    args = ["--adaptive", "--breaker", "--cost-per-second", "0.001"]
    result = invoke(["run", str(job), "--store", str(db), *FAST, *args])
    assert sum(statuses(db, "demo-job").values()) == 64
    header = next(line for line in result.stdout.splitlines() if "planned" in line)
    assert header.split()[-1] == "cost"  # the summary's cost column
    assert "spent " in result.stderr  # the progress lines
    # An interrupted run's resume command repeats them.
    kw = {"store_path": db, "strategy": "endpoint", "early_stop": False, "rerun_failed": True}
    kw |= dict.fromkeys(LIMIT_OPTIONS)
    kw |= {"adaptive": True, "breaker": True, "cost_per_second": 0.001}
    assert _run_args(kw)[-4:] == ["--adaptive", "--breaker", "--cost-per-second", "0.001"]


def test_a_budget_below_one_executions_worst_case_starts_nothing(tmp_path: Path) -> None:
    db = tmp_path / "beacon.db"
    # One execution may cost 3 attempts x 60 s x 0.001 = 0.18: more than the budget.
    job = _job(tmp_path, max_cost=0.1, attempt_timeout=60)
    result = invoke(["run", str(job), "--store", str(db), *FAST, "--cost-per-second", "0.001"])
    assert statuses(db, "demo-job") == {"skipped": 64}
    assert "spending budget (max_cost 0.1)" in result.stdout


def test_a_budget_without_a_price_is_a_usage_error_naming_the_fix(tmp_path: Path) -> None:
    job = demo_job_file(tmp_path / "job.json")
    doc = json.loads(job.read_text())
    doc["limits"] = {"max_cost": 0.5}
    job.write_text(json.dumps(doc))
    result = invoke(["run", str(job), "--store", str(tmp_path / "b.db"), *FAST])
    assert result.exit_code == 2, result.output
    assert "max_cost 0.5 but the run has no cost model" in result.output
    assert "Traceback" not in result.output
