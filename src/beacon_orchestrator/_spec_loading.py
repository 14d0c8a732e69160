"""Loading and validating job documents.

Three ways in, one way to fail: the library's own format (:func:`spec_from_dict`, durations in
seconds), Beacon's wire format (:func:`spec_from_beacon`, durations in nanoseconds, question
ids resolved through a catalogue) and files (:func:`load_jobspec_file`, JSON or YAML). Each
collects *every* problem of a document, with its path, the offending value and what was
expected, and raises them together as one :class:`~beacon_orchestrator.SpecError`, so a user
fixes a document in one go instead of one error at a time.

The checks a constructed :class:`~beacon_orchestrator.JobSpec` must pass live here too
(:func:`spec_problems`), written field by field so that a loaded document and a spec built in
code get the same message for the same mistake.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from attrs import define, field

from ._errors import SpecError, SpecProblem, UsageError
from ._regions import BUILTIN_ALIASES, RegionTable, is_region_slug
from ._spec import (
    LIMIT_FIELDS,
    JobSpec,
    Limits,
    ModelTarget,
    Question,
    limit_value_problems,
    limits_problems,
)
from ._status import MinSuccessRate

if TYPE_CHECKING:
    from yaml.nodes import MappingNode

__all__ = [
    "Catalogue",
    "load_jobspec_file",
    "spec_from_beacon",
    "spec_from_dict",
    "spec_problems",
    "spec_to_dict",
]

Catalogue = Mapping[str, str] | Sequence[Mapping[str, Any]]
"""A question catalogue: id to prompt text, or ``{"id", "text"}`` / ``{"question_id",
"question"}`` entries (an optional ``category`` is kept)."""


class _Invalid:
    """Marks a value that failed validation (its problem is already recorded)."""

    def __repr__(self) -> str:
        return "<invalid>"


_INVALID: Final = _Invalid()
_MISSING: Final[Any] = object()

_Problems = list[SpecProblem]
_Check = Callable[[Any, str], SpecProblem | None]

# -- the library's own format ------------------------------------------------------------------

_OWN_FIELDS: Final = ("id", "questions", "models", "params", "limits", "policy", "metadata")
_QUESTION_FIELDS: Final = ("id", "prompt", "category")
_MODEL_FIELDS: Final = ("id", "regions", "name", "provider")
_POLICY_FIELDS: Final = ("min_success_rate", "min_regions", "empty_counts_as_success")

# -- Beacon's wire format ------------------------------------------------------------------------

_BEACON_MAPPED: Final = ("id", "jobspec_id", "questions", "models", "constraints", "metadata")
_CONSTRAINT_FIELDS: Final = ("regions", "min_regions", "min_success_rate", "timeout")
_CONSTRAINT_FIELDS_ALL: Final = (*_CONSTRAINT_FIELDS, "provider_timeout")
_BEACON_MODEL_FIELDS: Final = ("id", "name", "provider", "regions")
_BEACON_HINT_FIELDS: Final = frozenset(
    {"jobspec", "jobspec_id", "constraints", "benchmark", "signature", "public_key", "wallet_auth"}
)
_NS_PER_S: Final = 1_000_000_000
_BEACON_JOB_TIMEOUT_S: Final = 600.0
_BEACON_PROVIDER_TIMEOUT_S: Final = 300.0
_BEACON_MIN_SUCCESS_RATE: Final = 0.67
_BEACON_MIN_REGIONS: Final = 1
_BELOW_A_MILLISECOND_NS: Final = 1_000_000

# Parameters every executor understands; checked so that ``"max_tokens": "500"`` fails at load
# time rather than as a failed execution on a remote GPU.
_KNOWN_PARAMS: Final = ("temperature", "max_tokens")

_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# ==============================================================================================
# Paths and small checks shared by every format
# ==============================================================================================


def _join(path: str, key: object) -> str:
    if isinstance(key, str) and _IDENTIFIER.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{key!r}]"


def _is_list(value: object) -> bool:
    return isinstance(value, list | tuple)


def _is_number(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return isinstance(value, int) or (value == value and abs(value) != float("inf"))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bool_hint(value: object) -> str:
    # YAML 1.1 reads unquoted yes/no/on/off (and the region NO) as booleans.
    return (
        " (quote it: YAML reads unquoted yes/no/on/off as booleans)"
        if isinstance(value, bool)
        else ""
    )


def _id_problem(value: object, path: str, what: str) -> SpecProblem | None:
    if not isinstance(value, str):
        return SpecProblem(
            path, f"expected a {what} (a non-empty string){_bool_hint(value)}", value
        )
    if not value.strip():
        return SpecProblem(path, f"expected a non-empty {what}", value)
    if value != value.strip():
        return SpecProblem(path, f"a {what} must not start or end with white space", value)
    return None


def _prompt_problem(value: object, path: str) -> SpecProblem | None:
    if not isinstance(value, str):
        return SpecProblem(path, "expected the prompt text (a string)", value)
    if not value.strip():
        return SpecProblem(
            path, "expected a non-empty prompt; an endpoint refuses an empty one", value
        )
    return None


def _optional_text_problem(value: object, path: str) -> SpecProblem | None:
    if value is None or isinstance(value, str):
        return None
    return SpecProblem(path, f"expected a string or null{_bool_hint(value)}", value)


def _unknown_fields(
    obj: Mapping[Any, Any], allowed: Sequence[str], path: str, problems: _Problems
) -> None:
    for key in obj:
        if key in allowed:
            continue
        close = (
            difflib.get_close_matches(key, allowed, n=1, cutoff=0.6) if isinstance(key, str) else []
        )
        if close:
            message = f"unknown field; did you mean {close[0]!r}?"
        else:
            message = f"unknown field; expected one of {', '.join(allowed)}"
        problems.append(SpecProblem(_join(path, key), message))


def _take(
    obj: Mapping[Any, Any],
    key: str,
    path: str,
    problems: _Problems,
    check: _Check,
    *,
    required: bool,
    default: Any = None,
) -> Any:
    """The value of ``obj[key]`` if present and valid; ``_INVALID`` after recording a problem."""
    where = _join(path, key)
    if key not in obj:
        if required:
            problems.append(SpecProblem(where, "required field is missing"))
            return _INVALID
        return default
    value = obj[key]
    problem = check(value, where)
    if problem is not None:
        problems.append(problem)
        return _INVALID
    return value


def _duplicates(indexed: Sequence[tuple[str, Any]], what: str, problems: _Problems) -> None:
    """Record each repeated value after its first occurrence; ``indexed`` is (path, value)."""
    first: dict[Any, str] = {}
    for where, value in indexed:
        if not isinstance(value, Hashable):
            continue
        if value in first:
            problems.append(
                SpecProblem(where, f"duplicate {what}; first used at {first[value]}", value)
            )
        else:
            first[value] = where


def _params_problems(params: Mapping[Any, Any], path: str) -> _Problems:
    problems: _Problems = []
    for key in params:
        if not isinstance(key, str):
            problems.append(SpecProblem(path, "expected parameter names to be strings", key))
    temperature = params.get("temperature")
    if temperature is not None and (not _is_number(temperature) or temperature < 0):
        problems.append(
            SpecProblem(_join(path, "temperature"), "expected a number >= 0", temperature)
        )
    max_tokens = params.get("max_tokens")
    if max_tokens is not None and (not _is_int(max_tokens) or max_tokens < 1):
        problems.append(
            SpecProblem(_join(path, "max_tokens"), "expected a positive integer", max_tokens)
        )
    return problems


def _string_keys_problems(value: Mapping[Any, Any], path: str) -> _Problems:
    return [
        SpecProblem(path, "expected an object with string keys", key)
        for key in value
        if not isinstance(key, str)
    ]


def _policy_problems(
    rate: Any, min_regions: Any, empty: Any, path: str, rate_name: str
) -> _Problems:
    problems: _Problems = []
    if not _is_number(rate) or not 0 <= rate <= 1:
        problems.append(
            SpecProblem(_join(path, rate_name), "expected a number between 0 and 1", rate)
        )
    if not _is_int(min_regions) or min_regions < 0:
        problems.append(
            SpecProblem(_join(path, "min_regions"), "expected an integer >= 0", min_regions)
        )
    if not isinstance(empty, bool):
        problems.append(
            SpecProblem(_join(path, "empty_counts_as_success"), "expected true or false", empty)
        )
    return problems


def _canonical_region_problem(region: object, path: str) -> SpecProblem | None:
    if not isinstance(region, str):
        return SpecProblem(path, f"expected a region name (a string){_bool_hint(region)}", region)
    folded = region.lower()
    if folded in BUILTIN_ALIASES:
        return SpecProblem(
            path,
            f"a JobSpec holds canonical region names: use {BUILTIN_ALIASES[folded]!r} "
            f"({region!r} is an alias; JobSpec.from_dict and from_beacon normalise aliases)",
            region,
        )
    if is_region_slug(region):
        return None
    if is_region_slug(folded):
        return SpecProblem(
            path, f"a JobSpec holds canonical region names, in lower case: use {folded!r}", region
        )
    return SpecProblem(
        path,
        "expected a canonical region name: lower-case letters, digits and '-' (such as 'us-east')",
        region,
    )


# ==============================================================================================
# A constructed JobSpec
# ==============================================================================================


def spec_problems(spec: JobSpec) -> list[SpecProblem]:
    """Every problem of a constructed spec, each with its path (``models[1].regions[0]``).

    Region names must be canonical here: aliases are normalised by the loaders, never by the
    constructor, so a spec built in code cannot hold ``EU`` beside another holding ``eu-west``.
    """
    problems: _Problems = []
    _append(problems, _id_problem(spec.id, "id", "job id"))
    _spec_questions(spec.questions, problems)
    _spec_models(spec.models, problems)
    problems.extend(_params_problems(spec.params, "params"))
    # Typed loosely: a spec built in code may hold anything at run time.
    limits: Any = spec.limits
    if isinstance(limits, Limits):
        problems.extend(limits_problems(limits, "limits"))
    else:
        problems.append(SpecProblem("limits", "expected a Limits", limits))
    policy: Any = spec.policy
    if isinstance(policy, MinSuccessRate):
        problems.extend(
            _policy_problems(
                policy.rate, policy.min_regions, policy.empty_counts_as_success, "policy", "rate"
            )
        )
    else:
        problems.append(SpecProblem("policy", "expected a MinSuccessRate", policy))
    _append(problems, _reachable_regions_problem(spec))
    problems.extend(_string_keys_problems(spec.metadata, "metadata"))
    return problems


def _reachable_regions_problem(spec: JobSpec) -> SpecProblem | None:
    """A job that needs successes in more regions than it runs in can never complete."""
    policy: Any = spec.policy
    models: Any = spec.models
    if not isinstance(policy, MinSuccessRate) or not isinstance(models, tuple):
        return None
    regions = {
        r
        for m in models
        if isinstance(m, ModelTarget) and isinstance(m.regions, tuple)
        for r in m.regions
    }
    if not regions or not _is_int(policy.min_regions) or policy.min_regions <= len(regions):
        return None
    n = len(regions)
    return SpecProblem(
        "policy.min_regions",
        f"the job runs in {n} region{'s' if n != 1 else ''}, so it could never have successes "
        f"in more; expected at most {n}",
        policy.min_regions,
    )


def _append(problems: _Problems, problem: SpecProblem | None) -> None:
    if problem is not None:
        problems.append(problem)


def _spec_questions(questions: object, problems: _Problems) -> None:
    if not isinstance(questions, tuple):
        problems.append(SpecProblem("questions", "expected a sequence of Question", questions))
        return
    if not questions:
        problems.append(SpecProblem("questions", "expected at least one question"))
    ids: list[tuple[str, Any]] = []
    for i, q in enumerate(questions):
        path = f"questions[{i}]"
        if not isinstance(q, Question):
            problems.append(SpecProblem(path, "expected a Question", q))
            continue
        _append(problems, _id_problem(q.id, f"{path}.id", "question id"))
        _append(problems, _prompt_problem(q.prompt, f"{path}.prompt"))
        _append(problems, _optional_text_problem(q.category, f"{path}.category"))
        ids.append((f"{path}.id", q.id))
    _duplicates(ids, "question id", problems)


def _spec_models(models: object, problems: _Problems) -> None:
    if not isinstance(models, tuple):
        problems.append(SpecProblem("models", "expected a sequence of ModelTarget", models))
        return
    if not models:
        problems.append(SpecProblem("models", "expected at least one model"))
    ids: list[tuple[str, Any]] = []
    for i, m in enumerate(models):
        path = f"models[{i}]"
        if not isinstance(m, ModelTarget):
            problems.append(SpecProblem(path, "expected a ModelTarget", m))
            continue
        _append(problems, _id_problem(m.id, f"{path}.id", "model id"))
        _append(problems, _optional_text_problem(m.name, f"{path}.name"))
        _append(problems, _optional_text_problem(m.provider, f"{path}.provider"))
        ids.append((f"{path}.id", m.id))
        regions: Any = m.regions
        where = f"{path}.regions"
        if not isinstance(regions, tuple):
            problems.append(SpecProblem(where, "expected a sequence of region names", regions))
            continue
        if not regions:
            problems.append(SpecProblem(where, "expected at least one region"))
        seen: list[tuple[str, Any]] = []
        for j, region in enumerate(regions):
            problem = _canonical_region_problem(region, f"{where}[{j}]")
            _append(problems, problem)
            if problem is None:
                seen.append((f"{where}[{j}]", region))
        _duplicates(seen, "region", problems)
    _duplicates(ids, "model id", problems)


# ==============================================================================================
# Pieces shared by the two document formats
# ==============================================================================================


def _table(regions: object) -> RegionTable:
    if regions is None:
        return RegionTable.default()
    if isinstance(regions, RegionTable):
        return regions
    raise UsageError(f"regions must be a RegionTable or None, got {type(regions).__name__}")


def _region_list(
    raw: Any, path: str, table: RegionTable, problems: _Problems, *, allow_empty: bool
) -> list[str] | _Invalid:
    """Resolve a list of region names through ``table``, reporting repeats after folding."""
    if not _is_list(raw):
        problems.append(SpecProblem(path, "expected a list of region names", raw))
        return _INVALID
    if not raw and not allow_empty:
        problems.append(SpecProblem(path, "expected at least one region"))
        return _INVALID
    resolved: list[str] = []
    first: dict[str, tuple[str, Any]] = {}
    ok = True
    for j, name in enumerate(raw):
        where = f"{path}[{j}]"
        result = table.resolve(name, where)
        if isinstance(result, SpecProblem):
            problems.append(result)
            ok = False
            continue
        if result in first:
            at, given = first[result]
            spelled = f" as {given!r}" if given != name else ""
            problems.append(
                SpecProblem(
                    where,
                    f"duplicate region {result!r}; already listed at {at}{spelled}",
                    name,
                )
            )
            ok = False
            continue
        first[result] = (where, name)
        resolved.append(result)
    return resolved if ok else _INVALID


def _optional_mapping(
    obj: Mapping[Any, Any], key: str, path: str, problems: _Problems
) -> dict[Any, Any] | _Invalid:
    """An optional object field (absent or null means empty), deep-copied from the document."""
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.append(SpecProblem(_join(path, key), "expected an object", value))
        return _INVALID
    return copy.deepcopy(dict(value))


def _build_spec(problems: _Problems, **fields: Any) -> JobSpec | None:
    if problems or any(value is _INVALID for value in fields.values()):
        return None
    try:
        return JobSpec(**fields)
    except SpecError as exc:
        problems.extend(exc.problems)
        return None


def _raise_if(problems: _Problems, spec: JobSpec | None) -> JobSpec:
    if problems or spec is None:
        raise SpecError(problems or [SpecProblem("", "invalid job document")])
    return spec


# ==============================================================================================
# The library's own format
# ==============================================================================================


def spec_from_dict(obj: Mapping[str, Any], regions: RegionTable | None = None) -> JobSpec:
    """Load the library's own format (durations in seconds); see :meth:`JobSpec.from_dict`.

    Raises:
        SpecError: Listing every problem of the document.
    """
    table = _table(regions)
    problems: _Problems = []
    spec = _own(obj, table, problems)
    return _raise_if(problems, spec)


def _own(obj: object, table: RegionTable, problems: _Problems) -> JobSpec | None:
    if not isinstance(obj, Mapping):
        problems.append(SpecProblem("", "expected a job document (an object)", obj))
        return None
    _unknown_fields(obj, _OWN_FIELDS, "", problems)
    job_id = _take(obj, "id", "", problems, lambda v, p: _id_problem(v, p, "job id"), required=True)
    questions = _own_questions(obj, problems)
    models = _own_models(obj, table, problems)
    params = _optional_mapping(obj, "params", "", problems)
    if not isinstance(params, _Invalid):
        problems.extend(_params_problems(params, "params"))
    limits = _own_limits(obj.get("limits"), "limits", problems)
    policy = _own_policy(obj.get("policy"), "policy", problems)
    metadata = _optional_mapping(obj, "metadata", "", problems)
    if not isinstance(metadata, _Invalid):
        problems.extend(_string_keys_problems(metadata, "metadata"))
    return _build_spec(
        problems,
        id=job_id,
        questions=questions,
        models=models,
        params=params,
        limits=limits,
        policy=policy,
        metadata=metadata,
    )


def _object_entries(
    obj: Mapping[str, Any],
    field: str,
    fields: str,
    problems: _Problems,
) -> tuple[list[tuple[str, Mapping[str, Any]]], bool] | _Invalid:
    """The object entries of a required, non-empty list, with paths; and whether all were objects.

    ``fields`` names what each object needs (``"id, prompt"``). Entries that are not objects are
    reported and left out, so the caller still checks (and reports on) all the others.
    """
    noun = field[:-1]  # "questions" -> "question"
    if field not in obj:
        problems.append(SpecProblem(field, "required field is missing"))
        return _INVALID
    raw = obj[field]
    if not _is_list(raw):
        problems.append(SpecProblem(field, f"expected a list of {{{fields}}} {noun} objects", raw))
        return _INVALID
    if not raw:
        problems.append(SpecProblem(field, f"expected at least one {noun}"))
        return _INVALID
    entries: list[tuple[str, Mapping[str, Any]]] = []
    needs = " and ".join(f"'{f.strip()}'" for f in fields.split(","))
    for i, item in enumerate(raw):
        path = f"{field}[{i}]"
        if isinstance(item, Mapping):
            entries.append((path, item))
        else:
            problems.append(SpecProblem(path, f"expected a {noun} object with {needs}", item))
    return entries, len(entries) == len(raw)


def _own_questions(obj: Mapping[str, Any], problems: _Problems) -> list[Question] | _Invalid:
    found = _object_entries(obj, "questions", "id, prompt", problems)
    if isinstance(found, _Invalid):
        return _INVALID
    entries, ok = found
    out: list[Question] = []
    ids: list[tuple[str, Any]] = []
    for path, item in entries:
        _unknown_fields(item, _QUESTION_FIELDS, path, problems)
        qid = _take(
            item,
            "id",
            path,
            problems,
            lambda v, p: _id_problem(v, p, "question id"),
            required=True,
        )
        prompt = _take(item, "prompt", path, problems, _prompt_problem, required=True)
        category = _take(item, "category", path, problems, _optional_text_problem, required=False)
        if not isinstance(qid, _Invalid):
            ids.append((f"{path}.id", qid))
        if _INVALID in (qid, prompt, category):
            ok = False
            continue
        out.append(Question(qid, prompt, category))
    before = len(problems)
    _duplicates(ids, "question id", problems)
    return out if ok and len(problems) == before else _INVALID


def _own_models(
    obj: Mapping[str, Any], table: RegionTable, problems: _Problems
) -> list[ModelTarget] | _Invalid:
    found = _object_entries(obj, "models", "id, regions", problems)
    if isinstance(found, _Invalid):
        return _INVALID
    entries, ok = found
    out: list[ModelTarget] = []
    ids: list[tuple[str, Any]] = []
    for path, item in entries:
        _unknown_fields(item, _MODEL_FIELDS, path, problems)
        mid = _take(
            item, "id", path, problems, lambda v, p: _id_problem(v, p, "model id"), required=True
        )
        if "regions" in item:
            regions = _region_list(
                item["regions"], f"{path}.regions", table, problems, allow_empty=False
            )
        else:
            problems.append(SpecProblem(f"{path}.regions", "required field is missing"))
            regions = _INVALID
        name = _take(item, "name", path, problems, _optional_text_problem, required=False)
        provider = _take(item, "provider", path, problems, _optional_text_problem, required=False)
        if not isinstance(mid, _Invalid):
            ids.append((f"{path}.id", mid))
        if _INVALID in (mid, name, provider) or isinstance(regions, _Invalid):
            ok = False
            continue
        out.append(ModelTarget(mid, regions, name, provider))
    before = len(problems)
    _duplicates(ids, "model id", problems)
    return out if ok and len(problems) == before else _INVALID


def _own_limits(raw: Any, path: str, problems: _Problems) -> Limits | _Invalid:
    if raw is None:
        return Limits()
    if not isinstance(raw, Mapping):
        problems.append(SpecProblem(path, "expected an object of limits", raw))
        return _INVALID
    _unknown_fields(raw, LIMIT_FIELDS, path, problems)
    values = {name: raw[name] for name in LIMIT_FIELDS if name in raw}
    found = limit_value_problems(values, path)
    if found:
        problems.extend(found)
        return _INVALID
    try:
        return Limits(**values)
    except SpecError as exc:  # pragma: no cover - limit_value_problems already checked
        problems.extend(exc.problems)
        return _INVALID


def _own_policy(raw: Any, path: str, problems: _Problems) -> MinSuccessRate | _Invalid:
    if raw is None:
        return MinSuccessRate()
    if not isinstance(raw, Mapping):
        problems.append(SpecProblem(path, "expected an object", raw))
        return _INVALID
    _unknown_fields(raw, _POLICY_FIELDS, path, problems)
    default = MinSuccessRate()
    rate = raw.get("min_success_rate", default.rate)
    min_regions = raw.get("min_regions", default.min_regions)
    empty = raw.get("empty_counts_as_success", default.empty_counts_as_success)
    return _make_policy(rate, min_regions, empty, path, "min_success_rate", problems)


def _make_policy(
    rate: Any, min_regions: Any, empty: Any, path: str, rate_name: str, problems: _Problems
) -> MinSuccessRate | _Invalid:
    found = _policy_problems(rate, min_regions, empty, path, rate_name)
    if found:
        problems.extend(found)
        return _INVALID
    try:
        return MinSuccessRate(rate=rate, min_regions=min_regions, empty_counts_as_success=empty)
    except (TypeError, ValueError) as exc:  # pragma: no cover - _policy_problems already checked
        problems.append(SpecProblem(path, str(exc)))
        return _INVALID


def spec_to_dict(spec: JobSpec) -> dict[str, Any]:
    """The library's own format for ``spec``; :func:`spec_from_dict` gives back an equal spec.

    Nested ``params`` and ``metadata`` are deep copies, so editing the result leaves the spec
    alone.
    """
    questions: list[dict[str, Any]] = []
    for q in spec.questions:
        item: dict[str, Any] = {"id": q.id, "prompt": q.prompt}
        if q.category is not None:
            item["category"] = q.category
        questions.append(item)
    models: list[dict[str, Any]] = []
    for m in spec.models:
        entry: dict[str, Any] = {"id": m.id, "regions": list(m.regions)}
        if m.name is not None:
            entry["name"] = m.name
        if m.provider is not None:
            entry["provider"] = m.provider
        models.append(entry)
    limits = spec.limits
    return {
        "id": spec.id,
        "questions": questions,
        "models": models,
        "params": copy.deepcopy(dict(spec.params)),
        "limits": {name: getattr(limits, name) for name in LIMIT_FIELDS},
        "policy": {
            "min_success_rate": spec.policy.rate,
            "min_regions": spec.policy.min_regions,
            "empty_counts_as_success": spec.policy.empty_counts_as_success,
        },
        "metadata": copy.deepcopy(dict(spec.metadata)),
    }


# ==============================================================================================
# Beacon's wire format
# ==============================================================================================


@define
class _Constraints:
    """Beacon constraints after defaults, ``0 means unset`` and the wrapper's overrides."""

    regions: list[str] | _Invalid | None = None
    min_regions: int | _Invalid = _BEACON_MIN_REGIONS
    rate: float | _Invalid = _BEACON_MIN_SUCCESS_RATE
    job_timeout: float | _Invalid = _BEACON_JOB_TIMEOUT_S
    attempt_timeout: float | _Invalid = _BEACON_PROVIDER_TIMEOUT_S
    extras: dict[str, Any] = field(factory=dict)


