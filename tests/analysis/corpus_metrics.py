"""Precision and recall of the refusal classifier on the labelled answers in ``tests/data``.

Print the tables the documentation shows (``docs/how-to/plug-in-a-classifier.md``)::

    PYTHONPATH=src python -m tests.analysis.corpus_metrics

``refusal_corpus.jsonl`` is the corpus the classifier is developed against; the held-out file
holds later rounds of answers, each written after the classifier of its day was frozen and
measured once before being used for development (see the documentation for those first
figures).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from attrs import frozen

from beacon_orchestrator.analysis import Classification, Label, RefusalClassifier

DATA = Path(__file__).resolve().parent.parent / "data"
CORPUS = DATA / "refusal_corpus.jsonl"
HOLDOUT = DATA / "refusal_holdout.jsonl"
LANGUAGES = ("en", "zh-Hans", "zh-Hant", "ru", "fr", "de", "es")
ALL = "all"


@frozen
class Answer:
    id: str
    lang: str
    label: Label
    text: str
    hard: bool
    topic: str
    round: int | None = None


@frozen
class Score:
    answers: int
    refusals: int
    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        called = self.true_positives + self.false_positives
        return self.true_positives / called if called else 1.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.refusals if self.refusals else 1.0


def load(path: Path) -> list[Answer]:
    answers = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row: dict[str, Any] = json.loads(line)
        answers.append(
            Answer(
                id=row["id"],
                lang=row["lang"],
                label=Label(row["label"]),
                text=row["text"],
                hard=row["hard"],
                topic=row["topic"],
                round=row.get("round"),
            )
        )
    return answers


def measure(
    answers: Iterable[Answer], classify_text: Callable[[str], Classification]
) -> dict[str, Score]:
    """Score for ``refusal`` over all answers (key ``"all"``) and per language."""
    counts: dict[str, list[int]] = {key: [0, 0, 0, 0, 0] for key in (ALL, *LANGUAGES)}
    for answer in answers:
        called = classify_text(answer.text).label is Label.REFUSAL
        actual = answer.label is Label.REFUSAL
        for key in (ALL, answer.lang):
            row = counts[key]
            row[0] += 1
            row[1] += actual
            row[2] += called and actual
            row[3] += called and not actual
            row[4] += actual and not called
    return {key: Score(*row) for key, row in counts.items() if row[0]}


def table(scores: dict[str, Score]) -> str:
    """A Markdown table: one row per language, then all languages."""
    lines = [
        "| language | answers | refusals | precision | recall |",
        "|---|---:|---:|---:|---:|",
    ]
    for key in (*LANGUAGES, ALL):
        if key in scores:
            s = scores[key]
            name = "**all**" if key == ALL else key
            lines.append(
                f"| {name} | {s.answers} | {s.refusals} | {s.precision:.3f} | {s.recall:.3f} |"
            )
    return "\n".join(lines)


def main() -> None:
    classify_text = RefusalClassifier().classify_text
    print(f"Corpus ({CORPUS.name}):\n")
    print(table(measure(load(CORPUS), classify_text)))
    print(f"\nHeld-out rounds ({HOLDOUT.name}):\n")
    print(table(measure(load(HOLDOUT), classify_text)))


if __name__ == "__main__":
    main()
