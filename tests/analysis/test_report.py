"""The HTML report without a browser: one file, nothing from other hosts, hostile text inert,
the embedded data and the summary right, records read once."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import weakref
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from beacon_orchestrator import (
    ExecutionKey,
    ExecutionRecord,
    ExecutionStatus,
    JobResult,
    JobStatus,
    UsageError,
)
from beacon_orchestrator.analysis import (
    Classification,
    Label,
    RefusalClassifier,
    compare_regions,
    label_record,
    render_report,
    write_report,
)
from beacon_orchestrator.analysis._report_html import load_template, script_json
from beacon_orchestrator.stores import JobInfo

from .test_report_job import (
    EXPECTED_LABELS,
    FAILED,
    FAILURE,
    HOSTILE,
    HOSTILE_KEY,
    JOB_ID,
    record,
    small_records,
    small_spec,
)

URL_ATTRIBUTES = {"src", "href", "action", "formaction", "srcset", "poster", "data", "xlink:href"}


class Page(HTMLParser):
    """What a browser's parser sees in the report: elements, their attributes, script text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.styles: list[str] = []
        self._open: tuple[str, dict[str, str | None]] | None = None
        self._text: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.elements.append((tag, attributes))
        if tag in ("script", "style"):
            self._open, self._text = (tag, attributes), []

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._open is not None and tag == self._open[0]:
            text = "".join(self._text)
            if tag == "script":
                self.scripts.append((self._open[1], text))
            else:
                self.styles.append(text)
            self._open = None

    def script(self, element_id: str) -> str:
        (text,) = [text for attrs, text in self.scripts if attrs.get("id") == element_id]
        return text

    def data(self) -> tuple[list[Any], dict[str, Any]]:
        return json.loads(self.script("beacon-answers")), json.loads(self.script("beacon-index"))

    def rows(self, by: str) -> dict[str, dict[str, int]]:
        """The summary table ``by`` (``region``, ``model``): each row's counts by kind."""
        rows: dict[str, dict[str, int]] = {}
        current: dict[str, int] = {}
        for tag, attrs in self.elements:
            if tag == "tr" and attrs.get(f"data-{by}") is not None:
                current = rows.setdefault(str(attrs[f"data-{by}"]), {})
            elif tag == "tr":
                current = {}
            elif tag == "td" and "data-count" in attrs:
                current[str(attrs["data-kind"])] = int(str(attrs["data-count"]))
        return rows


@pytest.fixture(scope="module")
def html() -> str:
    return render_report(small_spec(), small_records())


@pytest.fixture(scope="module")
def page(html: str) -> Page:
    return Page(html)


# -- one file, nothing from anywhere else ------------------------------------------------------


def test_every_src_and_href_stays_in_the_file(page: Page) -> None:
    references = [
        (tag, name, value)
        for tag, attrs in page.elements
        for name, value in attrs.items()
        if name in URL_ATTRIBUTES
    ]
    # Links to the page's own cells are drawn by the script; the markup itself links nowhere.
    assert references == []
    assert not [tag for tag, _attrs in page.elements if tag in ("link", "img", "iframe", "object")]


def test_nothing_in_the_file_names_another_host(html: str) -> None:
    # The only URL in the small job is inside the hostile answer, escaped into JSON data.
    outside_answers = html.replace(Page(html).script("beacon-answers"), "")
    assert "http:" not in outside_answers
    assert "https:" not in outside_answers
    # Nor does the style sheet load anything (fonts, images, other sheets).
    assert "@import" not in html
    assert "url(" not in html


def test_the_style_and_script_are_inline_and_pinned_by_the_content_security_policy(
    page: Page,
) -> None:
    (csp,) = [
        attrs["content"]
        for tag, attrs in page.elements
        if tag == "meta" and attrs.get("http-equiv") == "Content-Security-Policy"
    ]
    assert csp is not None
    (code,) = [text for attrs, text in page.scripts if attrs.get("type") is None]
    (style,) = page.styles

    def sha(text: str) -> str:
        return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()

    assert "default-src 'none'" in csp
    assert f"script-src 'sha256-{sha(code)}'" in csp
    assert f"style-src 'sha256-{sha(style)}'" in csp
    assert "unsafe" not in csp


def test_the_script_never_turns_data_into_markup() -> None:
    template = load_template()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in template.js
    assert "</script" not in template.js.lower()
    assert "</style" not in template.css.lower()
    assert template.slots == (
        "csp",
        "generator",
        "title",
        "css",
        "header",
        "answers",
        "summary",
        "index",
        "js",
    )


