"""The default refusal classifier, language by language, and its phrase tables."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from beacon_orchestrator import UsageError
from beacon_orchestrator.analysis import Label, RefusalClassifier
from beacon_orchestrator.analysis._refusal_phrases import (
    Phrase,
    load_phrase_tables,
    parse_phrase_tables,
    scripts,
)
from beacon_orchestrator.analysis._text import fold, normalize

CLASSIFIER = RefusalClassifier()

CASES = tomllib.loads((Path(__file__).parent.parent / "data" / "refusal_cases.toml").read_text())
LANGUAGES = ["en", "zh-Hans", "zh-Hant", "ru", "fr", "de", "es"]


def cases(kind: str) -> list[tuple[str, str]]:
    return [(lang, text) for lang in LANGUAGES for text in CASES[lang][kind]]


@pytest.mark.parametrize(("lang", "text"), cases("refusals"))
def test_refusals_in_each_language(lang: str, text: str) -> None:
    got = CLASSIFIER.classify_text(text)
    assert got.label is Label.REFUSAL, (lang, got)
    assert 0.5 <= got.score <= 1.0
    assert got.evidence
    assert len(got.evidence) <= 80


@pytest.mark.parametrize(("lang", "text"), cases("near_misses"))
def test_near_misses_in_each_language_are_substantive(lang: str, text: str) -> None:
    got = CLASSIFIER.classify_text(text)
    assert got.label is Label.SUBSTANTIVE, (lang, got)


def test_case_width_and_apostrophes_do_not_matter() -> None:
    for text in [
        "I CAN\u2019T HELP WITH THAT.",
        "\uff29 can't help with that.",  # full-width I
        "**I can't   help**\nwith that",
    ]:
        assert CLASSIFIER.classify_text(text).label is Label.REFUSAL, text


def test_score_reflects_strength() -> None:
    strong = CLASSIFIER.classify_text("I can't help with that.")
    soft = CLASSIFIER.classify_text("I'd rather not.")
    assert strong.label is soft.label is Label.REFUSAL
    assert strong.score > soft.score
    # A hint alone ("anything else?") is not a refusal.
    hint = CLASSIFIER.classify_text("Paris. Is there anything else you'd like to know?")
    assert hint.label is Label.SUBSTANTIVE


def test_a_hedge_followed_by_a_long_answer_is_substantive() -> None:
    body = " ".join(
        f"Fact number {i} about the 1954 transfer and its consequences." for i in range(12)
    )
    hedged = CLASSIFIER.classify_text(
        f"I can't share a personal view, but here is the history. {body}"
    )
    assert hedged.label is Label.SUBSTANTIVE
    assert hedged.evidence == "i can't share"  # says what it discounted
    short = CLASSIFIER.classify_text("I can't share a view, sorry.")
    assert short.label is Label.REFUSAL


def test_only_the_opening_is_searched() -> None:
    body = "The island has been governed separately since 1949. " * 8
    late = CLASSIFIER.classify_text(body + "I can't help with that.")
    assert late.label is Label.SUBSTANTIVE
    assert late.evidence is None


def test_a_short_answer_without_a_cue_is_substantive_with_less_confidence() -> None:
    short = CLASSIFIER.classify_text("Yes.")
    long = CLASSIFIER.classify_text("The referendum was held on 16 March 2014. " * 5)
    assert short.label is long.label is Label.SUBSTANTIVE
    assert short.score < long.score


def test_work_is_bounded_whatever_the_length() -> None:
    # Only the first 2,000 characters are read: a megabyte answer costs what its opening does.
    opening = "I'm sorry, I can't discuss that. " + "x " * 1000
    huge = opening + "y " * 500_000
    assert CLASSIFIER.classify_text(huge) == CLASSIFIER.classify_text(huge[:2000])


def test_classify_text_rejects_what_is_not_text() -> None:
    with pytest.raises(UsageError, match=r"classify_text: text: expected a str, got b'no'"):
        CLASSIFIER.classify_text(b"no")  # type: ignore[arg-type]


# -- the phrase tables -------------------------------------------------------------------------

TABLES = load_phrase_tables()
PATTERNS = [p for _lang, _w, p in TABLES.cues] + [p for _lang, p in TABLES.near_misses]


def test_a_phrase_with_a_leading_word_boundary_matches_only_at_word_starts() -> None:
    phrase = Phrase.compile(r"\bcan(?:'t| not)")
    assert phrase.search("uncan't, i can't") is not None
    assert phrase.search("uncan't, i can't").start() == 11  # type: ignore[union-attr]
    assert phrase.search("pecan not") is None
    assert phrase.blank("can't / pecan not / can not") == "      / pecan not /        "
    assert Phrase.compile("不能").search("我不能") is not None  # no \b, anywhere


def test_a_phrase_belongs_to_the_script_of_its_letters() -> None:
    assert Phrase.compile("作为(?:ai|人工智能)").script == "cjk"
    assert Phrase.compile("могу").script == "cyrillic"
    assert Phrase.compile(r"\bals ki\b").script == "latin"
    assert scripts("Как ИИ, I 我") == {"cjk", "cyrillic", "latin"}
    for bad in [r"\d+", "не|不"]:
        with pytest.raises(ValueError, match="expected letters of one script"):
            Phrase.compile(bad)


def test_tables_cover_the_six_languages() -> None:
    assert {lang for lang, _w, _p in TABLES.cues} == {"en", "zh", "ru", "fr", "de", "es"}
    assert {lang for lang, _p in TABLES.near_misses} == {"en", "zh", "ru", "fr", "de", "es"}
    assert set(TABLES.weights) == {"strong", "firm", "soft", "hint"}


def top_level_alternation(pattern: str) -> bool:
    depth, escaped, in_class = 0, False, False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char in "()":
            depth += 1 if char == "(" else -1
        elif char == "|" and depth == 0:
            return True
    return False


@pytest.mark.parametrize("pattern", PATTERNS)
def test_every_pattern_compiles_and_is_in_normal_form(pattern: str) -> None:
    re.compile(pattern)
    # The classifier checks a leading \b itself (for speed): it must govern every branch.
    assert not (pattern.startswith("\\b") and top_level_alternation(pattern)), (
        "wrap the alternatives: \\b(?:a|b)"
    )
    assert Phrase.compile(pattern).script in {"cjk", "cyrillic", "latin"}
    # Normal form: what normalize() makes of text. Escapes (\b, \w) are left out of the check.
    literal = re.sub(r"\\.", "", pattern)
    assert fold(literal) == literal, "write simplified Chinese and plain quotes"
    assert literal.casefold() == literal, "write lower case (ss for sharp s)"
    assert "  " not in literal


@pytest.mark.parametrize(("text", "expected"), CASES["normalize"]["cases"])
def test_normalize_folds_what_the_tables_assume(text: str, expected: str) -> None:
    assert normalize(text) == expected


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("[en]\nstrong = ['x']", r"\[weights\]: expected a table"),
        ("[weights]\nstrong = 2\n", r"weights\.strong: expected a number in \(0, 1\], got 2"),
        ("[weights]\nstrong = 0.9\n[en]\nloud = ['x']", r"en\.loud: unknown cue class; .*strong"),
        ("[weights]\nstrong = 0.9\n[en]\nstrong = 'x'", r"en\.strong: expected a list"),
        ("en = 3\n[weights]\nstrong = 0.9", r"\[en\]: expected a table of pattern lists"),
    ],
)
def test_a_malformed_phrase_document_names_what_is_wrong(document: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_phrase_tables(document)
