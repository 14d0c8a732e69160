"""comparison_frame: the regions' answers side by side in a pandas data frame."""

from __future__ import annotations

import math
import sys
from typing import Any

import pandas as pd
import pytest

from beacon_orchestrator import ExecutionKey, ExecutionRecord, ExecutionStatus, UsageError
from beacon_orchestrator.analysis import (
    Classification,
    Label,
    RefusalClassifier,
    compare_regions,
    comparison_frame,
    label_record,
)

REFUSAL = "I'm sorry, but I can't discuss that topic. Let's talk about something else."


def record(
    question: str, model: str, region: str, text: str | None, **fields: Any
) -> ExecutionRecord:
    status = ExecutionStatus.COMPLETED if text is not None else ExecutionStatus.FAILED
    return ExecutionRecord(
        key=ExecutionKey(question, model, region),
        status=fields.pop("status", status),
        text=text,
        **fields,
    )


RECORDS = [
    record("taiwan", "qwen", "us-east", "Taiwan is a self-governing democracy."),
    record("taiwan", "qwen", "eu-west", "Taiwan governs itself as a democracy."),
    record("taiwan", "qwen", "asia-pacific", REFUSAL),
    record("taiwan", "llama", "us-east", "Taiwan is self-governing."),
    record("taiwan", "llama", "eu-west", "", empty=True),
    record("capital", "qwen", "us-east", "Canberra."),
    record("capital", "qwen", "eu-west", "The capital of Australia is Canberra."),
    record("capital", "qwen", "asia-pacific", None, error_code="PROVIDER_UNAVAILABLE"),
    record("capital", "llama", "us-east", "Canberra is the capital."),
]


def test_one_row_per_question_and_model_with_text_and_label_per_region() -> None:
    frame = comparison_frame(RECORDS)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == [
        "question_id",
        "model_id",
        "us-east",
        "eu-west",
        "asia-pacific",
        "us-east label",
        "eu-west label",
        "asia-pacific label",
        "text_divergence",
        "label_split",
        "score",
    ]
    assert len(frame) == 4
    rows = frame.set_index(["question_id", "model_id"])
    qwen = rows.loc[("taiwan", "qwen")]
    assert qwen["asia-pacific"] == REFUSAL
    assert qwen["asia-pacific label"] == "refusal"
    assert qwen["us-east label"] == "substantive"
    assert bool(qwen["label_split"])
    failed = rows.loc[("capital", "qwen")]
    assert pd.isna(failed["asia-pacific"])
    assert failed["asia-pacific label"] == "technical_failure"
    # llama is not served in asia-pacific: no text, no label.
    llama = rows.loc[("taiwan", "llama")]
    assert pd.isna(llama["asia-pacific"])
    assert pd.isna(llama["asia-pacific label"])
    assert llama["eu-west label"] == "empty"
    # capital x llama answered in one region only: nothing to compare.
    assert math.isnan(rows.loc[("capital", "llama")]["text_divergence"])


def test_rows_are_ranked_and_scored_as_compare_regions_ranks_them() -> None:
    frame = comparison_frame(RECORDS)
    cells = compare_regions(RECORDS)
    assert list(zip(frame["question_id"], frame["model_id"], strict=True)) == [
        (c.question_id, c.model_id) for c in cells
    ]
    assert list(frame["score"]) == [c.score for c in cells]
    assert [None if math.isnan(d) else d for d in frame["text_divergence"]] == [
        c.text_divergence for c in cells
    ]
    assert frame["text_divergence"].dtype == float


def test_a_classifier_of_ones_own_labels_the_frame() -> None:
    class Canberra:
        name = "canberra"
        version = "1"

        def classify(self, r: ExecutionRecord) -> Classification:
            return label_record(r, self.classify_text)

        def classify_text(self, text: str) -> Classification:
            refused = "canberra" in text.lower()
            return Classification(Label.REFUSAL if refused else Label.SUBSTANTIVE, 0.8)

    frame = comparison_frame(iter(RECORDS), classifier=Canberra())
    capital = frame.set_index(["question_id", "model_id"]).loc[("capital", "qwen")]
    assert capital["us-east label"] == "refusal"
    with pytest.raises(UsageError, match="expected a Classifier"):
        comparison_frame(RECORDS, classifier=object())  # type: ignore[arg-type]


def test_no_records_is_an_empty_frame_with_the_fixed_columns() -> None:
    frame = comparison_frame([])
    assert frame.empty
    assert list(frame.columns) == [
        "question_id",
        "model_id",
        "text_divergence",
        "label_split",
        "score",
    ]


def test_without_pandas_it_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # what a missing package looks like
    with pytest.raises(UsageError, match=r"pip install 'beacon-orchestrator\[pandas\]'"):
        comparison_frame(RECORDS)
    # The rest of the analysis needs no pandas.
    assert RefusalClassifier().classify_text(REFUSAL).label is Label.REFUSAL