def test_the_script_numbers_the_labels_as_the_data_does() -> None:
    js = load_template().js
    (names,) = re.findall(r"const LABELS = (\[.*?\]);", js)
    assert json.loads(names) == [label.value for label in Label] + ["no_record"]
    for name in ("REFUSAL", "EMPTY", "FAILURE", "NO_RECORD"):
        (number,) = re.findall(rf"const {name} = (\d+);", js)
        value = (
            "no_record"
            if name == "NO_RECORD"
            else Label[name.replace("FAILURE", "TECHNICAL_FAILURE")]
        )
        assert json.loads(names)[int(number)] == value


# -- hostile text ------------------------------------------------------------------------------


def test_hostile_answer_text_stays_inside_its_json_string(html: str, page: Page) -> None:
    # Three scripts (answers, index, code): the answer's "</script><script>" opened none.
    assert [attrs.get("id") for attrs, _text in page.scripts] == [
        "beacon-answers",
        "beacon-index",
        None,
    ]
    assert html.lower().count("</script") == 3
    assert "<img" not in html
    assert "\u2028" not in html
    assert "\u2029" not in html
    answers, _index = page.data()
    assert HOSTILE in [row[1] for row in answers]


def test_hostile_names_are_escaped_in_the_markup() -> None:
    spec = small_spec('<b id="x">job</b>')
    html = render_report(spec, [], result=_result(spec.id, reason="<i>why</i> & more"))
    assert not [tag for tag, _attrs in Page(html).elements if tag in ("b", "i")]
    assert "&lt;b id=&quot;x&quot;&gt;job&lt;/b&gt;" in html
    assert "&lt;i&gt;why&lt;/i&gt; &amp; more" in html


UNSAFE = st.sampled_from(["<", ">", "&", "\u2028", "\u2029", "\ud800", "\udfff", "</script"])


@given(st.lists(st.text() | UNSAFE).map("".join))
@example("</script><!--\u2028\u2029")
@example("\ud800\udfff")  # a pair of lone surrogates: one character once decoded
@example("\udfff\ud800")  # the wrong way round: two lone surrogates
def test_script_json_round_trips_any_text_and_holds_no_character_unsafe_in_a_script(
    text: str,
) -> None:
    """For every string, the embedded JSON decodes to the same UTF-16 code units (what a
    JavaScript string holds), encodes as UTF-8, and has no character that could end a script
    element or a JavaScript line."""
    embedded = script_json([text])
    (decoded,) = json.loads(embedded)
    assert utf16(decoded) == utf16(text)
    embedded.encode("utf-8")
    assert not set(embedded) & set("<>&\u2028\u2029")


def utf16(text: str) -> bytes:
    # Two lone surrogates that form a pair are one character to JSON and to JavaScript.
    return text.encode("utf-16-le", "surrogatepass")


# -- the data and the counts -------------------------------------------------------------------


def cells_of(page: Page) -> list[tuple[str, str, dict[str, tuple[str, Any]]]]:
    """Each cell of the embedded JSON: question, model and, per region, label and answer."""
    answers, index = page.data()
    labels = ["substantive", "refusal", "empty", "technical_failure", "no_record"]
    return [
        (
            index["questions"][q][0],
            index["models"][m],
            {
                index["regions"][r]: (labels[label], answers[at] if at >= 0 else None)
                for r, label, at, _score, _evidence in entries
            },
        )
        for q, m, _divergence, _split, entries in index["cells"]
    ]


def test_the_embedded_json_holds_every_cell_in_the_ranked_order(page: Page) -> None:
    cells = cells_of(page)
    ranked = [(c.question_id, c.model_id) for c in compare_regions(small_records())]
    assert [(q, m) for q, m, _regions in cells] == ranked
    labels = {(q, m, r): label for q, m, regions in cells for r, (label, _a) in regions.items()}
    assert labels == {key: label.value for key, label in EXPECTED_LABELS.items()}
    for q, m, regions in cells:
        for region, (_label, answer) in regions.items():
            expected = record(ExecutionKey(q, m, region))
            assert answer == [
                expected.status.value,
                expected.text,
                expected.error_code,
                expected.error_message,
                expected.attempts,
            ]


