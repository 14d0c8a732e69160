"""``beacon plan``: the executions, what the store holds, and each strategy's makespan.

The makespans below are worked out by hand from the strategies' rules (see the "Scheduling
strategies" page); ``estimate`` gets them by running the scheduler on a virtual clock.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from beacon_orchestrator import (
    Endpoint,
    ExecutionKey,
    ExecutionRecord,
    ExecutionStatus,
    JobSpec,
    Limits,
    ModelTarget,
    Question,
    UsageError,
)
from beacon_orchestrator.cli._planning import Estimate, estimate, parse_latencies

from .support import demo_job_file, invoke, statuses, write_json

US, EU, AP = "us-east", "eu-west", "asia-pacific"


def _spec(questions: int, regions: list[str], limits: Limits) -> JobSpec:
    return JobSpec(
        id="hand",
        questions=[Question(f"q{i}", "?") for i in range(questions)],
        models=[ModelTarget("m", regions)],
        limits=limits,
    )


def _makespans(estimates: tuple[Estimate, ...]) -> dict[str, float]:
    return {e.strategy: e.makespan for e in estimates}


def test_two_at_once_per_endpoint_only_helps_the_endpoint_strategy() -> None:
    """4 questions on m@us-east (10 s each) and m@eu-west (15 s), two in flight per endpoint.

    endpoint: each endpoint runs its questions two at a time: us 2 x 10 = 20, eu 2 x 15 = 30.
    region: a region moves to the next question when the current one is done, so one at a
    time: us 4 x 10 = 40, eu 4 x 15 = 60. lockstep: each question waits for the slower
    region: 4 x 15 = 60.
    """
    spec = _spec(4, [US, EU], Limits(per_endpoint=2))
    latencies = {Endpoint("m", US): 10.0, Endpoint("m", EU): 15.0}
    found = estimate(spec, [], latencies)
    assert _makespans(found) == {"endpoint": 30.0, "region": 60.0, "lockstep": 60.0}
    assert all(e.started == 8 and e.counts[ExecutionStatus.COMPLETED] == 8 for e in found)


def test_a_global_limit_makes_lockstep_wait_for_its_stragglers() -> None:
    """2 questions on m in three regions, 10 s each, two in flight in all.

    endpoint and region (one model per region, so the same): 6 executions, 2 slots, and
    always two ready: 3 x 10 = 30. lockstep: question 1's three executions take two rounds
    (20 s), then question 2's the same: 40.
    """
    spec = _spec(2, [US, EU, AP], Limits(max_concurrency=2))
    found = estimate(spec, [], dict.fromkeys(spec.endpoints, 10.0))
    assert _makespans(found) == {"endpoint": 30.0, "region": 30.0, "lockstep": 40.0}


def test_what_the_store_completed_is_not_run_again() -> None:
    """The same job with question 1 completed everywhere: 3 executions left, 2 slots: 20 s."""
    spec = _spec(2, [US, EU, AP], Limits(max_concurrency=2))
    done = [
        ExecutionRecord(key=ExecutionKey("q0", "m", r), status=ExecutionStatus.COMPLETED)
        for r in (US, EU, AP)
    ]
    found = estimate(spec, done, dict.fromkeys(spec.endpoints, 10.0))
    assert _makespans(found) == {"endpoint": 20.0, "region": 20.0, "lockstep": 20.0}
    assert all(e.started == 3 for e in found)
    assert all(e.counts[ExecutionStatus.COMPLETED] == 6 for e in found)


def test_failed_records_run_again_unless_kept() -> None:
    spec = _spec(2, [US], Limits())
    failed = [ExecutionRecord(key=ExecutionKey("q0", "m", US), status=ExecutionStatus.FAILED)]
    latencies = dict.fromkeys(spec.endpoints, 10.0)
    assert _makespans(estimate(spec, failed, latencies))["endpoint"] == 20.0
    kept = estimate(spec, failed, latencies, rerun_failed=False)
    assert _makespans(kept)["endpoint"] == 10.0
    assert kept[0].started == 1


def test_a_job_timeout_cuts_the_estimate_short_and_says_what_was_lost() -> None:
    """4 questions of 10 s on one endpoint, 25 s allowed: 2 complete, the third is cancelled
    mid-way, the fourth never starts."""
    spec = _spec(4, [US], Limits(job_timeout=25))
    found = estimate(spec, [], dict.fromkeys(spec.endpoints, 10.0))
    assert _makespans(found) == {"endpoint": 25.0, "region": 25.0, "lockstep": 25.0}
    first = found[0]
    assert first.counts[ExecutionStatus.COMPLETED] == 2
    assert first.counts[ExecutionStatus.CANCELLED] == 1
    assert first.counts[ExecutionStatus.SKIPPED] == 1
    assert first.shortfall(to_run=4, completed_before=0) == "not all complete: 1 skipped"


def test_an_attempt_timeout_below_the_latency_times_out_every_attempt() -> None:
    """10 s answers, 5 s allowed per attempt, 3 attempts with waits of 1 s and 2 s (no
    jitter): 5 + 1 + 5 + 2 + 5 = 18 s, then a TIMEOUT record."""
    spec = _spec(1, [US], Limits(attempt_timeout=5))
    (first, *_) = estimate(spec, [], dict.fromkeys(spec.endpoints, 10.0))
    assert first.makespan == 18.0
    assert first.counts[ExecutionStatus.TIMEOUT] == 1
    assert first.shortfall(to_run=1, completed_before=0) == "not all complete: 1 timeout"


def test_endpoint_latencies_override_the_default_by_model_and_region() -> None:
    spec = _spec(1, [US, EU], Limits())
    latencies = parse_latencies(spec, 30.0, ["m@EU=45", "m@us-east=2.5"])
    assert latencies == {Endpoint("m", US): 2.5, Endpoint("m", EU): 45.0}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("m=45", "expects MODEL@REGION=SECONDS, got 'm=45'"),
        ("m@us-east", "expects MODEL@REGION=SECONDS"),
        (
            "other@us-east=4",
            "the job has no endpoint 'other@us-east' (it has: m@us-east, m@eu-west)",
        ),
        ("m@mars=4", "unknown region; expected one of 'us-east'"),
        ("m@Us East=4", "unknown region: not a valid region name"),
        ("m@us-east=0", "expected a positive number of seconds, got '0'"),
        ("m@us-east=inf", "expected a positive number of seconds, got 'inf'"),
        ("m@us-east=soon", "expected a positive number of seconds, got 'soon'"),
    ],
)
def test_a_bad_endpoint_latency_names_the_option_and_the_value(value: str, message: str) -> None:
    spec = _spec(1, [US, EU], Limits())
    with pytest.raises(UsageError, match="--endpoint-latency") as caught:
        parse_latencies(spec, 30.0, [value])
    assert message in str(caught.value)


# -- the command ----------------------------------------------------------------------------------


def test_plan_of_a_new_job_runs_nothing_and_creates_no_store(tmp_path: Path) -> None:
    db = tmp_path / "beacon.db"
    job = demo_job_file(tmp_path / "job.json", "fresh")
    result = invoke(["plan", str(job), "--store", str(db), "--latency", "30"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Job fresh: 8 questions x 8 endpoints (3 models in 3 regions) = 64 executions." in out
    assert f"No store at {db} yet: all 64 executions to run." in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    assert rows["us-east"] == ["16", "0", "16"]
    assert rows["mistral-7b@eu-west"] == ["30.0s", "8", "0", "8"]
    # One model per endpoint, one at a time, no limit binding: 8 questions x 30 s = 4:00.
    assert rows["endpoint"] == ["4:00", "default"]
    assert "--per-endpoint 1" in out
    assert not db.exists()


def test_plan_after_a_run_counts_what_is_done_and_what_a_resume_runs(tmp_path: Path) -> None:
    db = tmp_path / "beacon.db"
    job = demo_job_file(tmp_path / "job.json", "half")
    run = ["run", str(job), "--store", str(db), "--executor", "demo", "--progress", "off"]
    assert invoke([*run, "--speed", "1000"]).exit_code == 0
    counts = statuses(db, "half")
    assert counts == {"completed": 63, "failed": 1}

    rerun = json.loads(invoke(["plan", str(job), "--store", str(db), "--json"]).stdout)
    assert (rerun["completed"], rerun["kept"], rerun["to_run"]) == (63, 0, 1)
    assert rerun["store"] == {"path": str(db), "exists": True, "has_job": True}
    # The failed key is the last question of one endpoint: its resume is one execution long.
    assert {s["makespan"] for s in rerun["strategies"]} == {30.0}
    assert all(s["started"] == 1 and s["all_complete"] for s in rerun["strategies"])

    text = invoke(["plan", str(job), "--store", str(db), "--keep-failed"]).stdout
    assert "63 of 64 executions completed, 1 failed kept (--keep-failed); 0 to run." in text


def test_plan_refuses_an_edited_job_under_a_stored_id_and_says_how(tmp_path: Path) -> None:
    db = tmp_path / "beacon.db"
    job = demo_job_file(tmp_path / "job.json", "edited")
    ran = ["--executor", "demo", "--speed", "1000", "--progress", "off"]
    assert invoke(["run", str(job), "--store", str(db), *ran]).exit_code == 0
    doc = json.loads(job.read_text())
    doc["questions"] = doc["questions"][:2]
    write_json(job, doc)

    refused = invoke(["plan", str(job), "--store", str(db)])
    assert refused.exit_code == 2
    assert "differs in: questions" in refused.stderr
    assert "--job-id NEW" in refused.stderr

    renamed = invoke(["plan", str(job), "--store", str(db), "--job-id", "edited-2"])
    assert renamed.exit_code == 0, renamed.output
    assert "does not hold this job: all 16 executions to run." in renamed.stdout


def test_plan_takes_the_limit_options_and_per_endpoint_latencies(tmp_path: Path) -> None:
    job = write_json(
        tmp_path / "job.json",
        {
            "id": "lim",
            "questions": [{"id": f"q{i}", "prompt": "?"} for i in range(4)],
            "models": [{"id": "m", "regions": [US, EU]}],
        },
    )
    result = invoke(
        [
            "plan",
            str(job),
            "--store",
            str(tmp_path / "none.db"),
            "--per-endpoint",
            "2",
            "--latency",
            "10",
            "--endpoint-latency",
            "m@eu-west=15",
            "--json",
        ]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["limits"]["per_endpoint"] == 2
    assert {s["strategy"]: s["makespan"] for s in doc["strategies"]} == {
        "endpoint": 30.0,
        "region": 60.0,
        "lockstep": 60.0,
    }
    assert [e["latency"] for e in doc["endpoints"]] == [10.0, 15.0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--latency", "0"], "--latency"),
        (["--latency", "nan"], "--latency"),
        (["--endpoint-latency", "nowhere=3"], "--endpoint-latency"),
        (["--max-concurrency", "0"], "--max-concurrency"),
        (["--job-id", ""], "--job-id"),
    ],
)
def test_bad_plan_options_exit_2_naming_the_option(
    tmp_path: Path, args: list[str], message: str
) -> None:
    job = demo_job_file(tmp_path / "job.json")
    result = invoke(["plan", str(job), "--store", str(tmp_path / "b.db"), *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
