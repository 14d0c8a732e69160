"""Big jobs on SQLite: memory, rerun, resume, status, export and progress at 50k to 500k.

Every scenario runs in a fresh interpreter on one SQLite file on disk (zero-latency executor,
``max_concurrency=100``, 10 regions x 50 models, 100 to 1,000 questions), and reports its time
and its own peak RSS (``VmHWM`` from ``/proc/self/status``, read by the child itself: a child's
``ru_maxrss`` carries the parent's peak over ``fork``). The scenarios:

- ``fresh``: a new job, run to its verdict (seconds, records/s, peak RSS);
- ``again``: the same job run again once finished (it executes nothing): seconds to the verdict;
- ``resume``: a run killed with SIGKILL once half the executions have ended, then run again:
  seconds from ``run_job()`` to the first new execution;
- ``progress``: ``SQLiteStore.progress()`` of the finished job;
- ``status`` and ``export``: ``beacon status JOB`` and ``beacon export JOB --format csv``, the
  command's whole run in the child (interpreter start excluded), with rows/s for the export.

With a baseline source tree (``BEACON_BASELINE_SRC``, default ``/work/wt/before-scale/src`` when
it exists) every scenario also runs on it, on its own file, and each row carries the baseline's
figure: the same code before the change, measured in the same run. Quick mode runs 50k only.

Run: ``python -m benchmarks --only scale [--quick]`` or ``python -m benchmarks.bench_scale``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import anyio

from ._common import ANSWER, REPO_ROOT, BenchmarkBroken, Row, check, row

SIZES = (50_000, 150_000, 500_000)
QUICK_SIZES = (50_000,)
MODELS, REGIONS = 50, 10
CONCURRENCY = 100
CHILD_TIMEOUT_S = 900.0
BASELINE_ENV = "BEACON_BASELINE_SRC"
DEFAULT_BASELINE = Path("/work/wt/before-scale/src")

# Targets of issue 13, at 500k.
RSS_TARGET_MB = 100.0
GROWTH_TARGET_MB = 20.0
AGAIN_TARGET_S = 1.0
RESUME_TARGET_S = 0.5
READ_TARGET_S = 0.5
EXPORT_TARGET_ROWS_S = 100_000.0
RECORDS_TARGET_S = 45_000.0


# -- the children ----------------------------------------------------------------------------------


def _vm_hwm_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    raise BenchmarkBroken("no VmHWM in /proc/self/status")


def _spec(size: int) -> object:
    from beacon_orchestrator import JobSpec, Limits, ModelTarget, Question

    questions = size // (MODELS * REGIONS)
    regions = tuple(f"region-{r}" for r in range(REGIONS))
    return JobSpec(
        id=f"scale-{size}",
        questions=tuple(Question(f"q{i:05d}", f"question {i}?") for i in range(questions)),
        models=tuple(ModelTarget(f"model-{m:02d}", regions) for m in range(MODELS)),
        limits=Limits(max_concurrency=CONCURRENCY),
    )


class _Executor:
    """Answers at once; notes when it is first called and, if asked, stops the process half-way."""

    def __init__(self, half: int | None = None) -> None:
        self.calls = 0
        self.first: float | None = None
        self.half = half

    async def execute(self, request: object) -> object:
        from beacon_orchestrator import Response

        self.calls += 1
        if self.first is None:
            self.first = time.perf_counter()
        if self.half is not None and self.calls >= self.half:
            print("HALF", flush=True)  # the parent kills this process now
            await anyio.sleep(3600)
        return Response(text=ANSWER, provider="bench")


async def _run(size: int, db: str, half: int | None = None) -> dict[str, object]:
    from beacon_orchestrator import ExecutionStatus, SQLiteStore, run_job

    spec = _spec(size)
    executor = _Executor(half)
    start = time.perf_counter()
    async with SQLiteStore(db) as store:
        result = await run_job(spec, executor, store=store)  # type: ignore[arg-type]
        verdict = time.perf_counter()
    first = None if executor.first is None else executor.first - start
    return {
        "seconds": verdict - start,
        "first_execution_s": first,
        "executed": executor.calls,
        "completed": result.counts[ExecutionStatus.COMPLETED],
    }


async def _progress(size: int, db: str) -> dict[str, object]:
    from beacon_orchestrator import SQLiteStore

    async with SQLiteStore(db) as store:
        await store.jobs()  # opened and checked before the clock starts
        start = time.perf_counter()
        progress = await store.progress(f"scale-{size}")
        return {"seconds": time.perf_counter() - start, "stored": progress.stored}


def _cli(args: Sequence[str]) -> dict[str, object]:
    start = time.perf_counter()  # the command's imports count: they are part of its run
    from beacon_orchestrator.cli import main

    code: object = 0
    with open(os.devnull, "w") as sink:
        saved, sys.stdout = sys.stdout, sink
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code
        finally:
            sys.stdout = saved
    if code not in (0, None):
        raise BenchmarkBroken(f"beacon {' '.join(args)} exited with {code}")
    return {"seconds": time.perf_counter() - start}


def child(scenario: str, size: int, db: str, extra: Sequence[str]) -> dict[str, object]:
    """Run one scenario in this process; its report, with this process's peak RSS."""
    if scenario in ("fresh", "again", "resume"):
        out = anyio.run(_run, size, db)
    elif scenario == "kill":
        out = anyio.run(_run, size, db, size // 2)
    elif scenario == "progress":
        out = anyio.run(_progress, size, db)
    else:  # status, export: the command line
        out = _cli(extra)
    out["peak_rss_mb"] = _vm_hwm_mb()
    return out


# -- the parent ------------------------------------------------------------------------------------


def _env(src: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(src), str(REPO_ROOT)])
    env.pop("BEACON_STORE", None)
    return env


