"""The library's own job document: what :meth:`JobSpec.from_dict` reads and ``to_dict`` writes.

It mirrors :class:`~beacon_orchestrator.JobSpec` field by field, with durations in seconds; the
tutorial shows one. Unknown fields are problems (with a suggestion for a likely typo), so a
misspelt ``max_concurency`` never silently leaves a job unbounded.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, TypeVar

from attrs import asdict

from .._checks import duplicates, optional_text_problem, prompt_problem
from .._errors import SpecError, SpecProblem
from .._status import MinSuccessRate
from ._documents import (
    INVALID,
    Invalid,
    Problems,
    any_invalid,
    check_document,
    finish,
    id_check,
    is_list,
    optional_mapping,
    region_list,
    region_table,
    take,
    unknown_fields,
)
from ._prompts import declared_regions, read_prompts, read_regions
from ._regions import RegionTable
from ._validate import params_problems, policy_problems, samples_problem
from ._values import LIMIT_RULES, Limits, ModelTarget, Question, SpecFields, limit_problems

if TYPE_CHECKING:
    from ._jobspec import JobSpec

__all__ = ["fields_from_dict", "spec_to_dict"]

_OWN_FIELDS: Final = (
    "id",
    "questions",
    "models",
    "params",
    "limits",
    "policy",
    "metadata",
    "samples",
)
# Regions a document declares and the system prompts it sends (see ``_prompts``).
_PROMPT_FIELDS: Final = ("regions", "system_prompt", "system_prompts")
# The fields of a question and of a model object: the first two are required.
_QUESTION_FIELDS: Final = ("id", "prompt", "category")
_MODEL_FIELDS: Final = ("id", "regions", "name", "provider")
_POLICY_FIELDS: Final = ("min_success_rate", "min_regions", "empty_counts_as_success")

_Entry = TypeVar("_Entry", Question, ModelTarget)
_ReadEntry = Callable[[Mapping[str, Any], str, Any, Problems], _Entry | Invalid]


def fields_from_dict(obj: object, regions: object = None) -> SpecFields:
    """The fields of a JobSpec from a document in the library's own format.

    Args:
        obj: The document, as parsed JSON or YAML.
        regions: The :class:`~beacon_orchestrator.RegionTable` to normalise region names
            with, or ``None`` for the built-in one.

    Raises:
        SpecError: Listing every problem of the document; a document over the bounds of size,
            depth and values (``_bounds``) with those problems alone.
        UsageError: When ``regions`` is not a RegionTable.
    """
    table = region_table(regions)
    if not isinstance(obj, Mapping):
        raise SpecError([SpecProblem("", "expected a job document (an object)", obj)])
    check_document(obj)
    problems: Problems = []
    unknown_fields(obj, (*_OWN_FIELDS, *_PROMPT_FIELDS), "", problems)
    table, display_names = read_regions(obj.get("regions"), table, problems)
    system_prompt, system_prompts = read_prompts(obj, table, problems)
    job_id = take(obj, "id", "", problems, id_check("job id"), required=True)
    questions = _entries(obj, "questions", _QUESTION_FIELDS, _question, problems)
    models = _entries(obj, "models", _MODEL_FIELDS, _model_reader(table), problems)
    params = optional_mapping(obj, "params", "", problems)
    if not isinstance(params, Invalid):
        problems.extend(params_problems(params, "params"))
    limits = _limits(obj.get("limits"), "limits", problems)
    policy = _policy(obj.get("policy"), "policy", problems)
    # Its keys and values were checked with the whole document (check_document).
    metadata = optional_mapping(obj, "metadata", "", problems)
    samples = take(obj, "samples", "", problems, samples_problem, required=False, default=1)
    return finish(
        problems,
        {
            "id": job_id,
            "questions": questions,
            "models": models,
            "params": params,
            "limits": limits,
            "policy": policy,
            "metadata": metadata,
            "system_prompt": system_prompt,
            "system_prompts": system_prompts,
            "display_names": display_names,
            "samples": samples,
        },
    )


def spec_to_dict(spec: JobSpec) -> dict[str, Any]:
    """The library's own format for ``spec``; :func:`fields_from_dict` reads it back equal.

    Nested ``params`` and ``metadata`` are deep copies, so editing the result leaves the spec
    alone.
    """
    questions = [
        _without_nones({"id": q.id, "prompt": q.prompt, "category": q.category})
        for q in spec.questions
    ]
    models = [
        _without_nones(
            {"id": m.id, "regions": list(m.regions), "name": m.name, "provider": m.provider}
        )
        for m in spec.models
    ]
    document: dict[str, Any] = {
        "id": spec.id,
        "questions": questions,
        "models": models,
        "params": copy.deepcopy(dict(spec.params)),
        "limits": asdict(spec.limits),
        "policy": {
            "min_success_rate": spec.policy.rate,
            "min_regions": spec.policy.min_regions,
            "empty_counts_as_success": spec.policy.empty_counts_as_success,
        },
        "metadata": copy.deepcopy(dict(spec.metadata)),
    }
    if spec.samples != 1:
        # Left out at its default, so a job of one sample is stored as it always was.
        document["samples"] = spec.samples
    _write_prompts(spec, document)
    return document


def _write_prompts(spec: JobSpec, document: dict[str, Any]) -> None:
    """Add the regions a document must declare and the system prompts, where there are any."""
    declared = declared_regions(spec.regions, spec.display_names)
    if declared:
        document["regions"] = declared
    if spec.system_prompt is not None:
        document["system_prompt"] = spec.system_prompt
    if spec.system_prompts:
        document["system_prompts"] = dict(spec.system_prompts)


def _without_nones(entry: dict[str, Any]) -> dict[str, Any]:
    # Optional fields left out are written out of the document too, as a user would.
    return {key: value for key, value in entry.items() if value is not None}


# -- questions and models ----------------------------------------------------------------------


def _entries(
    obj: Mapping[str, Any],
    field: str,
    fields: tuple[str, ...],
    read_entry: _ReadEntry[_Entry],
    problems: Problems,
) -> list[_Entry] | Invalid:
    """Read a required, non-empty list of question (or model) objects, each with an id.

    ``fields`` are those an object may have, the first two required; ``read_entry`` reads the
    ones other than the id. Every entry is checked, even after a bad one, so that all problems
    are reported.
    """
    noun = field[:-1]  # "questions" -> "question"
    found = _object_entries(obj, field, (fields[0], fields[1]), problems)
    if isinstance(found, Invalid):
        return INVALID
    objects, ok = found
    out: list[_Entry] = []
    ids: list[tuple[str, Any]] = []
    for path, item in objects:
        unknown_fields(item, fields, path, problems)
        entry_id = take(item, "id", path, problems, id_check(f"{noun} id"), required=True)
        entry = read_entry(item, path, entry_id, problems)
        if not isinstance(entry_id, Invalid):
            ids.append((f"{path}.id", entry_id))
        if isinstance(entry, Invalid):
            ok = False
        else:
            out.append(entry)
    repeated = duplicates(ids, f"{noun} id")
    problems.extend(repeated)
    return out if ok and not repeated else INVALID


def _object_entries(
    obj: Mapping[str, Any], field: str, needs: tuple[str, str], problems: Problems
) -> tuple[list[tuple[str, Mapping[str, Any]]], bool] | Invalid:
    """The object entries of a required, non-empty list, with paths; and whether all were objects.

    Entries that are not objects are reported and left out, so the caller still checks (and
    reports on) all the others.
    """
    noun = field[:-1]
    if field not in obj:
        problems.append(SpecProblem(field, "required field is missing"))
        return INVALID
    raw = obj[field]
    if not is_list(raw):
        expected = f"expected a list of {{{', '.join(needs)}}} {noun} objects"
        problems.append(SpecProblem(field, expected, raw))
        return INVALID
    if not raw:
        problems.append(SpecProblem(field, f"expected at least one {noun}"))
        return INVALID
    entries: list[tuple[str, Mapping[str, Any]]] = []
    for i, item in enumerate(raw):
        path = f"{field}[{i}]"
        if isinstance(item, Mapping):
            entries.append((path, item))
        else:
            expected = f"expected a {noun} object with '{needs[0]}' and '{needs[1]}'"
            problems.append(SpecProblem(path, expected, item))
    return entries, len(entries) == len(raw)


def _question(
    item: Mapping[str, Any], path: str, qid: Any, problems: Problems
) -> Question | Invalid:
    prompt = take(item, "prompt", path, problems, prompt_problem, required=True)
    category = take(item, "category", path, problems, optional_text_problem, required=False)
    if any_invalid(qid, prompt, category):
        return INVALID
    return Question(qid, prompt, category)


def _model_reader(table: RegionTable) -> _ReadEntry[ModelTarget]:
    """Reads the fields of a model object other than its id, resolving regions with ``table``."""

    def model(
        item: Mapping[str, Any], path: str, mid: Any, problems: Problems
    ) -> ModelTarget | Invalid:
        regions: list[str] | Invalid = INVALID
        if "regions" in item:
            where = f"{path}.regions"
            regions = region_list(item["regions"], where, table, problems, allow_empty=False)
        else:
            problems.append(SpecProblem(f"{path}.regions", "required field is missing"))
        name = take(item, "name", path, problems, optional_text_problem, required=False)
        provider = take(item, "provider", path, problems, optional_text_problem, required=False)
        if isinstance(regions, Invalid) or any_invalid(mid, name, provider):
            return INVALID
        return ModelTarget(mid, regions, name, provider)

    return model


# -- limits and policy -------------------------------------------------------------------------


def _limits(raw: Any, path: str, problems: Problems) -> Limits | Invalid:
    section = _section(raw, path, tuple(LIMIT_RULES), "an object of limits", problems)
    if section is None:
        return Limits()
    if isinstance(section, Invalid):
        return INVALID
    values = {name: section[name] for name in LIMIT_RULES if name in section}
    found = limit_problems(values, path)
    if found:
        problems.extend(found)
        return INVALID
    return Limits(**values)


def _policy(raw: Any, path: str, problems: Problems) -> MinSuccessRate | Invalid:
    default = MinSuccessRate()
    section = _section(raw, path, _POLICY_FIELDS, "an object", problems)
    if section is None:
        return default
    if isinstance(section, Invalid):
        return INVALID
    rate = section.get("min_success_rate", default.rate)
    min_regions = section.get("min_regions", default.min_regions)
    empty = section.get("empty_counts_as_success", default.empty_counts_as_success)
    found = policy_problems(rate, min_regions, empty, path, "min_success_rate")
    if found:
        problems.extend(found)
        return INVALID
    return MinSuccessRate(rate=rate, min_regions=min_regions, empty_counts_as_success=empty)


def _section(
    raw: Any, path: str, fields: tuple[str, ...], expected: str, problems: Problems
) -> Mapping[str, Any] | Invalid | None:
    """An optional object of known ``fields``: ``None`` when absent or null."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        problems.append(SpecProblem(path, f"expected {expected}", raw))
        return INVALID
    unknown_fields(raw, fields, path, problems)
    return raw
