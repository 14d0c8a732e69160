"""The public testing helpers: FakeExecutor, the virtual clock and the invariant checker."""

from __future__ import annotations

import random
import socket
import time

import anyio
import pytest

from beacon_orchestrator import (
    Event,
    ExecutionFinished,
    ExecutionKey,
    ExecutionRecord,
    ExecutionRequest,
    ExecutionStarted,
    ExecutionStatus,
    JobCancelled,
    JobSpec,
    Limits,
    MemoryStore,
    ModelTarget,
    PermanentError,
    Question,
    TransientError,
    run_job,
)
from beacon_orchestrator.analysis import Label, RefusalClassifier
from beacon_orchestrator.testing import (
    INVARIANTS,
    FakeExecutor,
    InvariantViolation,
    Step,
    check_invariants,
    find_violations,
    run_virtual,
    virtual_clock,
)

BACKENDS = [pytest.param("asyncio", id="asyncio"), pytest.param("trio", id="trio")]
SPEC = JobSpec(
    id="j",
    questions=[Question("q0", "p0"), Question("q1", "p1")],
    models=[ModelTarget("m", ("r0", "r1"))],
)
K = {(q, r): ExecutionKey(q, "m", r) for q in ("q0", "q1") for r in ("r0", "r1")}


def request(key: ExecutionKey, attempt: int = 1) -> ExecutionRequest:
    return ExecutionRequest("j", key, "p", {}, attempt)


# -- virtual clock ----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_virtual_clock_jumps_to_timers_without_waiting(backend: str) -> None:
    async def main() -> float:
        start = anyio.current_time()
        with anyio.move_on_after(3600):
            await anyio.sleep(7200)
        return anyio.current_time() - start

    wall = time.perf_counter()
    assert run_virtual(main, backend=backend) == pytest.approx(3600)
    assert time.perf_counter() - wall < 2.0


def test_virtual_clock_still_runs_real_io() -> None:
    """A socket that becomes readable wakes the loop; timers in between still jump."""

    async def main() -> tuple[bytes, float]:
        left, right = socket.socketpair()
        with left, right:
            start = anyio.current_time()

            async def write_later() -> None:
                await anyio.sleep(5.0)
                left.send(b"ping")

            async with anyio.create_task_group() as tg:
                tg.start_soon(write_later)
                await anyio.wait_readable(right)
            return right.recv(4), anyio.current_time() - start

    data, elapsed = run_virtual(main, backend="asyncio")
    assert data == b"ping"
    assert elapsed == pytest.approx(5.0)


def test_virtual_clock_rejects_unknown_backends() -> None:
    with pytest.raises(ValueError, match="'asyncio' or 'trio'"):
        virtual_clock("curio")


# -- FakeExecutor -------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_fake_executor_follows_its_script_attempt_by_attempt(backend: str) -> None:
    key = K["q0", "r0"]
    fake = FakeExecutor({key: [Step(outcome="transient", retry_after=2.0), Step(latency=1.5)]})

    async def main() -> None:
        with pytest.raises(TransientError) as info:
            await fake.execute(request(key, 1))
        assert info.value.retry_after == 2.0
        t0 = anyio.current_time()
        response = await fake.execute(request(key, 2))
        assert anyio.current_time() - t0 == pytest.approx(1.5)
        assert response.text == "answer to q0"
        # Attempts past the script repeat its last step; unscripted keys use the default.
        assert (await fake.execute(request(key, 5))).text == "answer to q0"
        assert (await fake.execute(request(K["q1", "r1"]))).text == "answer to q1"

    run_virtual(main, backend=backend)
    assert [(c.kind, c.attempt, c.outcome) for c in fake.log[:2]] == [
        ("start", 1, None),
        ("end", 1, "transient"),
    ]


@pytest.mark.anyio
async def test_fake_executor_outcomes() -> None:
    fake = FakeExecutor(lambda r: Step(outcome=r.key.question_id))
    with pytest.raises(PermanentError):
        await fake.execute(request(ExecutionKey("permanent", "m", "r")))
    with pytest.raises(RuntimeError, match="simulated executor bug"):
        await fake.execute(request(ExecutionKey("crash", "m", "r")))
    assert (await fake.execute(request(ExecutionKey("empty", "m", "r")))).text == ""


@pytest.mark.parametrize("backend", BACKENDS)
def test_fake_endpoint_capacity_queues_requests_in_arrival_order(backend: str) -> None:
    key_a, key_b = K["q0", "r0"], K["q1", "r0"]
    fake = FakeExecutor(default=Step(latency=10.0), endpoint_capacity=1)
    finished: dict[str, float] = {}

    async def call(key: ExecutionKey) -> None:
        await fake.execute(request(key))
        finished[key.question_id] = anyio.current_time()

    async def main() -> None:
        t0 = anyio.current_time()
        async with anyio.create_task_group() as tg:
            tg.start_soon(call, key_a)
            await anyio.sleep(1.0)
            tg.start_soon(call, key_b)
        assert finished == {"q0": pytest.approx(t0 + 10.0), "q1": pytest.approx(t0 + 20.0)}

    run_virtual(main, backend=backend)


