"""Smoke tests of the benchmark suite: each benchmark runs at a tiny size and returns sane rows,
and the runner fails on a broken benchmark but not on a missed target."""

from __future__ import annotations

import json
import math
import sys
import types
from functools import partial
from pathlib import Path

import anyio
import pytest
from benchmarks import bench_cancel, bench_makespan, bench_memory, bench_overhead
from benchmarks.__main__ import main
from benchmarks._common import BenchmarkBroken, describe_target, judge, row, validate_rows

from beacon_orchestrator import ExecutionRequest, PermanentError, Response, Store, run_job


def _by_name(rows: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    return {str(r["name"]): r for r in rows}


def _num(r: dict[str, object], key: str) -> float:
    value = r[key]
    assert isinstance(value, int | float)
    return float(value)


def test_overhead_rows_have_a_positive_figure_baseline_and_ratio_per_backend() -> None:
    rows = bench_overhead.measure(sizes=(1_000,), repeats=1)
    by_name = _by_name(validate_rows("overhead", rows))
    assert set(by_name) == {"overhead_per_execution_asyncio", "overhead_per_execution_trio"}
    for r in by_name.values():
        value, baseline = _num(r, "value"), _num(r, "baseline")
        assert 0 < value < 10_000  # microseconds per execution
        assert 0 < baseline < 10_000
        assert _num(r, "ratio") == pytest.approx(value / baseline, rel=0.01)
        curve = r["curve"]
        assert isinstance(curve, list)
        (point,) = curve
        assert point["size"] == 1_000
        assert point["library_us"] == pytest.approx(value, rel=0.01)
        assert point["bare_us"] == pytest.approx(baseline, rel=0.01)
        # CPU time cannot exceed wall time in a single-threaded event loop (allow rounding).
        assert 0 < point["library_cpu_us"] <= point["library_us"] * 1.05 + 0.01
        assert 0 < point["bare_cpu_us"] <= point["bare_us"] * 1.05 + 0.01


def test_overhead_counts_a_job_that_did_not_complete_as_broken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def fail(self: object, request: ExecutionRequest) -> Response:
        raise PermanentError("boom")

    monkeypatch.setattr(bench_overhead.NoopExecutor, "execute", fail)
    with pytest.raises(BenchmarkBroken, match="completed 0 of 1000"):
        anyio.run(bench_overhead.library_run, bench_overhead.make_spec(1_000))


def test_counting_store_is_a_store_that_counts_and_keeps_nothing() -> None:
    store = bench_memory.CountingStore()
    assert isinstance(store, Store)
    spec = bench_overhead.make_spec(1_000, "sink")
    result = anyio.run(partial(run_job, spec, bench_overhead.NoopExecutor(), store=store))
    assert store.written == spec.size
    assert anyio.run(result.records.list) == []
    assert result.failures == ()


@pytest.mark.slow
def test_memory_rows_come_from_fresh_processes_and_report_the_growth() -> None:
    rows = bench_memory.measure(1_000, 2_000, backends=("asyncio",))
    by_name = _by_name(validate_rows("memory", rows))
    peak = by_name["memory_peak_rss_2k_asyncio"]
    growth = by_name["memory_growth_2k_asyncio"]
    assert 5 < _num(peak, "value") < 1_000  # MB: an interpreter with the library loaded
    assert 5 < _num(peak, "baseline") < 1_000
    assert _num(growth, "value") == pytest.approx(
        _num(peak, "value") - _num(peak, "baseline"), abs=0.15
    )
    assert judge(growth) is True  # a 1,000-execution difference is nowhere near 100 MB


def test_makespans_respect_the_lower_bound_and_match_the_scenario() -> None:
    rows = bench_makespan.run(quick=True)
    by_name = _by_name(validate_rows("makespan", rows))
    scenario = bench_makespan.load_scenario()
    bound = scenario["lower_bound_s"]
    for strategy in bench_makespan.STRATEGIES:
        r = by_name[f"makespan_{strategy}"]
        # No schedule can beat the busiest endpoint's total service time.
        assert _num(r, "value") >= bound - 1e-6
        assert _num(r, "value") == pytest.approx(
            scenario["reference_makespans_s"][strategy], abs=0.01
        )
    assert judge(by_name["makespan_endpoint"]) is True


def test_cancel_latency_is_measured_with_everything_in_flight() -> None:
    rows = bench_cancel.measure(models=10, regions=10, repeats=1)
    by_name = _by_name(validate_rows("cancel", rows))
    for backend in ("asyncio", "trio"):
        latency = by_name[f"cancel_latency_{backend}"]
        assert 0 < _num(latency, "value") < 5_000  # ms
        assert 0 < _num(latency, "baseline") < 5_000
        # The verdict comes after every interrupted execution has ended.
        assert _num(by_name[f"cancel_to_verdict_{backend}"], "value") >= _num(latency, "value")


def test_cancel_with_many_in_flight_is_measured_in_wall_and_cpu_time_against_a_bare_group() -> None:
    rows = bench_cancel.measure_large(repeats=1, models=10, regions=10)
    by_name = _by_name(validate_rows("cancel", rows))
    for backend in ("asyncio", "trio"):
        for clock in ("", "_cpu"):
            last = by_name[f"cancel_10k_last_end{clock}_{backend}"]
            assert 0 < _num(last, "value") < 5_000  # ms
            assert 0 < _num(last, "baseline") < 5_000
            assert last["target_of"] == "ratio"
            verdict = by_name[f"cancel_10k_to_verdict{clock}_{backend}"]
            # The verdict comes after every interrupted execution has ended.
            assert _num(verdict, "value") >= _num(last, "value")
        assert _num(by_name[f"cancel_10k_call_{backend}"], "value") >= 0


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ([], "non-empty list"),
        ([{"name": "x", "value": "fast", "unit": "s"}], "expected a number"),
        ([{"name": "x", "value": math.nan, "unit": "s"}], "expected a number"),
        (
            [{"name": "x", "value": 1, "unit": "s"}, {"name": "x", "value": 2, "unit": "s"}],
            "two rows",
        ),
        ([{"value": 1, "unit": "s"}], "name"),
    ],
)
def test_malformed_rows_are_rejected(bad: object, message: str) -> None:
    with pytest.raises(BenchmarkBroken, match=message):
        validate_rows("m", bad)


