"""What the benchmarks share: the row format, judging a row against its target, machine facts."""

from __future__ import annotations

import hashlib
import importlib.metadata
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal, TypeAlias

from beacon_orchestrator import ExecutionKey, ExecutionRecord, ExecutionStatus

Row: TypeAlias = dict[str, object]
"""One figure: ``name``, ``value``, ``unit``; optionally ``target``, ``target_of`` (``"value"`` or
``"ratio"``), ``target_op`` (``"<="``, ``"<"``, ``">="``), ``baseline``, ``ratio``, ``note``,
and anything else worth keeping in the JSON file (curves for the plot)."""

TargetOf: TypeAlias = Literal["value", "ratio"]
TargetOp: TypeAlias = Literal["<=", "<", ">="]

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
SCENARIO = BENCH_DIR / "data" / "beacon-8q.json"
BACKENDS: tuple[str, ...] = ("asyncio", "trio")

# Rows from modules that predate target_of/target_op: how their target reads, by name prefix.
_KNOWN_TARGETS: tuple[tuple[str, TargetOf, TargetOp], ...] = (
    ("sqlite_", "value", ">="),
    ("http_", "ratio", ">="),
)


class BenchmarkBroken(Exception):
    """A benchmark did not measure what it claims (wrong counts, malformed rows, a crash)."""


def row(
    name: str,
    value: float,
    unit: str,
    *,
    target: float | None = None,
    target_of: TargetOf = "value",
    target_op: TargetOp = "<=",
    baseline: float | None = None,
    ratio: float | None = None,
    note: str = "",
    digits: int = 3,
    **extra: object,
) -> Row:
    """Build a row; ``ratio`` defaults to ``value / baseline`` when there is a baseline."""
    if ratio is None and baseline:
        ratio = value / baseline
    out: Row = {"name": name, "value": _round(value, digits), "unit": unit}
    if target is not None:
        out.update(target=target, target_of=target_of, target_op=target_op)
    else:
        out["target"] = None
    if baseline is not None:
        out["baseline"] = _round(baseline, digits)
    if ratio is not None:
        out["ratio"] = round(ratio, 3)
    if note:
        out["note"] = note
    out.update(extra)
    return out


def _round(x: float, digits: int) -> float:
    """Round to ``digits`` significant decimals for small numbers, to 0.1 for large ones."""
    if x == 0 or not math.isfinite(x):
        return x
    magnitude = math.floor(math.log10(abs(x)))
    return round(x, max(1, digits - 1 - magnitude))


def best(samples: Sequence[float]) -> float:
    """The smallest sample: for timings, the run least disturbed by the rest of the machine."""
    return min(samples)


def median(samples: Sequence[float]) -> float:
    """The median sample."""
    return statistics.median(samples)


def check(condition: bool, message: str) -> None:
    """Raise :class:`BenchmarkBroken` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise BenchmarkBroken(message)


def validate_rows(module: str, rows: object) -> list[Row]:
    """The rows a benchmark returned, or :class:`BenchmarkBroken` saying what is wrong with them."""
    if not isinstance(rows, list) or not rows:
        raise BenchmarkBroken(f"{module}.run() must return a non-empty list of dicts, got {rows!r}")
    names: set[str] = set()
    for r in rows:
        if not isinstance(r, dict):
            raise BenchmarkBroken(f"{module}: a row must be a dict, got {r!r}")
        name, value, unit = r.get("name"), r.get("value"), r.get("unit")
        if not isinstance(name, str) or not name:
            raise BenchmarkBroken(f"{module}: row without a 'name' string: {r!r}")
        if name in names:
            raise BenchmarkBroken(f"{module}: two rows are named {name!r}")
        names.add(name)
        if not _is_number(value) or not math.isfinite(float(value)):  # type: ignore[arg-type]
            raise BenchmarkBroken(f"{module}: row {name!r} has value {value!r}, expected a number")
        if not isinstance(unit, str):
            raise BenchmarkBroken(f"{module}: row {name!r} has unit {unit!r}, expected a string")
        for key in ("target", "baseline", "ratio"):
            v = r.get(key)
            if v is not None and not _is_number(v):
                raise BenchmarkBroken(f"{module}: row {name!r} has {key} {v!r}, expected a number")
    return rows


def _is_number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def target_rule(r: Mapping[str, object]) -> tuple[TargetOf, TargetOp] | None:
    """What a row's target applies to and how, or ``None`` when it has no target or says none."""
    if r.get("target") is None:
        return None
    of, op = r.get("target_of"), r.get("target_op")
    if of in ("value", "ratio") and op in ("<=", "<", ">="):
        return of, op
    name = str(r.get("name", ""))
    for prefix, known_of, known_op in _KNOWN_TARGETS:
        if name.startswith(prefix):
            return known_of, known_op
    return None


def judge(r: Mapping[str, object]) -> bool | None:
    """Whether a row meets its target; ``None`` when it has none or it cannot be read."""
    if isinstance(r.get("met"), bool):
        return bool(r["met"])
    rule = target_rule(r)
    if rule is None:
        return None
    of, op = rule
    measured, target = r.get(of), r.get("target")
    if not _is_number(measured) or not _is_number(target):
        return None
    m, t = float(measured), float(target)  # type: ignore[arg-type]
    if op == "<=":
        return m <= t
    if op == "<":
        return m < t
    return m >= t


def describe_target(r: Mapping[str, object]) -> str:
    """The target as the table shows it, e.g. ``ratio <= 2.5``; ``""`` when there is none."""
    rule = target_rule(r)
    if rule is None:
        return "" if r.get("target") is None else f"{r['target']} (?)"
    of, op = rule
    subject = "ratio " if of == "ratio" else ""
    return f"{subject}{op} {r['target']:g}"


def machine() -> dict[str, object]:
    """The facts a reader needs to compare these figures with their own."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions: dict[str, str] = {}
    for dist in ("beacon-orchestrator", "anyio", "trio", "attrs", "tenacity", "httpx", "uvicorn"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    try:
        load: object = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "source": source(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "versions": versions,
        "load_average_at_start": load,
    }


def source() -> dict[str, object]:
    """Which code was measured: the git commit, whether ``src/`` differs from it, and a digest
    of the scheduler module (it changes often, and the figures are only valid for one version)."""
    out: dict[str, object] = {}
    scheduler = REPO_ROOT / "src" / "beacon_orchestrator" / "_scheduler.py"
    if scheduler.exists():
        out["scheduler_sha256"] = hashlib.sha256(scheduler.read_bytes()).hexdigest()[:16]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return out
    out["commit"] = head
    out["src_modified"] = bool(dirty)
    return out


# A model's answer of a typical length: what the store benchmarks write and executors return.
ANSWER = "A plausible answer of a couple of sentences, about as long as a short model reply. " * 3


def completed_record(key: ExecutionKey) -> ExecutionRecord:
    """A COMPLETED record as a Modal endpoint's answer makes one, finished now."""
    now = time.time()
    return ExecutionRecord(
        key=key,
        status=ExecutionStatus.COMPLETED,
        text=ANSWER,
        attempts=1,
        started_at=now - 0.5,
        finished_at=now,
        provider="modal",
        metadata={"inference_time": 0.5, "tokens": 42, "region": key.region},
        receipt={"schema_version": "v0.1.0", "id": str(key)},
    )
