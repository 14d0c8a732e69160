"""The spending budget (``Limits.max_cost``): what was spent, what is in flight, what fits.

Plain synchronous code. Every execution in flight holds its endpoint's worst-case cost in
reserve from its start until its record has its actual cost; an execution starts only if its
worst case fits beside what was spent and what is reserved. So the spend of a run never passes
the budget, in-flight executions included, as long as the cost model's prices are what the
provider charges (a provider's own estimate, trusted by the cost model, is counted as it comes).

The worst case of an execution on an endpoint (see :meth:`CostModel.worst_case`): every attempt
the retry policy allows is sent, each runs until its timeout (the cold-start timeout for the
first one when set), and each generates ``max_tokens`` tokens for the job's longest prompt.
"""

from __future__ import annotations

import math

from .._checks import is_int
from .._cost import CostModel
from .._errors import UsageError
from .._spec import JobSpec, Limits
from .._types import Endpoint
from ._plan import EndpointState

__all__ = ["Budget", "worst_case_seconds"]


def worst_case_seconds(limits: Limits, attempts: int) -> float | None:
    """The most seconds an execution's attempts may take together (``None``: no bound)."""
    timeout = limits.attempt_timeout
    first = limits.cold_start_timeout or timeout
    bound: float | None = None
    if timeout is not None and first is not None:
        bound = first + timeout * (attempts - 1)
    if limits.job_timeout is not None:
        # Nothing runs past the job's deadline plus the grace.
        job = limits.job_timeout + limits.cancel_grace
        bound = job if bound is None else min(bound, job)
    return bound


class Budget:
    """What a run may still spend.

    Args:
        max_cost: The budget.
        worst: Each endpoint's worst-case cost of one execution.
        spent: What the records kept from an earlier run cost.
    """

    __slots__ = ("max_cost", "reserved", "spent", "worst")

    def __init__(
        self, max_cost: float, worst: dict[EndpointState, float], spent: float = 0.0
    ) -> None:
        self.max_cost = max_cost
        self.worst = worst
        self.spent = spent
        self.reserved = 0.0

    @classmethod
    def for_run(
        cls,
        spec: JobSpec,
        limits: Limits,
        model: CostModel | None,
        *,
        endpoints: list[EndpointState],
        attempts: int,
    ) -> Budget | None:
        """The budget of a run, or ``None`` when the job has none.

        Args:
            spec: The job (its prompts and ``max_tokens`` bound the tokens).
            limits: The run's limits (``max_cost`` and the timeouts).
            model: The run's cost model.
            endpoints: The job's endpoints.
            attempts: The most attempts an execution may send.

        Raises:
            UsageError: The job has a budget but the run no cost model, or the cost model
                charges seconds and nothing bounds an execution's time.
        """
        if limits.max_cost is None:
            return None
        if model is None:
            raise UsageError(
                f"the job sets max_cost {limits.max_cost:g} but the run has no cost model: pass "
                "cost_model=CostModel(...) to enforce it (or drop max_cost)"
            )
        seconds = worst_case_seconds(limits, attempts)
        max_tokens = spec.params.get("max_tokens")
        longest = max((len(q.prompt) for q in spec.questions), default=0)
        worst: dict[EndpointState, float] = {}
        for e in endpoints:
            worst[e] = model.worst_case(
                Endpoint(e.model, e.region.name),
                attempts=attempts,
                seconds=seconds,
                prompt_chars=longest,
                max_tokens=max_tokens if is_int(max_tokens) else None,
            )
            if math.isinf(worst[e]):
                raise UsageError(
                    f"max_cost needs a bound on an execution's time: the cost model charges "
                    f"{e.label} per second, and the limits set no attempt_timeout nor job_timeout"
                )
        return cls(limits.max_cost, worst)

    def affordable(self, e: EndpointState) -> bool:
        """Whether one more execution on ``e`` fits, at its worst case."""
        return self.spent + self.reserved + self.worst[e] <= self.max_cost

    def reserve(self, e: EndpointState) -> None:
        """An execution on ``e`` started: hold its worst case."""
        self.reserved += self.worst[e]

    def settle(self, e: EndpointState, cost: float) -> None:
        """An execution on ``e`` ended having cost ``cost``: spend it, free its reserve."""
        self.reserved = max(0.0, self.reserved - self.worst[e])
        self.spent += cost

    def reason(self) -> str:
        """Why the run stops: the sentence its skipped records and its verdict carry."""
        return (
            f"the spending budget (max_cost {self.max_cost:g}) cannot hold another execution: "
            f"{self.spent:.6g} spent"
        )
