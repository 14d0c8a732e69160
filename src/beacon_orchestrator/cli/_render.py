"""Rich renderables the commands print: the status matrix, the verdict table, the jobs list."""

from __future__ import annotations

import datetime as _dt
from collections import Counter as _Counter
from collections.abc import Iterable, Mapping, Sequence, Set
from typing import Literal, TypeAlias

from attrs import frozen
from rich import box
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from .._spec import JobSpec
from .._status import JobStatus
from .._types import Endpoint, ExecutionKey, ExecutionRecord, ExecutionStatus
from ..stores import JobInfo

__all__ = [
    "ENDPOINT_ROWS",
    "Cell",
    "Glyphs",
    "cell_state",
    "endpoint_grid",
    "endpoint_state",
    "format_seconds",
    "jobs_table",
    "legend",
    "sample_states",
    "samples_factor",
    "status_matrix",
    "verdict_style",
    "verdict_table",
]

Cell: TypeAlias = ExecutionStatus | Literal["pending", "running", "retrying"]
"""What a matrix cell shows: a terminal status, or the state of an unfinished execution."""

# Which of a cell's samples its glyph shows: what runs, then what went wrong, then what is left.
_SHOWN_FIRST: tuple[Cell | None, ...] = (
    "running",
    "retrying",
    ExecutionStatus.FAILED,
    ExecutionStatus.TIMEOUT,
    ExecutionStatus.CANCELLED,
    ExecutionStatus.SKIPPED,
    None,
    ExecutionStatus.COMPLETED,
)


def samples_factor(spec: JobSpec) -> str:
    """`` x 3 samples`` for a job of several samples per cell (its shape's last factor)."""
    return f" x {spec.samples} samples" if spec.samples > 1 else ""


def sample_states(
    spec: JobSpec, cells: Mapping[ExecutionKey, Cell], question_id: str, model_id: str, region: str
) -> list[Cell | None]:
    """The state of each sample of one cell (``None``: pending), in sample order."""
    return [cells.get(ExecutionKey(question_id, model_id, region, s)) for s in range(spec.samples)]


def cell_state(
    spec: JobSpec,
    cells: Mapping[ExecutionKey, Cell],
    empties: Set[ExecutionKey],
    key: ExecutionKey,
) -> tuple[Cell, bool]:
    """What one cell's glyph shows, and whether it is an empty answer.

    With one sample per cell, that sample's state. With several, the first of: one running,
    one retrying, one failed, timed out, cancelled or skipped, one pending; else every sample
    completed (empty only if every answer was).
    """
    if spec.samples == 1:
        return cells.get(key, "pending"), key in empties
    states = sample_states(spec, cells, key.question_id, key.model_id, key.region)
    shown = min(states, key=_SHOWN_FIRST.index)
    if shown is None:
        return "pending", False
    all_empty = shown is ExecutionStatus.COMPLETED and all(
        ExecutionKey(key.question_id, key.model_id, key.region, s) in empties
        for s in range(spec.samples)
    )
    return shown, all_empty


_WENT_WRONG = (
    ExecutionStatus.FAILED,
    ExecutionStatus.TIMEOUT,
    ExecutionStatus.CANCELLED,
    ExecutionStatus.SKIPPED,
)

_STYLES: Mapping[str, str] = {
    "pending": "dim",
    "running": "cyan",
    "retrying": "yellow",
    ExecutionStatus.COMPLETED: "green",
    "empty": "yellow",
    ExecutionStatus.FAILED: "red",
    ExecutionStatus.TIMEOUT: "red",
    ExecutionStatus.CANCELLED: "magenta",
    ExecutionStatus.SKIPPED: "dim",
}


@frozen
class Glyphs:
    """One character per cell state; an ASCII set for terminals that cannot show the others."""

    pending: str
    running: str
    retrying: str
    completed: str
    empty: str
    failed: str
    timeout: str
    cancelled: str
    skipped: str

    @classmethod
    def for_encoding(cls, encoding: str) -> Glyphs:
        """Unicode glyphs when the output encoding is UTF, ASCII ones otherwise."""
        if "utf" in encoding.lower():
            return cls("·", "▸", "↻", "✓", "∅", "✗", "◷", "⊘", "-")
        return cls(".", ">", "r", "+", "0", "x", "T", "c", "-")

    def of(self, cell: Cell, *, empty: bool = False) -> Text:
        """The styled glyph of a cell (``empty`` marks a completed, empty answer)."""
        if cell is ExecutionStatus.COMPLETED and empty:
            return Text(self.empty, style=_STYLES["empty"])
        name = cell.value if isinstance(cell, ExecutionStatus) else cell
        return Text(getattr(self, name), style=_STYLES[cell])


