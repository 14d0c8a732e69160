"""Loads the refusal classifier's phrase tables from ``refusal_phrases.toml``.

The tables are data (one TOML file, read once at import) so that a linguist can extend them
without reading the classifier, and so that the patterns stay readable in their own scripts.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from importlib import resources
from typing import Any

from attrs import frozen

__all__ = ["PhraseTables", "load_phrase_tables", "parse_phrase_tables"]

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
    return PhraseTables(weights=weights, cues=tuple(cues), near_misses=tuple(near_misses))


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