def spec_from_beacon(
    obj: Mapping[str, Any],
    *,
    questions: Catalogue | None,
    regions: RegionTable | None = None,
) -> JobSpec:
    """Load Beacon's wire format; see :meth:`JobSpec.from_beacon`.

    ``questions=None`` means no catalogue was given: every question id is then a problem
    (the prompt is never guessed from the id).

    Raises:
        SpecError: Listing every problem of the document and of the catalogue.
    """
    table = _table(regions)
    problems: _Problems = []
    spec = _beacon(obj, questions, table, problems)
    return _raise_if(problems, spec)


def looks_like_beacon(doc: object) -> bool:
    """Whether a parsed document is in Beacon's wire format rather than the library's own."""
    if not isinstance(doc, Mapping):
        return False
    if any(key in doc for key in _BEACON_HINT_FIELDS):
        return True
    questions = doc.get("questions")
    return (
        isinstance(questions, list | tuple)
        and bool(questions)
        and all(isinstance(q, str) for q in questions)
    )


def _beacon(
    obj: object, catalogue_arg: Catalogue | None, table: RegionTable, problems: _Problems
) -> JobSpec | None:
    if not isinstance(obj, Mapping):
        problems.append(SpecProblem("", "expected a Beacon jobspec (an object)", obj))
        return None
    wrapper: Mapping[str, Any] | None = None
    inner: Mapping[str, Any] = obj
    base = ""
    if "jobspec" in obj:
        wrapper, base = obj, "jobspec"
        if not isinstance(obj["jobspec"], Mapping):
            problems.append(
                SpecProblem("jobspec", "expected the wrapped jobspec object", obj["jobspec"])
            )
            return None
        inner = obj["jobspec"]

    job_id = _beacon_id(inner, base, problems)
    catalogue = _catalogue(catalogue_arg, problems)
    questions = _beacon_questions(inner, base, catalogue, problems)
    constraints = _beacon_constraints(
        inner.get("constraints"), _join(base, "constraints"), table, problems
    )
    if wrapper is not None:
        _apply_wrapper(wrapper, constraints, table, problems)
    metadata_path = _join(base, "metadata")
    metadata = _optional_mapping(inner, "metadata", base, problems)
    if not isinstance(metadata, _Invalid):
        problems.extend(_string_keys_problems(metadata, metadata_path))
    models, model_extras = _beacon_models(inner, base, metadata, constraints, table, problems)

    extras: dict[str, Any] = {
        key: copy.deepcopy(value) for key, value in inner.items() if key not in _BEACON_MAPPED
    }
    if constraints.extras:
        extras["constraints"] = constraints.extras
    if model_extras:
        extras["models"] = model_extras
    if wrapper is not None:
        extras["submission"] = {
            key: copy.deepcopy(value) for key, value in wrapper.items() if key != "jobspec"
        }
    if not isinstance(metadata, _Invalid) and extras:
        existing = metadata.get("beacon")
        metadata["beacon"] = {**existing, **extras} if isinstance(existing, Mapping) else extras

    limits: Limits | _Invalid = _INVALID
    if not isinstance(constraints.job_timeout, _Invalid) and not isinstance(
        constraints.attempt_timeout, _Invalid
    ):
        limits = Limits(
            attempt_timeout=constraints.attempt_timeout, job_timeout=constraints.job_timeout
        )
    policy: MinSuccessRate | _Invalid = _INVALID
    if not isinstance(constraints.rate, _Invalid) and not isinstance(
        constraints.min_regions, _Invalid
    ):
        policy = MinSuccessRate(rate=constraints.rate, min_regions=constraints.min_regions)
    return _build_spec(
        problems,
        id=job_id,
        questions=questions,
        models=models,
        limits=limits,
        policy=policy,
        metadata=metadata,
    )


