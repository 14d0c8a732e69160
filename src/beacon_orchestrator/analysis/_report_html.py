"""The report's markup: its template, data made safe to embed, the header and the summary.

Everything the page shows before its script runs is written here, escaped; the answers are
drawn by ``report.js`` from JSON blocks that :func:`script_json` makes safe to embed.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from collections.abc import Iterator, Mapping
from importlib import resources
from typing import Any

from attrs import frozen

from .._status import JobStatus
from ._report_data import Kind, Tally

__all__ = [
    "Template",
    "escape",
    "header_html",
    "load_template",
    "script_json",
    "summary_html",
]

_SLOT = re.compile(r"<!--beacon:(\w+)-->")
# Inside <script>, the HTML parser ends the element at "</script" and changes state at "<!--";
# JavaScript once ended a line at U+2028 and U+2029; a lone surrogate cannot be encoded as
# UTF-8. JSON lets any character be written as \uXXXX, so these are, wherever they occur
# (JSON syntax outside strings has none of them).
_UNSAFE_IN_SCRIPT = re.compile("[<>&\u2028\u2029\ud800-\udfff]")
_BAR_WIDTH = 160
_BAR_HEIGHT = 12
_KIND_CLASS = {kind: "k-" + kind.value.replace(" ", "-") for kind in Kind}


def escape(text: object) -> str:
    """``text`` as HTML text or a quoted attribute value."""
    return html.escape(str(text), quote=True)


def _escape_char(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def script_json(value: Any) -> str:
    """``value`` as JSON that can sit inside a ``<script>`` element whatever its strings hold.

    Raises:
        ValueError: ``value`` holds a number that is not finite.
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return _UNSAFE_IN_SCRIPT.sub(_escape_char, text)


