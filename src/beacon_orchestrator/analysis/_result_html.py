"""What a notebook shows for a ``JobResult``: the verdict, the counts and a compact matrix."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import TYPE_CHECKING

from .._errors import UsageError
from .._types import ExecutionKey, ExecutionRecord, ExecutionStatus
from ._divergence import CellDivergence, compare_regions
from ._labels import Classification, Classifier, Label
from ._refusal import RefusalClassifier

if TYPE_CHECKING:  # at run time the result is only read, and _status imports this module
    from .._status import JobResult

__all__ = ["MAX_ROWS", "result_html"]

MAX_ROWS = 50
"""Question x model rows a result shows at most; a bigger job says how many it leaves out."""

# A cell's hover text shows this much of the answer.
_TITLE_CHARS = 200
_GREEN, _RED, _YELLOW, _MAGENTA, _GREY = "#1a7f37", "#cf222e", "#9a6700", "#8250df", "#6e7781"
# What a cell shows: a completed execution by its label, any other by its status.
_LABEL_GLYPHS: Mapping[Label, tuple[str, str]] = {
    Label.SUBSTANTIVE: ("✓", _GREEN),
    Label.REFUSAL: ("R", _MAGENTA),
    Label.EMPTY: ("∅", _YELLOW),
}
_STATUS_GLYPHS: Mapping[ExecutionStatus, tuple[str, str]] = {
    ExecutionStatus.FAILED: ("✗", _RED),
    ExecutionStatus.TIMEOUT: ("◷", _RED),
    ExecutionStatus.CANCELLED: ("⊘", _GREY),
    ExecutionStatus.SKIPPED: ("-", _GREY),
}
_LEGEND = (
    ("✓", _GREEN, "substantive"),
    ("R", _MAGENTA, "refusal"),
    ("∅", _YELLOW, "empty"),
    ("✗", _RED, "failed"),
    ("◷", _RED, "timeout"),
    ("⊘", _GREY, "cancelled"),
    ("-", _GREY, "skipped"),
)
_VERDICT_COLOURS = {"completed": _GREEN, "failed": _RED, "cancelled": _MAGENTA}
_TD = 'style="padding:1px 6px;text-align:{align}"'


def _rows(
    records: Iterable[ExecutionRecord], max_rows: int
) -> tuple[list[ExecutionRecord], int, list[str], int]:
    """The first ``max_rows`` question x model rows' records, the rows, regions, empty answers.

    One pass, keeping only the records shown: the rest of a large job is counted, not kept.
    """
    empty = 0
    rows: set[tuple[str, str]] = set()
    shown: set[tuple[str, str]] = set()
    regions: dict[str, None] = {}
    kept: list[ExecutionRecord] = []
    for record in records:
        empty += record.empty
        key = record.key
        regions.setdefault(key.region)
        row = (key.question_id, key.model_id)
        if row not in rows:
            rows.add(row)
            if len(shown) < max_rows:
                shown.add(row)
        if row in shown:
            kept.append(record)
    return kept, len(rows), list(regions), empty


def _summary(result: JobResult, empty: int) -> str:
    status = result.status.value
    colour = _VERDICT_COLOURS.get(status, "inherit")
    counts = " · ".join(
        f"{n} {s.value}" + (f" ({empty} empty)" if s is ExecutionStatus.COMPLETED and empty else "")
        for s, n in result.counts.items()
        if n
    )
    return (
        f"<div><strong>{escape(result.job_id)}</strong>: "
        f'<strong style="color:{colour}">{escape(status.upper())}</strong> '
        f"&mdash; {escape(result.reason)}</div>"
        f"<div>{result.planned} planned · {escape(counts) or 'no records'} · "
        f"success rate {result.success_rate:.1%} · {result.duration:.1f} s</div>"
    )


def _cell(record: ExecutionRecord | None, label: Classification | None) -> str:
    if record is None or label is None:
        return f"<td {_TD.format(align='center')}></td>"
    if record.status is ExecutionStatus.COMPLETED:
        glyph, colour = _LABEL_GLYPHS[label.label]
        title = f"{label.label.value}: {(record.text or '')[:_TITLE_CHARS]}"
    else:
        glyph, colour = _STATUS_GLYPHS[record.status]
        title = f"{record.status.value}: {record.error_code or ''} {record.error_message or ''}"
    return (
        f'<td {_TD.format(align="center")} title="{escape(title.strip())}">'
        f'<span style="color:{colour}">{glyph}</span></td>'
    )


def _differ(cell: CellDivergence | None) -> str:
    if cell is None or not (cell.comparable or cell.label_split):
        return f"<td {_TD.format(align='right')}>-</td>"
    split = ' <span style="color:#8250df">split</span>' if cell.label_split else ""
    return f"<td {_TD.format(align='right')}>{cell.score:.2f}{split}</td>"


def _matrix(kept: Sequence[ExecutionRecord], regions: Sequence[str], classifier: Classifier) -> str:
    cells = compare_regions(kept, classifier)
    by_row = {(c.question_id, c.model_id): c for c in cells}
    records = {r.key: r for r in kept}
    head = "".join(
        f"<th {_TD.format(align='center')}>{escape(name)}</th>" for name in ("question", "model")
    )
    head += "".join(f"<th {_TD.format(align='center')}>{escape(r)}</th>" for r in regions)
    head += f"<th {_TD.format(align='right')}>regions differ</th>"
    body = []
    for question, model in dict.fromkeys((r.key.question_id, r.key.model_id) for r in kept):
        cell = by_row.get((question, model))
        labels = {} if cell is None else cell.classifications
        tds = "".join(
            _cell(records.get(ExecutionKey(question, model, region)), labels.get(region))
            for region in regions
        )
        body.append(
            f"<tr><td {_TD.format(align='left')}>{escape(question)}</td>"
            f"<td {_TD.format(align='left')}>{escape(model)}</td>{tds}{_differ(cell)}</tr>"
        )
    return (
        '<table style="border-collapse:collapse;font-size:90%">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def _legend() -> str:
    items = " ".join(
        f'<span style="color:{colour}">{glyph}</span>&nbsp;{name}'
        for glyph, colour, name in _LEGEND
    )
    return f'<div style="color:#6e7781;font-size:85%">{items}; hover a cell for its answer</div>'


def result_html(
    result: JobResult, *, classifier: Classifier | None = None, max_rows: int = MAX_ROWS
) -> str:
    """The HTML of a job's result: summary, then at most ``max_rows`` question x model rows.

    Only the records of the rows shown are classified, so the cost is bounded however large the
    job: one pass over the records to count, and ``max_rows`` rows' worth of classifying.
    """
    try:
        # One pass over the records, read from the store: counts, and the rows shown.
        kept, total, regions, empty = _rows(result.records, max_rows)
    except UsageError:  # a store read asynchronously only: the summary, and how to read them
        parts = ['<div class="beacon-result">', _summary(result, 0)]
        parts.append(
            "<div><em>The records are in a store read asynchronously:</em> "
            "<code>[r async for r in result.records]</code>.</div></div>"
        )
        return "".join(parts)
    parts = ['<div class="beacon-result">', _summary(result, empty)]
    if not kept:
        parts.append("<div><em>No records in this result</em> (the store kept none).</div>")
    else:
        parts.append(_matrix(kept, regions, classifier or RefusalClassifier()))
        parts.append(_legend())
        if total > max_rows:
            parts.append(
                f"<div><em>Showing the first {max_rows} of {total:,} question &times; model "
                "rows.</em> All of them: <code>comparison_frame(result.records)</code> or "
                f"<code>beacon show {escape(result.job_id)}</code>.</div>"
            )
    parts.append("</div>")
    return "".join(parts)