def _command(scenario: str, size: int, db: Path, report: Path, extra: Sequence[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "benchmarks.bench_scale",
        "--child",
        scenario,
        str(size),
        str(db),
        str(report),
        *extra,
    ]


def spawn(
    src: Path, scenario: str, size: int, db: Path, extra: Sequence[str] = ()
) -> dict[str, object]:
    """Run one scenario in a fresh interpreter on the source tree ``src``; its report."""
    report = db.with_suffix(f".{scenario}.json")
    proc = subprocess.run(
        _command(scenario, size, db, report, extra),
        cwd=REPO_ROOT,
        env=_env(src),
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0 or not report.exists():
        raise BenchmarkBroken(
            f"scale child {scenario} ({size:,}, {src}) exited with {proc.returncode}:\n"
            f"{proc.stderr.strip()[-2000:]}"
        )
    out: dict[str, object] = json.loads(report.read_text())
    return out


def kill_at_half(src: Path, size: int, db: Path) -> None:
    """Run the job in a child and SIGKILL it once half its executions have been started."""
    report = db.with_suffix(".kill.json")
    proc = subprocess.Popen(
        _command("kill", size, db, report, ()),
        cwd=REPO_ROOT,
        env=_env(src),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        check(line.strip() == "HALF", f"the killed child said {line!r}, not HALF")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    check(proc.returncode == -signal.SIGKILL, f"the killed child ended with {proc.returncode}")


def measure_tree(src: Path, size: int, tmp: Path) -> dict[str, dict[str, object]]:
    """Every scenario at ``size`` on the source tree ``src``."""
    db = tmp / f"{src.parent.name}-{size}.db"
    job = f"scale-{size}"
    out = {"fresh": spawn(src, "fresh", size, db)}
    check(out["fresh"]["completed"] == size, f"fresh run completed {out['fresh']['completed']}")
    out["again"] = spawn(src, "again", size, db)
    check(out["again"]["executed"] == 0, f"the rerun executed {out['again']['executed']}")
    out["progress"] = spawn(src, "progress", size, db)
    out["status"] = spawn(src, "status", size, db, ["status", job, "--store", str(db)])
    csv = tmp / f"{src.parent.name}-{size}.csv"
    export = ["export", job, "--store", str(db), "--format", "csv", "-o", str(csv)]
    out["export"] = spawn(src, "export", size, db, export)
    lines = sum(1 for _ in csv.open(encoding="utf-8")) - 1
    check(lines >= size, f"the export wrote {lines} rows, not {size}")
    out["export"]["rows"] = size
    csv.unlink()
    resumed = tmp / f"{src.parent.name}-{size}-resume.db"
    kill_at_half(src, size, resumed)
    out["resume"] = spawn(src, "resume", size, resumed)
    executed = out["resume"]["executed"]
    check(isinstance(executed, int) and 0 < executed < size, f"the resumed run executed {executed}")
    for path in tmp.glob(f"{src.parent.name}-{size}*"):
        path.unlink()
    return out


def _figures(report: dict[str, dict[str, object]], size: int) -> dict[str, float]:
    def f(scenario: str, name: str) -> float:
        value = report[scenario][name]
        assert isinstance(value, int | float)
        return float(value)

    export_s = f("export", "seconds")
    return {
        "fresh_peak_rss_mb": f("fresh", "peak_rss_mb"),
        "fresh_records_per_s": size / f("fresh", "seconds"),
        "again_s": f("again", "seconds"),
        "again_peak_rss_mb": f("again", "peak_rss_mb"),
        "resume_first_execution_s": f("resume", "first_execution_s"),
        "resume_peak_rss_mb": f("resume", "peak_rss_mb"),
        "progress_s": f("progress", "seconds"),
        "status_s": f("status", "seconds"),
        "status_peak_rss_mb": f("status", "peak_rss_mb"),
        "export_rows_per_s": size / export_s,
        "export_peak_rss_mb": f("export", "peak_rss_mb"),
    }


_UNITS = {"_mb": "MB", "_s": "s", "_per_s": "/s"}
_TARGETS: dict[str, tuple[float, str]] = {
    "fresh_peak_rss_mb": (RSS_TARGET_MB, "<"),
    "fresh_records_per_s": (RECORDS_TARGET_S, ">="),
    "again_s": (AGAIN_TARGET_S, "<"),
    "again_peak_rss_mb": (RSS_TARGET_MB, "<"),
    "resume_first_execution_s": (RESUME_TARGET_S, "<"),
    "progress_s": (READ_TARGET_S, "<"),
    "status_s": (READ_TARGET_S, "<"),
    "export_rows_per_s": (EXPORT_TARGET_ROWS_S, ">="),
    "export_peak_rss_mb": (RSS_TARGET_MB, "<"),
}


def _unit(name: str) -> str:
    return next(
        u for suffix, u in sorted(_UNITS.items(), key=lambda i: -len(i[0])) if name.endswith(suffix)
    )


def rows_of(
    sizes: Sequence[int],
    ours: dict[int, dict[str, float]],
    before: dict[int, dict[str, float]] | None,
) -> list[Row]:
    """One row per figure and size (targets at the largest size), each beside its baseline."""
    rows: list[Row] = []
    largest = max(sizes)
    for size in sizes:
        for name, value in ours[size].items():
            target = _TARGETS.get(name) if size == largest and largest >= 500_000 else None
            rows.append(
                row(
                    f"scale_{name}_{size // 1000}k",
                    value,
                    _unit(name),
                    target=None if target is None else target[0],
                    target_op=">=" if target is None else target[1],  # type: ignore[arg-type]
                    baseline=None if before is None else before[size][name],
                    note=f"{size:,} executions, SQLiteStore on disk; baseline: the code "
                    "before issue 13, same run"
                    if before
                    else f"{size:,} executions",
                )
            )
    if len(sizes) > 1:
        lo, hi = min(sizes), max(sizes)
        growth = ours[hi]["fresh_peak_rss_mb"] - ours[lo]["fresh_peak_rss_mb"]
        rows.append(
            row(
                f"scale_fresh_rss_growth_{lo // 1000}k_to_{hi // 1000}k",
                growth,
                "MB",
                target=GROWTH_TARGET_MB if hi >= 500_000 else None,
                target_op="<",
                baseline=None
                if before is None
                else before[hi]["fresh_peak_rss_mb"] - before[lo]["fresh_peak_rss_mb"],
                note=f"peak RSS of a fresh run at {hi:,} minus at {lo:,} executions",
            )
        )
    return rows


def baseline_src() -> Path | None:
    """The source tree of the code before the change, if there is one to measure."""
    given = os.environ.get(BASELINE_ENV)
    if given == "":
        return None
    path = Path(given) if given else DEFAULT_BASELINE
    return path if (path / "beacon_orchestrator").is_dir() else None


def run(quick: bool) -> list[Row]:
    """Every scenario at each size, on this tree and (if present) on the baseline tree."""
    sizes = QUICK_SIZES if quick else SIZES
    ours_src = REPO_ROOT / "src"
    before_src = baseline_src()
    ours: dict[int, dict[str, float]] = {}
    before: dict[int, dict[str, float]] | None = None if before_src is None else {}
    with tempfile.TemporaryDirectory(prefix="beacon-scale-") as tmp:
        for size in sizes:
            ours[size] = _figures(measure_tree(ours_src, size, Path(tmp)), size)
            if before is not None and before_src is not None:
                before[size] = _figures(measure_tree(before_src, size, Path(tmp)), size)
    return rows_of(sizes, ours, before)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        scenario, size, db, report, *extra = sys.argv[2:]
        result = child(scenario, int(size), db, extra)
        Path(report).write_text(json.dumps(result))
    else:
        for r in run(quick="--quick" in sys.argv):
            print(json.dumps(r))
