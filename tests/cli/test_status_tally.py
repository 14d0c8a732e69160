"""``beacon status`` counts a SQLite job from aggregate rows exactly as from its keys."""

from __future__ import annotations

import tempfile
from pathlib import Path

import anyio
from hypothesis import given, settings
from hypothesis import strategies as st

from beacon_orchestrator import ExecutionKey, ExecutionRecord, ExecutionStatus, SQLiteStore
from beacon_orchestrator.cli._stored import (
    StoredSummary,
    read_keys_summary,
    read_stored_summary,
)

from ..stores.support import REGIONS, make_spec

_QUESTIONS = 23  # more than the matrix draws (20)
_keys = st.builds(
    ExecutionKey,
    st.integers(0, _QUESTIONS - 1).map(lambda i: f"q{i}"),
    st.sampled_from(["m0", "m1"]),
    st.sampled_from(REGIONS),
    st.integers(0, 2),
)
_records = st.lists(
    st.builds(
        ExecutionRecord,
        key=_keys,
        status=st.sampled_from(ExecutionStatus),
        empty=st.booleans(),
        cost=st.none() | st.sampled_from([0.0, 0.25, 1.5, 3.0]),
    ),
    max_size=40,
    unique_by=lambda r: r.key,
)


@settings(max_examples=40, deadline=None)
@given(records=_records)
def test_status_counts_from_the_tally_equal_those_from_the_keys(
    records: list[ExecutionRecord],
) -> None:
    """For any records (every status, empty answers, costs or none, several samples, questions
    beyond the matrix), the aggregate path gives the counts, cells, empties and costs that
    counting every key gives."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.db"

        async def main() -> StoredSummary:
            async with SQLiteStore(path) as store:
                await store.open_job(make_spec(questions=_QUESTIONS))
                await store.write_many("job", records)
                return await read_keys_summary(store, "job", path)

        by_keys = anyio.run(main)
        tallied = read_stored_summary(path, "job")
    assert tallied.counted == by_keys.counted
    assert tallied.cells == by_keys.cells
    assert sorted(tallied.empties) == sorted(by_keys.empties)
    assert tallied.spent == by_keys.spent
    assert tallied.recorded == len(records)