def _sha256(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


@frozen
class Template:
    """The page, cut at its slots, with the style sheet and the script it inlines.

    Attributes:
        parts: ``(text, slot)`` pairs: write the text, then fill the slot (``""`` after the
            last text).
        css: The style sheet.
        js: The script.
    """

    parts: tuple[tuple[str, str], ...]
    css: str
    js: str

    @property
    def csp(self) -> str:
        """The Content-Security-Policy: nothing from anywhere, but this style and this script.

        An answer that got past the escaping could not run a script of its own, nor make the
        page load anything.
        """
        return (
            f"default-src 'none'; style-src 'sha256-{_sha256(self.css)}'; "
            f"script-src 'sha256-{_sha256(self.js)}'; base-uri 'none'; form-action 'none'"
        )

    @property
    def slots(self) -> tuple[str, ...]:
        """The slots, in the order the page has them."""
        return tuple(slot for _text, slot in self.parts if slot)


def load_template() -> Template:
    """The template, style sheet and script shipped beside this module."""
    files = resources.files(__package__)

    def read(name: str) -> str:
        return files.joinpath(name).read_text(encoding="utf-8")

    pieces = _SLOT.split(read("report.html"))
    texts, slots = pieces[0::2], [*pieces[1::2], ""]
    return Template(tuple(zip(texts, slots, strict=True)), read("report.css"), read("report.js"))


_VERDICT_CLASS = {
    JobStatus.COMPLETED: "verdict-completed",
    JobStatus.FAILED: "verdict-failed",
    JobStatus.CANCELLED: "verdict-cancelled",
}


def header_html(
    *,
    job_id: str,
    shape: str,
    verdict: tuple[JobStatus | None, str | None] | None,
    classifier: tuple[str, str],
    generator: str,
) -> str:
    """The job's heading: its id, verdict, shape, classifier and what wrote the report."""
    status, reason = (None, None) if verdict is None else verdict
    if verdict is None:
        verdict_text = '<span class="verdict verdict-unknown">not known</span>'
    elif status is None:
        verdict_text = (
            '<span class="verdict verdict-unknown">none yet: the job has not finished</span>'
        )
    else:
        css = _VERDICT_CLASS.get(status, "verdict-unknown")
        because = f" &mdash; {escape(reason)}" if reason else ""
        verdict_text = f'<span class="verdict {css}">{escape(status.value.upper())}</span>{because}'
    name, version = classifier
    rows = (
        ("Verdict", verdict_text),
        ("Questions &times; models &times; regions", escape(shape)),
        ("Classifier", f"{escape(name)}, version {escape(version)}"),
        ("Written by", escape(generator)),
    )
    items = "".join(f"<dt>{term}</dt><dd>{value}</dd>" for term, value in rows)
    return (
        f'<h1>Beacon report: <span class="job-id">{escape(job_id)}</span></h1>'
        f'<dl class="facts">{items}</dl>'
    )


def _pct(count: int, total: int) -> str:
    return f"{100 * count / total:.0f}%" if total else "-"


def _bar(tally: Tally) -> str:
    """A stacked bar of the kinds, as inline SVG (classes, not style attributes: the CSP)."""
    total = tally.total
    parts = [f"{kind.value} {tally.counts[kind]}" for kind in Kind]
    rects: list[str] = []
    x = 0.0
    for kind in Kind:
        count = tally.counts[kind]
        if not count:
            continue
        width = _BAR_WIDTH * count / total
        rects.append(
            f'<rect class="{_KIND_CLASS[kind]}" x="{x:.2f}" y="0" width="{width:.2f}" '
            f'height="{_BAR_HEIGHT}"><title>{kind.value}: {count} ({_pct(count, total)})'
            "</title></rect>"
        )
        x += width
    return (
        f'<svg class="bar" width="{_BAR_WIDTH}" height="{_BAR_HEIGHT}" '
        f'viewBox="0 0 {_BAR_WIDTH} {_BAR_HEIGHT}" role="img" '
        f'aria-label="{escape(", ".join(parts))}">{"".join(rects)}</svg>'
    )


def _legend() -> str:
    swatch = (
        '<svg width="10" height="10" aria-hidden="true">'
        '<rect class="{}" width="10" height="10"></rect></svg>'
    )
    items = "".join(f"<li>{swatch.format(_KIND_CLASS[k])}{k.value}</li>" for k in Kind)
    return f'<ul class="legend">{items}</ul>'


def _count(kind: str, count: int, total: int) -> str:
    rate = f'<span class="rate">{_pct(count, total)}</span>'
    return f'<td data-kind="{kind}" data-count="{count}">{count} {rate}</td>'


def _table(title: str, by: str, tallies: Mapping[str, Tally]) -> str:
    head = "".join(f"<th>{k.value}</th>" for k in Kind)
    rows: list[str] = []
    for name, tally in tallies.items():
        total = tally.total
        cells = "".join(_count(k.value, tally.counts[k], total) for k in Kind)
        rows.append(
            f'<tr data-{by}="{escape(name)}"><td>{escape(name)}</td>'
            f'<td data-kind="planned" data-count="{tally.planned}">{tally.planned}</td>'
            f"{_count('completed', tally.completed, total)}{cells}"
            f'<td class="chart">{_bar(tally)}</td></tr>'
        )
    return (
        f'<h3>{escape(title)}</h3><table class="counts" data-by="{by}"><thead><tr>'
        f"<th>{by}</th><th>planned</th><th>completed</th>{head}<th></th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _overview(job: Tally, cells: int, splits: int) -> Iterator[str]:
    total = job.total
    yield f"{job.planned} executions planned"
    yield f"{job.completed} completed ({_pct(job.completed, total)})"
    yield ", ".join(f"{job.counts[k]} {k.value}" for k in Kind)
    yield f"{cells} question &times; model blocks, {splits} with regions whose labels differ"


def summary_html(
    job: Tally,
    by_region: Mapping[str, Tally],
    by_model: Mapping[str, Tally],
    *,
    cells: int,
    splits: int,
) -> str:
    """Counts and rates for the job, then per region and per model, each with a bar."""
    return (
        '<h2 id="summary-title">Summary</h2>'
        f'<p class="overview">{"; ".join(_overview(job, cells, splits))}.</p>'
        f"{_legend()}"
        f"{_table('By region', 'region', by_region)}"
        f"{_table('By model', 'model', by_model)}"
        '<p class="explain">Rates are shares of each row\'s executions. <em>Completed</em> is '
        "substantive, refusal and empty together; <em>failed</em> is failed or timed out; "
        "<em>not run</em> is cancelled, skipped or without a record yet.</p>"
    )
