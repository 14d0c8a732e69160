"""The commands that read the store: ``status``, ``export`` and ``jobs``."""

from __future__ import annotations

import shlex
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import click
from attrs import frozen
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from .._errors import UsageError
from .._records import RecordFilter
from .._spec import JobSpec
from .._types import ExecutionRecord, ExecutionStatus
from ..stores import JobInfo, PostgresStore, SQLiteStore
from ._locations import StoreLocation, open_store
from ._options import json_option, store_option
from ._output import EXIT_OK, print_json_to
from ._render import (
    ENDPOINT_ROWS,
    Glyphs,
    endpoint_grid,
    jobs_table,
    legend,
    status_matrix,
    verdict_style,
    verdict_table,
)
from ._shell import consoles, exits_with_code, run_async
from ._stored import (
    MATRIX_QUESTIONS,
    StoredSummary,
    existing,
    load_stored_spec,
    one_sample_per_cell,
    read_stored_summary,
)

__all__ = [
    "CodeCount",
    "codes_table",
    "export",
    "failure_codes",
    "failures",
    "failures_table",
    "jobs",
    "jobs_json",
    "many_endpoints",
    "status",
    "status_json",
]

_FAILURES = (ExecutionStatus.FAILED, ExecutionStatus.TIMEOUT)
_NO_CODE = "(none)"


# -- failures -------------------------------------------------------------------------------------


@frozen
class CodeCount:
    """The failed and timed-out executions of one error code.

    Attributes:
        code: The error code (``None`` when the record has none).
        count: How many records have it.
        example: The message of the first of them, in the job's order.
    """

    code: str | None
    count: int
    example: str


def failures(spec: JobSpec, records: Sequence[ExecutionRecord]) -> list[ExecutionRecord]:
    """The failed and timed-out records, in the job's order (question, endpoint, sample)."""
    questions = {q.id: i for i, q in enumerate(spec.questions)}
    endpoints = {e: i for i, e in enumerate(spec.endpoints)}
    found = [r for r in records if r.status in _FAILURES]
    # A store lists records in the order they were written, which a resume reshuffles.
    found.sort(
        key=lambda r: (
            questions.get(r.key.question_id, -1),
            endpoints.get(r.key.endpoint, -1),
            r.key.sample,
        )
    )
    return found


def failure_codes(failed: Sequence[ExecutionRecord]) -> list[CodeCount]:
    """Failed records counted by error code, the most frequent first; examples come first."""
    counts: Counter[str | None] = Counter()
    examples: dict[str | None, str] = {}
    for record in failed:
        counts[record.error_code] += 1
        examples.setdefault(record.error_code, record.error_message or "")
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0] or ""))
    return [CodeCount(code, n, examples[code]) for code, n in ranked]


def _one_line(message: str | None) -> Text:
    # A row is one line; the JSON output keeps the message as it is.
    return Text(" ".join((message or "").split()))


def codes_table(codes: Sequence[CodeCount]) -> Table:
    """Failures by error code: code, count, an example message."""
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False)
    table.add_column("error code", no_wrap=True)
    table.add_column("count", justify="right", no_wrap=True)
    table.add_column("example message", no_wrap=True, overflow="ellipsis")
    for c in codes:
        table.add_row(Text(c.code or _NO_CODE), str(c.count), _one_line(c.example))
    return table


def failures_table(failed: Sequence[ExecutionRecord]) -> Table:
    """Each failed or timed-out execution: question, endpoint, status, code, attempts, message."""
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False)
    for name in ("question", "endpoint", "status", "error code"):
        table.add_column(name, no_wrap=True)
    table.add_column("attempts", justify="right", no_wrap=True)
    table.add_column("message", no_wrap=True, overflow="ellipsis")
    for r in failed:
        sample = f" #{r.key.sample}" if r.key.sample else ""
        table.add_row(
            Text(r.key.question_id + sample),
            Text(str(r.key.endpoint)),
            Text(r.status.value, style="red"),
            Text(r.error_code or _NO_CODE),
            str(r.attempts),
            _one_line(r.error_message),
        )
    return table


# -- status ---------------------------------------------------------------------------------------


def _endpoint_rows(summary: StoredSummary) -> list[dict[str, Any]]:
    rows = []
    planned = len(summary.spec.questions) * summary.spec.samples  # every sample of each question
    for endpoint in summary.spec.endpoints:
        tally = summary.counted.get(endpoint, Counter[str]())
        empty = tally["empty"]
        counts = {s.value: tally[s.value] for s in ExecutionStatus}
        counts["completed"] += empty  # a completed, empty answer is completed here
        rows.append(
            {
                "endpoint": str(endpoint),
                "model_id": endpoint.model_id,
                "region": endpoint.region,
                "planned": planned,
                **counts,
                "empty": empty,
                "missing": planned - sum(counts.values()),
            }
        )
    return rows


