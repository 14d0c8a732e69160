"""The HTML report of a job: one self-contained file with the regions' answers side by side."""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO

from attrs import define, field

from .. import __version__
from .._errors import UsageError
from .._spec import JobSpec
from .._status import JobResult, JobStatus
from .._types import ExecutionRecord
from ..stores import JobInfo
from ._divergence import CellDivergence, compare_regions
from ._labels import Classifier
from ._refusal import RefusalClassifier
from ._report_data import ReportData
from ._report_html import Template, escape, header_html, load_template, script_json, summary_html

__all__ = ["render_report", "write_report"]

_Verdict = tuple[JobStatus | None, str | None]


def write_report(
    spec: JobSpec,
    records: Iterable[ExecutionRecord],
    out: str | os.PathLike[str] | TextIO,
    *,
    classifier: Classifier | None = None,
    result: JobResult | JobInfo | None = None,
) -> int:
    """Write a job's report: one HTML file that opens offline and compares the regions.

    The page shows the job's verdict and the classifier that labelled the answers; counts and
    rates per region and per model, each with a bar; and, for each question x model, the
    regions' answers side by side, refusals, empty answers and failures marked, ranked as
    :func:`compare_regions` ranks them, with filters and a link to each. Styles, script and
    data are inline; the page loads nothing from anywhere, and its Content-Security-Policy
    forbids it to. Answer text is data, never markup: it cannot inject HTML or script.

    Cost: ``records`` are read once, from any iterable (a generator too), and each answer is
    written as it is read, so the report never holds the records' text; what is kept is what
    :func:`compare_regions` keeps (the first 1,000 terms of each answer) and a few integers
    per record. The page draws 25 question x model blocks at a time from the embedded JSON,
    so a browser opens a report of 100,000 executions (see the performance page for sizes
    and times).

    Args:
        spec: The job. Its questions, models and regions order the report, and a planned
            execution without a record is shown as not run.
        records: The job's records, one per key (``await store.records(job_id)``).
        out: A path (written to a temporary file beside it, then renamed over it, so a
            failure leaves any earlier report in place) or an open text stream (written as
            the records are read: after an error it holds part of a page).
        classifier: Labels the answers; the default :class:`RefusalClassifier` if ``None``.
        result: The job's verdict, as :func:`~beacon_orchestrator.run_job` returns it or a
            store lists it (:class:`~beacon_orchestrator.stores.JobInfo`); without it the
            report says the verdict is not known.

    Returns:
        The number of records read.

    Raises:
        UsageError: ``spec`` is not a :class:`~beacon_orchestrator.JobSpec`, ``records`` not
            an iterable of records (or two share a key), ``classifier`` not a
            :class:`Classifier`, or ``result`` not the result of this job.
    """
    job = _Job.checked(spec, records, classifier, result)
    if isinstance(out, str | os.PathLike):
        return _atomically(Path(out), job.write)
    return job.write(out)


def render_report(
    spec: JobSpec,
    records: Iterable[ExecutionRecord],
    *,
    classifier: Classifier | None = None,
    result: JobResult | JobInfo | None = None,
) -> str:
    """The report :func:`write_report` writes, as a string.

    Raises:
        UsageError: As :func:`write_report`.
    """
    buffer = io.StringIO()
    write_report(spec, records, buffer, classifier=classifier, result=result)
    return buffer.getvalue()


def _atomically(path: Path, write: Callable[[TextIO], int]) -> int:
    # Unique per call, so two reports written to one path at once do not share a file.
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        with temporary.open("x", encoding="utf-8", newline="\n") as stream:
            count = write(stream)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return count


@define
class _Job:
    """One report being written: its inputs, checked, and the slots of the page in order."""

    spec: JobSpec
    records: Iterable[ExecutionRecord]
    classifier: Classifier
    verdict: _Verdict | None
    data: ReportData = field(init=False)
    ranked: list[CellDivergence] = field(init=False, factory=list)
    cells: list[list[Any]] = field(init=False, factory=list)

    def __attrs_post_init__(self) -> None:
        self.data = ReportData(self.spec)

    @classmethod
    def checked(
        cls,
        spec: object,
        records: object,
        classifier: object,
        result: object,
    ) -> _Job:
        if not isinstance(spec, JobSpec):
            raise UsageError(f"write_report: spec: expected a JobSpec, got {spec!r}")
        if not isinstance(records, Iterable) or isinstance(records, str | bytes):
            raise UsageError(
                f"write_report: records: expected an iterable of ExecutionRecord, got {records!r}"
            )
        chosen = RefusalClassifier() if classifier is None else classifier
        if not isinstance(chosen, Classifier):
            raise UsageError(
                "write_report: classifier: expected a Classifier (an object with name, version "
                f"and classify(record)), got {classifier!r}"
            )
        return cls(spec, records, chosen, _verdict(spec, result))

    def write(self, out: TextIO) -> int:
        template = load_template()
        fill: dict[str, Callable[[TextIO, Template], object]] = {
            "csp": lambda o, t: o.write(escape(t.csp)),
            "generator": lambda o, _t: o.write(escape(f"beacon_orchestrator {__version__}")),
            "title": lambda o, _t: o.write(escape(f"Beacon report: {self.spec.id}")),
            "css": lambda o, t: o.write(t.css),
            "header": self._header,
            "answers": self._answers,
            "summary": self._summary,
            "index": self._index,
            "js": lambda o, t: o.write(t.js),
        }
        for text, slot in template.parts:
            out.write(text)
            if slot:
                fill[slot](out, template)
        return self.data.read

    def _header(self, out: TextIO, _template: Template) -> None:
        spec = self.spec
        times = " \N{MULTIPLICATION SIGN} "
        shape = times.join(str(len(part)) for part in (spec.questions, spec.models, spec.regions))
        out.write(
            header_html(
                job_id=spec.id,
                shape=f"{shape} ({spec.size} executions planned)",
                verdict=self.verdict,
                classifier=(str(self.classifier.name), str(self.classifier.version)),
                generator=f"beacon_orchestrator {__version__}",
            )
        )

    def _answers(self, out: TextIO, _template: Template) -> None:
        # The one pass over the records: compare_regions pulls them through the tee, which
        # writes each answer out on its way.
        separator = ""

        def write_answer(row: list[Any]) -> None:
            nonlocal separator
            out.write(separator + script_json(row))
            separator = ","

        out.write("[")
        self.ranked = compare_regions(self.data.tee(self.records, write_answer), self.classifier)
        out.write("]")
        self.cells = self.data.cells(self.ranked)

    def _summary(self, out: TextIO, _template: Template) -> None:
        job, by_region, by_model = self.data.tallies(self.cells)
        splits = sum(1 for cell in self.ranked if cell.label_split)
        out.write(summary_html(job, by_region, by_model, cells=len(self.cells), splits=splits))

    def _index(self, out: TextIO, _template: Template) -> None:
        out.write(script_json(self.data.index(self.cells)))


def _verdict(spec: JobSpec, result: object) -> _Verdict | None:
    if result is None:
        return None
    if not isinstance(result, JobResult | JobInfo):
        raise UsageError(
            f"write_report: result: expected a JobResult, a JobInfo or None, got {result!r}"
        )
    if result.job_id != spec.id:
        raise UsageError(
            f"write_report: result: the verdict of job {result.job_id!r}, expected one of "
            f"{spec.id!r}"
        )
    return result.status, result.reason
