"""Loads and compiles the refusal classifier's phrase tables from ``refusal_phrases.toml``.

The tables are data (one TOML file, read once at import) so that a linguist can extend them
without reading the classifier, and so that the patterns stay readable in their own scripts.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from importlib import resources
from types import MappingProxyType
from typing import Any

from attrs import frozen

__all__ = [
    "Phrase",
    "PhraseTables",
    "load_phrase_tables",
    "parse_phrase_tables",
    "scripts",
]

_RESOURCE = "refusal_phrases.toml"
_NEAR_MISS = "near_miss"


@frozen
class PhraseTables:
    """The parsed tables.

    Attributes:
        weights: Weight of each cue class (``strong``, ``firm``, ``soft``, ``hint``).
        cues: ``(language, weight, pattern)`` for every refusal cue, in file order.
        near_misses: ``(language, pattern)`` for every near-miss.
    """

    weights: Mapping[str, float]
    cues: tuple[tuple[str, float, str], ...]
    near_misses: tuple[tuple[str, str], ...]


def parse_phrase_tables(document: str) -> PhraseTables:
    """Parse a phrase-table document (the format of ``refusal_phrases.toml``).

    Raises:
        ValueError: The document is not valid TOML, names a weight it does not define, or has a
            pattern that is not a string.
    """
    data = tomllib.loads(document)
    weights = _weights(data.pop("weights", None))
    cues: list[tuple[str, float, str]] = []
    near_misses: list[tuple[str, str]] = []
    for lang, table in data.items():
        if not isinstance(table, dict) or not table:
            raise ValueError(f"[{lang}]: expected a table of pattern lists, got {table!r}")
        for key, patterns in table.items():
            checked = _patterns(f"{lang}.{key}", patterns)
            if key == _NEAR_MISS:
                near_misses.extend((lang, pattern) for pattern in checked)
            elif key in weights:
                cues.extend((lang, weights[key], pattern) for pattern in checked)
            else:
                known = ", ".join([*weights, _NEAR_MISS])
                raise ValueError(f"{lang}.{key}: unknown cue class; expected one of {known}")
    return PhraseTables(
        weights=MappingProxyType(weights), cues=tuple(cues), near_misses=tuple(near_misses)
    )


def load_phrase_tables() -> PhraseTables:
    """Parse the tables shipped with the package."""
    document = resources.files(__package__).joinpath(_RESOURCE).read_text(encoding="utf-8")
    return parse_phrase_tables(document)


def _weights(raw: Any) -> dict[str, float]:
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"[weights]: expected a table of cue class = weight, got {raw!r}")
    for name, weight in raw.items():
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight <= 1:
            raise ValueError(f"weights.{name}: expected a number in (0, 1], got {weight!r}")
    return {str(name): float(weight) for name, weight in raw.items()}


def _patterns(where: str, raw: Any) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(p, str) and p for p in raw):
        raise ValueError(f"{where}: expected a list of non-empty pattern strings, got {raw!r}")
    return list(raw)


# Scripts, so that a text is only searched for phrases it could contain: an answer in Chinese
# is not scanned for eighty European phrases. A phrase's script is that of its letters.
_SCRIPTS = (
    ("cjk", re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")),
    ("cyrillic", re.compile("[\u0400-\u04ff]")),
    ("latin", re.compile("[a-z\u00c0-\u024f]", re.IGNORECASE)),
)
_ESCAPE = re.compile(r"\\.")
_WORD_BOUNDARY = "\\b"


def scripts(text: str) -> frozenset[str]:
    """The scripts (``cjk``, ``cyrillic``, ``latin``) whose letters occur in ``text``."""
    return frozenset(name for name, letters in _SCRIPTS if letters.search(text))


@frozen
class Phrase:
    r"""One compiled table pattern, with its weight and the script of its letters.

    A pattern's leading ``\b`` is checked here, not by ``re``: with it, ``re`` cannot skip
    ahead to the pattern's first literal and tries the whole pattern at every position, which
    made the tables 20 times slower. (A test checks that a leading ``\b`` always governs the
    whole pattern: no top-level alternation.)
    """

    weight: float
    script: str
    regex: re.Pattern[str]
    word_start: bool

    @classmethod
    def compile(cls, pattern: str, weight: float = 0.0) -> Phrase:
        """Compile a table pattern.

        Its script is that of its letters; Latin words may appear in a pattern of another
        script ("作为 ai", "als ki") without making it Latin, since the pattern still needs
        the other script's letters to match.

        Raises:
            ValueError: The pattern has no letters, or letters of two non-Latin scripts.
        """
        found = scripts(_ESCAPE.sub("", pattern))
        other = found - {"latin"}
        if not found or len(other) > 1:
            raise ValueError(f"{pattern!r}: expected letters of one script, found {sorted(found)}")
        word_start = pattern.startswith(_WORD_BOUNDARY)
        source = pattern[len(_WORD_BOUNDARY) :] if word_start else pattern
        script = next(iter(other)) if other else "latin"
        return cls(weight, script, re.compile(source), word_start)

    def search(self, text: str) -> re.Match[str] | None:
        """The first match that starts a word (if the pattern asked for it)."""
        match = self.regex.search(text)
        while match is not None and self.word_start and not _starts_word(text, match.start()):
            match = self.regex.search(text, match.start() + 1)
        return match

    def blank(self, text: str) -> str:
        """``text`` with every match that starts a word replaced by as many spaces."""
        pieces: list[str] = []
        last = 0
        for match in self.regex.finditer(text):
            if not self.word_start or _starts_word(text, match.start()):
                pieces += (text[last : match.start()], " " * (match.end() - match.start()))
                last = match.end()
        return "".join(pieces) + text[last:] if pieces else text


def _starts_word(text: str, index: int) -> bool:
    # What a leading \b means before a word character: no letter, digit or _ just before.
    return index == 0 or not (text[index - 1].isalnum() or text[index - 1] == "_")
