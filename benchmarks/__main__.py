"""Run the benchmark suite: ``python -m benchmarks [--quick] [--only NAME ...] [--json PATH]``.

Prints the machine, each benchmark's progress, then a table of every figure with its target,
baseline, ratio and whether the target is met, and writes the rows to a JSON file (the full run
writes ``benchmarks/results.json`` and draws ``docs/img/overhead.png``; quick and ``--only``
runs write only what ``--json``/``--plot`` ask for).

Exit status: 0 when every benchmark ran, whatever the figures (timings are noisy on shared
machines, so a missed target is reported, not fatal); 1 when a benchmark is broken: it is
missing, raises, or returns malformed rows or wrong counts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import shlex
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path

from ._common import BENCH_DIR, REPO_ROOT, Row, describe_target, judge, machine, validate_rows

BENCHMARKS: dict[str, str] = {
    "overhead": "benchmarks.bench_overhead",
    "memory": "benchmarks.bench_memory",
    "makespan": "benchmarks.bench_makespan",
    "cancel": "benchmarks.bench_cancel",
    "sqlite": "benchmarks.bench_sqlite",
    "postgres": "benchmarks.bench_postgres",
    "http": "benchmarks.bench_http",
    "report": "benchmarks.bench_report",
    "scale": "benchmarks.bench_scale",
    "fleet": "benchmarks.bench_fleet",
}
"""Benchmark name -> module exposing ``run(quick: bool) -> list[dict[str, object]]``."""

DEFAULT_JSON = BENCH_DIR / "results.json"
DEFAULT_PLOT = REPO_ROOT / "docs" / "img" / "overhead.png"


def run_one(name: str, module_name: str, quick: bool) -> dict[str, object]:
    """Run one benchmark; a failure is captured in the returned entry, not raised."""
    start = time.perf_counter()
    entry: dict[str, object] = {"name": name, "module": module_name}
    try:
        module = importlib.import_module(module_name)
        run = getattr(module, "run", None)
        if not callable(run):
            raise TypeError(f"{module_name} has no run(quick) function")
        rows = validate_rows(module_name, run(quick))
    except Exception as exc:
        entry["status"] = "broken"
        entry["error"] = f"{type(exc).__name__}: {exc}"
        entry["traceback"] = traceback.format_exc()
        entry["rows"] = []
    else:
        for r in rows:
            r["met"] = judge(r)
            r["target_text"] = describe_target(r)
        entry["status"] = "ok"
        entry["error"] = None
        entry["rows"] = rows
    entry["seconds"] = round(time.perf_counter() - start, 2)
    return entry


def _fmt(x: object) -> str:
    if x is None:
        return ""
    if isinstance(x, float):
        return f"{x:,.6g}" if abs(x) < 1e6 else f"{x:,.0f}"
    return str(x)


_MET = {True: "yes", False: "NO", None: ""}


def table(rows: Sequence[Mapping[str, object]], *, markdown: bool = False) -> str:
    """The rows as a plain-text (or Markdown) table."""
    head = ("name", "value", "unit", "target", "baseline", "ratio", "met")
    body = [
        (
            str(r["name"]),
            _fmt(r.get("value")),
            str(r.get("unit", "")),
            str(r.get("target_text", "")),
            _fmt(r.get("baseline")),
            _fmt(r.get("ratio")),
            _MET.get(r.get("met"), "?"),  # type: ignore[call-overload]
        )
        for r in rows
    ]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|---|---:|---|---|---:|---:|---|"]
        lines += ["| `" + c[0] + "` | " + " | ".join(c[1:]) + " |" for c in body]
        return "\n".join(lines)
    widths = [max(len(h), *(len(c[i]) for c in body)) for i, h in enumerate(head)]
    right = {1, 4, 5}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(head), line(["-" * w for w in widths]), *(line(c) for c in body)])


def parse_args(argv: Sequence[str], names: Sequence[str]) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description="Run the beacon_orchestrator benchmark suite."
    )
    parser.add_argument(
        "--quick", action="store_true", help="CI-sized run (smaller jobs, fewer repeats)"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=list(names),
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(names)}",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help=f"write the results here (default for a full run: "
        f"{DEFAULT_JSON.relative_to(REPO_ROOT)})",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        default=None,
        help=f"draw the overhead plot here (default for a full run: "
        f"{DEFAULT_PLOT.relative_to(REPO_ROOT)})",
    )
    parser.add_argument(
        "--markdown", action="store_true", help="print the table as Markdown as well"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, registry: Mapping[str, str] = BENCHMARKS) -> int:
    """Run the benchmarks; return the exit status (1 if any is broken)."""
    arg_list = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(arg_list, list(registry))
    selected = args.only or list(registry)
    full_suite = not args.quick and not args.only
    json_path: Path | None = args.json or (DEFAULT_JSON if full_suite else None)
    plot_path: Path | None = args.plot or (DEFAULT_PLOT if full_suite else None)
    command = shlex.join(["python", "-m", "benchmarks", *arg_list])

    facts = machine()
    print(f"$ {command}")
    print(
        f"{facts['cores']} cores, {facts['cpu']}, {facts['implementation']} {facts['python']}, "
        f"load average {facts['load_average_at_start']}"
    )
    print(f"source: {facts['source']}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in facts["versions"].items()))  # type: ignore[attr-defined]
    print(f"mode: {'quick' if args.quick else 'full'}\n", flush=True)

    entries: list[dict[str, object]] = []
    for name in selected:
        print(f"[{name}] running ...", flush=True)
        entry = run_one(name, registry[name], args.quick)
        entries.append(entry)
        if entry["status"] == "ok":
            print(f"[{name}] done in {entry['seconds']} s", flush=True)
        else:
            print(f"[{name}] BROKEN after {entry['seconds']} s: {entry['error']}", flush=True)
            print(entry["traceback"], file=sys.stderr, flush=True)

    rows: list[Row] = [r for e in entries for r in e["rows"]]  # type: ignore[attr-defined]
    print()
    if rows:
        print(table(rows))
        if args.markdown:
            print()
            print(table(rows, markdown=True))
    broken = [str(e["name"]) for e in entries if e["status"] != "ok"]
    missed = [str(r["name"]) for r in rows if r.get("met") is False]
    print()
    print(f"{len(rows)} figures from {len(entries) - len(broken)} of {len(entries)} benchmarks.")
    if missed:
        print(f"Targets not met (reported, not fatal): {', '.join(missed)}")
    if broken:
        print(f"BROKEN benchmarks: {', '.join(broken)}")

    results = {
        "command": command,
        "quick": args.quick,
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": facts,
        "benchmarks": entries,
    }
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {json_path}")
    if plot_path is not None and any(r.get("curve") for r in rows):
        from .plot import plot_overhead

        try:
            print(f"wrote {plot_overhead(results, plot_path)}")
        except ImportError as exc:
            print(f"no plot: {exc} (install matplotlib)")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
