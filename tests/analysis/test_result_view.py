"""JobResult's views: a short repr, and a bounded HTML matrix for Jupyter."""

from __future__ import annotations

from html.parser import HTMLParser

from beacon_orchestrator import (
    ExecutionKey,
    ExecutionRecord,
    ExecutionStatus,
    JobResult,
    JobStatus,
)
from beacon_orchestrator.analysis import Classification, Label, RefusalClassifier, label_record
from beacon_orchestrator.analysis._result_html import MAX_ROWS, result_html

REFUSAL = "I'm sorry, but I can't discuss that topic."
REGIONS = ("us-east", "eu-west", "asia-pacific")


def rec(
    question: str, model: str, region: str, status: ExecutionStatus, **kw: object
) -> ExecutionRecord:
    return ExecutionRecord(key=ExecutionKey(question, model, region), status=status, **kw)  # type: ignore[arg-type]


C, F, T = ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.TIMEOUT
RECORDS = (
    rec("taiwan", "qwen", "us-east", C, text="Taiwan governs itself. <script>alert(1)</script>"),
    rec("taiwan", "qwen", "eu-west", C, text="Taiwan governs itself as a democracy."),
    rec("taiwan", "qwen", "asia-pacific", C, text=REFUSAL),
    rec("capital", "qwen", "us-east", C, text="", empty=True),
    rec("capital", "qwen", "eu-west", F, error_code="PROVIDER_UNAVAILABLE", error_message="503"),
    rec("capital", "qwen", "asia-pacific", T, error_code="TIMEOUT"),
)
COUNTS = {C: 4, F: 1, T: 1, ExecutionStatus.CANCELLED: 0, ExecutionStatus.SKIPPED: 0}


def result(records: tuple[ExecutionRecord, ...] = RECORDS, **kw: object) -> JobResult:
    fields: dict[str, object] = {
        "job_id": "probe",
        "status": JobStatus.FAILED,
        "reason": "4 of 6 executions succeeded (66.7%), below the required 67%.",
        "counts": COUNTS,
        "success_rate": 4 / 6,
        "planned": 6,
        "records": records,
        "started_at": 100.0,
        "finished_at": 112.5,
        **kw,
    }
    return JobResult(**fields)  # type: ignore[arg-type]


class Tags(HTMLParser):
    """Checks that every tag opened is closed, in order; collects cells and text."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.rows: list[list[str]] = []
        self.titles: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack.append(tag)
        if tag == "tr":
            self.rows.append([])
        title = dict(attrs).get("title")
        if title is not None:
            self.titles.append(title)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack.pop() == tag, f"</{tag}> closes something else"

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self.rows and {"td", "th"} & set(self.stack):
            self.rows[-1].append(data)


def parse(html: str) -> Tags:
    tags = Tags()
    tags.feed(html)
    tags.close()
    assert tags.stack == []
    return tags


def test_repr_is_the_verdict_and_counts_never_the_records() -> None:
    text = repr(result())
    assert text == (
        "JobResult(job_id='probe', status=failed, planned=6, success_rate=0.667, "
        "counts=(completed=4, failed=1, timeout=1), records=6)"
    )
    assert "Taiwan" not in text
    many = tuple(
        rec(f"q{i}", "m", r, C, text=f"answer {i}") for i in range(10_000) for r in REGIONS
    )
    big = repr(result(many, planned=30_000, cancelled_by="deadline"))
    assert len(big) < 200
    assert big.endswith("records=30000, cancelled_by='deadline')")


def test_html_shows_verdict_counts_and_one_cell_per_region_with_its_label() -> None:
    tags = parse(result()._repr_html_())
    text = "".join(tags.text)
    assert "probe" in text
    assert "FAILED" in text
    assert "below the required 67%" in text
    assert "6 planned · 4 completed (1 empty) · 1 failed · 1 timeout" in text
    assert "success rate 66.7% · 12.5 s" in text
    header, *rows = tags.rows
    assert header == ["question", "model", *REGIONS, "regions differ"]
    body = {tuple(row[:2]): row[2:] for row in rows}
    assert body["taiwan", "qwen"][:3] == ["✓", "✓", "R"]
    score, split = body["taiwan", "qwen"][3:]
    assert 1 < float(score) <= 2
    assert split == "split"
    # One region answered (empty), two failed: nothing to compare, no split.
    assert body["capital", "qwen"] == ["∅", "✗", "◷", "-"]
    assert "refusal: I'm sorry, but I can't discuss that topic." in tags.titles
    assert "failed: PROVIDER_UNAVAILABLE 503" in tags.titles


def test_html_escapes_what_the_answers_say() -> None:
    html = result()._repr_html_()
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


def test_a_large_job_shows_a_bounded_matrix_and_says_what_it_left_out() -> None:
    """100,000 records: the first MAX_ROWS rows, a note, and classification of those only."""
    records = tuple(
        rec(f"q{i}", f"m{j}", region, C, text=f"answer {i}")
        for i in range(4_000)
        for j in range(5)
        for region in ("us-east", "eu-west", "asia-pacific", "sa-east", "af-south")
    )
    assert len(records) == 100_000

    class Counting:
        name = "counting"
        version = "1"
        calls = 0

        def classify(self, record: ExecutionRecord) -> Classification:
            Counting.calls += 1
            return label_record(record, lambda _t: Classification(Label.SUBSTANTIVE, 0.5))

    html = result_html(result(records, planned=100_000), classifier=Counting())
    tags = parse(html)
    assert len(tags.rows) == 1 + MAX_ROWS
    assert Counting.calls == MAX_ROWS * 5
    assert (
        f"Showing the first {MAX_ROWS} of 20,000 question \N{MULTIPLICATION SIGN} model rows."
        in "".join(tags.text)
    )
    assert len(html) < 100_000
    # Jupyter's own call renders the same bounded view.
    assert len(parse(result(records, planned=100_000)._repr_html_()).rows) == 1 + MAX_ROWS


def test_a_result_without_records_says_so() -> None:
    text = "".join(parse(result(())._repr_html_()).text)
    assert "No records in this result" in text
    assert "FAILED" in text


def test_the_default_classifier_labels_the_cells() -> None:
    assert RefusalClassifier().classify(RECORDS[2]).label is Label.REFUSAL