def test_random_fake_is_reproducible_and_independent_of_call_order() -> None:
    one = FakeExecutor.random(5, p_transient=0.3, p_empty=0.3)
    two = FakeExecutor.random(5, p_transient=0.3, p_empty=0.3)
    keys = list(SPEC.plan())
    first = [one.step_for(request(k)) for k in keys]
    second = [two.step_for(request(k)) for k in reversed(keys)][::-1]
    assert first == second
    assert FakeExecutor.random(6).step_for(request(keys[0])) != first[0]
    with pytest.raises(ValueError, match="latency"):
        FakeExecutor.random(1, latency=(2.0, 1.0))


def test_random_fake_answers_differ_by_region_and_some_regions_refuse() -> None:
    """Per key one answer on every attempt; the regions of a question reword it or take the
    other stance; about p_refusal of the keys are refusals the classifier recognises."""
    keys = [ExecutionKey(f"q{i}", "m", r) for i in range(300) for r in ("r0", "r1", "r2")]
    fake = FakeExecutor.random(11, p_refusal=0.2)
    texts = {k: fake.step_for(request(k)).text for k in keys}
    assert all(fake.step_for(request(k, 3)).text == texts[k] for k in keys[:30])
    labels = [RefusalClassifier().classify_text(t or "").label for t in texts.values()]
    assert 0.15 < labels.count(Label.REFUSAL) / len(keys) < 0.25
    per_question: dict[str, set[str | None]] = {}
    for k, text in texts.items():
        per_question.setdefault(k.question_id, set()).add(text)
    assert all(len(answers) > 1 for answers in per_question.values())
    none_refuse = FakeExecutor.random(11, p_refusal=0.0)
    assert not any(
        RefusalClassifier().classify_text(none_refuse.step_for(request(k)).text or "").label
        is Label.REFUSAL
        for k in keys
    )
    with pytest.raises(ValueError, match="p_refusal must be a probability"):
        FakeExecutor.random(1, p_refusal=1.5)


def test_random_fake_outcomes_and_latencies_do_not_depend_on_the_answers() -> None:
    """Adding answers changed no drawn outcome: p_refusal moves texts only."""
    keys = [ExecutionKey(f"q{i}", "m", r) for i in range(50) for r in ("r0", "r1")]
    one = FakeExecutor.random(3, p_transient=0.3, p_permanent=0.1, p_refusal=0.0)
    two = FakeExecutor.random(3, p_transient=0.3, p_permanent=0.1, p_refusal=1.0)
    for k in keys:
        a, b = one.step_for(request(k)), two.step_for(request(k))
        assert (a.latency, a.outcome) == (b.latency, b.outcome)
    # The draw of a step is what it was before answers existed: the seed, key and attempt.
    rng = random.Random(f"3:{keys[0]}:1")
    assert one.step_for(request(keys[0])).latency == rng.uniform(0.01, 0.1)


# -- the invariant checker ------------------------------------------------------------------------


def finished(
    key: ExecutionKey, at: float, status: ExecutionStatus = ExecutionStatus.COMPLETED
) -> ExecutionFinished:
    return ExecutionFinished(
        "j",
        ExecutionRecord(
            key=key, status=status, text="x" if status is ExecutionStatus.COMPLETED else None
        ),
        at,
    )


@pytest.mark.anyio
async def test_checker_accepts_a_real_job() -> None:
    events: list[Event] = []
    store = MemoryStore()
    fake = FakeExecutor()
    await run_job(SPEC, fake, store=store, on_event=events.append, strategy="region")
    check_invariants(
        SPEC, events, await store.records("j"), strategy="region", executor_log=fake.log
    )


def test_checker_reports_each_kind_of_violation() -> None:
    a, b, c = K["q0", "r0"], K["q1", "r0"], K["q0", "r1"]
    events: list[Event] = [
        ExecutionStarted("j", b, 1, 0.0),  # q1 before q0 on endpoint m@r0
        ExecutionStarted("j", a, 1, 0.0),  # two in flight on one endpoint
        JobCancelled("j", "handle", "test", 1.0),
        ExecutionStarted("j", c, 1, 1.0),  # a start after the cancel
        ExecutionStarted("j", c, 1, 1.0),  # ... and a duplicate
        finished(a, 9.0),  # ended 8 s after the cancel with grace 0
    ]
    records = [
        ExecutionRecord(key=a, status=ExecutionStatus.COMPLETED),
        ExecutionRecord(key=a, status=ExecutionStatus.FAILED),
    ]
    found = {v.invariant for v in find_violations(SPEC, events, records, limits=Limits())}
    assert found == set(INVARIANTS) - set()  # every invariant is broken by this log
    with pytest.raises(InvariantViolation) as info:
        check_invariants(SPEC, events, records, only=["bounded_stop"])
    assert [v.invariant for v in info.value.violations] == ["bounded_stop"]
    assert "ended 8.000000 s after cancellation" in str(info.value)