def test_the_divergence_and_split_are_compare_regions_figures(page: Page) -> None:
    _answers, index = page.data()
    figures = [(divergence, split) for _q, _m, divergence, split, _e in index["cells"]]
    expected = [
        (None if c.text_divergence is None else round(c.text_divergence, 3), int(c.label_split))
        for c in compare_regions(small_records())
    ]
    assert figures == expected


def test_the_summary_counts_each_region_and_model(page: Page) -> None:
    zero = {"refusal": 0, "empty": 0, "failed": 0, "not run": 0}
    assert page.rows("region") == {
        "us-east": {**zero, "planned": 4, "completed": 3, "substantive": 3, "failed": 1},
        "eu-west": {**zero, "planned": 4, "completed": 4, "substantive": 3, "empty": 1},
        "asia-pacific": {**zero, "planned": 4, "completed": 4, "substantive": 3, "refusal": 1},
    }
    assert page.rows("model") == {
        "llama3.2-1b": {**zero, "planned": 6, "completed": 5, "substantive": 5, "failed": 1},
        "qwen2.5-1.5b": {
            **zero,
            "planned": 6,
            "completed": 6,
            "substantive": 4,
            "refusal": 1,
            "empty": 1,
        },
    }


def test_the_summary_draws_a_bar_per_row_with_a_segment_per_kind(html: str) -> None:
    us_east = html.split('data-region="us-east"')[1].split("</tr>")[0]
    segments = re.findall(r'<rect class="(k-[a-z-]+)" x="[\d.]+" y="0" width="([\d.]+)"', us_east)
    assert segments == [("k-substantive", "120.00"), ("k-failed", "40.00")]


def test_the_heading_names_the_job_verdict_and_classifier() -> None:
    html = render_report(small_spec(), small_records(), result=_result(JOB_ID))
    assert 'Beacon report: <span class="job-id">report-job</span>' in html
    assert '<span class="verdict verdict-completed">COMPLETED</span> &mdash; enough' in html
    assert "beacon-heuristic-refusal, version 1" in html


@pytest.mark.parametrize(
    ("status", "shown"),
    [(None, "none yet: the job has not finished"), (JobStatus.FAILED, "FAILED")],
)
def test_a_stored_jobs_verdict_is_shown_as_the_store_lists_it(
    status: JobStatus | None, shown: str
) -> None:
    info = JobInfo(JOB_ID, 12, 12, status, None, 0.0, None)
    assert shown in render_report(small_spec(), small_records(), result=info)


def test_without_a_result_the_verdict_is_not_known(html: str) -> None:
    assert '<span class="verdict verdict-unknown">not known</span>' in html


def test_another_classifier_labels_the_answers_and_is_named() -> None:
    class EverythingRefused:
        name = "always-refusal"
        version = "7b"

        def classify(self, record: ExecutionRecord) -> Classification:
            return label_record(record, lambda _text: Classification(Label.REFUSAL, 0.5))

    html = render_report(small_spec(), small_records(), classifier=EverythingRefused())
    assert "<dt>Classifier</dt><dd>always-refusal, version 7b</dd>" in html
    # eu-west: three answers refused, the empty one stays empty.
    assert Page(html).rows("region")["eu-west"]["refusal"] == 3


# -- jobs that are not finished, records the plan does not name --------------------------------


def test_planned_executions_without_a_record_are_shown_as_not_run() -> None:
    recorded = [r for r in small_records() if r.key.question_id == "capital"]
    page = Page(render_report(small_spec(), recorded))
    cells = cells_of(page)
    # The two taiwan cells have no record at all: they come last, in the plan's order.
    assert [(q, m) for q, m, _r in cells[-2:]] == [
        ("taiwan", "llama3.2-1b"),
        ("taiwan", "qwen2.5-1.5b"),
    ]
    assert all(
        regions == dict.fromkeys(("us-east", "eu-west", "asia-pacific"), ("no_record", None))
        for _q, _m, regions in cells[-2:]
    )
    assert page.rows("region")["us-east"]["not run"] == 2
    assert page.rows("model")["llama3.2-1b"]["not run"] == 3


def test_cancelled_and_skipped_count_as_not_run_and_failed_as_failed() -> None:
    def interrupted(r: ExecutionRecord) -> ExecutionRecord:
        if r.key.model_id != "llama3.2-1b" or r.key.region != "eu-west":
            return r
        status = (
            ExecutionStatus.SKIPPED if r.key.question_id == "capital" else ExecutionStatus.TIMEOUT
        )
        return ExecutionRecord(key=r.key, status=status, error_code=status.value.upper())

    rows = Page(render_report(small_spec(), map(interrupted, small_records()))).rows("region")
    assert rows["eu-west"] == {
        "planned": 4,
        "completed": 2,
        "substantive": 1,
        "refusal": 0,
        "empty": 1,
        "failed": 1,
        "not run": 1,
    }


