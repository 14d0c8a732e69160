"""The parts of a job: its questions, its model targets and its limits.

:class:`Question` and :class:`ModelTarget` check nothing themselves: the
:class:`~beacon_orchestrator.JobSpec` holding them checks them all at once, so that one error
lists every problem with its path. :class:`Limits` checks itself, because it is also passed
on its own to ``run_job``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, NotRequired, TypedDict

from attrs import asdict, field, frozen

from .._checks import NON_NEGATIVE_SECONDS, POSITIVE_INT, POSITIVE_SECONDS, Rule, is_number
from .._errors import SpecError, SpecProblem
from .._status import MinSuccessRate

__all__ = [
    "DEFAULT_ATTEMPT_TIMEOUT",
    "LIMIT_RULES",
    "Limits",
    "ModelTarget",
    "Question",
    "SpecFields",
    "as_tuple",
    "limit_problems",
]


def as_tuple(value: Iterable[Any]) -> Any:
    """``value`` as a tuple; a lone string or a non-iterable is kept as given.

    Validation then reports it by name: ``tuple("us-east")`` would silently become seven
    one-letter regions.
    """
    if isinstance(value, str) or not isinstance(value, Iterable):
        return value
    return tuple(value)


def _regions_tuple(value: Iterable[str]) -> tuple[str, ...]:
    result: tuple[str, ...] = as_tuple(value)
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

    A :class:`~beacon_orchestrator.JobSpec` only holds canonical region names (lower-case
    slugs such as ``eu-west``): one built in code with an alias such as ``"EU"`` is refused,
    and the error names the canonical form. Documents loaded with
    :meth:`~beacon_orchestrator.JobSpec.from_dict`,
    :meth:`~beacon_orchestrator.JobSpec.from_beacon` or
    :func:`~beacon_orchestrator.load_jobspec` are normalised through a
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


DEFAULT_ATTEMPT_TIMEOUT: Final = 600.0
"""Seconds an attempt may take when the job does not say (see :class:`Limits`)."""

_POSITIVE_COST: Final = Rule(lambda v: is_number(v) and v > 0, "expected a positive number")

LIMIT_RULES: Final[Mapping[str, Rule]] = {
    "max_concurrency": POSITIVE_INT.or_none(),
    "per_region": POSITIVE_INT.or_none(),
    "per_endpoint": POSITIVE_INT,
    "attempt_timeout": POSITIVE_SECONDS.or_none(),
    "job_timeout": POSITIVE_SECONDS.or_none(),
    "cancel_grace": NON_NEGATIVE_SECONDS,
    "max_cost": _POSITIVE_COST.or_none(),
    "cold_start_timeout": POSITIVE_SECONDS.or_none(),
}
"""The rule of each field of :class:`Limits`, in the order of its fields."""


def limit_problems(values: Mapping[str, Any], path: str) -> list[SpecProblem]:
    """Every problem with the values of a would-be :class:`Limits` (missing ones are defaults).

    Document loaders use this to report bad limits with their paths before building one.
    """
    return [
        problem
        for name, rule in LIMIT_RULES.items()
        if name in values and (problem := rule.problem(values[name], f"{path}.{name}"))
    ]


@frozen
class Limits:
    """Bounds on a job's work. ``None`` means unbounded.

    An attempt is bounded by default: a server that never answers, or answers a byte at a
    time, would otherwise hold its execution (and its endpoint's slot) for ever.

    Attributes:
        max_concurrency: Executions in flight at once across the whole job.
        per_region: Executions in flight at once in one region.
        per_endpoint: Executions in flight at once on one endpoint (model x region). The
            default 1 matches a GPU container that answers one request at a time.
        attempt_timeout: Seconds one attempt may take before it is interrupted (``TIMEOUT``).
            Default 600: room for a GPU cold start (Beacon's took 3 to 6 minutes) and for a
            few of Modal's 150 s polls; ``None`` lets an attempt run as long as the server
            works.
        job_timeout: Seconds the whole job may take; then it is cancelled and decided.
        cancel_grace: Seconds in-flight executions may go on after cancellation before they
            are interrupted; 0 interrupts them at once.
        max_cost: The job's spending budget, in the cost model's currency (``None``: none).
            No execution starts whose worst-case cost, added to what was spent and the worst
            case of what is in flight, would pass it; once nothing more fits, the job stops
            early and says so (see the "Protect a fleet and a budget" how-to). Needs a
            ``cost_model`` in the run options.
        cold_start_timeout: Seconds an attempt may take while its endpoint has not answered
            yet in this run (a cold start); later attempts get ``attempt_timeout``.
            ``None``: ``attempt_timeout`` throughout.

    Raises:
        SpecError: Listing every bad field, at paths such as ``limits.job_timeout``. Infinity
            is refused: ``None`` already means unbounded.
    """

    max_concurrency: int | None = None
    per_region: int | None = None
    per_endpoint: int = 1
    attempt_timeout: float | None = DEFAULT_ATTEMPT_TIMEOUT
    job_timeout: float | None = None
    cancel_grace: float = 0.0
    max_cost: float | None = None
    cold_start_timeout: float | None = None

    def __attrs_post_init__(self) -> None:
        # One check of every field rather than a validator each, so that one error lists them
        # all, at the paths a job document gives them.
        problems = limit_problems(asdict(self), "limits")
        if problems:
            raise SpecError(problems)


class SpecFields(TypedDict):
    """The keyword arguments of a :class:`~beacon_orchestrator.JobSpec`.

    What a document format reads from a document; the JobSpec built from them checks the rest.
    """

    id: str
    questions: Sequence[Question]
    models: Sequence[ModelTarget]
    params: Mapping[str, Any]
    limits: Limits
    policy: MinSuccessRate
    metadata: Mapping[str, Any]
    system_prompt: NotRequired[str | None]
    system_prompts: NotRequired[Mapping[str, str]]
    display_names: NotRequired[Mapping[str, str]]
    samples: int
