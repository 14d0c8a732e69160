"""Beacon's wire format: what :meth:`JobSpec.from_beacon` reads.

A Beacon jobspec differs from the library's own document in four ways:

* it may come wrapped in the portal's submission (``{"jobspec": {...}, "target_regions": ...}``),
  whose fields override the jobspec's constraints;
* durations are Go ``time.Duration`` nanoseconds, and 0 (Go's zero value) means "not given";
* models may list no regions and inherit ``constraints.regions``, or be named only in
  ``metadata.models``;
* questions are ids resolved through a catalogue.

Each of the last three has a module of its own: ``_beacon_constraints``, ``_beacon_models`` and
``_beacon_catalogue``.

Whatever the library does not map is kept under ``metadata["beacon"]``, so nothing of the
document is lost.

Beacon's runner sends every question inside its regional system prompt, so a spec read from
Beacon's format has ``system_prompt=BEACON_SYSTEM_PROMPT`` (the adapters send it as Beacon does).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from .._checks import is_int
from .._errors import SpecError, SpecProblem
from ._beacon_catalogue import beacon_questions, read_catalogue
from ._beacon_constraints import apply_wrapper, read_constraints
from ._beacon_models import beacon_models
from ._bounds import document_problems
from ._documents import (
    INVALID,
    Invalid,
    Problems,
    finish,
    id_check,
    join,
    optional_mapping,
    region_table,
    take,
)
from ._prompts import BEACON_SYSTEM_PROMPT
from ._validate import samples_problem
from ._values import SpecFields

__all__ = ["fields_from_beacon", "looks_like_beacon"]

_MAPPED: Final = ("id", "jobspec_id", "questions", "models", "constraints", "metadata", "runs")
_HINT_FIELDS: Final = frozenset(
    {"jobspec", "jobspec_id", "constraints", "benchmark", "signature", "public_key", "wallet_auth"}
)


def looks_like_beacon(doc: object) -> bool:
    """Whether a parsed document is in Beacon's wire format rather than the library's own."""
    if not isinstance(doc, Mapping):
        return False
    if any(key in doc for key in _HINT_FIELDS):
        return True
    questions = doc.get("questions")
    return (
        isinstance(questions, list | tuple)
        and bool(questions)
        and all(isinstance(q, str) for q in questions)
    )


def fields_from_beacon(obj: object, *, questions: object, regions: object = None) -> SpecFields:
    """The fields of a JobSpec from a Beacon jobspec, or the portal's submission around one.

    Args:
        obj: The document, as parsed JSON or YAML.
        questions: The question catalogue (see
            :meth:`~beacon_orchestrator.JobSpec.from_beacon`); ``None`` means none was given,
            and every question id is then a problem.
        regions: The :class:`~beacon_orchestrator.RegionTable` to normalise region names
            with, or ``None`` for the built-in one.

    Raises:
        SpecError: Listing every problem of the document and of the catalogue.
        UsageError: When ``regions`` is not a RegionTable.
    """
    table = region_table(regions)
    _check_documents(obj, questions)
    inner, wrapper, base = _unwrap(obj)
    problems: Problems = []
    job_id = _job_id(inner, base, problems)
    catalogue = read_catalogue(questions, problems)
    question_list = beacon_questions(inner, base, catalogue, problems)
    constraints = read_constraints(inner.get("constraints"), base, table, problems)
    if wrapper is not None:
        apply_wrapper(wrapper, constraints, table, problems)
    metadata = optional_mapping(inner, "metadata", base, problems)
    models, model_extras = beacon_models(
        inner, base, metadata, constraints.regions, table, problems
    )
    if wrapper is not None and not isinstance(models, Invalid):
        constraints.wrapper_defaults(wrapper, {r for m in models for r in m.regions})
    if not isinstance(metadata, Invalid):
        _keep_unmapped(metadata, inner, wrapper, constraints.extras, model_extras)
    samples = _runs(inner, base, problems)
    return finish(
        problems,
        {
            "id": job_id,
            "questions": question_list,
            "models": models,
            "params": {},
            "limits": constraints.limits(),
            "policy": constraints.policy(),
            "metadata": metadata,
            "system_prompt": BEACON_SYSTEM_PROMPT,
            "samples": samples,
        },
    )


def _runs(inner: Mapping[str, Any], base: str, problems: Problems) -> int | Invalid:
    """The samples per cell: Beacon's ``runs``, 1 when missing, null or 0 (Go's zero value)."""
    runs = inner.get("runs")
    if runs is None or (is_int(runs) and runs == 0):
        return 1
    problem = samples_problem(runs, join(base, "runs"))
    if problem is not None:
        problems.append(problem)
        return INVALID
    result: int = runs
    return result


def _check_documents(obj: object, questions: object) -> None:
    """Refuse a jobspec or a catalogue that costs too much to read, before reading either."""
    problems = [*document_problems(obj), *document_problems(questions, "catalogue")]
    if problems:
        raise SpecError(problems)


def _unwrap(obj: object) -> tuple[Mapping[str, Any], Mapping[str, Any] | None, str]:
    """The jobspec, the portal's submission around it (or ``None``), and the jobspec's path."""
    if not isinstance(obj, Mapping):
        raise SpecError([SpecProblem("", "expected a Beacon jobspec (an object)", obj)])
    if "jobspec" not in obj:
        return obj, None, ""
    inner = obj["jobspec"]
    if not isinstance(inner, Mapping):
        raise SpecError([SpecProblem("jobspec", "expected the wrapped jobspec object", inner)])
    return inner, obj, "jobspec"


def _job_id(inner: Mapping[str, Any], base: str, problems: Problems) -> str | Invalid:
    """The job id, from ``id`` or ``jobspec_id`` (which must agree when both are given)."""
    if "id" not in inner and "jobspec_id" not in inner:
        problems.append(
            SpecProblem(join(base, "id"), "required field is missing (or give 'jobspec_id')")
        )
        return INVALID
    check = id_check("job id")
    job_id = take(inner, "id", base, problems, check, required=False)
    other = take(inner, "jobspec_id", base, problems, check, required=False)
    if isinstance(job_id, Invalid) or isinstance(other, Invalid):
        return INVALID
    if job_id is not None and other is not None and job_id != other:
        problems.append(
            SpecProblem(
                join(base, "jobspec_id"), f"differs from id {job_id!r}; give one job id", other
            )
        )
        return INVALID
    result: str = job_id if job_id is not None else other
    return result


def _keep_unmapped(
    metadata: dict[Any, Any],
    inner: Mapping[str, Any],
    wrapper: Mapping[str, Any] | None,
    constraint_extras: dict[str, Any],
    model_extras: dict[str, Any],
) -> None:
    """Keep what the library does not map under ``metadata["beacon"]``."""
    extras = {key: copy.deepcopy(value) for key, value in inner.items() if key not in _MAPPED}
    if constraint_extras:
        extras["constraints"] = constraint_extras
    if model_extras:
        extras["models"] = model_extras
    if wrapper is not None:
        extras["submission"] = {
            key: copy.deepcopy(value) for key, value in wrapper.items() if key != "jobspec"
        }
    if extras:
        existing = metadata.get("beacon")
        metadata["beacon"] = {**existing, **extras} if isinstance(existing, Mapping) else extras
