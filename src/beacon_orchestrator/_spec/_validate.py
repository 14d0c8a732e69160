"""What a built :class:`~beacon_orchestrator.JobSpec` must satisfy, field by field.

:func:`spec_problems` is what the JobSpec constructor runs. The checks of its parts
(:func:`params_problems`, :func:`policy_problems`) are used by the document formats too, and
params and metadata are held to the bounds of a document (``_bounds``), so a loaded document and
a spec built in code get the same message for the same mistake.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .._checks import (
    BOOLEAN,
    MAX_ID_CHARS,
    NON_NEGATIVE_INT,
    NON_NEGATIVE_NUMBER,
    POSITIVE_INT,
    RATE,
    SAMPLES,
    bool_hint,
    duplicates,
    id_problem,
    is_int,
    optional_text_problem,
    prompt_problem,
)
from .._errors import SpecProblem
from .._status import MinSuccessRate
from ._bounds import document_problems
from ._regions import BUILTIN_ALIASES, is_region_slug
from ._values import Limits, ModelTarget, Question

if TYPE_CHECKING:
    from ._jobspec import JobSpec

__all__ = [
    "canonical_region_problem",
    "params_problems",
    "policy_problems",
    "samples_problem",
    "spec_problems",
]

_Problems = list[SpecProblem]

# Parameters every executor understands; checked so that ``"max_tokens": "500"`` fails at load
# time rather than as a failed execution on a remote GPU.
_PARAM_RULES = {"temperature": NON_NEGATIVE_NUMBER.or_none(), "max_tokens": POSITIVE_INT.or_none()}


# -- parts shared with the document formats ----------------------------------------------------


def params_problems(params: Mapping[Any, Any], path: str) -> _Problems:
    """Problems with generation parameters: names must be text; known ones are checked."""
    problems = [
        SpecProblem(path, "expected parameter names to be strings", key)
        for key in params
        if not isinstance(key, str)
    ]
    for name, rule in _PARAM_RULES.items():
        _append(problems, rule.problem(params.get(name), f"{path}.{name}"))
    return problems


def policy_problems(
    rate: Any, min_regions: Any, empty: Any, path: str, rate_name: str
) -> _Problems:
    """Problems with the values of a :class:`~beacon_orchestrator.MinSuccessRate`.

    ``rate_name`` is what the rate is called where it is read (``min_success_rate`` in a
    document, ``rate`` on the class).
    """
    problems: _Problems = []
    _append(problems, RATE.problem(rate, f"{path}.{rate_name}"))
    _append(problems, NON_NEGATIVE_INT.problem(min_regions, f"{path}.min_regions"))
    _append(problems, BOOLEAN.problem(empty, f"{path}.empty_counts_as_success"))
    return problems


def canonical_region_problem(region: object, path: str) -> SpecProblem | None:
    """The problem with a region name in a built spec, which must be canonical; or ``None``.

    Aliases are normalised by the loaders, never by the constructor, so a spec built in code
    cannot hold ``EU`` beside another holding ``eu-west``; the message names the canonical form.
    """
    if not isinstance(region, str):
        return SpecProblem(path, f"expected a region name (a string){bool_hint(region)}", region)
    if len(region) > MAX_ID_CHARS:
        return SpecProblem(
            path, f"too long: a region name is at most {MAX_ID_CHARS} characters", region
        )
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


# -- a built spec --------------------------------------------------------------------------------


def spec_problems(spec: JobSpec) -> _Problems:
    """Every problem of a built spec, each with its path (``models[1].regions[0]``)."""
    problems: _Problems = []
    _append(problems, id_problem(spec.id, "id", "job id"))
    _check_entries(spec.questions, "questions", Question, _question_problems, problems)
    _check_entries(spec.models, "models", ModelTarget, _model_problems, problems)
    # Params and metadata hold JSON values of bounded size, as they would in a document; only
    # then are the known params worth checking.
    problems.extend(
        document_problems(spec.params, "params") or params_problems(spec.params, "params")
    )
    # Typed loosely: a spec built in code may hold anything at run time.
    limits: Any = spec.limits
    if not isinstance(limits, Limits):  # a Limits checked its own values when it was built
        problems.append(SpecProblem("limits", "expected a Limits", limits))
    policy: Any = spec.policy
    if isinstance(policy, MinSuccessRate):
        problems.extend(
            policy_problems(
                policy.rate, policy.min_regions, policy.empty_counts_as_success, "policy", "rate"
            )
        )
    else:
        problems.append(SpecProblem("policy", "expected a MinSuccessRate", policy))
    _append(problems, _reachable_regions_problem(spec))
    problems.extend(document_problems(spec.metadata, "metadata"))
    _append(problems, samples_problem(spec.samples, "samples"))
    return problems


def samples_problem(samples: object, path: str) -> SpecProblem | None:
    """The problem with a number of samples per cell (an integer >= 1), or ``None``."""
    return SAMPLES.problem(samples, path)


def _check_entries(
    entries: object,
    field: str,
    kind: type[Question] | type[ModelTarget],
    entry_problems: Callable[[Any, str], _Problems],
    problems: _Problems,
) -> None:
    """Check each of the questions (or models): its type, its id, its own fields; then repeats."""
    noun = field[:-1]  # "questions" -> "question"
    if not isinstance(entries, tuple):
        problems.append(SpecProblem(field, f"expected a sequence of {kind.__name__}", entries))
        return
    if not entries:
        problems.append(SpecProblem(field, f"expected at least one {noun}"))
    ids: list[tuple[str, Any]] = []
    for i, entry in enumerate(entries):
        path = f"{field}[{i}]"
        if not isinstance(entry, kind):
            problems.append(SpecProblem(path, f"expected a {kind.__name__}", entry))
            continue
        _append(problems, id_problem(entry.id, f"{path}.id", f"{noun} id"))
        problems.extend(entry_problems(entry, path))
        ids.append((f"{path}.id", entry.id))
    problems.extend(duplicates(ids, f"{noun} id"))


def _question_problems(question: Question, path: str) -> _Problems:
    return _present(
        prompt_problem(question.prompt, f"{path}.prompt"),
        optional_text_problem(question.category, f"{path}.category"),
    )


def _model_problems(model: ModelTarget, path: str) -> _Problems:
    problems = _present(
        optional_text_problem(model.name, f"{path}.name"),
        optional_text_problem(model.provider, f"{path}.provider"),
    )
    regions: Any = model.regions
    where = f"{path}.regions"
    if not isinstance(regions, tuple):
        problems.append(SpecProblem(where, "expected a sequence of region names", regions))
        return problems
    if not regions:
        problems.append(SpecProblem(where, "expected at least one region"))
    valid: list[tuple[str, Any]] = []
    for j, region in enumerate(regions):
        problem = canonical_region_problem(region, f"{where}[{j}]")
        _append(problems, problem)
        if problem is None:
            valid.append((f"{where}[{j}]", region))
    problems.extend(duplicates(valid, "region"))
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
    if not regions or not is_int(policy.min_regions) or policy.min_regions <= len(regions):
        return None
    n = len(regions)
    return SpecProblem(
        "policy.min_regions",
        f"the job runs in {n} region{'s' if n != 1 else ''}, so it could never have successes "
        f"in more; expected at most {n}",
        policy.min_regions,
    )


def _present(*found: SpecProblem | None) -> _Problems:
    return [problem for problem in found if problem is not None]


def _append(problems: _Problems, problem: SpecProblem | None) -> None:
    if problem is not None:
        problems.append(problem)
