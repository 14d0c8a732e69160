"""Loading and validating job documents. (Placeholder: being written.)"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._errors import SpecProblem
from ._spec import limits_problems

if TYPE_CHECKING:
    from ._spec import JobSpec


def spec_problems(spec: JobSpec) -> list[SpecProblem]:
    """Structural problems of a constructed spec."""
    problems: list[SpecProblem] = []
    if not spec.questions:
        problems.append(SpecProblem("questions", "expected at least one question"))
    if not spec.models:
        problems.append(SpecProblem("models", "expected at least one model"))
    seen: set[str] = set()
    for i, q in enumerate(spec.questions):
        if q.id in seen:
            problems.append(SpecProblem(f"questions[{i}].id", "duplicate question id", q.id))
        seen.add(q.id)
    seen = set()
    for i, m in enumerate(spec.models):
        if m.id in seen:
            problems.append(SpecProblem(f"models[{i}].id", "duplicate model id", m.id))
        seen.add(m.id)
        if not m.regions:
            problems.append(SpecProblem(f"models[{i}].regions", "expected at least one region"))
    problems.extend(limits_problems(spec.limits, "limits"))
    return problems