def _beacon_id(inner: Mapping[str, Any], base: str, problems: _Problems) -> str | _Invalid:
    def check(value: Any, path: str) -> SpecProblem | None:
        return _id_problem(value, path, "job id")

    if "id" not in inner and "jobspec_id" not in inner:
        problems.append(
            SpecProblem(_join(base, "id"), "required field is missing (or give 'jobspec_id')")
        )
        return _INVALID
    job_id = _take(inner, "id", base, problems, check, required=False)
    other = _take(inner, "jobspec_id", base, problems, check, required=False)
    if isinstance(job_id, _Invalid) or isinstance(other, _Invalid):
        return _INVALID
    if job_id is not None and other is not None and job_id != other:
        problems.append(
            SpecProblem(
                _join(base, "jobspec_id"), f"differs from id {job_id!r}; give one job id", other
            )
        )
        return _INVALID
    result: str = job_id if job_id is not None else other
    return result


_CatalogueEntries = dict[str, tuple[str, str | None]]


def _catalogue(arg: object, problems: _Problems) -> _CatalogueEntries | _Invalid | None:
    """The catalogue as id -> (prompt, category); ``None`` when none was given."""
    if arg is None:
        return None
    path = "catalogue"
    entries: _CatalogueEntries = {}
    ok = True
    if isinstance(arg, Mapping):
        for key, text in arg.items():
            where = _join(path, key)
            problem = _id_problem(key, where, "question id") or _prompt_problem(text, where)
            if problem is not None:
                problems.append(problem)
                ok = False
                continue
            entries[key] = (text, None)
        return entries if ok else _INVALID
    if not isinstance(arg, list | tuple):
        problems.append(
            SpecProblem(
                path,
                "expected a mapping of question id to text, or a list of {id, text} or "
                "{question_id, question} entries",
                arg,
            )
        )
        return _INVALID
    first_at: dict[str, str] = {}
    for i, entry in enumerate(arg):
        where = f"{path}[{i}]"
        if not isinstance(entry, Mapping):
            problems.append(
                SpecProblem(where, "expected an {id, text} or {question_id, question} entry", entry)
            )
            ok = False
            continue
        qid = _one_of(entry, ("id", "question_id"), where, problems)
        text = _one_of(entry, ("text", "question"), where, problems)
        if isinstance(qid, _Invalid) or isinstance(text, _Invalid):
            ok = False
            continue
        id_path, text_path = qid[0], text[0]
        found = _id_problem(qid[1], id_path, "question id") or _prompt_problem(text[1], text_path)
        category = entry.get("category")
        found = found or _optional_text_problem(category, _join(where, "category"))
        if found is not None:
            problems.append(found)
            ok = False
            continue
        if qid[1] in entries and entries[qid[1]][0] != text[1]:
            problems.append(
                SpecProblem(
                    id_path,
                    f"question id already in the catalogue at {first_at[qid[1]]} with "
                    "different text",
                    qid[1],
                )
            )
            ok = False
            continue
        first_at.setdefault(qid[1], where)
        entries[qid[1]] = (text[1], category)
    return entries if ok else _INVALID


