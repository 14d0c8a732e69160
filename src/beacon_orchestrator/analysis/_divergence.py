"""How far the regions' answers to one question, from one model, are apart."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from itertools import combinations, pairwise

from attrs import field, frozen

from .._errors import UsageError
from .._types import ExecutionRecord, ExecutionStatus
from ._labels import Classification, Classifier, Label
from ._refusal import RefusalClassifier
from ._text import CJK, normalize, tokens

__all__ = ["CellDivergence", "compare_regions", "text_divergence"]

# Only the opening of each answer is compared. Two answers that agree on their first 1,000
# words (or CJK characters) are, for ranking regions, the same answer; and the cap bounds the
# work and memory per record whatever the answers' lengths.
_MAX_TOKENS = 1000
# Raw characters read to find those tokens (a token is rarely longer than 8 characters).
_MAX_CHARS = 8 * _MAX_TOKENS

_Terms = frozenset[str]


def _to_classifications(value: object) -> dict[str, Classification]:
    if not isinstance(value, Mapping) or not all(
        isinstance(region, str) and isinstance(c, Classification) for region, c in value.items()
    ):
        raise UsageError(
            "CellDivergence.classifications: expected a mapping of region name to "
            f"Classification, got {value!r}"
        )
    # Sorted by region, so two equal cells compare and print the same.
    return dict(sorted(value.items()))


def _check_divergence(_instance: object, _attribute: object, value: float | None) -> None:
    number: object = value  # typed as object: callers need not respect the annotation
    if number is None:
        return
    if isinstance(number, bool) or not isinstance(number, int | float) or not 0 <= number <= 1:
        raise UsageError(
            f"CellDivergence.text_divergence: expected None or a number in [0, 1], got {value!r}"
        )


@frozen
class CellDivergence:
    """How far apart one question's answers from one model are across regions.

    Attributes:
        question_id: The question.
        model_id: The model.
        classifications: Each region's classification (label, score, evidence), by region
            name. A region whose execution did not complete is ``TECHNICAL_FAILURE``.
        text_divergence: How different the answered regions' texts are, from 0 (the same
            words in the same order) to 1 (nothing in common); ``None`` when fewer than two
            regions answered, so there is nothing to compare (see :func:`text_divergence`).
    """

    question_id: str
    model_id: str
    classifications: Mapping[str, Classification] = field(converter=_to_classifications)
    text_divergence: float | None = field(validator=_check_divergence)

    @property
    def labels(self) -> dict[str, Label]:
        """Each region's label, by region name."""
        return {region: c.label for region, c in self.classifications.items()}

    @property
    def answered_regions(self) -> tuple[str, ...]:
        """Regions whose execution completed (substantive, refusal or empty), sorted."""
        return tuple(region for region, c in self.classifications.items() if c.label.answered)

    @property
    def comparable(self) -> bool:
        """Whether at least two regions answered, so the answers could be compared."""
        return self.text_divergence is not None

    @property
    def label_split(self) -> bool:
        """Whether the regions that answered disagree on the label.

        A refusal or an empty answer in one region and a substantive answer in another, for
        example. Technical failures are not a split: a timeout says something about the
        provider, not about what the model says in that region. They are visible in
        :attr:`labels`.
        """
        return len({c.label for c in self.classifications.values() if c.label.answered}) > 1

    @property
    def score(self) -> float:
        """Rank of the cell, from 0 to 2: 1 for a label split, plus the text divergence.

        Every label split ranks above every cell without one; within each group, the more
        the texts differ, the higher. A cell that is not comparable scores 0.
        """
        return (1.0 if self.label_split else 0.0) + (self.text_divergence or 0.0)


def compare_regions(
    records: Iterable[ExecutionRecord], classifier: Classifier | None = None
) -> list[CellDivergence]:
    """Compare each question's answers across regions, most divergent first.

    Records are grouped by (question, model); each group is one :class:`CellDivergence`,
    whatever the number of its regions. Each record is classified as it is read (with
    ``classifier``, the default :class:`RefusalClassifier` if ``None``); the text divergence is
    computed over the regions that completed, failed regions being labelled
    ``TECHNICAL_FAILURE`` and left out of it. A cell answered in fewer than two regions is
    returned as not comparable (``text_divergence`` ``None``, score 0), after the comparable
    cells of equal score.

    Cost: the records are read once, from any iterable (a generator too); each is classified
    and reduced to its first 1,000 normalised tokens, and the record itself is not kept.
    Memory is therefore that reduced text per record (a few kilobytes at most) plus one result
    per cell; work is linear in the records, plus, for a cell answered in k regions,
    k(k-1)/2 comparisons of at most 1,000 terms each. To hold one question at a time
    instead of a whole job, call it per question and merge the results (sort them by
    :attr:`CellDivergence.score`, highest first).

    Args:
        records: Execution records of one job, one per (question, model, region).
        classifier: Labels each record; every record that did not complete must be labelled
            ``TECHNICAL_FAILURE``, and only those (build it on
            :func:`~beacon_orchestrator.analysis.label_record`).

    Returns:
        One :class:`CellDivergence` per (question, model), highest :attr:`score` first; ties
        by question id, then model id.

    Raises:
        UsageError: ``classifier`` is not a :class:`Classifier`; an item of ``records`` is not
            an :class:`~beacon_orchestrator.ExecutionRecord`; two records share a key; or the
            classifier returned something other than a :class:`Classification`, or a label
            that contradicts the record's status.
    """
    checked = RefusalClassifier() if classifier is None else _check_classifier(classifier)
    cells: dict[tuple[str, str], dict[str, tuple[Classification, str | None]]] = {}
    for record in records:
        if not isinstance(record, ExecutionRecord):
            raise UsageError(
                f"compare_regions: records: expected ExecutionRecord items, got {record!r}"
            )
        key = record.key
        regions = cells.setdefault((key.question_id, key.model_id), {})
        if key.region in regions:
            raise UsageError(
                f"compare_regions: records: two records for {key}; expected one per "
                "(question, model, region), as a store returns for one job"
            )
        completed = record.status is ExecutionStatus.COMPLETED
        reduced = " ".join(_answer_tokens(record.text or "")) if completed else None
        regions[key.region] = (_classify(checked, record), reduced)
    result = [_cell(question, model, regions) for (question, model), regions in cells.items()]
    result.sort(key=lambda c: (-c.score, not c.comparable, c.question_id, c.model_id))
    return result