def _record_json(r: ExecutionRecord) -> dict[str, Any]:
    return {
        "question_id": r.key.question_id,
        "model_id": r.key.model_id,
        "region": r.key.region,
        "sample": r.key.sample,
        "status": r.status.value,
        "error_code": r.error_code,
        "error_message": r.error_message,
        "attempts": r.attempts,
    }


def status_json(summary: StoredSummary, *, each: bool) -> dict[str, Any]:
    """The ``--json`` document of ``beacon status`` (``each``: list each failed execution)."""
    spec, info = summary.spec, summary.info
    failed = failures(spec, summary.failed)
    endpoints = _endpoint_rows(summary)
    recorded = summary.recorded
    doc: dict[str, Any] = {
        "job_id": spec.id,
        "status": None if info.status is None else info.status.value,
        "reason": info.reason,
        "planned": spec.size,
        "samples": spec.samples,
        "recorded": recorded,
        "missing": spec.size - recorded,
        "counts": {s.value: sum(row[s.value] for row in endpoints) for s in ExecutionStatus},
        "empty": sum(row["empty"] for row in endpoints),
        "created_at": info.created_at,
        "finished_at": info.finished_at,
        "endpoints": endpoints,
        "failure_codes": [
            {"code": c.code, "count": c.count, "example": c.example} for c in failure_codes(failed)
        ],
    }
    if each:
        doc["failures"] = [_record_json(r) for r in failed]
    return doc


def many_endpoints(spec: JobSpec) -> bool:
    """Whether ``beacon status`` draws the job as a grid of endpoints (unless ``--all``)."""
    return len(spec.endpoints) > ENDPOINT_ROWS


def _print_matrix(out: Console, summary: StoredSummary, glyphs: Glyphs) -> None:
    spec = summary.spec
    out.print(
        status_matrix(
            spec,
            summary.cells,
            empties=summary.empties,
            glyphs=glyphs,
            width=out.size.width,
            questions=range(summary.shown),
        )
    )
    if summary.shown < len(spec.questions):
        more = len(spec.questions) - summary.shown
        out.print(
            f"... and {more} more questions; the counts below cover them all "
            f"(every record: beacon export {escape(shlex.quote(spec.id))}).",
            soft_wrap=True,
            highlight=False,
        )


def _print_status(out: Console, summary: StoredSummary, each: bool, every: bool) -> None:
    spec, info = summary.spec, summary.info
    glyphs = Glyphs.for_encoding(out.encoding)
    verdict = "unfinished" if info.status is None else info.status.value.upper()
    reason = f" - {escape(info.reason)}" if info.reason else ""
    out.print(
        f"[bold]{escape(spec.id)}[/]: [{verdict_style(info.status)}]{verdict}[/]{reason}",
        soft_wrap=True,
    )
    out.print(f"{summary.recorded} of {spec.size} executions have a record{_of_samples(spec)}.")
    grid = many_endpoints(spec) and not every
    if grid:
        # Hundreds of endpoints: a line per model rather than a glyph per endpoint and question.
        out.print(endpoint_grid(spec, summary.counted, glyphs), soft_wrap=True)
    else:
        _print_matrix(out, summary, glyphs)
    out.print(legend(glyphs))
    out.print(
        verdict_table(
            spec,
            width=out.size.width,
            counted=summary.counted,
            spent=summary.spent,
            every_endpoint=every,
        )
    )
    if grid:
        out.print(
            f"Each endpoint and the first {MATRIX_QUESTIONS} questions: beacon status "
            f"{escape(shlex.quote(spec.id))} --all",
            soft_wrap=True,
            highlight=False,
        )
    failed = failures(spec, summary.failed)
    codes = failure_codes(failed)
    if not codes:
        out.print("No execution failed or timed out.")
        return
    out.print("[bold]Failures by error code[/]")
    out.print(codes_table(codes))
    if each:
        out.print("[bold]Failed and timed-out executions[/]")
        out.print(failures_table(failed))
    else:
        out.print(
            f"List each with: beacon status {escape(shlex.quote(spec.id))} --failures",
            soft_wrap=True,
            highlight=False,
        )


def _of_samples(spec: JobSpec) -> str:
    """`` (3 samples of each of 12 cells)`` for a job of several samples, else nothing."""
    if spec.samples == 1:
        return ""
    return f" ({spec.samples} samples of each of {spec.cells} cells)"


