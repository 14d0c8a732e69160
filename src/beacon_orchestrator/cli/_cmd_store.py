"""The commands that read the store: ``status``, ``export`` and ``jobs``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .._types import ExecutionRecord
from ..stores import JobInfo
from ._options import store_option
from ._render import Glyphs, jobs_table, legend, status_matrix, verdict_style, verdict_table
from ._runner import EXIT_OK
from ._shell import consoles, exits_with_code, run_async
from ._stored import existing, load_stored_spec

__all__ = ["export", "jobs", "status"]


@click.command(short_help="Show a job as a question x model x region matrix.")
@click.argument("job_id")
@store_option
@exits_with_code
def status(job_id: str, store_path: Path) -> int:
    """Show job JOB_ID as a question x model x region matrix of status glyphs."""
    from ..stores import SQLiteStore

    path = existing(store_path)

    async def main() -> int:
        out, _ = consoles()
        async with SQLiteStore(path) as store:
            spec = await load_stored_spec(store, job_id, path)
            records = await store.records(job_id)
            info = next(j for j in await store.jobs() if j.job_id == job_id)
        glyphs = Glyphs.for_encoding(out.encoding)
        verdict = "unfinished" if info.status is None else info.status.value.upper()
        out.print(
            f"[bold]{job_id}[/]: [{verdict_style(info.status)}]{verdict}[/]"
            f"{f' - {info.reason}' if info.reason else ''}",
            soft_wrap=True,
        )
        out.print(f"{len(records)} of {spec.size} executions have a record.")
        out.print(
            status_matrix(
                spec,
                {r.key: r.status for r in records},
                empties=[r.key for r in records if r.empty],
                glyphs=glyphs,
                width=out.size.width,
            )
        )
        out.print(legend(glyphs))
        out.print(verdict_table(spec, records, width=out.size.width))
        return EXIT_OK

    return run_async("asyncio", main)


@click.command()
@click.argument("job_id")
@store_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv"]),
    default="jsonl",
    show_default=True,
    help="One JSON object per record (lossless), or CSV with a header row.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write (default: standard output).",
)
@exits_with_code
def export(job_id: str, store_path: Path, fmt: str, output: Path | None) -> int:
    """Write the records of job JOB_ID as JSON lines or CSV."""
    from ..stores import SQLiteStore, export_csv, export_jsonl

    path = existing(store_path)

    async def main() -> list[ExecutionRecord]:
        async with SQLiteStore(path) as store:
            await load_stored_spec(store, job_id, path)
            return await store.records(job_id)

    records = run_async("asyncio", main)
    writer = export_jsonl if fmt == "jsonl" else export_csv
    count = writer(records, sys.stdout if output is None else output)
    if output is not None:
        click.echo(f"Wrote {count} records of {job_id} to {output}.", err=True)
    return EXIT_OK


@click.command()
@store_option
@exits_with_code
def jobs(store_path: Path) -> int:
    """List the jobs in the store, oldest first."""
    from ..stores import SQLiteStore

    path = existing(store_path)

    async def main() -> list[JobInfo]:
        async with SQLiteStore(path) as store:
            return await store.jobs()

    found = run_async("asyncio", main)
    out, _ = consoles()
    out.print(jobs_table(found) if found else f"No jobs in {path}.")
    return EXIT_OK
