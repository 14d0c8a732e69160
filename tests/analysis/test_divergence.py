"""Divergence across regions: the text measure, label splits, ranking, errors and work."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from beacon_orchestrator import ExecutionKey, ExecutionRecord, ExecutionStatus, UsageError
from beacon_orchestrator.analysis import (
    CellDivergence,
    Classification,
    Label,
    _divergence,
    compare_regions,
    label_record,
    text_divergence,
)
from beacon_orchestrator.analysis._text import normalize

COMPLETED = ExecutionStatus.COMPLETED
ANSWER = "Crimea was annexed by Russia in March 2014 after a disputed referendum."
OTHER = "The peninsula has a long history: Greeks, Tatars and the Russian Empire held it."
REFUSAL = "I'm sorry, but I can't discuss that topic."


def rec(
    question: str,
    region: str,
    text: str | None = ANSWER,
    status: ExecutionStatus = COMPLETED,
    model: str = "m",
    **kw: Any,
) -> ExecutionRecord:
    return ExecutionRecord(
        key=ExecutionKey(question, model, region), status=status, text=text, **kw
    )


# -- the text measure --------------------------------------------------------------------------


def test_identical_answers_do_not_diverge_and_disjoint_ones_fully_do() -> None:
    assert text_divergence([ANSWER, ANSWER, ANSWER]) == 0.0
    assert text_divergence(["alpha beta gamma", "delta epsilon zeta"]) == 1.0


def test_case_punctuation_layout_and_script_variants_do_not_count() -> None:
    assert text_divergence([ANSWER, f"**{ANSWER.upper()}**\n\n"]) == 0.0
    assert text_divergence(["- one\n- two, three!", "One two three"]) == 0.0
    assert text_divergence(["台灣是中國的一部分", "台湾是中国的一部分"]) == 0.0


def test_content_counts_not_word_order() -> None:
    assert text_divergence(["the army cleared the square", "the square cleared the army"]) == 0
    # 4 of 5 words shared.
    assert text_divergence(["the army cleared the square", "the army left the square"]) == (
        pytest.approx(1 - 3 / 5)
    )


def test_it_grades_rewording_below_another_stance() -> None:
    near_copy = text_divergence(
        [
            "Taiwan is governed by the Republic of China, which has its own army.",
            "Taiwan is governed by the Republic of China, with its own army and president.",
        ]
    )
    paraphrase = text_divergence(
        [
            "Russia annexed Crimea in March 2014 after a disputed referendum.",
            "Crimea was annexed by Russia in 2014; the UN called the vote invalid.",
        ]
    )
    stance = text_divergence(
        [
            "Taiwan is a self-governing democracy with its own army and an elected president.",
            "Taiwan has been an inalienable part of China since ancient times.",
        ]
    )
    assert near_copy is not None
    assert paraphrase is not None
    assert stance is not None
    assert near_copy < paraphrase < stance < 1


def test_chinese_is_compared_by_character_bigrams() -> None:
    # Bigrams: 一九 九八 八九 九年 年六 六月 | 月四 四日 日北 北京 vs 月北 北京 京清 清场
    partial = text_divergence(["一九八九年六月四日北京", "一九八九年六月北京清场"])
    assert partial == pytest.approx(1 - 7 / 13)
    assert text_divergence(["北京", "京北"]) == 1.0  # a character bigram has an order


def test_edge_cases() -> None:
    assert text_divergence([ANSWER]) is None
    assert text_divergence([]) is None
    assert text_divergence(["", "  "]) == 0.0  # two empty answers are the same answer
    assert text_divergence(["", ANSWER]) == 1.0
    assert text_divergence(["Yes.", "yes"]) == 0.0  # one-token answers
    assert text_divergence(["Yes.", "No."]) == 1.0


@given(st.lists(st.text(max_size=60), min_size=2, max_size=5), st.randoms())
def test_divergence_is_in_zero_one_and_ignores_order(texts: list[str], rnd: Any) -> None:
    value = text_divergence(texts)
    assert value is not None
    assert 0.0 <= value <= 1.0
    shuffled = list(texts)
    rnd.shuffle(shuffled)
    assert text_divergence(shuffled) == pytest.approx(value)
    assert text_divergence([texts[0], texts[0]]) == 0.0


# -- compare_regions -----------------------------------------------------------------------------


def test_one_cell_per_question_and_model_with_regions_sorted() -> None:
    cells = compare_regions(
        [
            rec("q1", "us-east"),
            rec("q1", "eu-west"),
            rec("q1", "us-east", model="m2"),
            rec("q2", "asia-pacific"),
        ]
    )
    assert {(c.question_id, c.model_id) for c in cells} == {("q1", "m"), ("q1", "m2"), ("q2", "m")}
    q1 = next(c for c in cells if (c.question_id, c.model_id) == ("q1", "m"))
    assert list(q1.labels) == ["eu-west", "us-east"]
    assert q1.labels == {"eu-west": Label.SUBSTANTIVE, "us-east": Label.SUBSTANTIVE}
    assert q1.text_divergence == 0.0
    assert q1.comparable
    assert not q1.label_split
    assert q1.score == 0.0


def test_a_refusal_in_one_region_is_a_label_split_and_ranks_first() -> None:
    cells = compare_regions(
        [
            # q1: answers differ a lot, but no split
            rec("q1", "us-east", ANSWER),
            rec("q1", "eu-west", OTHER),
            # q2: the same answer in two regions, a refusal in the third
            rec("q2", "us-east", ANSWER),
            rec("q2", "eu-west", ANSWER),
            rec("q2", "asia-pacific", REFUSAL),
        ]
    )
    assert [c.question_id for c in cells] == ["q2", "q1"]
    split, texts = cells
    assert split.label_split
    assert split.labels["asia-pacific"] is Label.REFUSAL
    assert split.classifications["asia-pacific"].evidence == "i can't discuss"
    assert split.score == 1.0 + (split.text_divergence or 0.0)
    assert not texts.label_split
    assert texts.text_divergence is not None
    assert texts.text_divergence > 0.8
    assert texts.score == texts.text_divergence
    assert split.score > texts.score


def test_an_empty_answer_in_one_region_is_a_split() -> None:
    (cell,) = compare_regions([rec("q", "us-east"), rec("q", "eu-west", "", empty=True)])
    assert cell.labels == {"eu-west": Label.EMPTY, "us-east": Label.SUBSTANTIVE}
    assert cell.label_split
    assert cell.text_divergence == 1.0
    assert cell.score == 2.0


def test_failures_are_labelled_but_neither_split_nor_compared() -> None:
    (cell,) = compare_regions(
        [
            rec("q", "us-east"),
            rec("q", "eu-west"),
            rec("q", "asia-pacific", None, ExecutionStatus.TIMEOUT, error_code="TIMEOUT"),
            rec("q", "sa-east", None, ExecutionStatus.SKIPPED),
        ]
    )
    assert cell.labels["asia-pacific"] is Label.TECHNICAL_FAILURE
    assert cell.classifications["asia-pacific"].evidence == "timeout: TIMEOUT"
    assert cell.labels["sa-east"] is Label.TECHNICAL_FAILURE
    assert cell.answered_regions == ("eu-west", "us-east")
    assert not cell.label_split
    assert cell.text_divergence == 0.0  # over the two completed answers only


def test_a_cell_answered_in_one_region_is_not_comparable_and_ranks_last() -> None:
    cells = compare_regions(
        [
            rec("a-lonely", "us-east"),
            rec("a-lonely", "eu-west", None, ExecutionStatus.FAILED),
            rec("b-agree", "us-east"),
            rec("b-agree", "eu-west"),
            rec("c-down", "us-east", None, ExecutionStatus.FAILED),
        ]
    )
    assert [c.question_id for c in cells] == ["b-agree", "a-lonely", "c-down"]
    agree, lonely, down = cells
    assert agree.comparable
    assert agree.score == 0.0
    for cell in (lonely, down):
        assert not cell.comparable
        assert cell.text_divergence is None
        assert cell.score == 0.0
        assert not cell.label_split
    assert down.labels == {"us-east": Label.TECHNICAL_FAILURE}


def test_ties_are_broken_by_question_then_model() -> None:
    records = [rec(q, r, model=m) for q in ("q2", "q1") for m in ("m2", "m1") for r in ("a", "b")]
    cells = compare_regions(records)
    assert [(c.question_id, c.model_id) for c in cells] == [
        ("q1", "m1"),
        ("q1", "m2"),
        ("q2", "m1"),
        ("q2", "m2"),
    ]


def test_records_are_streamed_not_kept() -> None:
    refs: list[weakref.ref[ExecutionRecord]] = []

    def generate() -> Iterator[ExecutionRecord]:
        for q in range(20):
            for region in ("us-east", "eu-west", "asia-pacific"):
                record = rec(f"q{q}", region, f"{ANSWER} {q} {region}")
                refs.append(weakref.ref(record))
                yield record

    cells = compare_regions(generate())
    gc.collect()
    assert len(cells) == 20
    assert len(refs) == 60
    assert all(ref() is None for ref in refs)


class KeywordClassifier:
    name = "keyword"
    version = "2"

    def classify(self, record: ExecutionRecord) -> Classification:
        return label_record(record, self.classify_text)

    def classify_text(self, text: str) -> Classification:
        if "crimea" in text.lower():
            return Classification(Label.REFUSAL, 0.9, "crimea")
        return Classification(Label.SUBSTANTIVE, 0.6)


def test_a_users_classifier_decides_the_labels() -> None:
    (cell,) = compare_regions(
        [rec("q", "us-east", ANSWER), rec("q", "eu-west", OTHER)], classifier=KeywordClassifier()
    )
    assert cell.labels == {"eu-west": Label.SUBSTANTIVE, "us-east": Label.REFUSAL}
    assert cell.label_split


# -- errors ----------------------------------------------------------------------------------------


def test_records_must_be_records_one_per_key() -> None:
    with pytest.raises(UsageError, match=r"records: expected ExecutionRecord items, got \{"):
        compare_regions([{"question_id": "q"}])  # type: ignore[list-item]
    with pytest.raises(UsageError, match=r"two records for q/m@us-east; expected one per"):
        compare_regions([rec("q", "us-east"), rec("q", "us-east", OTHER)])


def test_the_classifier_must_be_a_classifier() -> None:
    with pytest.raises(
        UsageError, match=r"classifier: expected a Classifier .*got <built-in function len>"
    ):
        compare_regions([rec("q", "us-east")], classifier=len)  # type: ignore[arg-type]


class Broken:
    name = "broken"
    version = "0"

    def __init__(self, result: object) -> None:
        self.result = result

    def classify(self, record: ExecutionRecord) -> Classification:
        return self.result  # type: ignore[return-value]


def test_a_classifier_returning_something_else_is_named() -> None:
    with pytest.raises(
        UsageError,
        match=r"classifier 'broken' \(version '0'\) returned 'refusal' for q/m@us-east; expected",
    ):
        compare_regions([rec("q", "us-east")], classifier=Broken("refusal"))


@pytest.mark.parametrize(
    ("status", "label"),
    [
        (ExecutionStatus.FAILED, Label.REFUSAL),
        (ExecutionStatus.SKIPPED, Label.EMPTY),
        (COMPLETED, Label.TECHNICAL_FAILURE),
    ],
)
def test_a_label_that_contradicts_the_status_is_refused(
    status: ExecutionStatus, label: Label
) -> None:
    with pytest.raises(UsageError) as caught:
        compare_regions(
            [rec("q", "us-east", status=status)], classifier=Broken(Classification(label, 1))
        )
    message = str(caught.value)
    assert f"labelled the {status.value} record q/m@us-east {label.value!r}" in message
    assert "build classify() on label_record()" in message


def test_cell_divergence_validates_its_fields() -> None:
    ok = {"us-east": Classification(Label.SUBSTANTIVE, 0.9)}
    cell = CellDivergence("q", "m", ok, None)
    assert cell.labels == {"us-east": Label.SUBSTANTIVE}
    with pytest.raises(UsageError, match=r"text_divergence: expected None or a number in \[0, 1\]"):
        CellDivergence("q", "m", ok, 1.5)
    with pytest.raises(UsageError, match=r"classifications: expected a mapping of region name"):
        CellDivergence("q", "m", {"us-east": "substantive"}, None)


# -- work ------------------------------------------------------------------------------------------


def test_work_per_record_is_bounded_whatever_the_answers_length(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bound that makes 100,000 records affordable, counted rather than timed.

    Per record: at most 600 characters normalised to classify it, 2,000 counted, and 8,000
    normalised into at most 1,000 tokens to compare it; per cell of k answered regions,
    k(k-1)/2 comparisons of at most 1,000 terms each. Nothing else depends on the length.
    """
    read: list[int] = []
    compared: list[int] = []
    real_jaccard = _divergence._jaccard

    def counting_normalize(text: str) -> str:
        read.append(len(text))
        return normalize(text)

    def counting_jaccard(a: frozenset[str], b: frozenset[str]) -> float:
        compared.append(max(len(a), len(b)))
        return real_jaccard(a, b)

    classified: list[int] = []

    def counting_classify_normalize(text: str) -> str:
        classified.append(len(text))
        return normalize(text)

    package = "beacon_orchestrator.analysis"
    monkeypatch.setattr(f"{package}._divergence.normalize", counting_normalize)
    monkeypatch.setattr(f"{package}._divergence._jaccard", counting_jaccard)
    monkeypatch.setattr(f"{package}._refusal.normalize", counting_classify_normalize)

    huge = " ".join(f"word{i}" for i in range(200_000))  # 1.5 MB, one shared string
    cells, regions = 40, ("us-east", "eu-west", "asia-pacific", "us-west", "eu-central")
    result = compare_regions(rec(f"q{q}", r, huge) for q in range(cells) for r in regions)

    records = cells * len(regions)
    assert len(result) == cells
    assert len(read) == records
    assert max(read) <= 8000
    assert len(classified) == records
    assert max(classified) <= 600
    assert len(compared) == cells * len(regions) * (len(regions) - 1) // 2
    assert max(compared) <= 1000
    # And what is beyond the caps cannot change the outcome:
    assert compare_regions(rec(f"q{q}", r, huge[:8000]) for q in range(cells) for r in regions) == (
        result
    )
