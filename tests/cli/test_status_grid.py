"""``beacon status`` of a job of many endpoints: a grid of models x regions, ``--all`` for more.

Drawing a glyph per question and endpoint is what made status slow at 500,000 executions (20
questions x 500 endpoints); a job of more than 24 endpoints gets a line per model instead.
"""

from __future__ import annotations

import re
from pathlib import Path

import anyio
import pytest

from beacon_orchestrator import (
    ExecutionKey,
    ExecutionRecord,
    ExecutionStatus,
    JobSpec,
    ModelTarget,
    Question,
    SQLiteStore,
)
from beacon_orchestrator.cli._render import ENDPOINT_ROWS, Glyphs, endpoint_state

from .support import invoke

C, F, T, X, S = (
    ExecutionStatus.COMPLETED,
    ExecutionStatus.FAILED,
    ExecutionStatus.TIMEOUT,
    ExecutionStatus.CANCELLED,
    ExecutionStatus.SKIPPED,
)
GLYPHS = Glyphs.for_encoding("utf-8")  # what the runner's output encoding gets
REGIONS = ("us-east", "eu-west", "asia-pacific")


def big_spec() -> JobSpec:
    """9 models x 3 regions = 27 endpoints (m8 only in us-east: 25), 2 questions."""
    models = [ModelTarget(f"m{i}", REGIONS) for i in range(8)] + [ModelTarget("m8", ["us-east"])]
    return JobSpec(
        id="big",
        questions=[Question("q0", "?"), Question("q1", "?")],
        models=models,
    )


def store_big(db: Path) -> JobSpec:
    """Every key completed, except: m0@eu-west q0 failed, m1@us-east q1 missing, m2@us-east
    both empty answers."""
    spec = big_spec()
    records = []
    for key in spec.plan():
        if key == ExecutionKey("q1", "m1", "us-east"):
            continue
        failed = key == ExecutionKey("q0", "m0", "eu-west")
        empty = key.model_id == "m2" and key.region == "us-east"
        records.append(ExecutionRecord(key=key, status=F if failed else C, empty=empty))

    async def main() -> None:
        async with SQLiteStore(db) as store:
            await store.open_job(spec)
            await store.write_many(spec.id, records)

    anyio.run(main)
    return spec


def test_a_job_of_many_endpoints_is_drawn_as_a_line_per_model(tmp_path: Path) -> None:
    db = tmp_path / "b.db"
    spec = store_big(db)
    assert len(spec.endpoints) > ENDPOINT_ROWS
    result = invoke(["status", "big", "--store", str(db)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    grid = {line.split()[0]: line.split()[1:] for line in lines if re.match(r"m\d ", line)}
    assert list(grid) == [f"m{i}" for i in range(9)]  # a line per model, in the job's order
    g = GLYPHS
    # Done: an outcome (completed or failed), of the questions x regions the model serves.
    assert grid["m0"] == ["6/6", g.completed, g.failed, g.completed]
    assert grid["m1"] == ["5/6", g.pending, g.completed, g.completed]
    assert grid["m2"] == ["6/6", g.empty, g.completed, g.completed]
    assert grid["m8"] == ["2/2", g.completed]  # served in one region only
    # No matrix of questions, and the way to see it.
    assert not any(re.match(r"q\d ", line) for line in lines)
    assert "beacon status big --all" in result.stdout
    # Counts per region, every key counted.
    assert [line.split()[0] for line in lines if re.match(r" ?(us-east|eu-west|asia) ", line)]
    total = next(line for line in lines if line.strip().startswith("total"))
    assert total.split()[1:5] == [str(spec.size), str(spec.size - 4), "2", "1"]


def test_all_draws_the_question_matrix_and_a_row_per_endpoint(tmp_path: Path) -> None:
    db = tmp_path / "b.db"
    spec = store_big(db)
    result = invoke(["status", "big", "--store", str(db), "--all"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines if re.match(r"q\d ", line)] == ["q0", "q1"]
    rows = [line.split()[0] for line in lines if re.match(r" ?m\d@", line)]
    assert rows == [str(e) for e in spec.endpoints]
    assert "--all" not in result.stdout


def test_a_job_of_few_endpoints_keeps_its_matrix_without_all(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    spec = JobSpec(id="small", questions=[Question("q0", "?")], models=[ModelTarget("m", REGIONS)])

    async def main() -> None:
        async with SQLiteStore(db) as store:
            await store.open_job(spec)
            await store.write_many("small", [ExecutionRecord(key=k, status=C) for k in spec.plan()])

    anyio.run(main)
    result = invoke(["status", "small", "--store", str(db)])
    assert result.exit_code == 0, result.output
    assert any(re.match(r"q0 ", line) for line in result.stdout.splitlines())
    assert "--all" not in result.stdout
    assert "m@us-east" in result.stdout  # a row per endpoint, as before


@pytest.mark.parametrize(
    ("tally", "shown"),
    [
        ({"completed": 3}, (C, False)),
        ({"empty": 3}, (C, True)),
        ({"completed": 2, "empty": 1}, (C, False)),
        ({"completed": 2}, ("pending", False)),
        ({"completed": 1, "skipped": 1, "failed": 1}, (F, False)),
        ({"completed": 1, "timeout": 1, "cancelled": 1}, (T, False)),
        ({"cancelled": 1, "skipped": 1}, (X, False)),
        ({"skipped": 3}, (S, False)),
        ({}, ("pending", False)),
    ],
)
def test_an_endpoint_shows_what_went_wrong_first_then_what_is_left(
    tally: dict[str, int], shown: tuple[object, bool]
) -> None:
    """The order a cell of several samples uses: failed, timeout, cancelled, skipped, pending,
    then completed (empty only if every answer was)."""
    assert endpoint_state(tally, planned=3) == shown
