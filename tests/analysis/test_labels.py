"""Labels, classifications and the status rules every classifier shares."""

from __future__ import annotations

import math
from typing import Any

import pytest

from beacon_orchestrator import ExecutionKey, ExecutionRecord, ExecutionStatus, UsageError
from beacon_orchestrator.analysis import (
    Classification,
    Classifier,
    Label,
    RefusalClassifier,
    label_record,
)

KEY = ExecutionKey("q1", "m", "us-east")


def record(status: ExecutionStatus = ExecutionStatus.COMPLETED, **kw: Any) -> ExecutionRecord:
    return ExecutionRecord(key=KEY, status=status, **kw)


def never_called(text: str) -> Classification:
    raise AssertionError(f"classify_text was called with {text!r}")


def test_label_values_are_beacons_terms() -> None:
    assert [label.value for label in Label] == [
        "substantive",
        "refusal",
        "empty",
        "technical_failure",
    ]
    assert [label.answered for label in Label] == [True, True, True, False]


def test_classification_accepts_a_label_value_and_converts_the_score() -> None:
    c = Classification("refusal", 1)
    assert c == Classification(Label.REFUSAL, 1.0, None)
    assert c.label is Label.REFUSAL
    assert isinstance(c.score, float)


@pytest.mark.parametrize("label", ["refused", "", None, 3, "REFUSAL"])
def test_classification_rejects_an_unknown_label_naming_field_value_and_choices(
    label: object,
) -> None:
    with pytest.raises(UsageError) as caught:
        Classification(label, 0.5)
    message = str(caught.value)
    assert message.startswith("Classification.label: expected one of 'substantive', 'refusal'")
    assert f"got {label!r}" in message


@pytest.mark.parametrize("score", [-0.01, 1.01, math.nan, math.inf, True, "0.5", None])
def test_classification_rejects_a_score_outside_zero_one(score: object) -> None:
    with pytest.raises(UsageError, match=r"Classification\.score: expected a number in \[0, 1\]"):
        Classification(Label.REFUSAL, score)


def test_classification_rejects_evidence_that_is_not_text() -> None:
    with pytest.raises(UsageError, match=r"Classification\.evidence: expected a str or None"):
        Classification(Label.REFUSAL, 0.5, 42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "code", "evidence"),
    [
        (ExecutionStatus.FAILED, "PROVIDER_UNAVAILABLE", "failed: PROVIDER_UNAVAILABLE"),
        (ExecutionStatus.TIMEOUT, "TIMEOUT", "timeout: TIMEOUT"),
        (ExecutionStatus.CANCELLED, None, "cancelled"),
        (ExecutionStatus.SKIPPED, None, "skipped"),
    ],
)
def test_every_status_but_completed_is_a_technical_failure(
    status: ExecutionStatus, code: str | None, evidence: str
) -> None:
    # Even with text (a partial answer kept by an executor), the status decides.
    got = label_record(record(status, error_code=code, text="I can't help."), never_called)
    assert got == Classification(Label.TECHNICAL_FAILURE, 1.0, evidence)


@pytest.mark.parametrize(
    "fields",
    [
        {"text": "", "empty": True},
        {"text": ""},  # built by hand: empty flag left False
        {"text": " \n\t "},
        {"text": None},
        {"text": "ignored", "empty": True},
    ],
    ids=["flagged", "unflagged", "white-space", "none", "flag-wins"],
)
def test_a_completed_empty_answer_is_empty(fields: dict[str, Any]) -> None:
    assert label_record(
        record(ExecutionStatus.COMPLETED, **fields), never_called
    ) == Classification(Label.EMPTY, 1.0)


def test_a_completed_answer_goes_to_the_text_classifier_raw() -> None:
    seen: list[str] = []

    def spy(text: str) -> Classification:
        seen.append(text)
        return Classification(Label.REFUSAL, 0.7, "no")

    got = label_record(record(text="  Non, MERCI.  "), spy)
    assert got == Classification(Label.REFUSAL, 0.7, "no")
    assert seen == ["  Non, MERCI.  "]


@pytest.mark.parametrize(
    "result",
    [Classification(Label.EMPTY, 1.0), Classification(Label.TECHNICAL_FAILURE, 1.0), "refusal"],
)
def test_a_text_classifier_must_answer_refusal_or_substantive(result: object) -> None:
    with pytest.raises(UsageError) as caught:
        label_record(record(text="hello"), lambda text: result)  # type: ignore[arg-type,return-value]
    message = str(caught.value)
    assert "q1/m@us-east" in message
    assert repr(result) in message
    assert "expected a Classification labelled 'refusal' or 'substantive'" in message


class KeywordClassifier:
    name = "keyword"
    version = "1"

    def classify(self, record: ExecutionRecord) -> Classification:
        return label_record(record, self.classify_text)

    def classify_text(self, text: str) -> Classification:
        if "cannot answer" in text.lower():
            return Classification(Label.REFUSAL, 0.9, "cannot answer")
        return Classification(Label.SUBSTANTIVE, 0.6)


def test_classifiers_satisfy_the_protocol() -> None:
    for classifier in (RefusalClassifier(), KeywordClassifier()):
        assert isinstance(classifier, Classifier)
    assert not isinstance(object(), Classifier)
    keyword: Classifier = KeywordClassifier()  # and statically
    assert keyword.classify(record(text="I cannot answer.")).label is Label.REFUSAL
    assert keyword.classify(record(ExecutionStatus.SKIPPED)).label is Label.TECHNICAL_FAILURE


def test_the_default_classifier_names_itself() -> None:
    classifier = RefusalClassifier()
    assert classifier.name == "beacon-heuristic-refusal"
    assert classifier.version == "1"
    assert classifier.classify(record(text="")) == Classification(Label.EMPTY, 1.0)
    assert classifier.classify(record(ExecutionStatus.FAILED)).label is Label.TECHNICAL_FAILURE
