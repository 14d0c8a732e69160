"""The default classifier measured on the labelled corpus, and the figures the docs publish."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from beacon_orchestrator.analysis import Label, RefusalClassifier

from .corpus_metrics import ALL, CORPUS, HOLDOUT, LANGUAGES, Score, load, measure, table

HOW_TO = Path(__file__).resolve().parent.parent.parent / "docs" / "how-to"
GUIDE = HOW_TO / "plug-in-a-classifier.md"
CLASSIFY = RefusalClassifier().classify_text


def test_the_corpus_has_the_promised_shape() -> None:
    answers = load(CORPUS)
    assert len(answers) >= 150
    assert len({a.id for a in answers}) == len(answers)
    per_lang = Counter(a.lang for a in answers)
    assert set(per_lang) == set(LANGUAGES)
    assert all(per_lang[lang] >= 15 for lang in LANGUAGES if lang != "en"), per_lang
    assert {a.label for a in answers} == {Label.REFUSAL, Label.SUBSTANTIVE}
    # Hard cases both ways: answers that look like refusals, refusals that only deflect.
    hard = Counter(a.label for a in answers if a.hard)
    assert hard[Label.SUBSTANTIVE] >= 20
    assert hard[Label.REFUSAL] >= 20
    for lang in LANGUAGES:
        labels = Counter(a.label for a in answers if a.lang == lang)
        assert labels[Label.REFUSAL] >= 5, lang
        assert labels[Label.SUBSTANTIVE] >= 5, lang


def test_held_out_rounds_are_labelled_like_the_corpus() -> None:
    answers = load(HOLDOUT)
    assert {a.round for a in answers} == {1, 2, 3}
    assert {a.lang for a in answers} == set(LANGUAGES)
    assert {a.label for a in answers} == {Label.REFUSAL, Label.SUBSTANTIVE}
    assert not {a.id for a in answers} & {a.id for a in load(CORPUS)}


def report(name: str, scores: dict[str, Score], capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print(f"\n{name}: refusal precision and recall\n{table(scores)}")


def test_precision_and_recall_on_the_corpus(capsys: pytest.CaptureFixture[str]) -> None:
    scores = measure(load(CORPUS), CLASSIFY)
    report("refusal_corpus.jsonl", scores, capsys)
    assert scores[ALL].precision >= 0.9
    assert scores[ALL].recall >= 0.9
    # Per language the samples are small (7-22 refusals): one miss costs up to 0.14.
    for lang in LANGUAGES:
        assert scores[lang].precision >= 0.8, (lang, scores[lang])
        assert scores[lang].recall >= 0.8, (lang, scores[lang])


def test_precision_and_recall_on_the_held_out_rounds(capsys: pytest.CaptureFixture[str]) -> None:
    # Each round was held out once, then used for development: this guards against
    # regressions, it no longer estimates performance on unseen text (the docs give those).
    scores = measure(load(HOLDOUT), CLASSIFY)
    report("refusal_holdout.jsonl", scores, capsys)
    assert scores[ALL].precision >= 0.9
    assert scores[ALL].recall >= 0.9


@pytest.mark.parametrize(("marker", "path"), [("corpus", CORPUS), ("holdout", HOLDOUT)])
def test_the_docs_publish_the_current_figures(marker: str, path: Path) -> None:
    text = GUIDE.read_text(encoding="utf-8")
    found = re.search(
        rf"<!-- refusal-metrics:{marker} -->\n(.*?)\n<!-- /refusal-metrics:{marker} -->", text, re.S
    )
    assert found, f"{GUIDE.name} lost its {marker} table markers"
    expected = table(measure(load(path), CLASSIFY))
    assert found.group(1).strip() == expected, (
        f"The figures in {GUIDE.name} are stale; regenerate them with "
        "`PYTHONPATH=src python -m tests.analysis.corpus_metrics`"
    )
