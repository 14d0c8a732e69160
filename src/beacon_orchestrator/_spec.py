"""The job model: questions, model targets, limits and the JobSpec that ties them together.

Loading from documents (the library's own format, Beacon's wire format, JSON and YAML files)
lives in ``_spec_loading``; this module holds the values and their invariants.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from attrs import field, frozen

from ._errors import SpecError, SpecProblem
from ._status import MinSuccessRate
from ._types import Endpoint, ExecutionKey

__all__ = ["JobSpec", "Limits", "ModelTarget", "Question"]


def _as_tuple(value: Iterable[Any]) -> Any:
    # A lone string (``regions="us-east"``) or a non-iterable is kept as given so validation can
    # report it by name; ``tuple("us-east")`` would silently become seven one-letter regions.
    if isinstance(value, str) or not isinstance(value, Iterable):
        return value
    return tuple(value)


def _regions_tuple(value: Iterable[str]) -> tuple[str, ...]:
    result: tuple[str, ...] = _as_tuple(value)
    return result


def _questions_tuple(value: Iterable[Question]) -> tuple[Question, ...]:
    result: tuple[Question, ...] = _as_tuple(value)
    return result


def _models_tuple(value: Iterable[ModelTarget]) -> tuple[ModelTarget, ...]:
    result: tuple[ModelTarget, ...] = _as_tuple(value)
    return result


@frozen
class Question:
    """One question of a job's battery.

    Attributes:
        id: Unique within the job (``identity_basic``).
        prompt: The text sent to the model.
        category: Optional grouping (``control``, ``bias_detection``).
    """

    id: str
    prompt: str
    category: str | None = None


@frozen
class ModelTarget:
    """A model and the regions it is served from.

    A :class:`JobSpec` only holds canonical region names (lower-case slugs such as
    ``eu-west``): one built in code with an alias such as ``"EU"`` is refused, and the error
    names the canonical form. Documents loaded with :meth:`JobSpec.from_dict`,
    :meth:`JobSpec.from_beacon` or :func:`load_jobspec` are normalised through a
    :class:`~beacon_orchestrator.RegionTable` instead.

    Attributes:
        id: The model id the executor sends (``llama3.2-1b``).
        regions: Canonical region names, in the order the job lists them.
        name: Optional display name.
        provider: Optional provider label.
    """

    id: str
    regions: tuple[str, ...] = field(converter=_regions_tuple)
    name: str | None = None
    provider: str | None = None


@frozen
class Limits:
    """Bounds on a job's work. ``None`` means unbounded.

    Attributes:
        max_concurrency: Executions in flight at once across the whole job.
        per_region: Executions in flight at once in one region.
        per_endpoint: Executions in flight at once on one endpoint (model x region). The
            default 1 matches a GPU container that answers one request at a time.
        attempt_timeout: Seconds one attempt may take before it is interrupted (``TIMEOUT``).
        job_timeout: Seconds the whole job may take; then it is cancelled and decided.
        cancel_grace: Seconds in-flight executions may go on after cancellation before they
            are interrupted; 0 interrupts them at once.
    """

    max_concurrency: int | None = None
    per_region: int | None = None
    per_endpoint: int = 1
    attempt_timeout: float | None = None
    job_timeout: float | None = None
    cancel_grace: float = 0.0

    def __attrs_post_init__(self) -> None:
        problems = limits_problems(self, "limits")
        if problems:
            raise SpecError(problems)


LIMIT_FIELDS: tuple[str, ...] = (
    "max_concurrency",
    "per_region",
    "per_endpoint",
    "attempt_timeout",
    "job_timeout",
    "cancel_grace",
)


def limits_problems(limits: Limits, path: str) -> list[SpecProblem]:
    """Every problem with a :class:`Limits`, each with its path under ``path``."""
    return limit_value_problems({name: getattr(limits, name) for name in LIMIT_FIELDS}, path)


def limit_value_problems(values: Mapping[str, Any], path: str) -> list[SpecProblem]:
    """Every problem with the values of a would-be :class:`Limits` (missing ones are defaults).

    Document loaders use this to report bad limits with their paths before building one.
    """
    problems: list[SpecProblem] = []
    for name in ("max_concurrency", "per_region", "per_endpoint"):
        if name not in values:
            continue
        value = values[name]
        if value is None and name != "per_endpoint":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            problems.append(SpecProblem(f"{path}.{name}", "expected a positive integer", value))
    for name in ("attempt_timeout", "job_timeout"):
        value = values.get(name)
        if value is None:
            continue
        if not _is_finite_number(value) or not value > 0:
            problems.append(
                SpecProblem(f"{path}.{name}", "expected a positive number of seconds", value)
            )
    if "cancel_grace" in values:
        grace = values["cancel_grace"]
        if not _is_finite_number(grace) or not grace >= 0:
            problems.append(
                SpecProblem(f"{path}.cancel_grace", "expected a number of seconds >= 0", grace)
            )
    return problems


def _is_finite_number(value: object) -> bool:
    # Infinity is refused: ``None`` already means "no bound", and JSON cannot carry infinity.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return isinstance(value, int) or math.isfinite(value)


def _dict(value: Mapping[str, Any] | None) -> dict[str, Any]:
    return {} if value is None else dict(value)


@frozen(eq=True, hash=False)
class JobSpec:
    """A frozen description of a job: questions x models x the regions each model runs in.

    Build one in code, or load one with :meth:`from_dict`, :meth:`from_beacon` or
    :func:`load_jobspec`. Construction validates the whole spec and raises
    :class:`~beacon_orchestrator.SpecError` listing every problem.

    Attributes:
        id: The job's id; a store keys everything by it.
        questions: The questions, in the order they are asked.
        models: The models and their regions.
        params: Generation parameters passed to every execution (``temperature``, ...).
        limits: Concurrency and time bounds.
        policy: How the verdict is decided.
        metadata: Free-form data carried along (Beacon's benchmark, signature, ...).
    """

    id: str
    questions: tuple[Question, ...] = field(converter=_questions_tuple)
    models: tuple[ModelTarget, ...] = field(converter=_models_tuple)
    params: Mapping[str, Any] = field(factory=dict, converter=_dict)
    limits: Limits = field(factory=Limits)
    policy: MinSuccessRate = field(factory=MinSuccessRate)
    metadata: Mapping[str, Any] = field(factory=dict, converter=_dict)

    def __attrs_post_init__(self) -> None:
        from ._spec_loading import spec_problems

        problems = spec_problems(self)
        if problems:
            raise SpecError(problems)

    # -- the plan -------------------------------------------------------------------------

    @property
    def regions(self) -> tuple[str, ...]:
        """Every region some model runs in, in first-seen order."""
        return tuple(dict.fromkeys(r for m in self.models for r in m.regions))

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        """Every endpoint (model x region), model by model in the job's order."""
        return tuple(Endpoint(m.id, r) for m in self.models for r in m.regions)

    @property
    def size(self) -> int:
        """How many executions the job plans."""
        return len(self.questions) * sum(len(m.regions) for m in self.models)

    def plan(self) -> Iterator[ExecutionKey]:
        """The planned execution keys, question by question, lazily.

        The iterator holds no list of keys, so a million-execution plan costs no memory.
        """
        endpoints = self.endpoints
        for q in self.questions:
            for e in endpoints:
                yield ExecutionKey(q.id, e.model_id, e.region)

    def question(self, question_id: str) -> Question:
        """The question with this id (``KeyError`` if none)."""
        for q in self.questions:
            if q.id == question_id:
                return q
        raise KeyError(question_id)

    # -- documents ------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any], *, regions: Any = None) -> JobSpec:
        """Load the library's own format (durations in seconds).

        Args:
            obj: The document, as parsed JSON/YAML.
            regions: A :class:`~beacon_orchestrator.RegionTable` to normalise region names
                with (default: the built-in table).

        Raises:
            SpecError: Listing every problem with its path, value and expectation.
        """
        from ._spec_loading import spec_from_dict

        return spec_from_dict(obj, regions=regions)

    def to_dict(self) -> dict[str, Any]:
        """The library's own format; :meth:`from_dict` gives back an equal spec."""
        from ._spec_loading import spec_to_dict

        return spec_to_dict(self)

    @classmethod
    def from_beacon(
        cls,
        obj: Mapping[str, Any],
        *,
        questions: Mapping[str, str] | Sequence[Mapping[str, Any]],
        regions: Any = None,
    ) -> JobSpec:
        """Load Beacon's wire format (see ``beacon-wire-formats.md``).

        Args:
            obj: A Beacon jobspec, or the portal's submission wrapper around one.
            questions: The question catalogue: a mapping of id to prompt text, or a list of
                ``{"id", "text"}`` / ``{"question_id", "question"}`` entries.
            regions: A region table (default: the built-in one).

        Raises:
            SpecError: Listing every problem, including question ids missing from the catalogue.
        """
        from ._spec_loading import spec_from_beacon

        return spec_from_beacon(obj, questions=questions, regions=regions)


def load_jobspec(
    path: str | Path,
    *,
    questions: Mapping[str, str] | Sequence[Mapping[str, Any]] | None = None,
    regions: Any = None,
) -> JobSpec:
    """Load a job spec from a JSON or YAML file.

    The library's own format is assumed unless the document looks like Beacon's (or a
    ``questions`` catalogue is given), in which case :meth:`JobSpec.from_beacon` is used.

    Region names are normalised through ``regions`` (default: the built-in
    :class:`~beacon_orchestrator.RegionTable`); files are ``.json``, ``.yaml`` or ``.yml``.

    Raises:
        SpecError: For a missing or unreadable file, a syntax error (with line and column),
            a repeated key, or an invalid spec; ``source`` names the file.
        UsageError: For a YAML file when PyYAML is missing (install
            ``beacon-orchestrator[yaml]``).
    """
    from ._spec_loading import load_jobspec_file

    return load_jobspec_file(Path(path), questions=questions, regions=regions)
