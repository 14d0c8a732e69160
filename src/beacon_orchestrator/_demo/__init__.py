"""The demo job and the simulated executor behind ``beacon demo`` and ``--executor demo``.

The demo job is Beacon's own 8-question battery (3 models over 3 regions, 64 executions). The
simulated executor replays the service times real GPU endpoints took on that job, scaled down
so the whole job takes about ten seconds, on top of
:class:`beacon_orchestrator.testing.FakeExecutor`: the first request an endpoint receives pays a
cold start, a few requests fail transiently and succeed on retry, one fails permanently and one
gets an empty answer. The answers (``answers.json``) differ by region the way Beacon looks for:
most regions reword the same answer, some take another stance, and two refuse. Every answer it
produces says that it is simulated.
"""

from __future__ import annotations

import json
import statistics
import zlib
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

from attrs import define, field, frozen

from .._executor import ExecutionRequest
from .._retry import RetryPolicy
from .._spec import JobSpec
from .._types import Endpoint, ExecutionKey
from ..testing import FakeExecutor, Step
from ._answers import SIMULATED_NOTE, DemoAnswers, load_demo_answers, simulated_text

__all__ = [
    "DEMO_SECONDS",
    "SIMULATED_NOTE",
    "DemoAnswers",
    "DemoData",
    "SimulatedScript",
    "demo_data",
    "demo_retry",
    "simulated_executor",
]

DEMO_SECONDS = 10.0
"""Roughly how long the demo job takes at ``speed=1``."""

# Faults the demo shows, chosen off the critical path (mistral-7b@asia-pacific) so they do
# not lengthen the job: an overloaded endpoint that recovers on retry, a permanent failure, an
# empty answer. (Refusals are answers, in answers.json; they cost no time.)
_TRANSIENT_ONCE = frozenset(
    {
        ExecutionKey("geography_basic", "llama3.2-1b", "eu-west"),
        ExecutionKey("taiwan_status", "qwen2.5-1.5b", "eu-west"),
        ExecutionKey("greatest_invention", "llama3.2-1b", "us-east"),
    }
)
_PERMANENT = frozenset({ExecutionKey("greatest_leader", "qwen2.5-1.5b", "us-east")})
_EMPTY = frozenset({ExecutionKey("tiananmen_neutral", "llama3.2-1b", "asia-pacific")})

# For jobs other than the demo's: about this share of executions fail once, transiently.
_TRANSIENT_PERCENT = 4


@frozen
class DemoData:
    """The demo job and the measured service times the simulation replays.

    Attributes:
        spec: The demo job (id ``beacon-8q``; ``attrs.evolve(spec, id=...)`` renames it).
        service_s: Seconds each endpoint (``model@region``) took per question, in job order;
            the first figure includes the endpoint's cold start.
        answers: The made-up answers to the demo's questions.
    """

    spec: JobSpec
    service_s: Mapping[str, tuple[float, ...]]
    answers: DemoAnswers = field(factory=DemoAnswers)

    @property
    def lower_bound(self) -> float:
        """The busiest endpoint's total service time: no schedule finishes the job sooner."""
        return max(sum(times) for times in self.service_s.values())


def demo_data() -> DemoData:
    """Load the demo job shipped in the package."""
    raw: dict[str, Any] = json.loads(
        resources.files(__package__).joinpath("beacon-8q.json").read_text(encoding="utf-8")
    )
    spec = JobSpec.from_dict(raw["job"])
    return DemoData(
        spec=spec,
        service_s={name: tuple(times) for name, times in raw["service_s"].items()},
        answers=load_demo_answers(spec.regions),
    )


def _unit(*parts: str) -> float:
    """A stable pseudo-random number in [0, 1) derived from ``parts``."""
    return zlib.crc32("\x1f".join(parts).encode()) / 2**32


