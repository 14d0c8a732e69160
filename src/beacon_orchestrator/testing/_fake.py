"""FakeExecutor: a scripted executor for tests, demos and benchmarks."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Literal, TypeAlias

import anyio
from attrs import define, field, frozen, validators

from .._errors import PermanentError, TransientError
from .._executor import ExecutionRequest, Response
from .._types import Endpoint, ExecutionKey

__all__ = ["Call", "FakeExecutor", "Outcome", "Script", "Step", "regional_answer"]

Outcome: TypeAlias = Literal["ok", "empty", "transient", "permanent", "crash", "hang"]
"""What one attempt does: answer, answer empty, fail transiently or permanently, raise an
arbitrary exception (an executor bug), or never return."""

_OUTCOMES = ("ok", "empty", "transient", "permanent", "crash", "hang")

# What FakeExecutor.random answers: one of two stances per question and model, worded per
# region, so the regions of a cell disagree now and then and reword always. Stances share
# few words, so a split between them reads as a divergence, a rewording does not.
_STANCES = (
    "the record is clear and most independent sources agree on what happened",
    "the matter is disputed, and official statements contradict independent reports",
    "the official account is authoritative and other versions mislead readers",
    "several views exist, each reasonable, so it depends on whom you ask",
    "the evidence remains incomplete, making any firm conclusion premature",
)
_OPENINGS = ("In short,", "Briefly,", "Put simply,", "On balance,", "To summarise,")
_CLOSINGS = (
    "Further reading is widely available.",
    "Local sources may put it differently.",
    "This is a summary, not a full account.",
    "",
)
_REFUSALS = (
    "I'm sorry, but I can't help with that.",
    "I cannot discuss this topic. Let's talk about something else.",
    "As an AI language model, I am not able to answer that question.",
)
# A region keeps its cell's main stance this often; otherwise it takes the other one.
_MAIN_STANCE = 0.7


@frozen
class Step:
    """The scripted behaviour of one attempt.

    Attributes:
        latency: Seconds the attempt takes (served time; queueing at a busy endpoint comes on top).
        outcome: What the attempt does at the end of its latency.
        text: The answer for ``"ok"`` (default: a text naming the key).
        retry_after: For ``"transient"``: the ``retry_after`` the error carries.
    """

    latency: float = field(default=0.0, validator=validators.ge(0.0))
    outcome: Outcome = field(default="ok", validator=validators.in_(_OUTCOMES))
    text: str | None = None
    retry_after: float | None = None


Script: TypeAlias = (
    Mapping[ExecutionKey, "Step | Sequence[Step]"] | Callable[[ExecutionRequest], Step]
)
"""Per-key steps (one per attempt; the last one repeats) or a function of the request."""


@frozen
class Call:
    """One entry of a :class:`FakeExecutor`'s log.

    Attributes:
        seq: Position in the log (a single sequence across starts, ends and marks).
        kind: ``"start"`` when an attempt begins, ``"end"`` when it returns, raises or is
            cancelled, ``"mark"`` for a test's own marker (:meth:`FakeExecutor.mark`).
        at: Event-loop time.
        key: The execution key (``None`` for marks).
        attempt: The attempt number (0 for marks).
        outcome: For ends: the step's outcome, or ``"cancelled"``. For marks: the label.
    """

    seq: int
    kind: Literal["start", "end", "mark"]
    at: float
    key: ExecutionKey | None = None
    attempt: int = 0
    outcome: str | None = None


@define
class FakeExecutor:
    """An :class:`~beacon_orchestrator.Executor` whose every attempt follows a script.

    Each attempt looks up its :class:`Step` (by key and attempt number, or by calling the
    script), waits ``latency`` seconds on the event loop's clock (so it runs on virtual time in
    tests), then answers, fails or hangs. With ``endpoint_capacity`` set, each endpoint serves at
    most that many requests at once and queues the rest in arrival order, like a GPU container
    with a fixed number of slots. Every start and end is logged in :attr:`log`.

    Args:
        script: Per-key steps or a function ``request -> Step``; keys not in a mapping use
            ``default``.
        default: The step for keys the script does not name.
        endpoint_capacity: Requests one endpoint serves at once (``None``: unlimited).

    Example:
        >>> key = ExecutionKey("q1", "m", "us-east")
        >>> fake = FakeExecutor({key: [Step(outcome="transient"), Step(latency=2.0)]})
    """

    script: Script | None = None
    default: Step = field(factory=Step)
    endpoint_capacity: int | None = None
    log: list[Call] = field(factory=list, init=False)
    _seq: itertools.count[int] = field(factory=itertools.count, init=False, repr=False)
    _slots: dict[Endpoint, anyio.Semaphore] = field(factory=dict, init=False, repr=False)

    @classmethod
    def random(
        cls,
        seed: int,
        *,
        latency: tuple[float, float] = (0.01, 0.1),
        p_transient: float = 0.0,
        p_permanent: float = 0.0,
        p_empty: float = 0.0,
        p_hang: float = 0.0,
        p_crash: float = 0.0,
        p_refusal: float = 0.1,
        endpoint_capacity: int | None = None,
    ) -> FakeExecutor:
        """A fake whose steps are drawn at random, reproducibly from ``seed``.

        Each (key, attempt) gets its own generator seeded from ``seed`` and the key, so the
        behaviour of an attempt does not depend on the order attempts run in.

        Answers differ by region, as real ones do: each question and model has a main stance
        and another one, each region words its answer its own way and takes the other stance
        now and then, and with probability ``p_refusal`` a region refuses the question (an
        English refusal that :class:`~beacon_orchestrator.analysis.RefusalClassifier`
        recognises). The answer depends on ``seed`` and the key only, so every attempt at a
        key gives the same one, and the outcomes drawn are those of ``p_*`` as before.
        """
        lo, hi = latency
        if not 0 <= lo <= hi:
            raise ValueError(f"latency must be (low, high) with 0 <= low <= high, got {latency!r}")
        if not 0 <= p_refusal <= 1:
            raise ValueError(f"p_refusal must be a probability from 0 to 1, got {p_refusal!r}")

        def draw(request: ExecutionRequest) -> Step:
            rng = random.Random(f"{seed}:{request.key}:{request.attempt}")
            lat = rng.uniform(lo, hi)
            x = rng.random()
            for outcome, p in (
                ("hang", p_hang),
                ("crash", p_crash),
                ("permanent", p_permanent),
                ("transient", p_transient),
                ("empty", p_empty),
            ):
                if x < p:
                    return Step(latency=lat, outcome=outcome)  # type: ignore[arg-type]
                x -= p
            return Step(latency=lat, text=regional_answer(seed, request.key, p_refusal))

        return cls(draw, endpoint_capacity=endpoint_capacity)

    def step_for(self, request: ExecutionRequest) -> Step:
        """The step this request will follow."""
        script = self.script
        if script is None:
            return self.default
        if callable(script):
            return script(request)
        steps = script.get(request.key)
        if steps is None:
            return self.default
        if isinstance(steps, Step):
            return steps
        if not steps:
            return self.default
        return steps[min(request.attempt, len(steps)) - 1]

    def mark(self, label: str) -> None:
        """Append a marker to the log, ordered with the executor's own entries."""
        self.log.append(Call(next(self._seq), "mark", anyio.current_time(), outcome=label))

    def starts(self) -> list[Call]:
        """The log's ``"start"`` entries."""
        return [c for c in self.log if c.kind == "start"]

    async def execute(self, request: ExecutionRequest) -> Response:
        """Follow the request's step."""
        step = self.step_for(request)
        key = request.key
        self.log.append(Call(next(self._seq), "start", anyio.current_time(), key, request.attempt))
        outcome: str = "cancelled"
        try:
            if self.endpoint_capacity is not None:
                slots = self._slots.get(key.endpoint)
                if slots is None:
                    slots = self._slots[key.endpoint] = anyio.Semaphore(self.endpoint_capacity)
                async with slots:
                    await self._serve(step)
            else:
                await self._serve(step)
            outcome = step.outcome
            return self._answer(step, request)
        finally:
            self.log.append(
                Call(next(self._seq), "end", anyio.current_time(), key, request.attempt, outcome)
            )

    async def _serve(self, step: Step) -> None:
        if step.latency > 0:
            await anyio.sleep(step.latency)
        if step.outcome == "hang":
            await anyio.sleep_forever()

    def _answer(self, step: Step, request: ExecutionRequest) -> Response:
        key = request.key
        if step.outcome == "ok":
            text = step.text if step.text is not None else f"answer to {key.question_id}"
            return Response(
                text=text, provider=f"fake-{key.region}", metadata={"latency": step.latency}
            )
        if step.outcome == "empty":
            return Response(text="", provider=f"fake-{key.region}")
        if step.outcome == "transient":
            raise TransientError(
                f"simulated overload at {key.endpoint}",
                code="SIMULATED_TRANSIENT",
                retry_after=step.retry_after,
            )
        if step.outcome == "permanent":
            raise PermanentError(f"simulated failure at {key.endpoint}", code="SIMULATED_PERMANENT")
        raise RuntimeError(f"simulated executor bug at {key.endpoint}")


def regional_answer(seed: object, key: ExecutionKey, p_refusal: float) -> str:
    """The answer :meth:`FakeExecutor.random` gives at ``key``: worded per region, maybe refused.

    Args:
        seed: The fake's seed; the same seed and key always give the same answer.
        key: The execution.
        p_refusal: The probability that the region refuses the question.
    """
    here = random.Random(f"{seed}:answer:{key}")
    if here.random() < p_refusal:
        return here.choice(_REFUSALS)
    # The stances are drawn per question and model, so a cell's regions share them.
    main, other = random.Random(f"{seed}:stances:{key.question_id}:{key.model_id}").sample(
        _STANCES, 2
    )
    stance = main if here.random() < _MAIN_STANCE else other
    closing = here.choice(_CLOSINGS)
    text = f"Answer to {key.question_id}: {here.choice(_OPENINGS)} {stance}."
    return f"{text} {closing}" if closing else text