@click.command(short_help="Show a job: matrix, counts, failures by error code.")
@click.argument("job_id")
@store_option
@click.option(
    "--failures",
    "each",
    is_flag=True,
    help="Also list each failed or timed-out execution with its error code and message.",
)
@click.option(
    "--all",
    "every",
    is_flag=True,
    help="For a job of more than 24 endpoints: the matrix of questions and a row per endpoint, "
    "not the grid of models and regions and a row per region.",
)
@json_option
@exits_with_code
def status(job_id: str, store_path: StoreLocation, each: bool, every: bool, as_json: bool) -> int:
    """Show job JOB_ID: its matrix, counts per endpoint and failures by error code.

    The matrix has a row per question (the first 20 of a larger job) and a status glyph per
    model and region. A job of more than 24 endpoints is drawn as a grid instead: a line per
    model, a glyph per region, and its counts per region (--all draws both in full). Failed
    and timed-out executions are counted by error code, with an example message; --failures
    lists each of them.
    """
    summary = read_stored_summary(
        store_path, job_id, matrix=lambda spec: not as_json and (every or not many_endpoints(spec))
    )
    out, _ = consoles()
    if as_json:
        print_json_to(out, status_json(summary, each=each))
    else:
        _print_status(out, summary, each, every)
    return EXIT_OK


# -- export and jobs ------------------------------------------------------------------------------


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
@click.option(
    "--labels",
    is_flag=True,
    help="Add each answer's label and score, the classifier's name and version, and how far "
    "its question x model's answers differ across regions.",
)
@click.option(
    "--classifier",
    metavar="MODULE:ATTR",
    help="With --labels: the classifier to label answers with (default: the refusal heuristic).",
)
@exits_with_code
def export(
    job_id: str,
    store_path: StoreLocation,
    fmt: str,
    output: Path | None,
    labels: bool,
    classifier: str | None,
) -> int:
    """Write the records of job JOB_ID as JSON lines or CSV."""
    from ..stores import export_csv, export_jsonl

    if classifier is not None and not labels:
        raise UsageError("--classifier labels answers: give it with --labels")

    path = existing(store_path)

    async def main() -> SQLiteStore | PostgresStore:
        async with open_store(path) as store:
            spec = await load_stored_spec(store, job_id, path)
            if labels:
                one_sample_per_cell(spec, "export --labels")
        return store

    read = run_async("asyncio", main)
    target = sys.stdout if output is None else output
    if not labels and isinstance(read, SQLiteStore):
        # Straight from the stored rows: the bytes of the record path below, without records.
        count = read.export_sync(job_id, "jsonl" if fmt == "jsonl" else "csv", target)
        if output is not None:
            click.echo(f"Wrote {count} records of {job_id} to {output}.", err=True)
        return EXIT_OK
    # Streamed through a connection of this thread (a read-only one of a file, or one of the
    # server's), a batch per query: an export of any size holds one batch of records.
    records: Iterable[ExecutionRecord] = read.iter_records_sync(job_id, RecordFilter())
    writer = export_jsonl if fmt == "jsonl" else export_csv
    extra = None
    if labels:
        from ..analysis import label_columns
        from ._classifier import load_classifier

        # Labels compare each answer with the other regions' answers: they need every record.
        records = list(records)
        chosen = None if classifier is None else load_classifier(classifier)
        extra = label_columns(records, classifier=chosen)
    count = writer(records, target, extra=extra)
    if output is not None:
        click.echo(f"Wrote {count} records of {job_id} to {output}.", err=True)
    return EXIT_OK


def jobs_json(path: StoreLocation, found: Sequence[JobInfo]) -> dict[str, Any]:
    """The ``--json`` document of ``beacon jobs``."""
    return {
        "store": str(path),
        "jobs": [
            {
                "job_id": j.job_id,
                "status": None if j.status is None else j.status.value,
                "reason": j.reason,
                "planned": j.planned,
                "records": j.records,
                "created_at": j.created_at,
                "finished_at": j.finished_at,
            }
            for j in found
        ],
    }


@click.command()
@store_option
@json_option
@exits_with_code
def jobs(store_path: StoreLocation, as_json: bool) -> int:
    """List the jobs in the store, oldest first."""
    path = existing(store_path)

    async def main() -> list[JobInfo]:
        async with open_store(path) as store:
            return await store.jobs()

    found = run_async("asyncio", main)
    out, _ = consoles()
    if as_json:
        print_json_to(out, jobs_json(path, found))
    else:
        out.print(jobs_table(found) if found else f"No jobs in {escape(str(path))}.")
    return EXIT_OK
