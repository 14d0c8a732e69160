"""PostgresStore beyond the conformance suite: persistence across processes' connections, the
schema and its versions, free text PostgreSQL's text cannot hold, and passwords never shown."""

from __future__ import annotations

import json

import psycopg
import pytest

from beacon_orchestrator import (
    ExecutionKey,
    ExecutionStatus,
    JobResult,
    JobStatus,
    StoreError,
    UsageError,
)
from beacon_orchestrator._types import RECORD_CODEC
from beacon_orchestrator.stores.postgres import SCHEMA_VERSION, PostgresStore, redact_dsn
from beacon_orchestrator.stores.postgres._dsn import scrub
from beacon_orchestrator.stores.postgres._rows import BYTEA_COLUMNS, KEY_COLUMNS

from ..stores.support import make_spec, record

C = ExecutionStatus.COMPLETED
F = ExecutionStatus.FAILED


# -- passwords ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        (
            "postgresql://ann:s3cret@db.example:5432/jobs",
            "postgresql://ann:***@db.example:5432/jobs",
        ),
        ("postgres://ann@db/jobs", "postgres://ann@db/jobs"),
        (
            "postgresql://db/jobs?user=ann&password=s3cret",
            "postgresql://db/jobs?user=ann&password=***",
        ),
        (
            "host=db dbname=jobs password=s3cret user=ann",
            "host=db dbname=jobs password=*** user=ann",
        ),
        ("host=db password = 's3 cret' user=ann", "host=db password = *** user=ann"),
    ],
)
def test_redact_dsn_hides_every_password(dsn: str, shown: str) -> None:
    assert redact_dsn(dsn) == shown
    assert "s3" not in redact_dsn(dsn)


def test_scrub_hides_the_password_even_url_encoded() -> None:
    dsn = "postgresql://ann:p%40ss@db/jobs"
    text = f"failed for {dsn}: password p@ss rejected (p%40ss)"
    assert "p@ss" not in scrub(text, dsn)
    assert "p%40ss" not in scrub(text, dsn)


def test_repr_of_the_store_hides_the_password() -> None:
    store = PostgresStore("postgresql://ann:s3cret@db.example/jobs", schema="x")
    assert "s3cret" not in repr(store)
    assert "ann:***@db.example" in repr(store)


@pytest.mark.anyio
async def test_a_connection_error_names_the_server_but_not_the_password() -> None:
    dsn = "postgresql://ann:s3cret@127.0.0.1:1/jobs"
    store = PostgresStore(dsn, connect_timeout=2)
    with pytest.raises(StoreError) as caught:
        await store.open()
    message = str(caught.value)
    assert "s3cret" not in message
    assert "ann:***@127.0.0.1:1" in message
    assert caught.value.__cause__ is None  # the driver's own text is not chained either


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"schema": "Bad-Name"}, "schema"),
        ({"schema": "1abc"}, "schema"),
        ({"pool_size": 0}, "pool_size"),
        ({"connect_timeout": float("nan")}, "connect_timeout"),
    ],
)
def test_bad_options_are_refused_naming_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(UsageError, match=f"PostgresStore {field}: expected"):
        PostgresStore("postgresql://db/jobs", **kwargs)  # type: ignore[arg-type]


def test_an_empty_dsn_is_refused() -> None:
    with pytest.raises(UsageError, match="PostgresStore dsn"):
        PostgresStore("  ")


# -- persistence and schema -----------------------------------------------------------------


@pytest.mark.anyio
async def test_everything_survives_closing_and_reopening(postgres_dsn: str, pg_schema: str) -> None:
    spec = make_spec("job-1")
    keys = list(spec.plan())
    written = [record(k, C if i % 3 else F) for i, k in enumerate(keys)]
    async with PostgresStore(postgres_dsn, schema=pg_schema, clock=lambda: 42.0) as store:
        await store.open_job(spec)
        await store.write_many("job-1", written[:5])
        for r in written[5:]:
            await store.write("job-1", r)
        result = JobResult("job-1", JobStatus.COMPLETED, "ok", {C: 12, F: 6}, 0.66, 18)
        await store.finish_job("job-1", result)
    async with PostgresStore(postgres_dsn, schema=pg_schema) as store:
        assert await store.records("job-1") == written  # in first-written order
        assert await store.load_spec("job-1") == spec
        assert await store.completed_keys("job-1") == {r.key for r in written if r.status is C}
        loaded = await store.load_result("job-1")
        assert loaded is not None
        assert (loaded.status, loaded.reason) == (JobStatus.COMPLETED, "ok")
        assert [r async for r in loaded.records] == written  # read from the store
        assert list(loaded.failures) == [r for r in written if r.status is not C]
        (info,) = await store.jobs()
        assert (info.records, info.created_at, info.finished_at) == (18, 42.0, 42.0)


@pytest.mark.anyio
async def test_text_with_nul_characters_is_kept_exactly(postgres_dsn: str, pg_schema: str) -> None:
    spec = make_spec("job-nul")
    key = next(iter(spec.plan()))
    answer = record(key, C, text="a\x00b é 🙂")
    async with PostgresStore(postgres_dsn, schema=pg_schema) as store:
        await store.open_job(spec)
        await store.write("job-nul", answer)
        assert await store.records("job-nul") == [answer]


