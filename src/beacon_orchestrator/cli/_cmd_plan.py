"""``beacon plan``: what a run of a job would do and how long each strategy would take.

Nothing is executed and nothing is written; :mod:`._planning` computes the figures with the
scheduler itself on a virtual clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from attrs import frozen
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from .._spec import JobSpec, Limits
from .._types import ExecutionRecord, ExecutionStatus
from ._cmd_run import check_stored_spec, load_job, with_limits
from ._locations import StoreLocation, open_store
from ._options import LIMIT_OPTIONS, flag_of, job_document, job_id_option, plan_options
from ._planning import DEFAULT_STRATEGY, JobPlan, endpoint_plans, estimate, parse_latencies
from ._render import format_seconds, samples_factor
from ._runner import EXIT_OK, finite, print_json_to
from ._shell import consoles, exits_with_code, run_async

__all__ = ["plan", "plan_json"]

# From this size on, the estimate takes long enough to say why the command is quiet.
_SLOW_SIZE = 20_000


# -- the store ------------------------------------------------------------------------------------


def _stored_records(spec: JobSpec, path: StoreLocation) -> tuple[bool, list[ExecutionRecord]]:
    """Whether ``path`` holds job ``spec.id`` (with this spec), and its records; reads only."""
    if isinstance(path, Path) and (str(path) == ":memory:" or not path.exists()):
        return False, []

    async def main() -> tuple[bool, list[ExecutionRecord]]:
        async with open_store(path) as store:
            if not await check_stored_spec(store, spec, path):
                return False, []
            return True, await store.records(spec.id)

    return run_async("asyncio", main)


# -- output ---------------------------------------------------------------------------------------


def _limits_text(limits: Limits) -> str:
    values = {name: getattr(limits, name) for name in LIMIT_OPTIONS}
    return ", ".join(
        f"{flag_of(name)} {'none' if value is None else f'{value:g}'}"
        for name, value in values.items()
    )


def _store_line(job: JobPlan) -> str:
    where = escape(str(job.store_path))
    if not job.store_exists:
        return f"No store at {where} yet: all {job.spec.size} executions to run."
    if not job.stored:
        return f"{where} does not hold this job: all {job.spec.size} executions to run."
    kept = (
        f", {job.kept} failed kept (--keep-failed)"
        if job.kept
        else " (failed and timed-out ones run again)"
    )
    return (
        f"{where} holds this job: {job.completed} of {job.spec.size} executions completed"
        f"{kept}; {job.to_run} to run."
    )


@frozen
class _Row:
    """A row of the region and endpoint tables."""

    label: str
    latency: float | None
    executions: int
    completed: int
    to_run: int

    def counts(self) -> tuple[int, int, int]:
        return self.executions, self.completed, self.to_run


def _counts_table(first: str, rows: Sequence[_Row]) -> Table:
    latency = any(row.latency is not None for row in rows)
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False, show_footer=True)
    table.add_column(first, no_wrap=True, footer="total")
    if latency:
        table.add_column("latency", justify="right", no_wrap=True)
    for i, name in enumerate(("executions", "completed", "to run")):
        total = sum(row.counts()[i] for row in rows)
        table.add_column(name, justify="right", no_wrap=True, footer=str(total))
    for row in rows:
        cells = [format_seconds(row.latency)] if latency else []
        table.add_row(Text(row.label), *cells, *(str(n) for n in row.counts()))
    return table


def _estimates_table(job: JobPlan) -> Table:
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False)
    table.add_column("strategy", no_wrap=True)
    table.add_column("makespan", justify="right", no_wrap=True)
    table.add_column("note", no_wrap=True)
    for est in job.estimates:
        notes = ["default"] if est.strategy == DEFAULT_STRATEGY else []
        if short := est.shortfall(job.to_run, job.completed):
            notes.append(short)
        table.add_row(est.strategy, format_seconds(est.makespan), "; ".join(notes))
    return table


def _print_plan(job: JobPlan, out: Console) -> None:
    spec = job.spec
    out.print(
        f"Job [bold]{escape(spec.id)}[/]: {len(spec.questions)} questions x "
        f"{len(spec.endpoints)} endpoints ({len(spec.models)} models in {len(spec.regions)} "
        f"regions){samples_factor(spec)} = {spec.size} executions. Nothing is run.",
        soft_wrap=True,
    )
    out.print(_store_line(job), soft_wrap=True, highlight=False)
    by_region: dict[str, list[int]] = {}
    for e in job.endpoints:
        sums = by_region.setdefault(e.endpoint.region, [0, 0, 0])
        for i, n in enumerate((e.executions, e.completed, e.to_run)):
            sums[i] += n
    regions = [_Row(region, None, *sums) for region, sums in by_region.items()]
    out.print(_counts_table("region", regions))
    endpoints = [
        _Row(str(e.endpoint), e.latency, e.executions, e.completed, e.to_run) for e in job.endpoints
    ]
    out.print(_counts_table("endpoint", endpoints))
    out.print(
        f"Expected time with {format_seconds(job.latency)} per execution"
        f"{' (or as --endpoint-latency says)' if _overridden(job) else ''}, "
        f"limits {_limits_text(job.limits)}:",
        soft_wrap=True,
        highlight=False,
    )
    out.print(_estimates_table(job))
    out.print(
        "Computed by the scheduler itself on a virtual clock: every execution answers after "
        "its latency; none fails or is retried.",
        soft_wrap=True,
        style="dim",
    )


def _overridden(job: JobPlan) -> bool:
    return any(e.latency != job.latency for e in job.endpoints)


def plan_json(job: JobPlan) -> dict[str, Any]:
    """The ``--json`` document of ``beacon plan``."""
    spec = job.spec
    regions: dict[str, dict[str, Any]] = {}
    for e in job.endpoints:
        row = regions.setdefault(
            e.endpoint.region,
            {"region": e.endpoint.region, "endpoints": 0, "executions": 0, "completed": 0},
        )
        row["endpoints"] += 1
        row["executions"] += e.executions
        row["completed"] += e.completed
        row["to_run"] = row.get("to_run", 0) + e.to_run
    return {
        "job_id": spec.id,
        "planned": spec.size,
        "questions": len(spec.questions),
        "store": {"path": str(job.store_path), "exists": job.store_exists, "has_job": job.stored},
        "completed": job.completed,
        "kept": job.kept,
        "to_run": job.to_run,
        "latency": job.latency,
        "limits": {name: getattr(job.limits, name) for name in LIMIT_OPTIONS},
        "regions": list(regions.values()),
        "endpoints": [
            {
                "endpoint": str(e.endpoint),
                "model_id": e.endpoint.model_id,
                "region": e.endpoint.region,
                "latency": e.latency,
                "executions": e.executions,
                "completed": e.completed,
                "to_run": e.to_run,
            }
            for e in job.endpoints
        ],
        "strategies": [
            {
                "strategy": est.strategy,
                "default": est.strategy == DEFAULT_STRATEGY,
                "makespan": finite(est.makespan),
                "started": est.started,
                "all_complete": not est.shortfall(job.to_run, job.completed),
                "counts": {s.value: est.counts.get(s, 0) for s in ExecutionStatus},
            }
            for est in job.estimates
        ],
    }


# -- the command ----------------------------------------------------------------------------------


@click.command(short_help="Show what a run would do and how long each strategy would take.")
@job_document
@job_id_option("Plan the job under this id instead of the document's.")
@plan_options
@exits_with_code
def plan(job: Path, catalogue: Path | None, job_id: str | None, **kw: Any) -> int:
    """Plan the job in JOB without running anything.

    Shows the executions per region and per endpoint, what the store already holds for the
    job (completed, to run), and how long each strategy would take (endpoint, region,
    lockstep) under the job's limits or the limit options.

    Every execution is assumed to take --latency seconds; give an endpoint its own time
    with --endpoint-latency. The figures come from the scheduler itself, run on a virtual
    clock. Nothing is written, and no store is created.
    """
    spec = load_job(job, catalogue, job_id)
    latencies = parse_latencies(spec, kw["latency"], kw["endpoint_latencies"])
    limits = with_limits(spec, kw)
    path: StoreLocation = kw["store_path"]
    stored, records = _stored_records(spec, path)
    rerun_failed: bool = kw["rerun_failed"]
    out, err = consoles()
    if spec.size >= _SLOW_SIZE:
        err.print(
            f"Running {spec.size} executions three times on a virtual clock (a few seconds per "
            "10,000)...",
            soft_wrap=True,
            highlight=False,
        )
    estimates = estimate(spec, records, latencies, limits=limits, rerun_failed=rerun_failed)
    job_plan = JobPlan(
        spec=spec,
        limits=limits or spec.limits,
        latency=kw["latency"],
        endpoints=endpoint_plans(spec, records, latencies, rerun_failed),
        estimates=estimates,
        store_path=path,
        store_exists=not isinstance(path, Path) or (str(path) != ":memory:" and path.exists()),
        stored=stored,
    )
    if kw["as_json"]:
        print_json_to(out, plan_json(job_plan))
    else:
        _print_plan(job_plan, out)
    return EXIT_OK
