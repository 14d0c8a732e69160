"""``beacon show``: a stored job's answers, models x regions per question, where regions differ."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import click
from attrs import frozen
from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from .._errors import BeaconError, UsageError
from .._spec import JobSpec
from .._types import ExecutionKey, ExecutionRecord, ExecutionStatus
from ..analysis import CellDivergence, Classification, Classifier, Label, RefusalClassifier
from ..analysis import compare_regions as _compare_regions
from ..stores import JobInfo
from ._classifier import load_classifier
from ._locations import StoreLocation
from ._options import store_option
from ._render import Glyphs
from ._runner import EXIT_OK
from ._shell import consoles, exits_with_code
from ._stored import existing, one_sample_per_cell, read_stored_job

__all__ = ["JSON_SCHEMA", "show"]

JSON_SCHEMA = "beacon-show/1"
"""The ``schema`` field of ``beacon show --json``; the number changes when a field does."""

# On a terminal a cell shows about this many lines of its answer (``--full``: all of it).
_PREVIEW_LINES = 4
# The "where the regions differ" list: this many cells at most.
_RANKED = 10
_LABEL_STYLES: Mapping[Label, str] = {
    Label.SUBSTANTIVE: "green",
    Label.REFUSAL: "bold magenta",
    Label.EMPTY: "yellow",
    Label.TECHNICAL_FAILURE: "red",
}


def _compare(records: Sequence[ExecutionRecord], classifier: Classifier) -> list[CellDivergence]:
    try:
        return _compare_regions(records, classifier)
    except BeaconError:
        raise
    except Exception as exc:  # the user's classifier failed; say which, not where inside
        raise UsageError(
            f"classifier {classifier.name!r} (version {classifier.version!r}) raised "
            f"{type(exc).__name__}: {exc}"
        ) from None


# -- what is shown ------------------------------------------------------------------------------


@frozen
class _Job:
    """What ``show`` reads from the store and works out, for both of its outputs."""

    spec: JobSpec
    info: JobInfo
    classifier: Classifier
    questions: tuple[str, ...]
    models: tuple[str, ...]
    records: Mapping[ExecutionKey, ExecutionRecord]
    labels: Mapping[ExecutionKey, Classification]
    cells: Sequence[CellDivergence]  # ranked, most divergent first

    def keys(self) -> list[ExecutionKey]:
        """The planned keys the filters keep, in job order."""
        return [
            ExecutionKey(q, e.model_id, e.region)
            for q in self.questions
            for e in self.spec.endpoints
            if e.model_id in self.models
        ]

    def failures(self) -> list[ExecutionKey]:
        """The kept keys whose execution did not complete."""
        return [
            k
            for k in self.keys()
            if k in self.records and self.records[k].status is not ExecutionStatus.COMPLETED
        ]


def _pick(kind: str, asked: Sequence[str], known: Sequence[str], job_id: str) -> tuple[str, ...]:
    unknown = [x for x in asked if x not in known]
    if unknown:
        raise UsageError(
            f"--{kind} {unknown[0]!r}: job {job_id!r} has no such {kind}; "
            f"its {kind}s: {', '.join(known)}"
        )
    return tuple(x for x in known if x in asked) if asked else tuple(known)


def _job(
    path: StoreLocation,
    job_id: str,
    questions: Sequence[str],
    models: Sequence[str],
    classifier: Classifier,
) -> _Job:
    spec, records, info = read_stored_job(path, job_id)
    one_sample_per_cell(spec, "show")
    kept_q = _pick("question", questions, [q.id for q in spec.questions], job_id)
    kept_m = _pick("model", models, [m.id for m in spec.models], job_id)
    kept = [r for r in records if r.key.question_id in kept_q and r.key.model_id in kept_m]
    cells = _compare(kept, classifier)
    labels = {
        ExecutionKey(c.question_id, c.model_id, region): label
        for c in cells
        for region, label in c.classifications.items()
    }
    return _Job(
        spec=spec,
        info=info,
        classifier=classifier,
        questions=kept_q,
        models=kept_m,
        records={r.key: r for r in kept},
        labels=labels,
        cells=cells,
    )


# -- JSON ---------------------------------------------------------------------------------------


def _cell_json(job: _Job, key: ExecutionKey) -> dict[str, Any]:
    record = job.records.get(key)
    label = job.labels.get(key)
    return {
        "question_id": key.question_id,
        "model_id": key.model_id,
        "region": key.region,
        "status": None if record is None else record.status.value,
        "label": None if label is None else label.label.value,
        "score": None if label is None else label.score,
        "evidence": None if label is None else label.evidence,
        "text": None if record is None else record.text,
        "error_code": None if record is None else record.error_code,
        "error_message": None if record is None else record.error_message,
        "attempts": 0 if record is None else record.attempts,
    }


def _divergence_json(rank: int, cell: CellDivergence) -> dict[str, Any]:
    return {
        "rank": rank,
        "question_id": cell.question_id,
        "model_id": cell.model_id,
        "score": cell.score,
        "label_split": cell.label_split,
        "text_divergence": cell.text_divergence,
        "labels": {region: label.value for region, label in cell.labels.items()},
    }


def job_json(job: _Job, *, failures: bool) -> dict[str, Any]:
    """The document ``beacon show --json`` prints (documented in the CLI reference)."""
    keys = job.failures() if failures else job.keys()
    return {
        "schema": JSON_SCHEMA,
        "job_id": job.spec.id,
        "status": None if job.info.status is None else job.info.status.value,
        "reason": job.info.reason,
        "planned": job.spec.size,
        "recorded": job.info.records,
        "classifier": {"name": job.classifier.name, "version": job.classifier.version},
        "questions": [
            {"id": q.id, "prompt": q.prompt} for q in job.spec.questions if q.id in job.questions
        ],
        "cells": [_cell_json(job, k) for k in keys],
        "divergence": [_divergence_json(i, c) for i, c in enumerate(job.cells, 1)],
    }


# -- tables -------------------------------------------------------------------------------------


def _minority(cell: CellDivergence) -> str:
    """What sets the odd regions of a label split apart: ``refusal in asia-pacific``.

    The odd ones are those that did not answer substantively, when some region did; else
    those off the most common label.
    """
    answered = {r: label for r, label in cell.labels.items() if label.answered}
    common = (
        Label.SUBSTANTIVE
        if Label.SUBSTANTIVE in answered.values()
        else Counter(answered.values()).most_common(1)[0][0]
    )
    odd: dict[Label, list[str]] = {}
    for region, label in answered.items():
        if label is not common:
            odd.setdefault(label, []).append(region)
    return "; ".join(f"{label.value} in {', '.join(regions)}" for label, regions in odd.items())


def _why(cell: CellDivergence) -> Text:
    text = Text()
    if cell.label_split:
        text.append(_minority(cell), style="bold magenta")
        text.append("; ")
    text.append("text " + ("-" if cell.text_divergence is None else f"{cell.text_divergence:.2f}"))
    return text


def _ranking(job: _Job) -> RenderableType:
    shown = [c for c in job.cells if c.score > 0][:_RANKED]
    if not shown:
        return Text("The regions do not differ: no label split, no text to compare.")
    table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
    for name in ("score", "question", "model", "how the regions differ"):
        table.add_column(name, overflow="fold", justify="right" if name == "score" else "left")
    for cell in shown:
        table.add_row(f"{cell.score:.2f}", cell.question_id, cell.model_id, _why(cell))
    return Group(
        Text(
            f"Where the regions differ most ({len(shown)} of {len(job.cells)} question x model "
            "cells; score: 1 for a label split, plus the text divergence from 0 to 1):",
            style="bold",
        ),
        table,
    )


def _start(text: str, limit: int | None) -> str:
    """The answer, or its start (white space folded) cut at a word, when ``limit`` is set."""
    if limit is None:
        return text
    folded = " ".join(text.split())
    if len(folded) <= limit:
        return folded
    cut = folded[:limit].rsplit(" ", 1)[0] if " " in folded[:limit] else folded[:limit]
    return cut + "…"


def _cell_text(job: _Job, key: ExecutionKey, glyphs: Glyphs, limit: int | None) -> Text:
    record = job.records.get(key)
    if record is None:
        return Text.assemble(glyphs.of("pending"), " no record yet")
    label = job.labels[key].label
    text = Text.assemble(
        glyphs.of(record.status, empty=record.empty), " ", (label.value, _LABEL_STYLES[label])
    )
    if record.status is not ExecutionStatus.COMPLETED:
        text.append(f" {record.status.value}", style="red")
        if record.error_code:
            text.append(f" {record.error_code}", style="red")
    elif record.text and record.text.strip():
        text.append("\n")
        text.append(_start(record.text, limit))
    return text


def _question_table(job: _Job, question: str, glyphs: Glyphs, width: int, full: bool) -> Table:
    models = [m for m in job.spec.models if m.id in job.models]
    regions = [r for r in job.spec.regions if any(r in m.regions for m in models)]
    column = max(12, (width - 16 - 12) // max(1, len(regions)) - 3)
    limit = None if full else column * _PREVIEW_LINES
    ranks = {(c.question_id, c.model_id): (i, c) for i, c in enumerate(job.cells, 1)}
    table = Table(box=box.SIMPLE_HEAD, show_lines=True, header_style="bold", pad_edge=False)
    table.add_column("model", overflow="fold", max_width=16)
    for region in regions:
        table.add_column(region, overflow="fold", ratio=1)
    table.add_column("differ", overflow="fold", max_width=12)
    for model in models:
        row: list[RenderableType] = [model.id]
        for region in regions:
            key = ExecutionKey(question, model.id, region)
            row.append(_cell_text(job, key, glyphs, limit) if region in model.regions else "")
        ranked = ranks.get((question, model.id))
        row.append(Text("-") if ranked is None else _rank_text(*ranked))
        table.add_row(*row)
    return table


def _rank_text(rank: int, cell: CellDivergence) -> Text:
    style = "bold magenta" if cell.label_split else ""
    text = Text(f"#{rank} {cell.score:.2f}", style=style)
    if cell.label_split:
        text.append("\nlabel split")
    return text


def _header(job: _Job) -> Group:
    info = job.info
    verdict = "unfinished" if info.status is None else info.status.value.upper()
    counts = Counter(c.label for c in job.labels.values())
    labels = ", ".join(f"{counts[label]} {label.value}" for label in Label if counts[label])
    return Group(
        Text.assemble(
            (job.spec.id, "bold"), f": {verdict}", f" - {info.reason}" * bool(info.reason)
        ),
        Text(
            f"{info.records} of {info.planned} executions have a record. Labels by "
            f"{job.classifier.name} {job.classifier.version}: {labels or 'none'}."
        ),
    )


def _print_answers(out: Console, job: _Job, full: bool) -> None:
    glyphs = Glyphs.for_encoding(out.encoding)
    # Cut answers to their start only where a person reads them; a file gets every word.
    full = full or not out.is_terminal
    out.print(_header(job), soft_wrap=not out.is_terminal)
    out.print()
    out.print(_ranking(job))
    prompts = {q.id: q.prompt for q in job.spec.questions}
    for question in job.questions:
        out.print()
        out.print(Text.assemble((question, "bold"), "  ", (prompts[question], "dim")))
        out.print(_question_table(job, question, glyphs, out.size.width, full))


def _print_failures(out: Console, job: _Job) -> None:
    # One line per failure, never cut or wrapped off a terminal: logs and grep read it whole.
    soft = not out.is_terminal
    out.print(_header(job), soft_wrap=soft)
    keys = job.failures()
    if not keys:
        out.print("No execution failed.")
        return
    out.print(f"{len(keys)} of {len(job.keys())} executions did not complete:", soft_wrap=soft)
    for key in keys:
        record = job.records[key]
        attempts = f"{record.attempts} attempt{'s' * (record.attempts != 1)}"
        line = Text.assemble(
            (str(key), "bold"), "  ", (record.status.value, "red"), f" after {attempts}"
        )
        if record.error_code:
            line.append(f"  {record.error_code}", style="red")
        if record.error_message:
            line.append(f": {record.error_message}")
        out.print(line, soft_wrap=soft)


# -- the command --------------------------------------------------------------------------------


@click.command(
    short_help="Show a job's answers per question: models x regions, and where they differ."
)
@click.argument("job_id")
@click.option(
    "--question", "questions", multiple=True, metavar="ID", help="Show this question (repeatable)."
)
@click.option(
    "--model", "models", multiple=True, metavar="ID", help="Show this model (repeatable)."
)
@click.option(
    "--full", is_flag=True, help="Whole answers; a terminal shows their start (a file gets all)."
)
@click.option(
    "--failures",
    is_flag=True,
    help="List the executions that did not complete, with error codes and messages.",
)
@click.option(
    "--classifier",
    "classifier_path",
    metavar="MODULE:ATTR",
    help="Label answers with this Classifier (an object, or a zero-argument factory) "
    "instead of the built-in refusal heuristic.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON document (see the CLI reference)."
)
@store_option
@exits_with_code
def show(
    job_id: str,
    questions: tuple[str, ...],
    models: tuple[str, ...],
    full: bool,
    failures: bool,
    classifier_path: str | None,
    as_json: bool,
    store_path: StoreLocation,
) -> int:
    """Show the answers of job JOB_ID: per question, a models x regions table.

    Each cell has the execution's status, its label (substantive, refusal, empty or
    technical_failure) and the start of the answer. Question x model cells are ranked by how
    much their regions differ: a label split (a refusal in one region, an answer in another)
    first, then by how different the answers' texts are.
    """
    classifier = (
        RefusalClassifier() if classifier_path is None else load_classifier(classifier_path)
    )
    job = _job(existing(store_path), job_id, questions, models, classifier)
    if as_json:
        click.echo(json.dumps(job_json(job, failures=failures), ensure_ascii=False, indent=2))
        return EXIT_OK
    out, _ = consoles()
    if failures:
        _print_failures(out, job)
    else:
        _print_answers(out, job, full)
    return EXIT_OK