def legend(glyphs: Glyphs) -> Text:
    """One line explaining every glyph."""
    parts: list[tuple[str, Cell, bool]] = [
        ("completed", ExecutionStatus.COMPLETED, False),
        ("empty", ExecutionStatus.COMPLETED, True),
        ("failed", ExecutionStatus.FAILED, False),
        ("timeout", ExecutionStatus.TIMEOUT, False),
        ("cancelled", ExecutionStatus.CANCELLED, False),
        ("skipped", ExecutionStatus.SKIPPED, False),
        ("running", "running", False),
        ("retrying", "retrying", False),
        ("pending", "pending", False),
    ]
    line = Text()
    for i, (label, cell, empty) in enumerate(parts):
        if i:
            line.append("  ")
        line.append_text(glyphs.of(cell, empty=empty))
        line.append(f" {label}", style="dim")
    return line


def format_seconds(seconds: float | None) -> str:
    """``1:02:03``, ``4:05`` or ``7.2s``; ``--`` when unknown."""
    if seconds is None:
        return "--"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def matrix_fits(spec: JobSpec, width: int) -> bool:
    """Whether a cell per model and region fits in ``width`` columns."""
    per_model = max(len(spec.regions) * 2, 6)
    needed = 24 + 12 + sum(max(per_model, len(m.id)) + 3 for m in spec.models)
    return needed <= width


def _region_cells(
    spec: JobSpec,
    question_id: str,
    model_id: str,
    model_regions: Sequence[str],
    cells: Mapping[ExecutionKey, Cell],
    empties: Set[ExecutionKey],
    glyphs: Glyphs,
) -> Text:
    text = Text()
    for i, region in enumerate(spec.regions):
        if i:
            text.append(" ")
        if region not in model_regions:
            text.append(" ")
            continue
        state, empty = cell_state(spec, cells, empties, ExecutionKey(question_id, model_id, region))
        text.append_text(glyphs.of(state, empty=empty))
    return text


