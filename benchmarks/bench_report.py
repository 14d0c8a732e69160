"""The HTML report: how long writing it takes and how big it is, at 10,000 and 100,000 records.

The job is Q questions x 10 models x 10 regions (Q = 100 for 10,000 records, 1,000 for
100,000), with answers of 40 to 250 words (about 300 to 1,700 characters) drawn from a fixed
vocabulary with a seeded generator, 5% of them refusals, 2% empty and 3% failed executions.

- ``report_seconds_<n>``: :func:`write_report` to a file on disk, the default classifier, best
  of a few rounds. Baseline, same run: the cheapest way to put the same records in one file,
  ``json.dumps([record.to_dict() ...])`` written to disk. ``analysis_s`` in the row is
  :func:`compare_regions` alone on the same records, the share of the time that is the
  classification and the comparison rather than the report. The ``*cpu_s`` fields are the
  same calls' CPU time, which a busy machine disturbs less than wall-clock time.
- ``report_size_mb_<n>``: the file's size; baseline, the JSON dump's size.
- ``report_peak_mb_<n>`` (the smaller size only): the peak of memory allocated while writing
  the report (``tracemalloc``); baseline, the peak of :func:`compare_regions` alone on the
  same records, which keeps each answer's first 1,000 terms. The report writes each answer
  as it reads it, so it adds little to that (``text_mb`` in the row is the records' text).
- ``report_browser_ready_s_<n>`` (the larger size, where ``/usr/bin/chromium`` and Playwright
  are installed): from opening the file in headless Chromium to the first page of blocks
  drawn; ``elements`` in the row counts the document's elements then.

There are no targets: the figures say what a report of that size costs. Run:
``python -m benchmarks --only report [--quick]`` (quick: 1,000 and 10,000 records).
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

from beacon_orchestrator import (
    ExecutionKey,
    ExecutionRecord,
    ExecutionStatus,
    JobSpec,
    ModelTarget,
    Question,
)
from beacon_orchestrator.analysis import compare_regions, write_report

from ._common import Row, best, check, row

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MODELS = 10
REGIONS = 10
REFUSAL = "I'm sorry, but I can't help with that. Let's talk about something else."
_SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "an", "el", "or", "us", "pe", "di")


def make_spec(records: int) -> JobSpec:
    """A job of ``records`` executions over 10 models x 10 regions."""
    regions = tuple(f"region-{i}" for i in range(REGIONS))
    return JobSpec(
        id=f"bench-report-{records}",
        questions=[
            Question(f"q{i:04d}", f"Question {i}: what happened, and why?")
            for i in range(records // (MODELS * REGIONS))
        ],
        models=[ModelTarget(f"model-{i}", regions) for i in range(MODELS)],
    )


def _vocabulary(rng: random.Random) -> list[str]:
    return ["".join(rng.choices(_SYLLABLES, k=rng.randint(1, 4))) for _ in range(3_000)]


def make_records(spec: JobSpec, seed: int = 1) -> list[ExecutionRecord]:
    """One record per planned key: answers, refusals, empty answers and failures."""
    rng = random.Random(seed)
    words = _vocabulary(rng)
    return [_record(key, rng, words) for key in spec.plan()]


def _record(key: ExecutionKey, rng: random.Random, words: list[str]) -> ExecutionRecord:
    draw = rng.random()
    if draw < 0.03:
        return ExecutionRecord(
            key=key,
            status=ExecutionStatus.FAILED,
            error_code="PROVIDER_UNAVAILABLE",
            error_message=f"no healthy provider in {key.region}",
            attempts=3,
        )
    if draw < 0.05:
        return ExecutionRecord(key=key, status=ExecutionStatus.COMPLETED, text="", empty=True)
    text = REFUSAL if draw < 0.10 else " ".join(rng.choices(words, k=rng.randint(40, 250))) + "."
    return ExecutionRecord(key=key, status=ExecutionStatus.COMPLETED, text=text, attempts=1)


def _timed(fn: Callable[[], object], rounds: int) -> tuple[float, float]:
    """The best wall-clock time of ``rounds`` calls, and the CPU time of that call."""
    samples = []
    for _ in range(rounds):
        cpu, start = time.process_time(), time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start, time.process_time() - cpu))
    wall = best([w for w, _c in samples])
    return wall, next(c for w, c in samples if w == wall)


def _dump(records: list[ExecutionRecord], path: Path) -> None:
    path.write_text(json.dumps([r.to_dict() for r in records]), encoding="utf-8")


def measure(
    size: int, rounds: int, directory: Path, *, memory: bool = False, browser: bool = False
) -> list[Row]:
    """The rows for one job size."""
    spec = make_spec(size)
    records = make_records(spec)
    check(len(records) == size, f"made {len(records)} records, expected {size}")
    report, dump = directory / f"report-{size}.html", directory / f"dump-{size}.json"
    written: list[int] = []
    seconds, cpu = _timed(lambda: written.append(write_report(spec, records, report)), rounds)
    check(written == [size] * rounds, f"the report read {written} records, expected {size}")
    baseline, baseline_cpu = _timed(lambda: _dump(records, dump), rounds)
    analysis, analysis_cpu = _timed(lambda: compare_regions(records), 1)
    label = f"{size / 1000:g}k"
    mb = report.stat().st_size / 1e6
    rows = [
        row(
            f"report_seconds_{label}",
            seconds,
            "s",
            baseline=baseline,
            analysis_s=round(analysis, 3),
            cpu_s=round(cpu, 3),
            baseline_cpu_s=round(baseline_cpu, 3),
            analysis_cpu_s=round(analysis_cpu, 3),
            note="write_report to disk vs json.dumps of the same records to disk",
        ),
        row(f"report_size_mb_{label}", mb, "MB", baseline=dump.stat().st_size / 1e6),
    ]
    if memory:
        text_mb = sum(len((r.text or "").encode()) for r in records) / 1e6
        rows.append(
            row(
                f"report_peak_mb_{label}",
                _peak(lambda: write_report(spec, iter(records), report)) / 1e6,
                "MB",
                baseline=_peak(lambda: compare_regions(iter(records))) / 1e6,
                text_mb=round(text_mb, 2),
                note="peak allocated while writing (tracemalloc) vs compare_regions alone",
            )
        )
    if browser:
        opened = browser_ready(report)
        if opened is None:
            print(f"  no browser figure: {CHROMIUM} or playwright is not installed")
        else:
            ready, elements = opened
            rows.append(row(f"report_browser_ready_s_{label}", ready, "s", elements=elements))
    return rows


def browser_ready(path: Path) -> tuple[float, int] | None:
    """Seconds from opening ``path`` in headless Chromium to its first page drawn, and the
    document's elements then; ``None`` without Chromium or Playwright."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not CHROMIUM.exists():
        return None
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            start = time.perf_counter()
            page.goto(path.as_uri(), timeout=300_000)
            page.wait_for_selector("html[data-ready]", timeout=300_000)
            ready = time.perf_counter() - start
            elements = int(page.evaluate("document.getElementsByTagName('*').length"))
            check(page.locator("article.cell").count() == 25, "the first page is not 25 blocks")
        finally:
            browser.close()
    return ready, elements


def _peak(fn: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        fn()
        _size, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak


def run(quick: bool) -> list[Row]:
    """Entry point of ``python -m benchmarks``."""
    small, large = (1_000, 10_000) if quick else (10_000, 100_000)
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        directory = Path(tmp)
        return [
            *measure(small, 3, directory, memory=True),
            *measure(large, 1 if quick else 2, directory, browser=True),
        ]


def _main(argv: list[str]) -> Iterator[str]:
    for r in run("--quick" in argv):
        yield json.dumps(r)


if __name__ == "__main__":
    for line in _main(sys.argv[1:]):
        print(line)