def test_a_record_the_plan_does_not_name_is_shown_not_dropped() -> None:
    extra = ExecutionRecord(
        key=ExecutionKey("capital", "llama3.2-1b", "mars-1"),
        status=ExecutionStatus.COMPLETED,
        text="Canberra.",
    )
    page = Page(render_report(small_spec(), [*small_records(), extra]))
    (regions,) = [r for q, m, r in cells_of(page) if (q, m) == ("capital", "llama3.2-1b")]
    assert list(regions) == ["us-east", "eu-west", "asia-pacific", "mars-1"]
    assert page.rows("region")["mars-1"] == {
        "planned": 0,
        "completed": 1,
        "substantive": 1,
        "refusal": 0,
        "empty": 0,
        "failed": 0,
        "not run": 0,
    }


# -- streaming ---------------------------------------------------------------------------------


def test_records_are_read_once_and_none_is_kept_once_passed() -> None:
    """Each record is freed once the next-but-one is read: the report holds no record."""
    alive: list[weakref.ref[ExecutionRecord]] = []
    reads = 0

    def records() -> Iterator[ExecutionRecord]:
        nonlocal reads
        for key in small_spec().plan():
            # The previous record may still be the loop variable of its readers; the one
            # before it must be gone.
            if len(alive) >= 2:
                assert alive[-2]() is None, f"a record read before {key} is still held"
            made = record(key)
            alive.append(weakref.ref(made))
            reads += 1
            yield made

    assert write_report(small_spec(), records(), _Sink()) == 12
    assert reads == 12


class _Sink(io.StringIO):
    """A text stream that counts what it is given and keeps none of it."""

    characters = 0

    def write(self, text: str, /) -> int:
        self.characters += len(text)
        return len(text)


def test_a_path_is_replaced_whole_and_a_failure_leaves_the_old_report(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    assert write_report(small_spec(), small_records(), out) == 12
    first = out.read_text(encoding="utf-8")
    assert first == render_report(small_spec(), small_records())

    def broken() -> Iterator[ExecutionRecord]:
        yield record(FAILED)
        raise RuntimeError("the store went away")

    with pytest.raises(RuntimeError, match="went away"):
        write_report(small_spec(), broken(), out)
    assert out.read_text(encoding="utf-8") == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


# -- bad input ---------------------------------------------------------------------------------


def _result(job_id: str, reason: str = "enough answers") -> JobResult:
    return JobResult(
        job_id=job_id,
        status=JobStatus.COMPLETED,
        reason=reason,
        counts=dict.fromkeys(ExecutionStatus, 0),
        success_rate=1.0,
        planned=12,
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"spec": {"id": "x"}}, r"write_report: spec: expected a JobSpec, got \{'id': 'x'\}"),
        ({"records": 12}, "write_report: records: expected an iterable of ExecutionRecord, got 12"),
        ({"records": "abc"}, "write_report: records: expected an iterable"),
        ({"records": ["abc"]}, "compare_regions: records: expected ExecutionRecord items"),
        ({"classifier": object()}, "write_report: classifier: expected a Classifier"),
        ({"result": "done"}, "write_report: result: expected a JobResult, a JobInfo or None"),
        ({"result": _result("other")}, "the verdict of job 'other', expected one of 'report-job'"),
        (
            {"records": [record(HOSTILE_KEY), record(HOSTILE_KEY)]},
            "two records for capital/llama3.2-1b@eu-west",
        ),
    ],
)
def test_bad_input_is_refused_naming_the_argument(kwargs: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {"spec": small_spec(), "records": small_records(), **kwargs}
    spec, records = arguments.pop("spec"), arguments.pop("records")
    with pytest.raises(UsageError, match=message):
        render_report(spec, records, **arguments)


def test_a_failure_shows_its_code_and_message_in_the_data(page: Page) -> None:
    (failure,) = [
        answer
        for _q, _m, regions in cells_of(page)
        for label, answer in regions.values()
        if label == "technical_failure"
    ]
    assert failure == ["failed", None, *FAILURE, 3]


def test_the_default_classifier_is_the_refusal_heuristic(html: str) -> None:
    assert f"{RefusalClassifier.name}, version {RefusalClassifier.version}" in html