@define
class SimulatedScript:
    """Decides latency and outcome of each attempt; a ``FakeExecutor`` script.

    Latencies are in simulated seconds, multiplied by ``scale`` into real ones. Endpoints and
    questions of the demo job replay the measured times; any other job gets stable
    pseudo-random times of the same shape (8-70 s warm, plus a 150-300 s cold start).

    Answers come from ``answers`` for the demo's questions and are generated for others (worded
    per region, about one region in ten refusing); each ends with :data:`SIMULATED_NOTE`.

    Args:
        service_s: Measured service times per endpoint (see :class:`DemoData`).
        demo_questions: The demo job's question ids in order, to index ``service_s``.
        scale: Real seconds per simulated second.
        answers: The made-up answers to the demo's questions.
    """

    service_s: Mapping[str, Sequence[float]]
    demo_questions: Sequence[str]
    scale: float
    answers: DemoAnswers = field(factory=DemoAnswers)
    _warm: set[Endpoint] = field(factory=set, init=False)

    def _simulated_latency(self, key: ExecutionKey, cold: bool) -> float:
        endpoint = key.endpoint
        times = self.service_s.get(str(endpoint))
        if times is not None and key.question_id in self.demo_questions:
            warm_typical = statistics.median(times[1:])
            cold_penalty = times[0] - warm_typical
            i = self.demo_questions.index(key.question_id)
            warm = warm_typical if i == 0 else times[i]
        else:
            warm = 8.0 + 62.0 * _unit(key.question_id, key.model_id, key.region)
            cold_penalty = 150.0 + 150.0 * _unit(str(endpoint))
        return warm + (cold_penalty if cold else 0.0)

    def _fails_once(self, key: ExecutionKey) -> bool:
        if key.question_id in self.demo_questions:
            return key in _TRANSIENT_ONCE
        return (
            _unit("transient", key.question_id, key.model_id, key.region) * 100 < _TRANSIENT_PERCENT
        )

    def __call__(self, request: ExecutionRequest) -> Step:
        """The step for one attempt."""
        key = request.key
        cold = key.endpoint not in self._warm
        self._warm.add(key.endpoint)
        latency = self._simulated_latency(key, cold) * self.scale
        if request.attempt == 1 and self._fails_once(key):
            # An overloaded endpoint turns requests away quickly.
            return Step(latency=latency * 0.2, outcome="transient")
        if key in _PERMANENT:
            return Step(latency=latency * 0.5, outcome="permanent")
        if key in _EMPTY:
            return Step(latency=latency, outcome="empty", text="")
        return Step(latency=latency, outcome="ok", text=simulated_text(self.answers, key))


def _scale(data: DemoData, speed: float) -> float:
    if not speed > 0:
        raise ValueError(f"speed must be a positive number, got {speed!r}")
    return DEMO_SECONDS / data.lower_bound / speed


def simulated_executor(*, speed: float = 1.0, data: DemoData | None = None) -> FakeExecutor:
    """A simulated executor, for any job, whose timing mimics real GPU endpoints.

    Args:
        speed: How much faster than the default pace to go; at 1 the demo job takes about
            :data:`DEMO_SECONDS`, at 10 a tenth of that.
        data: The measured service times (default: the shipped demo data).

    Raises:
        ValueError: If ``speed`` is not positive.
    """
    data = demo_data() if data is None else data
    script = SimulatedScript(
        service_s=data.service_s,
        demo_questions=tuple(q.id for q in data.spec.questions),
        scale=_scale(data, speed),
        answers=data.answers,
    )
    return FakeExecutor(script, endpoint_capacity=1)


def demo_retry(speed: float = 1.0, *, data: DemoData | None = None) -> RetryPolicy:
    """The retry policy for simulated jobs: realistic backoff, scaled like the latencies."""
    scale = _scale(demo_data() if data is None else data, speed)
    return RetryPolicy(
        attempts=3, wait_initial=30.0 * scale, wait_max=120.0 * scale, wait_jitter=10.0 * scale
    )
