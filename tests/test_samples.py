"""Samples per cell: keys, documents, the scheduler, the policy, SQLite's migration, the CLI.

A job may execute each cell (question x model x region) ``samples`` times (Beacon's ``runs``);
the execution key's ``sample`` numbers them from 0. The invariant property tests with several
samples are in ``test_scheduler_invariants.py``.

``tests/data/stores/schema-v2.sqlite3`` was written by the release before samples (commit
b53980a, schema version 2) with ``SQLiteStore`` and ``run_job``: two jobs of 4 questions x
3 endpoints (``m1`` in us-east and eu-west, ``m2`` in asia-pacific), temperature 0.7 and a
required rate of 0.5. ``finished-job`` ran to its verdict (one permanent failure, q2/m1@eu-west,
and one empty answer, q3/m2@asia-pacific); ``interrupted-job`` was cancelled once q1 and q2 were
done: q3 was interrupted (``CANCELLED``) and q4 never started (``SKIPPED``).
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import sqlite3
from pathlib import Path

import anyio
import pytest

from beacon_orchestrator import (
    ExecutionFinished,
    ExecutionKey,
    ExecutionRecord,
    ExecutionStatus,
    JobSpec,
    JobStatus,
    MemoryStore,
    MinSuccessRate,
    ModelTarget,
    Question,
    QuestionFinished,
    SpecError,
    SQLiteStore,
    StoreError,
    run_job,
)
from beacon_orchestrator.stores import export_csv, export_jsonl, load_jsonl, records_to_rows
from beacon_orchestrator.stores.sqlite import SCHEMA_VERSION
from beacon_orchestrator.testing import FakeExecutor, Step

from .cli.support import invoke

V2_FILE = Path(__file__).resolve().parent / "data" / "stores" / "schema-v2.sqlite3"
REGIONS = ("us-east", "eu-west")


def spec(samples: int = 3, questions: int = 2, **kwargs: object) -> JobSpec:
    return JobSpec(
        id="sampled",
        questions=[Question(f"q{i}", f"prompt {i}?") for i in range(questions)],
        models=[ModelTarget("m", REGIONS)],
        params={"temperature": 0.7},
        samples=samples,
        **kwargs,  # type: ignore[arg-type]
    )


# -- keys and their forms -----------------------------------------------------------------------


def test_a_key_of_one_sample_is_todays_key_and_another_sample_prints_its_number() -> None:
    today = ExecutionKey("q", "m", "us-east")
    assert today == ExecutionKey("q", "m", "us-east", 0)
    assert hash(today) == hash(ExecutionKey("q", "m", "us-east", sample=0))
    assert (str(today), today.sample) == ("q/m@us-east", 0)
    second = ExecutionKey("q", "m", "us-east", 2)
    assert second != today
    assert str(second) == "q/m@us-east#2"
    assert second.cell == today
    assert today.cell is today


def test_every_flat_form_holds_the_sample_and_an_older_one_without_it_reads_as_sample_0() -> None:
    record = ExecutionRecord(
        key=ExecutionKey("q", "m", "us-east", 2), status=ExecutionStatus.COMPLETED, text="a"
    )
    plain = record.to_dict()
    assert plain["sample"] == 2
    assert ExecutionRecord.from_dict(plain) == record
    older = {k: v for k, v in plain.items() if k != "sample"}
    assert ExecutionRecord.from_dict(older).key == ExecutionKey("q", "m", "us-east", 0)
    (row,) = records_to_rows([record])
    assert row["sample"] == 2
    # Exports always write the column, sample 0 included; an older JSON Lines file reads as 0.
    one = ExecutionRecord(key=ExecutionKey("q", "m", "us-east"), status=ExecutionStatus.SKIPPED)
    assert records_to_rows([one])[0]["sample"] == 0
    buffer = io.StringIO()
    export_csv([one], buffer)
    assert buffer.getvalue().splitlines()[0].split(",")[:4] == [
        "question_id",
        "model_id",
        "region",
        "sample",
    ]
    assert load_jsonl(io.StringIO(json.dumps(older) + "\n")) == [ExecutionRecord.from_dict(older)]


# -- documents ----------------------------------------------------------------------------------


def _own(samples: object) -> dict[str, object]:
    return {
        "id": "j",
        "questions": [{"id": "q", "prompt": "p?"}],
        "models": [{"id": "m", "regions": ["us-east"]}],
        "samples": samples,
    }


@pytest.mark.parametrize("bad", [0, -1, "3", 2.0, True, None])
def test_samples_must_be_an_integer_of_at_least_one_and_the_error_names_field_and_value(
    bad: object,
) -> None:
    with pytest.raises(SpecError) as info:
        JobSpec.from_dict(_own(bad))
    (problem,) = info.value.problems
    assert problem.path == "samples"
    assert "expected an integer >= 1" in str(info.value)
    assert repr(bad) in str(info.value)
    with pytest.raises(SpecError, match=r"samples: expected an integer >= 1"):
        spec(samples=bad)  # type: ignore[arg-type]


def test_samples_round_trip_and_one_sample_leaves_the_document_as_it_was() -> None:
    three = JobSpec.from_dict(_own(3))
    assert (three.samples, three.cells, three.size) == (3, 1, 3)
    assert three.to_dict()["samples"] == 3
    assert JobSpec.from_dict(three.to_dict()) == three
    doc = _own(1)
    del doc["samples"]
    one = JobSpec.from_dict(doc)
    assert one.samples == 1
    assert "samples" not in one.to_dict()


def test_beacon_runs_are_the_samples_and_go_zero_or_null_means_one() -> None:
    doc = {"id": "b", "questions": ["q"], "models": [{"id": "m", "regions": ["eu-west"]}]}
    catalogue = {"q": "prompt?"}
    assert JobSpec.from_beacon({**doc, "runs": 4}, questions=catalogue).samples == 4
    for unset in (0, None):
        assert JobSpec.from_beacon({**doc, "runs": unset}, questions=catalogue).samples == 1
    mapped = JobSpec.from_beacon({**doc, "runs": 2}, questions=catalogue)
    assert "runs" not in mapped.metadata.get("beacon", {})
    with pytest.raises(SpecError) as info:
        JobSpec.from_beacon({**doc, "runs": -2}, questions=catalogue)
    assert [p.path for p in info.value.problems] == ["runs"]
    assert "(got -2)" in str(info.value)


def test_the_plan_lists_each_cells_samples_and_counts_them() -> None:
    job = spec(samples=2)
    assert job.cells == 4
    assert job.size == 8
    assert list(job.plan())[:3] == [
        ExecutionKey("q0", "m", "us-east", 0),
        ExecutionKey("q0", "m", "us-east", 1),
        ExecutionKey("q0", "m", "eu-west", 0),
    ]
    assert len(set(job.plan())) == 8


# -- running ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_each_endpoint_runs_each_question_s_samples_in_order_and_progress_counts_them() -> (
    None
):
    job = spec(samples=3)
    fake = FakeExecutor(default=Step(latency=0.001))
    events: list[object] = []
    result = await run_job(job, fake, on_event=events.append)
    assert result.status is JobStatus.COMPLETED
    assert result.counts[ExecutionStatus.COMPLETED] == 12
    for region in REGIONS:
        started = [c.key for c in fake.starts() if c.key is not None and c.key.region == region]
        assert [(k.question_id, k.sample) for k in started] == [
            (f"q{q}", s) for q in range(2) for s in range(3)
        ]
    records = [e.record for e in events if isinstance(e, ExecutionFinished)]
    assert {r.key for r in records} == set(job.plan())
    # A question is finished once its last sample on its last endpoint is.
    finished_q0 = next(
        i for i, e in enumerate(events) if isinstance(e, QuestionFinished) and e.index == 0
    )
    q0_records = [
        i
        for i, e in enumerate(events)
        if isinstance(e, ExecutionFinished) and e.record.key.question_id == "q0"
    ]
    assert len(q0_records) == 6
    assert finished_q0 > max(q0_records)


@pytest.mark.anyio
async def test_the_success_rate_counts_executions_so_one_failed_sample_of_three_is_a_third() -> (
    None
):
    job = spec(samples=3, questions=1, policy=MinSuccessRate(rate=0.8))
    bad = ExecutionKey("q0", "m", "eu-west", 1)
    fake = FakeExecutor({bad: Step(outcome="permanent")})
    result = await run_job(job, fake)
    assert result.status is JobStatus.COMPLETED  # 5 of 6 = 83% >= 80%
    assert result.reason.startswith("5 of 6 executions succeeded")
    job_strict = spec(samples=3, questions=1, policy=MinSuccessRate(rate=0.9))
    strict = await run_job(job_strict, FakeExecutor({bad: Step(outcome="permanent")}))
    assert strict.status is JobStatus.FAILED


@pytest.mark.anyio
async def test_a_resume_runs_only_the_samples_without_a_completed_record(tmp_path: Path) -> None:
    job = spec(samples=2)
    done = [ExecutionKey("q0", "m", "us-east", 1), ExecutionKey("q1", "m", "eu-west", 0)]
    async with SQLiteStore(tmp_path / "s.db") as store:
        await store.open_job(job)
        for key in done:
            record = ExecutionRecord(key=key, status=ExecutionStatus.COMPLETED, text="kept")
            await store.write(job.id, record)
        fake = FakeExecutor()
        result = await run_job(job, fake, store=store)
        ran = [c.key for c in fake.starts()]
        assert sorted(map(str, ran)) == sorted(str(k) for k in job.plan() if k not in done)
        assert result.counts[ExecutionStatus.COMPLETED] == 8
        assert {r.key for r in await store.records(job.id)} == set(job.plan())


@pytest.mark.anyio
async def test_several_samples_at_temperature_zero_log_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cold = JobSpec(
        id="cold",
        questions=[Question("q", "p?")],
        models=[ModelTarget("m", ["us-east"])],
        params={"temperature": 0},
        samples=2,
    )
    with caplog.at_level(logging.WARNING, logger="beacon_orchestrator"):
        await run_job(cold, FakeExecutor())
        await run_job(spec(samples=2), FakeExecutor())  # temperature 0.7: no warning
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "job cold: 2 samples of each cell at temperature 0: greedy decoding answers alike, so "
        "the samples show only the provider's own nondeterminism; set a temperature above 0 "
        "to tell a regional difference from sampling noise"
    ]


# -- SQLite: the migration from schema version 2 ------------------------------------------------


def _rows(path: Path, columns: str = "*") -> tuple[list[str], list[tuple[object, ...]]]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        cursor = conn.execute(f"SELECT {columns} FROM records ORDER BY rowid")
        return [d[0] for d in cursor.description], cursor.fetchall()


@pytest.mark.anyio
async def test_a_schema_2_file_opens_resumes_and_exports_after_the_migration_with_nothing_lost(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v2.db"
    shutil.copyfile(V2_FILE, path)
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (2,)
        jobs_before = conn.execute("SELECT * FROM jobs ORDER BY rowid").fetchall()
        leases_before = conn.execute("SELECT * FROM leases ORDER BY rowid").fetchall()
    v2_columns, before = _rows(path)
    assert len(before) == 24

    async with SQLiteStore(path) as store:
        infos = await store.jobs()
        assert [(j.job_id, j.records, j.status) for j in infos] == [
            ("finished-job", 12, JobStatus.COMPLETED),
            ("interrupted-job", 12, JobStatus.CANCELLED),
        ]
        finished_before = await store.records("finished-job")
        # Resume the interrupted job: only its cancelled and skipped keys run.
        interrupted = await store.load_spec("interrupted-job")
        fake = FakeExecutor(default=Step(text="resumed answer"))
        result = await run_job(interrupted, fake, store=store)
        ran = sorted(str(c.key) for c in fake.starts())
        assert ran == sorted(
            f"{q}/{e}"
            for q in ("q3", "q4")
            for e in ("m1@us-east", "m1@eu-west", "m2@asia-pacific")
        )
        assert result.status is JobStatus.COMPLETED
        assert result.counts[ExecutionStatus.COMPLETED] == 12
        exported: dict[str, str] = {}
        for job_id in ("finished-job", "interrupted-job"):
            buffer = io.StringIO()
            assert export_jsonl(await store.records(job_id), buffer) == 12
            exported[job_id] = buffer.getvalue()

    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert conn.execute("SELECT * FROM jobs ORDER BY rowid").fetchall()[0] == jobs_before[0]
        assert len(conn.execute("SELECT * FROM leases").fetchall()) == len(leases_before)
        key = [r[1] for r in conn.execute("PRAGMA table_info(records)") if r[5]]
    assert key == ["job_id", "question_id", "model_id", "region", "sample"]
    # Every row of version 2 is there, unchanged, in its place; every one has sample 0.
    _, after = _rows(path, ", ".join(v2_columns))
    finished_rows = [r for r in before if r[0] == "finished-job"]
    assert after[: len(finished_rows)] == finished_rows
    kept = [r for r in before if r[0] == "interrupted-job" and r[4] == "completed"]
    assert all(r in after for r in kept)
    assert len(after) == 24
    assert {r[0] for r in _rows(path, "sample")[1]} == {0}
    # The export holds every field of every record, the sample column included.
    lines = [json.loads(line) for line in exported["finished-job"].splitlines()]
    assert [d["sample"] for d in lines] == [0] * 12
    assert load_jsonl(io.StringIO(exported["finished-job"])) == finished_before
    by_key = {(r[1], r[2], r[3]): dict(zip(v2_columns, r, strict=True)) for r in finished_rows}
    for d in lines:
        row = by_key[(d["question_id"], d["model_id"], d["region"])]
        assert (d["status"], d["text"], d["error_code"], d["attempts"]) == (
            row["status"],
            row["text"],
            row["error_code"],
            row["attempts"],
        )
        assert d["metadata"] == json.loads(str(row["metadata"]))
        assert (d["started_at"], d["finished_at"]) == (row["started_at"], row["finished_at"])


@pytest.mark.anyio
async def test_the_migration_keeps_columns_and_indexes_an_earlier_migration_added(
    tmp_path: Path,
) -> None:
    """The rebuild copies the table as it is, so a column another migration added before this
    one (in whatever order branches merge) survives with its values, and so do indexes."""
    path = tmp_path / "v2-extra.db"
    shutil.copyfile(V2_FILE, path)
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE records ADD COLUMN extra_note TEXT")
        conn.execute("UPDATE records SET extra_note = region || '!'")
        conn.execute("CREATE INDEX records_by_status ON records (job_id, status)")
    async with SQLiteStore(path) as store:
        assert len(await store.records("finished-job")) == 12
    with sqlite3.connect(path) as conn:
        values = conn.execute("SELECT region, extra_note, sample FROM records").fetchall()
        indexes = {r[1] for r in conn.execute("PRAGMA index_list(records)")}
    assert len(values) == 24
    assert all(note == f"{region}!" and sample == 0 for region, note, sample in values)
    assert "records_by_status" in indexes


@pytest.mark.anyio
async def test_a_new_file_keeps_each_sample_of_a_cell_apart(tmp_path: Path) -> None:
    job = spec(samples=2, questions=1)
    async with SQLiteStore(tmp_path / "new.db") as store:
        await run_job(job, FakeExecutor(), store=store)
        keys = {r.key for r in await store.records(job.id)}
        assert keys == set(job.plan())
        assert await store.completed_keys(job.id) == set(job.plan())
    memory = MemoryStore()
    await run_job(job, FakeExecutor(), store=memory)
    assert {r.key for r in await memory.records(job.id)} == set(job.plan())


# -- the command line ---------------------------------------------------------------------------


def test_status_counts_samples_and_show_says_it_cannot_compare_them_yet(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    job = spec(samples=3, questions=1)
    bad = ExecutionKey("q0", "m", "eu-west", 2)

    async def make() -> None:
        async with SQLiteStore(db) as store:
            await run_job(job, FakeExecutor({bad: Step(outcome="permanent")}), store=store)

    anyio.run(make)
    status = invoke(["status", job.id, "--store", str(db), "--json", "--failures"])
    assert status.exit_code == 0, status.output
    doc = json.loads(status.output)
    assert (doc["planned"], doc["samples"], doc["recorded"], doc["missing"]) == (6, 3, 6, 0)
    assert [(e["endpoint"], e["planned"], e["missing"]) for e in doc["endpoints"]] == [
        ("m@us-east", 3, 0),
        ("m@eu-west", 3, 0),
    ]
    assert [(f["region"], f["sample"]) for f in doc["failures"]] == [("eu-west", 2)]
    text = invoke(["status", job.id, "--store", str(db), "--failures"])
    assert "6 of 6 executions have a record (3 samples of each of 2 cells)." in text.output
    assert "q0 #2" in text.output
    for command in (["show"], ["report", "-o", str(tmp_path / "r.html")], ["export", "--labels"]):
        refused = invoke([*command, job.id, "--store", str(db)])
        assert refused.exit_code == 2, refused.output
        assert f"job 'sampled' has 3 samples of each cell; {' '.join(command[:1])}" in (
            refused.output.replace("export --labels", "export")
        )
    exported = invoke(["export", job.id, "--store", str(db)])
    rows = [json.loads(line) for line in exported.output.splitlines()]
    assert sorted((r["region"], r["sample"]) for r in rows) == [
        (region, s) for region in sorted(REGIONS) for s in range(3)
    ]


@pytest.mark.anyio
async def test_a_file_whose_records_table_is_not_as_its_version_says_is_refused_and_left_alone(
    tmp_path: Path,
) -> None:
    path = tmp_path / "odd.db"
    shutil.copyfile(V2_FILE, path)
    with sqlite3.connect(path) as conn:
        (create,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'records'").fetchone()
        conn.execute("ALTER TABLE records RENAME TO old_records")
        conn.execute(
            create.replace(
                "PRIMARY KEY (job_id, question_id, model_id, region)",
                "PRIMARY KEY (job_id, region, question_id, model_id)",
            )
        )
        conn.execute("INSERT INTO records SELECT * FROM old_records")
        conn.execute("DROP TABLE old_records")
    _, before = _rows(path)
    with pytest.raises(StoreError) as info:
        async with SQLiteStore(path):
            pass
    message = str(info.value)
    assert message.startswith(f"SQLite store {path}: cannot migrate it to schema version 3")
    assert "not keyed by (job_id, question_id, model_id, region)" in message
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (2,)
    assert _rows(path)[1] == before