def _one_of(
    entry: Mapping[str, Any], keys: tuple[str, str], path: str, problems: _Problems
) -> tuple[str, Any] | _Invalid:
    """The (path, value) of whichever of two synonymous keys an entry uses."""
    present = [key for key in keys if key in entry]
    if not present:
        problems.append(
            SpecProblem(path, f"expected a {keys[0]!r} or {keys[1]!r} field", dict(entry))
        )
        return _INVALID
    if len(present) == 2 and entry[keys[0]] != entry[keys[1]]:
        problems.append(
            SpecProblem(
                _join(path, keys[1]),
                f"disagrees with {keys[0]!r} {entry[keys[0]]!r}; give one",
                entry[keys[1]],
            )
        )
        return _INVALID
    return _join(path, present[0]), entry[present[0]]


def _beacon_questions(
    inner: Mapping[str, Any],
    base: str,
    catalogue: _CatalogueEntries | _Invalid | None,
    problems: _Problems,
) -> list[Question] | _Invalid:
    path = _join(base, "questions")
    if "questions" not in inner:
        problems.append(SpecProblem(path, "required field is missing"))
        return _INVALID
    raw = inner["questions"]
    if not _is_list(raw):
        problems.append(SpecProblem(path, "expected a list of question ids", raw))
        return _INVALID
    if not raw:
        problems.append(SpecProblem(path, "expected at least one question id"))
        return _INVALID
    if catalogue is None:
        problems.append(
            SpecProblem(
                path,
                "a Beacon jobspec lists question ids only; give the question catalogue "
                "(questions=...) for their prompts",
            )
        )
        return _INVALID
    out: list[Question] = []
    ids: list[tuple[str, Any]] = []
    ok = True
    for i, qid in enumerate(raw):
        where = f"{path}[{i}]"
        problem = _id_problem(qid, where, "question id")
        if problem is not None:
            problems.append(problem)
            ok = False
            continue
        ids.append((where, qid))
        if isinstance(catalogue, _Invalid):
            continue  # the catalogue's own problems are reported; lookups would only add noise
        if qid not in catalogue:
            close = difflib.get_close_matches(qid, list(catalogue), n=1, cutoff=0.8)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(
                SpecProblem(
                    where,
                    f"question id not in the catalogue ({len(catalogue)} entries); its prompt "
                    f"is never guessed from the id{hint}",
                    qid,
                )
            )
            ok = False
            continue
        text, category = catalogue[qid]
        out.append(Question(qid, text, category))
    before = len(problems)
    _duplicates(ids, "question id", problems)
    if isinstance(catalogue, _Invalid):
        return _INVALID
    return out if ok and len(problems) == before else _INVALID


