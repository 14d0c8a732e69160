"""Beacon's question catalogue, and the question ids of a Beacon jobspec resolved through it.

A Beacon jobspec lists question ids only; their prompts come from a catalogue given beside it
(``questions=`` in Python, ``--questions`` on the command line). A question id the catalogue
lacks is a problem: the prompt is never guessed from the id (production once sent the literal
id ``identity_basic`` as the prompt).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from .._checks import duplicates, id_problem, optional_text_problem, prompt_problem
from .._errors import SpecProblem
from ._documents import INVALID, Invalid, Problems, is_list, join
from ._values import Question

__all__ = ["CatalogueEntries", "beacon_questions", "read_catalogue"]

CatalogueEntries = dict[str, tuple[str, str | None]]
"""A checked catalogue: question id to (prompt, category)."""

_PATH = "catalogue"


def read_catalogue(arg: object, problems: Problems) -> CatalogueEntries | Invalid | None:
    """The catalogue as id -> (prompt, category); ``None`` when none was given.

    A catalogue maps question ids to prompt text, or lists ``{"id", "text"}`` or
    ``{"question_id", "question"}`` entries (an optional ``category`` is kept), or groups such
    entries by category in either of the shapes Beacon serves and stores: its API's
    ``{"categories": {"<category>": [entries]}}`` and its benchmark's
    ``{"<category>": [entries]}``. A grouped entry's category is its group's.
    """
    if arg is None:
        return None
    if isinstance(arg, Mapping):
        grouped = _grouped(arg)
        if grouped is not None:
            return _from_entries(grouped, problems)
        return _from_mapping(arg, problems)
    if isinstance(arg, list | tuple):
        return _from_entries([(f"{_PATH}[{i}]", raw, None) for i, raw in enumerate(arg)], problems)
    problems.append(
        SpecProblem(
            _PATH,
            "expected a mapping of question id to text, a list of {id, text} or "
            "{question_id, question} entries, or such lists grouped by category",
            arg,
        )
    )
    return INVALID


_Located = list[tuple[str, Any, str | None]]
"""Catalogue entries with their paths and the category of their group (``None``: none)."""


def _grouped(arg: Mapping[Any, Any]) -> _Located | None:
    """The entries of a catalogue grouped by category, or ``None`` if it is not grouped."""
    groups, base = arg, _PATH
    if set(arg) == {"categories"} and isinstance(arg["categories"], Mapping):
        groups, base = arg["categories"], join(_PATH, "categories")
    if not groups or not all(is_list(v) for v in groups.values()):
        return None
    return [
        (f"{join(base, category)}[{i}]", raw, str(category))
        for category, entries in groups.items()
        for i, raw in enumerate(entries)
    ]


def _from_mapping(arg: Mapping[Any, Any], problems: Problems) -> CatalogueEntries | Invalid:
    entries: CatalogueEntries = {}
    before = len(problems)
    for key, text in arg.items():
        where = join(_PATH, key)
        problem = id_problem(key, where, "question id") or prompt_problem(text, where)
        if problem is not None:
            problems.append(problem)
        else:
            entries[key] = (text, None)
    return entries if len(problems) == before else INVALID


def _from_entries(located: _Located, problems: Problems) -> CatalogueEntries | Invalid:
    entries: CatalogueEntries = {}
    first_at: dict[str, str] = {}
    before = len(problems)
    for where, raw, group in located:
        entry = _entry(raw, where, problems, group)
        if isinstance(entry, Invalid):
            continue
        id_path, qid, text, category = entry
        if qid in entries and entries[qid][0] != text:
            problems.append(
                SpecProblem(
                    id_path,
                    f"question id already in the catalogue at {first_at[qid]} with different text",
                    qid,
                )
            )
            continue
        first_at.setdefault(qid, where)
        entries[qid] = (text, category)
    return entries if len(problems) == before else INVALID


def _entry(
    raw: Any, where: str, problems: Problems, group: str | None = None
) -> tuple[str, str, str, Any] | Invalid:
    """One list entry of a catalogue as (path of its id, id, prompt, category)."""
    if not isinstance(raw, Mapping):
        problems.append(
            SpecProblem(where, "expected an {id, text} or {question_id, question} entry", raw)
        )
        return INVALID
    qid = _one_of(raw, ("id", "question_id"), where, problems)
    text = _one_of(raw, ("text", "question"), where, problems)
    if isinstance(qid, Invalid) or isinstance(text, Invalid):
        return INVALID
    category = raw.get("category", group)
    problem = (
        id_problem(qid[1], qid[0], "question id")
        or prompt_problem(text[1], text[0])
        or optional_text_problem(category, join(where, "category"))
    )
    if problem is not None:
        problems.append(problem)
        return INVALID
    return qid[0], qid[1], text[1], category


def _one_of(
    entry: Mapping[str, Any], keys: tuple[str, str], path: str, problems: Problems
) -> tuple[str, Any] | Invalid:
    """The (path, value) of whichever of two synonymous keys an entry uses."""
    present = [key for key in keys if key in entry]
    if not present:
        problems.append(
            SpecProblem(path, f"expected a {keys[0]!r} or {keys[1]!r} field", dict(entry))
        )
        return INVALID
    if len(present) == 2 and entry[keys[0]] != entry[keys[1]]:
        problems.append(
            SpecProblem(
                join(path, keys[1]),
                f"disagrees with {keys[0]!r} {entry[keys[0]]!r}; give one",
                entry[keys[1]],
            )
        )
        return INVALID
    return join(path, present[0]), entry[present[0]]


# -- the jobspec's question ids ------------------------------------------------------------------


def beacon_questions(
    inner: Mapping[str, Any],
    base: str,
    catalogue: CatalogueEntries | Invalid | None,
    problems: Problems,
) -> list[Question] | Invalid:
    """The questions of a Beacon jobspec: its question ids, with prompts from the catalogue."""
    path = join(base, "questions")
    raw = _question_ids(inner, path, problems, have_catalogue=catalogue is not None)
    if isinstance(raw, Invalid):
        return INVALID
    out: list[Question] = []
    ids: list[tuple[str, Any]] = []
    before = len(problems)
    for i, qid in enumerate(raw):
        where = f"{path}[{i}]"
        problem = id_problem(qid, where, "question id")
        if problem is not None:
            problems.append(problem)
            continue
        ids.append((where, qid))
        # With a bad catalogue, its own problems are reported; lookups would only add noise.
        if isinstance(catalogue, dict):
            question = _look_up(qid, where, catalogue, problems)
            if question is not None:
                out.append(question)
    problems.extend(duplicates(ids, "question id"))
    if isinstance(catalogue, Invalid) or len(problems) != before:
        return INVALID
    return out


def _question_ids(
    inner: Mapping[str, Any], path: str, problems: Problems, *, have_catalogue: bool
) -> list[Any] | Invalid:
    """The jobspec's non-empty list of question ids, when there is a catalogue to resolve them."""
    if "questions" not in inner:
        problems.append(SpecProblem(path, "required field is missing"))
        return INVALID
    raw = inner["questions"]
    if not is_list(raw):
        problems.append(SpecProblem(path, "expected a list of question ids", raw))
        return INVALID
    if not raw:
        problems.append(SpecProblem(path, "expected at least one question id"))
        return INVALID
    if not have_catalogue:
        problems.append(
            SpecProblem(
                path,
                "a Beacon jobspec lists question ids only; give the question catalogue "
                "(questions=... in Python, --questions on the command line) for their prompts",
            )
        )
        return INVALID
    return list(raw)


def _look_up(
    qid: str, where: str, catalogue: CatalogueEntries, problems: Problems
) -> Question | None:
    if qid in catalogue:
        text, category = catalogue[qid]
        return Question(qid, text, category)
    close = difflib.get_close_matches(qid, list(catalogue), n=1, cutoff=0.8)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    problems.append(
        SpecProblem(
            where,
            f"question id not in the catalogue ({len(catalogue)} entries); its prompt is never "
            f"guessed from the id{hint}",
            qid,
        )
    )
    return None
