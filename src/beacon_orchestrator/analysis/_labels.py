"""What an answer is labelled, and the extension point that labels it."""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from types import MappingProxyType
from typing import Protocol, runtime_checkable

from attrs import field, frozen

from .._errors import UsageError
from .._types import ExecutionRecord, ExecutionStatus

__all__ = ["Classification", "Classifier", "Label", "label_record"]


class Label(enum.StrEnum):
    """What one execution's answer is, in Beacon's terms.

    ``SUBSTANTIVE`` and ``REFUSAL`` are decided by a classifier from the answer's text;
    ``EMPTY`` and ``TECHNICAL_FAILURE`` follow from the record alone (see :func:`label_record`).
    """

    SUBSTANTIVE = "substantive"
    """The model answered the question (whatever the answer says)."""
    REFUSAL = "refusal"
    """The model declined, deflected or changed the subject."""
    EMPTY = "empty"
    """The execution completed with an empty answer (nothing but white space)."""
    TECHNICAL_FAILURE = "technical_failure"
    """The execution did not complete: failed, timed out, cancelled or skipped."""

    @property
    def answered(self) -> bool:
        """Whether the model produced an answer (every label but ``TECHNICAL_FAILURE``)."""
        return self is not Label.TECHNICAL_FAILURE


_TEXT_LABELS = frozenset({Label.SUBSTANTIVE, Label.REFUSAL})
_LABELS_BY_VALUE = MappingProxyType({label.value: label for label in Label})
_LABEL_VALUES = ", ".join(repr(value) for value in _LABELS_BY_VALUE)


def _to_label(value: object) -> Label:
    if isinstance(value, Label):
        return value
    if isinstance(value, str) and value in _LABELS_BY_VALUE:
        return _LABELS_BY_VALUE[value]
    raise UsageError(f"Classification.label: expected one of {_LABEL_VALUES}, got {value!r}")


def _to_score(value: object) -> float:
    # bool is an int, but True as a confidence is a bug in the caller, not a 1.0.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise UsageError(f"Classification.score: expected a number in [0, 1], got {value!r}")
    if not 0.0 <= value <= 1.0:
        raise UsageError(f"Classification.score: expected a number in [0, 1], got {value!r}")
    return float(value)


def _check_evidence(_instance: object, _attribute: object, value: str | None) -> None:
    if value is not None and not isinstance(value, str):
        raise UsageError(f"Classification.evidence: expected a str or None, got {value!r}")


@frozen
class Classification:
    """A label with the classifier's confidence in it and what it saw.

    Attributes:
        label: The label (a :class:`Label`, or its string value).
        score: Confidence in the label, from 0 to 1. For ``EMPTY`` and ``TECHNICAL_FAILURE``
            it is 1: they are read from the record, not guessed.
        evidence: A short excerpt that decided it (the refusal phrase that matched, or the
            record's status and error code), or ``None``.

    Raises:
        UsageError: A label that is not a :class:`Label` value, a score outside [0, 1], or
            evidence that is not a string.
    """

    label: Label = field(converter=_to_label)
    score: float = field(converter=_to_score)
    evidence: str | None = field(default=None, validator=_check_evidence)


@runtime_checkable
class Classifier(Protocol):
    """Labels execution records: the extension point for refusal detection.

    A classifier has a ``name`` and a ``version`` (so an analysis can say which classifier, at
    which version, produced its labels) and one method. Most classifiers only look at the
    answer's text: write a ``classify_text(text) -> Classification`` that returns ``REFUSAL`` or
    ``SUBSTANTIVE`` and delegate to :func:`label_record`, which labels failed and empty
    executions the same way for every classifier::

        class KeywordClassifier:
            name = "keyword"
            version = "1"

            def classify(self, record: ExecutionRecord) -> Classification:
                return label_record(record, self.classify_text)

            def classify_text(self, text: str) -> Classification:
                if "cannot answer" in text.lower():
                    return Classification(Label.REFUSAL, 0.9, "cannot answer")
                return Classification(Label.SUBSTANTIVE, 0.6)
    """

    @property
    def name(self) -> str:
        """A stable identifier, e.g. ``"beacon-heuristic-refusal"``."""
        ...

    @property
    def version(self) -> str:
        """Changes whenever the classifier may label the same record differently."""
        ...

    def classify(self, record: ExecutionRecord) -> Classification:
        """Label one record (synchronously; batch or cache inside if it is expensive)."""
        ...


def label_record(
    record: ExecutionRecord, classify_text: Callable[[str], Classification]
) -> Classification:
    """Label a record from its status, asking ``classify_text`` only about real answers.

    The rules every classifier shares:

    * a record that is not ``COMPLETED`` is ``TECHNICAL_FAILURE`` (score 1), whatever the
      reason: ``FAILED`` and ``TIMEOUT``, and also ``CANCELLED`` and ``SKIPPED``, which are
      labelled, not left out, so every planned cell has a label; the evidence says which
      (``"skipped"``, ``"failed: PROVIDER_UNAVAILABLE"``);
    * a ``COMPLETED`` record whose text is missing or only white space is ``EMPTY`` (score 1),
      whether or not its ``empty`` flag was set;
    * any other record is labelled by ``classify_text(record.text)``, which sees the raw text
      and must return ``REFUSAL`` or ``SUBSTANTIVE``.

    Args:
        record: The execution record to label.
        classify_text: Labels the text of a completed, non-empty answer.

    Returns:
        The record's classification.

    Raises:
        UsageError: ``classify_text`` returned something other than a ``REFUSAL`` or
            ``SUBSTANTIVE`` :class:`Classification`.
    """
    if record.status is not ExecutionStatus.COMPLETED:
        return Classification(Label.TECHNICAL_FAILURE, 1.0, _failure_evidence(record))
    text = record.text
    if record.empty or text is None or not text.strip():
        return Classification(Label.EMPTY, 1.0)
    # Typed as object: a user's classify_text may return anything, and mypy must not assume.
    result: object = classify_text(text)
    if not isinstance(result, Classification) or result.label not in _TEXT_LABELS:
        raise UsageError(
            f"classify_text returned {result!r} for the completed answer of {record.key}; "
            "expected a Classification labelled 'refusal' or 'substantive'"
        )
    return result


def _failure_evidence(record: ExecutionRecord) -> str:
    status = record.status.value
    return f"{status}: {record.error_code}" if record.error_code else status