def _beacon_constraints(
    raw: Any, path: str, table: RegionTable, problems: _Problems
) -> _Constraints:
    result = _Constraints()
    if raw is None:
        return result
    if not isinstance(raw, Mapping):
        problems.append(SpecProblem(path, "expected an object of constraints", raw))
        result.regions = _INVALID
        return result
    result.extras = {
        key: copy.deepcopy(value) for key, value in raw.items() if key not in _CONSTRAINT_FIELDS_ALL
    }
    if raw.get("regions") is not None:
        result.regions = _region_list(
            raw["regions"], _join(path, "regions"), table, problems, allow_empty=True
        )
    min_regions = _beacon_min_regions(raw.get("min_regions"), _join(path, "min_regions"), problems)
    if min_regions is not None:
        result.min_regions = min_regions
    rate = _beacon_rate(raw.get("min_success_rate"), _join(path, "min_success_rate"), problems)
    if rate is not None:
        result.rate = rate
    job = _nanoseconds(raw.get("timeout"), _join(path, "timeout"), problems)
    if job is not None:
        result.job_timeout = job
    attempt = _nanoseconds(raw.get("provider_timeout"), _join(path, "provider_timeout"), problems)
    if attempt is not None:
        result.attempt_timeout = attempt
    return result


def _beacon_min_regions(value: Any, path: str, problems: _Problems) -> int | _Invalid | None:
    """``None`` when unset (absent, null or Go's zero value 0)."""
    if value is None or (_is_int(value) and value == 0):
        return None
    if not _is_int(value) or value < 0:
        problems.append(SpecProblem(path, "expected an integer >= 0", value))
        return _INVALID
    result: int = value
    return result