@pytest.mark.anyio
async def test_a_record_that_cannot_be_stored_fails_alone(
    postgres_dsn: str, pg_schema: str
) -> None:
    spec = make_spec("job-bad")
    good_key, bad_key = list(spec.plan())[:2]
    async with PostgresStore(postgres_dsn, schema=pg_schema) as store:
        await store.open_job(spec)
        with pytest.raises(StoreError, match="text holds characters that are not valid UTF-8"):
            await store.write("job-bad", record(bad_key, C, text="\ud800"))
        with pytest.raises(StoreError, match="question_id must be a string without NUL"):
            await store.write("job-bad", record(ExecutionKey("q\x00", "m0", "us-east"), C))
        await store.write("job-bad", record(good_key, C))
        assert [r.key for r in await store.records("job-bad")] == [good_key]


def _table_columns(dsn: str, schema: str) -> dict[str, str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = 'records'",
            (schema,),
        ).fetchall()
    return dict(rows)


@pytest.mark.anyio
async def test_the_records_table_has_every_column_of_the_codec(
    postgres_dsn: str, pg_schema: str
) -> None:
    """A new ExecutionRecord field needs a migration adding its column: this fails until then."""
    async with PostgresStore(postgres_dsn, schema=pg_schema) as store:
        await store.open()
    columns = _table_columns(postgres_dsn, pg_schema)
    assert set(columns) == {"seq", *KEY_COLUMNS, *RECORD_CODEC.columns}
    assert {c for c, kind in columns.items() if kind == "bytea"} == set(BYTEA_COLUMNS)


@pytest.mark.anyio
async def test_a_newer_schema_is_refused_and_left_alone(postgres_dsn: str, pg_schema: str) -> None:
    async with PostgresStore(postgres_dsn, schema=pg_schema) as store:
        await store.open_job(make_spec("kept"))
    newer = str(SCHEMA_VERSION + 1)
    with psycopg.connect(postgres_dsn) as conn:
        conn.execute(
            f"UPDATE {pg_schema}.meta SET value = %s WHERE key = 'schema_version'", (newer,)
        )
    with pytest.raises(StoreError, match=f"version {newer}, newer than this library"):
        async with PostgresStore(postgres_dsn, schema=pg_schema) as store:
            pass
    with psycopg.connect(postgres_dsn) as conn:
        (count,) = conn.execute(f"SELECT count(*) FROM {pg_schema}.jobs").fetchone() or (0,)
    assert count == 1


@pytest.mark.anyio
async def test_unknown_jobs_and_a_closed_store_are_errors(
    postgres_dsn: str, pg_schema: str
) -> None:
    store = PostgresStore(postgres_dsn, schema=pg_schema)
    with pytest.raises(StoreError, match="unknown job id 'nope'"):
        await store.records("nope")
    await store.aclose()
    with pytest.raises(UsageError, match="is closed"):
        await store.jobs()


@pytest.mark.anyio
async def test_a_version_2_schema_is_migrated_with_its_records_and_claims_kept(
    postgres_dsn: str, pg_schema: str
) -> None:
    """Records of a version-2 store (no sample) read back with sample 0, and its claim cells
    (keyed by question index) become slots with the same numbers: a one-sample job's slot is
    its question index."""
    from beacon_orchestrator.stores.postgres._schema import _MIGRATIONS

    spec = make_spec("old", questions=2, models=1)
    with psycopg.connect(postgres_dsn) as conn:
        conn.execute(f"CREATE SCHEMA {pg_schema}")
        for steps in _MIGRATIONS[:2]:
            for template in steps:
                conn.execute(template.format(s=pg_schema).encode())
        conn.execute(f"INSERT INTO {pg_schema}.meta VALUES ('schema_version', '2')")
        conn.execute(
            f"INSERT INTO {pg_schema}.jobs (id, spec, planned, created_at) "
            "VALUES ('old', %s, %s, 1.0)",
            (json.dumps(spec.to_dict()), spec.size),
        )
        conn.execute(
            f"INSERT INTO {pg_schema}.records (job_id, question_id, model_id, region, status, "
            "text, empty, attempts, metadata) VALUES ('old', 'q1', 'm0', %s, 'completed', "
            "'answer'::bytea, false, 1, '{}')",
            (spec.models[0].regions[0],),
        )
        conn.execute(f"INSERT INTO {pg_schema}.claim_jobs (job_id) VALUES ('old')")
        conn.execute(
            f"INSERT INTO {pg_schema}.endpoints (job_id, model_id, region, ord, n_q, next_q) "
            "VALUES ('old', 'm0', %s, 0, 2, 1)",
            (spec.models[0].regions[0],),
        )
    async with PostgresStore(postgres_dsn, schema=pg_schema) as store:
        (kept,) = await store.records("old")
        assert kept.key == ExecutionKey("q1", "m0", spec.models[0].regions[0], 0)
        assert kept.text == "answer"
        assert (kept.served_region, kept.cost) == (None, None)
        assert await store.completed_keys("old") == {kept.key}
        (keys,) = [k async for k in store.keys("old")]
        assert (keys.question_ids, keys.samples, keys.statuses) == (("q1",), (0,), (C,))
        # the same key with a sample is another record now
        await store.write("old", record(ExecutionKey("q1", "m0", kept.key.region, 1), F))
        assert len(await store.records("old")) == 2
    with psycopg.connect(postgres_dsn) as conn:
        version = conn.execute(
            f"SELECT value FROM {pg_schema}.meta WHERE key = 'schema_version'"
        ).fetchone()
        ends = conn.execute(f"SELECT n_slots, next_slot FROM {pg_schema}.endpoints").fetchone()
    assert version == (str(SCHEMA_VERSION),)
    assert ends == (2, 1)
