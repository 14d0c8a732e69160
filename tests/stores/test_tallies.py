"""The ``tallies`` table of a SQLite store: always the count of the records, however written.

``beacon status`` and ``progress()`` read a job's counts from it, so a tally that drifts from
the records (a replaced record counted twice, a kept ``COMPLETED`` one moved) would show wrong
counts without any error.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from pathlib import Path

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beacon_orchestrator import ExecutionKey, ExecutionRecord, ExecutionStatus, SQLiteStore
from beacon_orchestrator.stores.sqlite import SCHEMA_VERSION, _tallies
from beacon_orchestrator.stores.sqlite._rows import Row

from .support import REGIONS, make_spec

V2_FILE = Path(__file__).resolve().parent.parent / "data" / "stores" / "schema-v2.sqlite3"

_RECOUNT = (
    "SELECT model_id, region, status, empty, count(*), count(cost), coalesce(sum(cost), 0.0) "
    "FROM records WHERE job_id = ? GROUP BY model_id, region, status, empty"
)


def recount(path: Path, job_id: str = "job") -> tuple[set[Row], set[Row]]:
    """The job's counts as the tallies and the rows after the mark give them, and the same
    counted from every record."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        summed: dict[Row, list[float]] = {}
        for model, region, status, empty, n, priced, cost in _tallies.counted(conn, job_id):
            found = summed.setdefault((model, region, status, empty), [0, 0, 0.0])
            found[0] += n
            found[1] += priced
            found[2] += cost
        tallied = {(*group, *sums) for group, sums in summed.items() if sums[0]}
        return tallied, set(conn.execute(_RECOUNT, (job_id,)))


_keys = st.builds(
    ExecutionKey,
    st.sampled_from(["q0", "q1", "q2"]),
    st.sampled_from(["m0", "m1"]),
    st.sampled_from(REGIONS[:2]),
    st.integers(0, 1),
)
_records = st.builds(
    ExecutionRecord,
    key=_keys,
    status=st.sampled_from(ExecutionStatus),
    empty=st.booleans(),
    # Sums of these are exact in floating point, whatever the order of the additions.
    cost=st.none() | st.sampled_from([0.0, 0.25, 1.5, 3.0]),
)
# Batches as the group commit makes them: several records, the same key more than once.
_batches = st.lists(st.lists(_records, min_size=1, max_size=8), min_size=1, max_size=6)


@settings(max_examples=80, deadline=None)
@given(batches=_batches, second_job=st.booleans(), fold_every=st.sampled_from([1, 3, 5_000]))
def test_the_tallies_always_equal_a_count_of_the_records(
    batches: list[list[ExecutionRecord]], second_job: bool, fold_every: int
) -> None:
    """For any batches of writes (new keys, replaced keys before and after the mark, COMPLETED
    records that must stay, duplicates inside a batch, two jobs in one file, folds after every
    row, every few rows or never), the tallies plus the rows after the mark are exactly the
    records counted per job, endpoint, status and empty flag, with their costs summed."""
    saved, _tallies.FOLD_EVERY = _tallies.FOLD_EVERY, fold_every  # type: ignore[misc]
    try:
        _check_batches(batches, second_job)
    finally:
        _tallies.FOLD_EVERY = saved  # type: ignore[misc]


def _check_batches(batches: list[list[ExecutionRecord]], second_job: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.db"

        async def main() -> None:
            async with SQLiteStore(path) as store:
                await store.open_job(make_spec())
                await store.open_job(make_spec("other"))
                for i, batch in enumerate(batches):
                    job = "other" if second_job and i % 2 else "job"
                    await store.write_many(job, batch)

        anyio.run(main)
        for job in ("job", "other"):
            tallied, counted = recount(path, job)
            assert tallied == counted


@pytest.mark.anyio
async def test_a_batch_of_new_keys_is_counted_without_replacing_anything(tmp_path: Path) -> None:
    """The fast path (every row new) and the row-by-row path (a stored key met) count alike."""
    path = tmp_path / "t.db"
    keys = [ExecutionKey(f"q{i}", "m0", "us-east") for i in range(3)]
    async with SQLiteStore(path) as store:
        await store.open_job(make_spec())
        await store.write_many(
            "job", [ExecutionRecord(key=k, status=ExecutionStatus.FAILED) for k in keys]
        )
        # q0 and q2 are replaced (FAILED -> COMPLETED); q1 stays FAILED.
        await store.write_many(
            "job",
            [
                ExecutionRecord(key=keys[0], status=ExecutionStatus.COMPLETED, cost=0.5),
                ExecutionRecord(key=keys[2], status=ExecutionStatus.COMPLETED, empty=True),
            ],
        )
        # A COMPLETED record is never replaced, so its count does not move either.
        await store.write("job", ExecutionRecord(key=keys[0], status=ExecutionStatus.TIMEOUT))
        progress = await store.progress("job")
        jobs = await store.jobs()
    assert progress.counts == {ExecutionStatus.FAILED: 1, ExecutionStatus.COMPLETED: 2}
    assert jobs[0].records == 3
    tallied, counted = recount(path)
    assert tallied == counted
    assert ("m0", "us-east", "completed", 1, 1, 0, 0.0) in tallied
    assert ("m0", "us-east", "completed", 0, 1, 1, 0.5) in tallied


@pytest.mark.anyio
async def test_a_version_2_file_gets_its_records_counted_by_the_migration(
    tmp_path: Path,
) -> None:
    """Migrating a file of schema version 2 fills the tallies from the records it holds, and
    later writes keep them equal to the records."""
    path = tmp_path / "v2.db"
    shutil.copyfile(V2_FILE, path)
    async with SQLiteStore(path) as store:
        infos = await store.jobs()
        assert [(j.job_id, j.records) for j in infos] == [
            ("finished-job", 12),
            ("interrupted-job", 12),
        ]
        progress = await store.progress("interrupted-job")
        assert progress.counts == {
            ExecutionStatus.COMPLETED: 6,
            ExecutionStatus.CANCELLED: 3,
            ExecutionStatus.SKIPPED: 3,
        }
        spec = await store.load_spec("interrupted-job")
        last = list(spec.plan())[-1]
        await store.write(
            "interrupted-job", ExecutionRecord(key=last, status=ExecutionStatus.COMPLETED)
        )
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    for job in ("finished-job", "interrupted-job"):
        tallied, counted = recount(path, job)
        assert tallied == counted
    with sqlite3.connect(path) as conn:
        # Counted by the migration itself, not left to readers after the mark.
        assert conn.execute("SELECT sum(n) FROM tallies").fetchone() == (24,)