def _beacon_rate(value: Any, path: str, problems: _Problems) -> float | _Invalid | None:
    """``None`` when unset (absent, null, or 0, which Beacon uses for "not given")."""
    if value is None or (_is_number(value) and value == 0):
        return None
    if not _is_number(value) or not 0 <= value <= 1:
        problems.append(SpecProblem(path, "expected a number between 0 and 1", value))
        return _INVALID
    return float(value)


def _nanoseconds(value: Any, path: str, problems: _Problems) -> float | _Invalid | None:
    """Seconds from Go ``time.Duration`` nanoseconds; ``None`` when unset (absent, null, 0)."""
    if value is None or (_is_int(value) and value == 0):
        return None
    if not _is_int(value):
        problems.append(
            SpecProblem(
                path,
                "expected a whole number of nanoseconds (600000000000 is 10 minutes)",
                value,
            )
        )
        return _INVALID
    if value < 0:
        problems.append(SpecProblem(path, "expected a positive duration in nanoseconds", value))
        return _INVALID
    if value < _BELOW_A_MILLISECOND_NS:
        # Almost certainly seconds written where Beacon expects nanoseconds; a sub-millisecond
        # timeout would fail every execution.
        problems.append(
            SpecProblem(
                path,
                f"{value} ns is under a millisecond; durations are in nanoseconds "
                f"({value} s would be {value * _NS_PER_S})",
                value,
            )
        )
        return _INVALID
    seconds: float = value / _NS_PER_S
    return seconds


