"""The report benchmark at a tiny size: sound rows, the counts it claims, a report it wrote."""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmarks import bench_report
from benchmarks.__main__ import BENCHMARKS
from benchmarks._common import validate_rows

from beacon_orchestrator import ExecutionStatus
from beacon_orchestrator.analysis import Label, compare_regions


def test_the_benchmark_is_registered() -> None:
    assert BENCHMARKS["report"] == "benchmarks.bench_report"


def test_the_benchmark_job_has_refusals_empties_and_failures() -> None:
    spec = bench_report.make_spec(1_000)
    records = bench_report.make_records(spec)
    assert spec.size == len(records) == 1_000
    assert len({r.key for r in records}) == 1_000
    failed = sum(r.status is ExecutionStatus.FAILED for r in records)
    empty = sum(bool(r.empty) for r in records)
    assert 10 <= failed <= 60
    assert 5 <= empty <= 40
    labels = [label for cell in compare_regions(records) for label in cell.labels.values()]
    assert 20 <= labels.count(Label.REFUSAL) <= 100
    # Seeded: the same records every run, so figures of two runs compare.
    assert bench_report.make_records(spec) == records


def test_the_rows_measure_the_report_against_its_baselines(tmp_path: Path) -> None:
    rows = {
        str(r["name"]): r
        for r in validate_rows("report", bench_report.measure(500, 1, tmp_path, memory=True))
    }
    assert set(rows) == {"report_seconds_0.5k", "report_size_mb_0.5k", "report_peak_mb_0.5k"}
    seconds = rows["report_seconds_0.5k"]
    assert 0 < float(seconds["value"]) < 120  # type: ignore[arg-type]
    assert float(seconds["analysis_s"]) > 0  # type: ignore[arg-type]
    # CPU time of a single-threaded call cannot exceed its wall time (allow rounding).
    for cpu, wall in (("cpu_s", "value"), ("baseline_cpu_s", "baseline")):
        assert 0 < float(seconds[cpu]) <= float(seconds[wall]) * 1.05 + 0.01  # type: ignore[arg-type]
    report = tmp_path / "report-500.html"
    assert rows["report_size_mb_0.5k"]["value"] == pytest.approx(
        report.stat().st_size / 1e6, rel=0.01
    )
    assert "<!DOCTYPE html>" in report.read_text(encoding="utf-8")[:20]
    peak = rows["report_peak_mb_0.5k"]
    assert 0 < float(peak["value"]) < 50  # type: ignore[arg-type]
    assert float(peak["text_mb"]) > 0.15  # type: ignore[arg-type]