def test_targets_are_judged_in_the_right_direction() -> None:
    assert judge(row("a", 2.0, "x", target=2.5, target_of="ratio", baseline=1.0)) is True
    assert judge(row("a", 3.0, "x", target=2.5, target_of="ratio", baseline=1.0)) is False
    assert judge(row("a", 10.0, "ms", target=10.0, target_op="<")) is False
    assert judge(row("a", 5.0, "x")) is None
    # Rows of the other engineers' modules say no target_of/target_op: known by their names.
    http = {"name": "http_x_requests_per_s", "value": 500.0, "target": 0.9, "ratio": 0.8}
    assert judge(http) is False
    assert describe_target(http) == "ratio >= 0.9"
    sqlite = {"name": "sqlite_x", "value": 25_000.0, "target": 20_000.0}
    assert judge(sqlite) is True


@pytest.fixture
def fake_benchmarks(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    def slow_but_sound(quick: bool) -> list[dict[str, object]]:
        return [row("fake_latency", 50.0, "ms", target=10.0, target_op="<")]

    def crashes(quick: bool) -> list[dict[str, object]]:
        raise RuntimeError("benchmark bug")

    def malformed(quick: bool) -> object:
        return [{"name": "fake", "value": None, "unit": "s"}]

    for name, fn in [("sound", slow_but_sound), ("crashes", crashes), ("malformed", malformed)]:
        module = types.ModuleType(f"fake_bench_{name}")
        module.run = fn  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, f"fake_bench_{name}", module)
    return {
        "sound": "fake_bench_sound",
        "crashes": "fake_bench_crashes",
        "malformed": "fake_bench_malformed",
        "missing": "fake_bench_does_not_exist",
    }


def test_a_missed_target_is_reported_but_does_not_fail_the_run(
    fake_benchmarks: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results.json"
    status = main(["--quick", "--only", "sound", "--json", str(out)], registry=fake_benchmarks)
    assert status == 0
    printed = capsys.readouterr().out
    assert "fake_latency" in printed
    assert "NO" in printed
    results = json.loads(out.read_text())
    assert results["quick"] is True
    assert results["machine"]["cores"] >= 1
    (entry,) = results["benchmarks"]
    assert entry["status"] == "ok"
    assert entry["rows"][0]["met"] is False


@pytest.mark.parametrize("broken", ["crashes", "malformed", "missing"])
def test_a_broken_benchmark_fails_the_run(
    fake_benchmarks: dict[str, str], broken: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["--quick", "--only", "sound", "--only", broken], registry=fake_benchmarks)
    assert status == 1
    captured = capsys.readouterr()
    assert f"BROKEN benchmarks: {broken}" in captured.out
    # The sound benchmark's figures are still reported.
    assert "fake_latency" in captured.out


@pytest.mark.slow
def test_the_overhead_plot_is_drawn_from_results(tmp_path: Path) -> None:
    from benchmarks.plot import plot_overhead  # matplotlib comes with the test extra

    curve = [
        {"size": 1_000, "library_us": 30.0, "bare_us": 20.0},
        {"size": 10_000, "library_us": 12.0, "bare_us": 5.0},
    ]
    results = {
        "machine": {"cores": 2, "cpu": "test", "python": "3.11"},
        "benchmarks": [{"rows": [{"name": "o", "backend": "asyncio", "curve": curve}]}],
    }
    out = plot_overhead(results, tmp_path / "img" / "overhead.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="no overhead curve"):
        plot_overhead({"benchmarks": []}, tmp_path / "none.png")


def test_fleet_benchmark_rows_meet_their_targets_at_a_small_size() -> None:
    """Every fleet figure, smaller: adaptive near the ideal with few 429s, the Beacon fleet no
    worse than the default, the broken endpoint spared, the budget never passed."""
    from benchmarks import bench_fleet

    rows = (
        bench_fleet.measure_unknown(n_q=40)
        + bench_fleet.measure_beacon()
        + bench_fleet.measure_broken(n_q=30)
        + bench_fleet.measure_budget(n_q=20)
    )
    by_name = _by_name(validate_rows("fleet", rows))
    for name in (
        "fleet16_adaptive_makespan",
        "fleet16_adaptive_rejected",
        "beacon_adaptive_makespan",
        "beacon_adaptive_overload_errors",
        "broken_endpoint_requests",
        "budget_peak_committed",
    ):
        assert judge(by_name[name]) is True, by_name[name]
    # The static baselines: one slot wastes time, sixteen lose executions to 429s.
    assert _num(by_name["fleet16_static1_makespan"], "ratio") > 1.5
    assert _num(by_name["fleet16_static16_makespan"], "completed") < 40 * 16
    assert _num(by_name["broken_endpoint_requests"], "baseline") == 90  # 30 x 3 attempts