def _apply_wrapper(
    wrapper: Mapping[str, Any], constraints: _Constraints, table: RegionTable, problems: _Problems
) -> None:
    target = wrapper.get("target_regions")
    if target is not None and not (_is_list(target) and not target):
        constraints.regions = _region_list(
            target, "target_regions", table, problems, allow_empty=True
        )
    min_regions = _beacon_min_regions(wrapper.get("min_regions"), "min_regions", problems)
    if min_regions is not None:
        constraints.min_regions = min_regions
    rate = _beacon_rate(wrapper.get("min_success_rate"), "min_success_rate", problems)
    if rate is not None:
        constraints.rate = rate


def _beacon_models(
    inner: Mapping[str, Any],
    base: str,
    metadata: dict[Any, Any] | _Invalid,
    constraints: _Constraints,
    table: RegionTable,
    problems: _Problems,
) -> tuple[list[ModelTarget] | _Invalid, dict[str, Any]]:
    path = _join(base, "models")
    raw = inner.get("models")
    # (path of the entry, id, name, provider, regions or None to inherit constraints.regions)
    entries: list[tuple[str, Any, Any, Any, list[str] | _Invalid | None]] = []
    extras: dict[str, Any] = {}
    ok = True
    if raw is not None and not _is_list(raw):
        problems.append(SpecProblem(path, "expected a list of models", raw))
        return _INVALID, extras
    if raw:
        for i, entry in enumerate(raw):
            where = f"{path}[{i}]"
            if isinstance(entry, str):
                entry = {"id": entry}
            if not isinstance(entry, Mapping):
                problems.append(
                    SpecProblem(
                        where, "expected a model object {id, name, provider, regions}", entry
                    )
                )
                ok = False
                continue
            mid, name, provider = _model_fields(entry, where, problems)
            regions_raw = entry.get("regions")
            regions: list[str] | _Invalid | None = None
            if regions_raw is not None and not (_is_list(regions_raw) and not regions_raw):
                regions = _region_list(
                    regions_raw, f"{where}.regions", table, problems, allow_empty=True
                )
            unknown = {
                k: copy.deepcopy(v) for k, v in entry.items() if k not in _BEACON_MODEL_FIELDS
            }
            if unknown and isinstance(mid, str):
                extras[mid] = unknown
            entries.append((where, mid, name, provider, regions))
    else:
        if isinstance(metadata, _Invalid):
            return _INVALID, extras
        listed = metadata.get("models")
        meta_path = f"{_join(base, 'metadata')}.models"
        if listed is None or (_is_list(listed) and not listed):
            problems.append(
                SpecProblem(
                    path,
                    "expected at least one model: 'models' is empty and metadata.models names none",
                )
            )
            return _INVALID, extras
        if not _is_list(listed):
            problems.append(
                SpecProblem(meta_path, "expected a list of model ids or {id, name} objects", listed)
            )
            return _INVALID, extras
        for j, entry in enumerate(listed):
            where = f"{meta_path}[{j}]"
            if isinstance(entry, str):
                entry = {"id": entry}
            if not isinstance(entry, Mapping):
                problems.append(
                    SpecProblem(where, "expected a model id or an {id, name} object", entry)
                )
                ok = False
                continue
            mid, name, provider = _model_fields(entry, where, problems)
            entries.append((where, mid, name, provider, None))

    out: list[ModelTarget] = []
    for where, mid, name, provider, regions in entries:
        if regions is None:
            regions = constraints.regions
            if regions is None or (isinstance(regions, list) and not regions):
                problems.append(
                    SpecProblem(
                        f"{where}.regions",
                        "expected at least one region: the model lists none and "
                        "constraints.regions (or target_regions) is empty",
                    )
                )
                regions = _INVALID
        if _INVALID in (mid, name, provider) or isinstance(regions, _Invalid):
            ok = False
            continue
        out.append(ModelTarget(mid, regions, name, provider))
    before = len(problems)
    _duplicates(
        [(f"{where}.id", mid) for where, mid, *_ in entries if not isinstance(mid, _Invalid)],
        "model id",
        problems,
    )
    return (out if ok and len(problems) == before else _INVALID), extras


