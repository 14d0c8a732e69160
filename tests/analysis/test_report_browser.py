"""The report in a real browser: headless Chromium (Debian's) driven by Playwright.

Playwright's own browser download is not used (``playwright install`` fetches a build from
outside the package registries); Playwright drives the system's ``/usr/bin/chromium`` through
``executable_path`` instead. The page is opened from a ``file://`` URL; every request the
browser makes and every console message is recorded.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from beacon_orchestrator import (
    ExecutionRecord,
    ExecutionStatus,
    JobSpec,
    ModelTarget,
    Question,
)
from beacon_orchestrator.analysis import Classification, Label, label_record, write_report

from .test_report_job import FAILURE, HOSTILE, small_records, small_spec

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"

if not (CHROMIUM.exists() and os.access(CHROMIUM, os.X_OK)):
    pytest.skip(f"no chromium at {CHROMIUM}: apt-get install chromium", allow_module_level=True)
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed: pip install -e '.[test]'"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


class Visit:
    """A page opened from a file, with every request and console message it caused."""

    def __init__(
        self, browser: Browser, path: Path, fragment: str = "", *, timeout: float = 15_000
    ) -> None:
        self.url = path.as_uri()
        self.context = browser.new_context(viewport={"width": 1280, "height": 1400})
        self.requests: list[str] = []
        self.messages: list[str] = []
        self.errors: list[str] = []
        self.context.on("request", lambda request: self.requests.append(request.url))
        self.page: Page = self.context.new_page()
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.goto(self.url + fragment)
        # The script marks the page ready once it has drawn it; a page broken by its data
        # never is.
        self.page.wait_for_selector("html[data-ready]", timeout=timeout)

    def _console(self, message: ConsoleMessage) -> None:
        self.messages.append(f"{message.type}: {message.text}")
        if message.type == "error":
            self.errors.append(message.text)

    def cells(self) -> list[str]:
        """The visible blocks, as ``question x model``."""
        return [
            f"{c.locator('.qid').inner_text()} x {c.locator('.mid').inner_text()}"
            for c in self.page.locator("article.cell").all()
        ]

    def labels(self, question: str, model: str) -> dict[str, str]:
        """The regions of one visible block and each one's label."""
        cell = (
            self.page.locator("article.cell")
            .filter(has=self.page.locator(".qid", has_text=question))
            .filter(has=self.page.locator(".mid", has_text=model))
        )
        return {
            str(a.get_attribute("data-region")): str(a.get_attribute("data-label"))
            for a in cell.locator("section.answer").all()
        }

    def choose(self, name: str, text: str) -> None:
        self.page.select_option(f"#filter-{name}", label=text)

    def close(self) -> None:
        self.context.close()


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "report.html"
    write_report(small_spec(), small_records(), path)
    return path


@pytest.fixture
def visit(browser: Browser, report: Path) -> Iterator[Visit]:
    opened = Visit(browser, report)
    yield opened
    opened.close()


def test_the_report_loads_offline_with_no_error_and_no_request_but_itself(visit: Visit) -> None:
    assert visit.requests == [visit.url]
    assert visit.errors == [], visit.messages
    assert visit.page.title() == "Beacon report: report-job"


def test_the_matrix_has_each_question_x_model_with_a_column_per_region(visit: Visit) -> None:
    cells = visit.cells()
    assert sorted(cells) == sorted(
        f"{q} x {m}" for q in ("capital", "taiwan") for m in ("llama3.2-1b", "qwen2.5-1.5b")
    )
    # The two blocks whose regions disagree come first.
    assert sorted(cells[:2]) == ["capital x qwen2.5-1.5b", "taiwan x qwen2.5-1.5b"]
    assert visit.labels("taiwan", "qwen2.5-1.5b") == {
        "us-east": "substantive",
        "eu-west": "substantive",
        "asia-pacific": "refusal",
    }
    assert visit.labels("capital", "qwen2.5-1.5b")["eu-west"] == "empty"
    assert visit.labels("taiwan", "llama3.2-1b")["us-east"] == "technical_failure"
    failure = visit.page.locator("section.answer.k-technical_failure")
    assert failure.locator(".badge").inner_text() == "failed"
    code, message = FAILURE
    assert failure.locator(".error").inner_text() == f"{code}: {message}"
    assert visit.page.locator(".cell.split .badge.split-badge").count() == 2


def test_hostile_answer_text_is_shown_as_text_and_runs_nothing(visit: Visit) -> None:
    shown = visit.page.locator("section.answer .text").all_text_contents()
    assert HOSTILE in shown
    assert visit.page.evaluate("typeof window.__pwned") == "undefined"
    assert visit.page.locator("img").count() == 0
    assert visit.page.locator("script").count() == 3