def text_divergence(texts: Sequence[str]) -> float | None:
    """How far apart answers are: 1 - the mean pairwise Jaccard similarity of their terms.

    Each answer is normalised (NFKC, case folded, quotes and traditional Chinese folded, see
    :class:`RefusalClassifier`), cut to its first 1,000 tokens (words, and CJK characters one
    by one) and turned into its set of *terms*, as a search engine indexes text: each word,
    and each pair of neighbouring characters in a run of Chinese, Japanese or Korean (a lone
    character is a term by itself). Two answers' similarity is the Jaccard index of their
    sets: terms in both over terms in either (two empty answers are identical).

    Why this measure: regions' answers are sampled independently, so even without any
    interference they are worded differently; the measure has to tell a rewording (most
    terms shared) from an answer that says something else. Measured on pairs of answers,
    sets of words grade that well (a near-copy 0.3, a paraphrase 0.7, another stance 0.85,
    a refusal 1), where bigrams of words saturate (a paraphrase already scores 1). Words
    mean nothing in scripts written without spaces, and single characters are too common to
    tell texts apart, so CJK runs are cut into overlapping character bigrams, the usual unit
    for them (it grades Chinese the same way: 0.44, 0.98, 1). Word order does not count:
    this compares what the answers say, not how they phrase it. The Jaccard distance is
    symmetric and a true metric, unlike :meth:`difflib.SequenceMatcher.ratio`, which depends
    on argument order and is quadratic in the worst case; set intersection is linear, so with
    the token cap the cost per pair is bounded.

    Args:
        texts: Two or more answers (raw text).

    Returns:
        A number from 0 (identical shingles) to 1 (none shared), or ``None`` for fewer than
        two texts.
    """
    if len(texts) < 2:
        return None
    return _divergence([_terms(_answer_tokens(text)) for text in texts])


def _check_classifier(classifier: object) -> Classifier:
    if not isinstance(classifier, Classifier):
        raise UsageError(
            "compare_regions: classifier: expected a Classifier (an object with name, version "
            f"and classify(record)), got {classifier!r}"
        )
    return classifier


def _classify(classifier: Classifier, record: ExecutionRecord) -> Classification:
    result: object = classifier.classify(record)
    who = f"classifier {classifier.name!r} (version {classifier.version!r})"
    if not isinstance(result, Classification):
        raise UsageError(f"{who} returned {result!r} for {record.key}; expected a Classification")
    completed = record.status is ExecutionStatus.COMPLETED
    if result.label.answered != completed:
        raise UsageError(
            f"{who} labelled the {record.status.value} record {record.key} "
            f"{result.label.value!r}; expected 'technical_failure' exactly for records that "
            "did not complete (build classify() on label_record())"
        )
    return result


def _answer_tokens(text: str) -> list[str]:
    return tokens(normalize(text[:_MAX_CHARS]), _MAX_TOKENS)


def _terms(tokens: list[str]) -> _Terms:
    """Words, and overlapping bigrams of each run of CJK characters (a lone one as itself)."""
    terms: set[str] = set()
    run: list[str] = []
    for token in [*tokens, ""]:
        if token and CJK.fullmatch(token):
            run.append(token)
            continue
        if len(run) == 1:
            terms.add(run[0])
        terms.update(a + b for a, b in pairwise(run))
        run = []
        if token:
            terms.add(token)
    return frozenset(terms)


def _jaccard(a: _Terms, b: _Terms) -> float:
    if not a and not b:
        return 1.0
    shared = len(a & b)
    return shared / (len(a) + len(b) - shared)


def _divergence(term_sets: list[_Terms]) -> float:
    pairs = list(combinations(term_sets, 2))
    mean = math.fsum(_jaccard(a, b) for a, b in pairs) / len(pairs)
    # fsum of values in [0, 1] divided by their count stays in [0, 1]; clamp the last ulp.
    return min(1.0, max(0.0, 1.0 - mean))


def _cell(
    question: str, model: str, regions: dict[str, tuple[Classification, str | None]]
) -> CellDivergence:
    answered = [reduced for _c, reduced in regions.values() if reduced is not None]
    divergence = (
        _divergence([_terms(reduced.split()) for reduced in answered])
        if len(answered) >= 2
        else None
    )
    return CellDivergence(
        question_id=question,
        model_id=model,
        classifications={region: c for region, (c, _reduced) in regions.items()},
        text_divergence=divergence,
    )