def _model_fields(
    entry: Mapping[str, Any], where: str, problems: _Problems
) -> tuple[Any, Any, Any]:
    mid = _take(
        entry, "id", where, problems, lambda v, p: _id_problem(v, p, "model id"), required=True
    )
    name = _take(entry, "name", where, problems, _optional_text_problem, required=False)
    provider = _take(entry, "provider", where, problems, _optional_text_problem, required=False)
    return mid, name, provider


# ==============================================================================================
# Files
# ==============================================================================================


def load_jobspec_file(
    path: Path,
    questions: Catalogue | None = None,
    regions: RegionTable | None = None,
) -> JobSpec:
    """Load a JSON or YAML job file; see :func:`~beacon_orchestrator.load_jobspec`.

    Raises:
        SpecError: For a missing or unreadable file, a syntax error (with line and column),
            duplicate keys, or an invalid document; ``source`` names the file.
        UsageError: For a YAML file when PyYAML is not installed.
    """
    source = str(path)
    text = _read_text(path, source)
    suffix = path.suffix.lower()
    if suffix == ".json":
        doc, problems = _parse_json(text, source)
    elif suffix in (".yaml", ".yml"):
        doc, problems = _parse_yaml(text, source)
    else:
        raise SpecError(
            [SpecProblem("", "unsupported file type; expected .json, .yaml or .yml", path.name)],
            source=source,
        )
    if doc is None:
        problems.append(SpecProblem("", "the file holds no document; expected a job document"))
        raise SpecError(problems, source=source)
    try:
        if questions is not None or looks_like_beacon(doc):
            spec = spec_from_beacon(doc, questions=questions, regions=regions)
        else:
            spec = spec_from_dict(doc, regions=regions)
    except SpecError as exc:
        raise SpecError([*problems, *exc.problems], source=source) from None
    if problems:
        raise SpecError(problems, source=source)
    return spec


def _read_text(path: Path, source: str) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        problem = SpecProblem("", "file not found", source)
    except IsADirectoryError:
        problem = SpecProblem("", "is a directory; expected a job file", source)
    except OSError as exc:
        problem = SpecProblem("", f"cannot read the file ({exc.strerror or exc})", source)
    else:
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            problem = SpecProblem("", f"not UTF-8 text (bad byte at offset {exc.start})")
    raise SpecError([problem], source=source)


def _parse_json(text: str, source: str) -> tuple[Any, _Problems]:
    duplicates: _Problems = []

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        # json keeps the last of repeated keys without a word; a repeated "models" would
        # silently drop half a job.
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                duplicates.append(
                    SpecProblem(
                        "", f"duplicate key {key!r} in one object; only one value can be kept"
                    )
                )
            out[key] = value
        return out

    try:
        doc = json.loads(text, object_pairs_hook=pairs_hook)
    except json.JSONDecodeError as exc:
        raise SpecError(
            [SpecProblem("", f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")],
            source=source,
        ) from None
    return doc, duplicates


def _parse_yaml(text: str, source: str) -> tuple[Any, _Problems]:
    try:
        import yaml
    except ImportError:
        raise UsageError(
            f"{source} is YAML, and reading YAML needs PyYAML: "
            "pip install 'beacon-orchestrator[yaml]'"
        ) from None

    duplicates: _Problems = []

    class Loader(yaml.SafeLoader):
        """Safe loading that reports repeated keys and keeps timestamps as text (as JSON)."""

        def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=deep)
                if isinstance(key, Hashable) and key in seen:
                    mark = key_node.start_mark
                    duplicates.append(
                        SpecProblem(
                            "",
                            f"duplicate key {key!r} at line {mark.line + 1}, column "
                            f"{mark.column + 1}; only one value can be kept",
                        )
                    )
                if isinstance(key, Hashable):
                    seen.add(key)
            return super().construct_mapping(node, deep=deep)

    def timestamp_as_text(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        return loader.construct_scalar(node)  # type: ignore[arg-type]

    Loader.add_constructor("tag:yaml.org,2002:timestamp", timestamp_as_text)

    loader = Loader(text)
    try:
        doc = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = exc.problem or exc.context or "syntax error"
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError([SpecProblem("", f"invalid YAML{where}: {what}")], source=source) from None
    except yaml.YAMLError as exc:
        raise SpecError([SpecProblem("", f"invalid YAML: {exc}")], source=source) from None
    finally:
        loader.dispose()
    return doc, duplicates
