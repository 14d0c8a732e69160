"""JobSpec: the frozen description of a job, its plan, and the ways to load one.

A JobSpec checks itself when it is built and reads and writes its documents through the format
modules below it (``_own_format`` and ``_beacon_format``), which know the documents and nothing
of this class.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from attrs import field, frozen

from .._errors import SpecError
from .._status import MinSuccessRate
from .._types import Endpoint, ExecutionKey
from ._beacon_format import fields_from_beacon
from ._own_format import fields_from_dict, spec_to_dict
from ._prompts import prompt_fields_problems, render_system_prompt
from ._regions import beacon_place
from ._validate import spec_problems
from ._values import Limits, ModelTarget, Question, as_tuple

__all__ = ["JobSpec"]


def _questions_tuple(value: Iterable[Question]) -> tuple[Question, ...]:
    result: tuple[Question, ...] = as_tuple(value)
    return result


def _models_tuple(value: Iterable[ModelTarget]) -> tuple[ModelTarget, ...]:
    result: tuple[ModelTarget, ...] = as_tuple(value)
    return result


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
        system_prompt: The system prompt every question is sent in (``None``: none), a
            template: ``{place}`` becomes the region's display name, ``{region}`` its name.
            Beacon's runner sends ``BEACON_SYSTEM_PROMPT``.
        system_prompts: Region → the system prompt template for that region, instead of
            ``system_prompt``.
        display_names: Region → the name ``{place}`` gives it (default: ``the US``,
            ``Europe``, ``Asia`` by the region's prefix, as Beacon names them; else the
            region's own name).
        samples: How many times each cell (question x model x region) is executed (Beacon's
            ``runs``); each execution is one sample, numbered from 0 in its key. One sample
            (the default) executes each cell once, with the keys of a job without samples.
    """

    id: str
    questions: tuple[Question, ...] = field(converter=_questions_tuple)
    models: tuple[ModelTarget, ...] = field(converter=_models_tuple)
    params: Mapping[str, Any] = field(factory=dict, converter=_dict)
    limits: Limits = field(factory=Limits)
    policy: MinSuccessRate = field(factory=MinSuccessRate)
    metadata: Mapping[str, Any] = field(factory=dict, converter=_dict)
    samples: int = 1
    system_prompt: str | None = field(default=None, kw_only=True)
    system_prompts: Mapping[str, str] = field(factory=dict, converter=_dict, kw_only=True)
    display_names: Mapping[str, str] = field(factory=dict, converter=_dict, kw_only=True)

    def __attrs_post_init__(self) -> None:
        problems = spec_problems(self) or prompt_fields_problems(
            self.system_prompt, self.system_prompts, self.display_names, self.regions
        )
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
    def cells(self) -> int:
        """How many cells (question x model x region) the job has."""
        return len(self.questions) * sum(len(m.regions) for m in self.models)

    @property
    def size(self) -> int:
        """How many executions the job plans: every sample of every cell."""
        return self.cells * self.samples

    def plan(self) -> Iterator[ExecutionKey]:
        """The planned execution keys, question by question, lazily.

        Within a question, endpoint by endpoint, and each cell's samples in order. The
        iterator holds no list of keys, so a million-execution plan costs no memory.
        """
        endpoints = self.endpoints
        samples = range(self.samples)
        for q in self.questions:
            for e in endpoints:
                for s in samples:
                    yield ExecutionKey(q.id, e.model_id, e.region, s)

    def system_prompt_for(self, region: str) -> str | None:
        """The system prompt sent to ``region``, its placeholders filled; ``None`` for none."""
        template = self.system_prompts.get(region, self.system_prompt)
        if template is None:
            return None
        return render_system_prompt(template, region, self.display_name(region))

    def display_name(self, region: str) -> str:
        """The name ``{place}`` gives ``region`` in a system prompt."""
        return self.display_names.get(region) or beacon_place(region)

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
        return cls(**fields_from_dict(obj, regions))

    def to_dict(self) -> dict[str, Any]:
        """The library's own format; :meth:`from_dict` gives back an equal spec."""
        return spec_to_dict(self)

    @classmethod
    def from_beacon(
        cls,
        obj: Mapping[str, Any],
        *,
        questions: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        regions: Any = None,
    ) -> JobSpec:
        """Load Beacon's wire format: a jobspec as Beacon's runner takes it.

        Durations are in nanoseconds (0 means "not given"), models without regions inherit
        ``constraints.regions``, and question ids are resolved through ``questions``; fields
        the library does not map are kept under ``metadata["beacon"]``.

        Args:
            obj: A Beacon jobspec, or the portal's submission wrapper around one.
            questions: The question catalogue: a mapping of id to prompt text, a list of
                ``{"id", "text"}`` / ``{"question_id", "question"}`` entries, or such entries
                grouped by category as Beacon serves them (``{"categories": {"<category>":
                [...]}}``) or stores them (``{"<category>": [...]}``).
            regions: A region table (default: the built-in one).

        Raises:
            SpecError: Listing every problem, including question ids missing from the catalogue.
        """
        return cls(**fields_from_beacon(obj, questions=questions, regions=regions))