def status_matrix(
    spec: JobSpec,
    cells: Mapping[ExecutionKey, Cell],
    *,
    empties: Iterable[ExecutionKey] = (),
    glyphs: Glyphs,
    width: int,
    questions: Sequence[int] | None = None,
    bars: bool = False,
) -> Table:
    """A row per question and, per model, one glyph per region (in the job's region order).

    When the job has too many models and regions for ``width`` columns, each row shows counts
    instead of glyphs. With several samples per cell, a glyph stands for the cell's samples
    (see :func:`cell_state`) and the counts count samples.

    Args:
        spec: The job.
        cells: The state of every key that is not pending.
        empties: Completed keys whose answer was empty.
        glyphs: The glyph set.
        width: Columns available.
        questions: Indexes of the questions to show (default: all).
        bars: Whether to add a done/total column per question (done: completed, failed or
            timed out; not cancelled or skipped).
    """
    empty_keys = frozenset(empties)
    per_question = len(spec.endpoints) * spec.samples
    show_cells = matrix_fits(spec, width)
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    # Question ids get a quarter of the width (at least 28): whole in a pipe, short on a screen.
    table.add_column("question", no_wrap=True, overflow="ellipsis", max_width=max(28, width // 4))
    if bars or not show_cells:
        table.add_column("done", justify="right", no_wrap=True)
    if show_cells:
        for model in spec.models:
            table.add_column(Text(model.id), no_wrap=True)
    else:
        table.add_column("states", no_wrap=True)
    indexes = range(len(spec.questions)) if questions is None else questions
    for qi in indexes:
        question = spec.questions[qi]
        row: list[RenderableType] = [Text(question.id)]
        states = [
            state
            for e in spec.endpoints
            for state in sample_states(spec, cells, question.id, e.model_id, e.region)
        ]
        # Done is an outcome: a cancelled or skipped execution has a record, and runs again.
        done = sum(1 for s in states if isinstance(s, ExecutionStatus) and s.finished)
        if bars or not show_cells:
            row.append(f"{done}/{per_question}")
        if show_cells:
            row.extend(
                _region_cells(spec, question.id, m.id, m.regions, cells, empty_keys, glyphs)
                for m in spec.models
            )
        else:
            counted = _Counter("pending" if s is None else s for s in states)
            summary = Text()
            for cell, n in counted.items():
                summary.append_text(glyphs.of(cell))
                summary.append(f"{n} ")
            row.append(summary)
        table.add_row(*row)
    if show_cells and len(spec.regions) > 1:
        table.caption = "regions in each cell: " + " ".join(spec.regions)
        table.caption_justify = "left"
        table.caption_style = "dim"
    return table


ENDPOINT_ROWS = 24
"""Endpoints up to which a job's counts show a row per endpoint; a larger job shows them per
region, and ``beacon status`` draws its endpoints as a grid instead of a matrix of questions."""


def endpoint_state(tally: Mapping[str, int], planned: int) -> tuple[Cell, bool]:
    """What one endpoint's glyph shows, from its records counted by status value.

    As for a cell of several samples (:func:`cell_state`): the first of a failed, timed-out,
    cancelled or skipped record, a key without a record; else every key completed (empty if
    every answer was). ``tally`` counts ``empty`` apart from ``completed``.
    """
    for status in _WENT_WRONG:
        if tally.get(status.value, 0):
            return status, False
    done = tally.get("completed", 0)
    empty = tally.get("empty", 0)
    if done + empty < planned:
        return "pending", False
    return ExecutionStatus.COMPLETED, empty > 0 and done == 0


def endpoint_grid(
    spec: JobSpec, counted: Mapping[Endpoint, Mapping[str, int]], glyphs: Glyphs
) -> Text:
    """A line per model: its finished executions of those planned, then a glyph per region.

    What ``beacon status`` draws of a job of many endpoints instead of a matrix of questions:
    as many lines as models, whatever the number of questions.
    """
    planned = len(spec.questions) * spec.samples
    name_width = max(len(m.id) for m in spec.models)
    total = str(planned * len(spec.regions))
    grid = Text(no_wrap=True, overflow="ellipsis")
    grid.append(f"{'model':<{name_width}}  {'done':>{2 * len(total) + 1}}  regions\n", "bold")
    for model in spec.models:
        served = frozenset(model.regions)
        finished = 0
        glyph_line = Text()
        for i, region in enumerate(spec.regions):
            if i:
                glyph_line.append(" ")
            if region not in served:
                glyph_line.append(" ")
                continue
            tally = counted.get(Endpoint(model.id, region), {})
            finished += sum(tally.get(s.value, 0) for s in ExecutionStatus if s.finished)
            finished += tally.get("empty", 0)
            state, empty = endpoint_state(tally, planned)
            glyph_line.append_text(glyphs.of(state, empty=empty))
        done = f"{finished}/{planned * len(served)}"
        grid.append(f"{model.id:<{name_width}}  {done:>{2 * len(total) + 1}}  ")
        grid.append_text(glyph_line)
        grid.append("\n")
    grid.append("regions: " + " ".join(spec.regions), "dim")
    return grid


def verdict_style(status: JobStatus | None) -> str:
    """The colour of a verdict."""
    return (
        {
            JobStatus.COMPLETED: "bold green",
            JobStatus.FAILED: "bold red",
            JobStatus.CANCELLED: "bold magenta",
        }.get(status, "bold")
        if status is not None
        else "bold yellow"
    )


def verdict_table(
    spec: JobSpec,
    records: Iterable[ExecutionRecord] = (),
    *,
    width: int,
    counted: Mapping[Endpoint, Mapping[str, int]] | None = None,
    spent: Mapping[Endpoint, float] | None = None,
    every_endpoint: bool = False,
) -> Table:
    """Counts per endpoint (or per region, for jobs with many endpoints) and in total.

    ``completed``, ``empty`` and ``failed`` always show; the other columns only when some
    record has that status (``missing`` counts keys without a record). When ``width`` columns
    are too few, the endpoint names are shortened, never the counts. The counts come from
    ``records``, or already counted per endpoint in ``counted`` (by status value, with
    ``empty`` apart from ``completed``), as a large job's are. A cost column shows what each
    endpoint's records cost when any has a cost: from ``records``, or in ``spent``. With
    ``every_endpoint``, a row per endpoint however many there are.
    """
    by_endpoint = every_endpoint or len(spec.endpoints) <= ENDPOINT_ROWS
    groups, priced = _grouped(spec, records, by_endpoint, counted or {}, spent or {})
    totals: _Counter[str] = _Counter()
    for counts in groups.values():
        recorded = sum(n for column, n in counts.items() if column != "planned")
        counts["missing"] = counts["planned"] - recorded
        totals.update(counts)
    columns = ["planned", "completed", "empty", "failed"] + [
        c for c in ("timeout", "cancelled", "skipped", "missing") if totals[c]
    ]
    table = Table(
        box=box.SIMPLE_HEAD,
        header_style="bold",
        show_footer=True,
        pad_edge=False,
        collapse_padding=True,
    )
    counts_width = sum(max(len(c), len(str(totals[c]))) + 2 for c in columns)
    table.add_column(
        "endpoint" if by_endpoint else "region",
        footer="total",
        no_wrap=True,
        overflow="ellipsis",
        max_width=max(12, width - counts_width - 2),
    )
    for column in columns:
        table.add_column(
            column,
            justify="right",
            style=_STYLES.get(column, ""),
            footer=str(totals[column]),
            no_wrap=True,
        )
    if priced:  # the run had a cost model: what each endpoint (or region) cost
        total = f"{sum(priced.values()):.4g}"
        table.add_column("cost", justify="right", footer=total, no_wrap=True)
    for name, counts in groups.items():
        price = [f"{priced.get(name, 0.0):.4g}"] if priced else []
        table.add_row(Text(name), *(str(counts[c]) for c in columns), *price)
    return table


def _grouped(
    spec: JobSpec,
    records: Iterable[ExecutionRecord],
    by_endpoint: bool,
    counted: Mapping[Endpoint, Mapping[str, int]],
    spent: Mapping[Endpoint, float],
) -> tuple[dict[str, _Counter[str]], dict[str, float]]:
    """The counts and the cost of each row of :func:`verdict_table` (endpoint or region)."""
    groups: dict[str, _Counter[str]] = {}
    for e in spec.endpoints:
        name = str(e) if by_endpoint else e.region
        groups.setdefault(name, _Counter())["planned"] += len(spec.questions) * spec.samples
    priced: dict[str, float] = {}
    for r in records:
        name = str(r.key.endpoint) if by_endpoint else r.key.region
        if name in groups:
            empty = r.status is ExecutionStatus.COMPLETED and r.empty
            groups[name]["empty" if empty else r.status.value] += 1
            if r.cost is not None:
                priced[name] = priced.get(name, 0.0) + r.cost
    for e, tally in counted.items():
        if (group := groups.get(str(e) if by_endpoint else e.region)) is not None:
            group.update(tally)
    for e, cost in spent.items():
        if (name := str(e) if by_endpoint else e.region) in groups:
            priced[name] = priced.get(name, 0.0) + cost
    return groups, priced


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return _dt.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M")


def jobs_table(jobs: Sequence[JobInfo]) -> Table:
    """The jobs of a store, oldest first."""
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False)
    # Minimum widths keep these whole; only the reason is shortened when space runs out.
    table.add_column("job", no_wrap=True, min_width=max((len(j.job_id) for j in jobs), default=3))
    table.add_column("status", no_wrap=True, min_width=10)
    table.add_column("records", justify="right", no_wrap=True, min_width=7)
    table.add_column("created", no_wrap=True, min_width=16)
    table.add_column("reason", no_wrap=True, overflow="ellipsis")
    for job in jobs:
        status = "unfinished" if job.status is None else job.status.value
        table.add_row(
            Text(job.job_id),
            Text(status, style=verdict_style(job.status)),
            f"{job.records}/{job.planned}",
            _when(job.created_at),
            Text(job.reason or ""),
        )
    return table
