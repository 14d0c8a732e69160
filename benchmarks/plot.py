"""The overhead plot of docs/performance.md, drawn from a results file.

Run: ``python -m benchmarks.plot [benchmarks/results.json [docs/img/overhead.png]]`` (the full
``python -m benchmarks`` run draws it too).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._common import BENCH_DIR, REPO_ROOT

DEFAULT_RESULTS = BENCH_DIR / "results.json"
DEFAULT_PLOT = REPO_ROOT / "docs" / "img" / "overhead.png"


def overhead_curves(results: Mapping[str, Any]) -> dict[str, list[dict[str, float]]]:
    """The overhead curve of each backend found in a results document."""
    curves: dict[str, list[dict[str, float]]] = {}
    for bench in results.get("benchmarks", []):
        for r in bench.get("rows", []):
            if isinstance(r, dict) and "curve" in r and "backend" in r:
                curves[str(r["backend"])] = list(r["curve"])
    return curves


def plot_overhead(results: Mapping[str, Any], out: Path) -> Path:
    """Draw overhead per execution against job size, library and bare pool, one panel a backend.

    Raises:
        ValueError: When the results hold no overhead curve.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = overhead_curves(results)
    if not curves:
        raise ValueError("the results hold no overhead curve; run the 'overhead' benchmark")
    fig, axes = plt.subplots(
        1, len(curves), figsize=(5.2 * len(curves), 4.2), sharey=True, squeeze=False
    )
    for ax, (backend, curve) in zip(axes[0], sorted(curves.items()), strict=True):
        sizes = [p["size"] for p in curve]
        lib = [p["library_us"] for p in curve]
        bare = [p["bare_us"] for p in curve]
        ax.plot(sizes, lib, "o-", color="tab:blue", label="beacon_orchestrator run_job")
        ax.plot(sizes, bare, "s-", color="tab:gray", label="bare anyio worker pool")
        ax.plot(
            sizes,
            [2.5 * b for b in bare],
            ":",
            color="tab:red",
            label="target: 2.5x the bare pool",
        )
        ax.set_xscale("log")
        ax.set_title(backend)
        ax.set_xlabel("executions in the job (1,000 endpoints)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("wall time per execution (µs)")
    axes[0][0].set_ylim(bottom=0)
    axes[0][0].legend(fontsize="small")
    machine = results.get("machine", {})
    fig.suptitle(
        "Scheduler overhead per execution, no-op executor, MemoryStore "
        f"({machine.get('cores', '?')} cores, {machine.get('cpu', '?')}, "
        f"Python {machine.get('python', '?')})",
        fontsize="medium",
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str]) -> int:
    """Draw the plot from a results file."""
    source = Path(argv[0]) if argv else DEFAULT_RESULTS
    out = Path(argv[1]) if len(argv) > 1 else DEFAULT_PLOT
    with source.open(encoding="utf-8") as f:
        results = json.load(f)
    print(f"wrote {plot_overhead(results, out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
