"""What the report reads from a job's records, in one pass, and the counts and cells it shows.

The records are read once. Each record's answer is handed on (to be written out) the moment it
is read and only small integers are kept; :func:`compare_regions`, reading the same pass,
keeps its own reduced text per record. Nothing here holds a record's text after it is written.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from attrs import define, field, frozen

from .._spec import JobSpec
from .._types import ExecutionRecord, ExecutionStatus
from ._divergence import CellDivergence
from ._labels import Classification, Label

__all__ = ["Kind", "Names", "ReportData", "Tally", "label_code"]

_LABEL_CODES = {label: code for code, label in enumerate(Label)}
NO_RECORD = len(_LABEL_CODES)
"""The label code of a planned execution that has no record (the JavaScript's ``no_record``)."""


def label_code(label: Label | None) -> int:
    """A label's index in the report's list of labels; :data:`NO_RECORD` for ``None``."""
    return NO_RECORD if label is None else _LABEL_CODES[label]


class Kind(enum.Enum):
    """What the summary counts an execution as: its label, with failures told from unrun work."""

    SUBSTANTIVE = "substantive"
    REFUSAL = "refusal"
    EMPTY = "empty"
    FAILED = "failed"
    NOT_RUN = "not run"

    @classmethod
    def of(cls, label: Label | None, status: ExecutionStatus | None) -> Kind:
        """The kind of an execution with this label and status (``None``: no record)."""
        if label is None or status is None:
            return cls.NOT_RUN
        if label is not Label.TECHNICAL_FAILURE:
            return cls(label.value)
        # Failed and timed out ran to an outcome; cancelled and skipped did not run to one.
        return cls.FAILED if status.finished else cls.NOT_RUN


@define
class Tally:
    """The summary's counts for one region, one model or the whole job."""

    planned: int = 0
    counts: dict[Kind, int] = field(factory=lambda: dict.fromkeys(Kind, 0))

    @property
    def total(self) -> int:
        """Executions counted: the planned ones, and any record the plan does not name."""
        return sum(self.counts.values())

    @property
    def completed(self) -> int:
        """Executions that completed: substantive, refusal or empty."""
        return sum(self.counts[k] for k in (Kind.SUBSTANTIVE, Kind.REFUSAL, Kind.EMPTY))


@define
class Names:
    """Names (question, model or region ids) numbered in the order they are first seen."""

    names: list[str] = field(factory=list)
    _index: dict[str, int] = field(factory=dict)

    def of(self, name: str) -> int:
        """The number of ``name``, giving it the next one if it is new."""
        number = self._index.get(name)
        if number is None:
            number = self._index[name] = len(self.names)
            self.names.append(name)
        return number


@frozen
class _Stored:
    """What is kept of a record once its answer is written: where, and its status."""

    answer: int
    status: ExecutionStatus


@define
class ReportData:
    """The plan, then what one pass over the records adds to it.

    Args:
        spec: The job the records belong to; its questions, models and regions come first,
            in its order, and every planned execution has a place in the report, recorded or
            not.
    """

    spec: JobSpec
    questions: Names = field(factory=Names)
    models: Names = field(factory=Names)
    regions: Names = field(factory=Names)
    prompts: dict[str, tuple[str, str | None]] = field(factory=dict)
    stored: dict[tuple[int, int, int], _Stored] = field(factory=dict)
    read: int = 0
    _planned: dict[str, tuple[str, ...]] = field(factory=dict)

    def __attrs_post_init__(self) -> None:
        for question in self.spec.questions:
            self.questions.of(question.id)
            self.prompts[question.id] = (question.prompt, question.category)
        for model in self.spec.models:
            self.models.of(model.id)
            self._planned[model.id] = model.regions
        for region in self.spec.regions:
            self.regions.of(region)

    def tee(
        self, records: Iterable[ExecutionRecord], write_answer: Callable[[list[Any]], None]
    ) -> Iterator[ExecutionRecord]:
        """Yield ``records`` on, writing each one's answer with ``write_answer`` as it passes.

        Anything that is not a record is passed on untouched, for the reader of this iterator
        (:func:`compare_regions`) to refuse with its own message.
        """
        for record in records:
            if isinstance(record, ExecutionRecord):
                key = record.key
                place = (
                    self.questions.of(key.question_id),
                    self.models.of(key.model_id),
                    self.regions.of(key.region),
                )
                self.stored[place] = _Stored(self.read, record.status)
                write_answer(_answer_row(record))
                self.read += 1
            yield record

    def cells(self, ranked: Sequence[CellDivergence]) -> list[list[Any]]:
        """Every question x model, as the report's JSON has it.

        ``ranked`` first, in its order, then the planned cells without any record, in the
        plan's order.
        """
        rows = [self._cell(cell.question_id, cell.model_id, cell) for cell in ranked]
        seen = {(cell.question_id, cell.model_id) for cell in ranked}
        rows.extend(
            self._cell(question.id, model.id, None)
            for question in self.spec.questions
            for model in self.spec.models
            if (question.id, model.id) not in seen
        )
        return rows

    def _cell(self, question: str, model: str, cell: CellDivergence | None) -> list[Any]:
        q, m = self.questions.of(question), self.models.of(model)
        classifications = {} if cell is None else cell.classifications
        entries = [
            self._entry(q, m, region, classifications.get(region))
            for region in self._regions_of(model, classifications)
        ]
        if cell is None:
            return [q, m, None, 0, entries]
        divergence = cell.text_divergence
        rounded = None if divergence is None else round(divergence, 3)
        return [q, m, rounded, int(cell.label_split), entries]

    def _regions_of(self, model: str, recorded: Iterable[str]) -> list[str]:
        planned = self._planned.get(model, ())
        return [*planned, *sorted(set(recorded).difference(planned))]

    def _entry(self, q: int, m: int, region: str, c: Classification | None) -> list[Any]:
        r = self.regions.of(region)
        stored = self.stored.get((q, m, r))
        if c is None or stored is None:
            return [r, NO_RECORD, -1, 0, None]
        return [r, label_code(c.label), stored.answer, round(c.score, 3), c.evidence]

    def tallies(
        self, cells: Sequence[Sequence[Any]]
    ) -> tuple[Tally, dict[str, Tally], dict[str, Tally]]:
        """The job's counts, each region's and each model's, from the rows of :meth:`cells`."""
        job = Tally()
        by_region = {name: Tally() for name in self.regions.names}
        by_model = {name: Tally() for name in self.models.names}
        questions = len(self.spec.questions)
        for model in self.spec.models:
            by_model[model.id].planned += questions * len(model.regions)
            for region in model.regions:
                by_region[region].planned += questions
        job.planned = self.spec.size
        labels = list(Label)
        for q, m, _divergence, _split, entries in cells:
            for r, code, _answer, _score, _evidence in entries:
                stored = self.stored.get((q, m, r))
                label = None if code == NO_RECORD else labels[code]
                kind = Kind.of(label, None if stored is None else stored.status)
                for tally in (
                    job,
                    by_region[self.regions.names[r]],
                    by_model[self.models.names[m]],
                ):
                    tally.counts[kind] += 1
        return job, by_region, by_model

    def index(self, cells: list[list[Any]]) -> dict[str, Any]:
        """The report's index: names, prompts and cells (the answers are written apart)."""
        return {
            "job": self.spec.id,
            "questions": [[q, *self.prompts.get(q, ("", None))] for q in self.questions.names],
            "models": self.models.names,
            "regions": self.regions.names,
            "cells": cells,
        }


def _answer_row(record: ExecutionRecord) -> list[Any]:
    return [
        record.status.value,
        record.text,
        record.error_code,
        record.error_message,
        record.attempts,
    ]