def test_the_filters_change_what_is_visible(visit: Visit) -> None:
    visit.choose("label", "refusal")
    assert visit.cells() == ["taiwan x qwen2.5-1.5b"]
    visit.choose("region", "us-east")  # a refusal in us-east: there is none
    assert visit.cells() == []
    assert "0 of 4" in visit.page.locator("#filter-status").inner_text()
    visit.choose("label", "technical failure")
    assert visit.cells() == ["taiwan x llama3.2-1b"]
    visit.page.click("#filter-reset")
    visit.choose("model", "llama3.2-1b")
    assert sorted(visit.cells()) == ["capital x llama3.2-1b", "taiwan x llama3.2-1b"]
    visit.choose("question", "capital")
    assert visit.cells() == ["capital x llama3.2-1b"]
    assert visit.errors == [], visit.messages


def test_a_screenshot_is_kept_as_a_test_artefact(visit: Visit) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "report-browser.png"
    visit.page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"screenshot: {path}")


# -- many blocks: pages and links --------------------------------------------------------------


@pytest.fixture(scope="module")
def big_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 questions x 1 model x 2 regions: 60 blocks, three pages of 25."""
    spec = JobSpec(
        id="big",
        questions=[Question(f"q{i:02d}", f"Question {i}?") for i in range(60)],
        models=[ModelTarget("m", ("us-east", "eu-west"))],
    )
    records = [
        ExecutionRecord(
            key=key,
            status=ExecutionStatus.COMPLETED,
            text=f"Answer {key.question_id} " + ("x" * 2_000 if key.question_id == "q00" else ""),
        )
        for key in spec.plan()
    ]
    path = tmp_path_factory.mktemp("big") / "big.html"
    write_report(spec, records, path)
    return path


def test_blocks_are_drawn_a_page_at_a_time(browser: Browser, big_report: Path) -> None:
    visit = Visit(browser, big_report)
    try:
        page = visit.page
        assert len(visit.cells()) == 25
        assert page.locator(".page-of").first.inner_text() == "page 1 of 3"
        page.locator(".pager").first.locator("[data-go=next]").click()
        assert len(visit.cells()) == 25
        page.locator(".pager").first.locator("[data-go=last]").click()
        assert len(visit.cells()) == 10
        assert page.locator(".page-of").first.inner_text() == "page 3 of 3"
        assert page.locator(".pager").first.locator("[data-go=next]").is_disabled()
        assert visit.errors == [], visit.messages
    finally:
        visit.close()


def test_a_link_to_a_block_opens_its_page(browser: Browser, big_report: Path) -> None:
    visit = Visit(browser, big_report, "#cell=q59/m")
    try:
        assert visit.page.locator(".page-of").first.inner_text() == "page 3 of 3"
        target = visit.page.locator("article.cell.target")
        assert target.get_attribute("id") == "cell=q59/m"
        # Each block's number is a link to it.
        assert target.locator("a.rank").get_attribute("href") == "#cell=q59/m"
    finally:
        visit.close()


def test_a_long_answer_is_cut_until_asked(browser: Browser, big_report: Path) -> None:
    visit = Visit(browser, big_report, "#cell=q00/m")
    try:
        answer = visit.page.locator("article.cell.target section.answer").first
        assert len(answer.locator(".text").inner_text()) < 2_000
        answer.locator("button.more").click()
        assert len(answer.locator(".text").inner_text()) == len("Answer q00 ") + 2_000
    finally:
        visit.close()


# -- 100,000 executions ------------------------------------------------------------------------


class FirstWord:
    """Refusal when the answer starts with "No": cheap, so the test measures the page."""

    name = "first-word"
    version = "1"

    def classify(self, record: ExecutionRecord) -> Classification:
        return label_record(record, self.classify_text)

    def classify_text(self, text: str) -> Classification:
        return Classification(Label.REFUSAL if text.startswith("No") else Label.SUBSTANTIVE, 1.0)


@pytest.mark.slow
def test_a_report_of_100000_executions_opens_with_one_page_of_blocks(
    browser: Browser, tmp_path: Path
) -> None:
    regions = tuple(f"region-{i}" for i in range(10))
    spec = JobSpec(
        id="hundred-thousand",
        questions=[Question(f"q{i:04d}", f"Question {i}?") for i in range(1_000)],
        models=[ModelTarget(f"model-{i}", regions) for i in range(10)],
    )

    def records() -> Iterator[ExecutionRecord]:
        for i, key in enumerate(spec.plan()):
            text = "No." if i % 50 == 0 else f"Answer {i % 97} to {key.question_id}."
            yield ExecutionRecord(key=key, status=ExecutionStatus.COMPLETED, text=text)

    path = tmp_path / "big.html"
    assert write_report(spec, records(), path, classifier=FirstWord()) == 100_000
    visit = Visit(browser, path, timeout=120_000)
    try:
        assert visit.errors == [], visit.messages
        assert len(visit.cells()) == 25
        # One page of blocks, not 10,000 of them: the document stays small.
        assert visit.page.evaluate("document.getElementsByTagName('*').length") < 5_000
        assert visit.page.locator(".page-of").first.inner_text() == "page 1 of 400"
        visit.choose("label", "refusal")
        status = visit.page.locator("#filter-status").inner_text()
        assert (
            status == "Showing 1\u201325 of 2000 matching (of 10000 question \u00d7 model blocks)."
        )
    finally:
        visit.close()
