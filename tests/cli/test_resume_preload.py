"""A CLI run or resume reads what the store holds from its keys, never every record.

At 500,000 executions, reading every record before the run held them all in memory (about
620 bytes each); ``Store.keys`` gives the same statuses and empty flags a few hundred grouped
rows at a time.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from beacon_orchestrator import (
    ExecutionKey,
    ExecutionRecord,
    ExecutionStatus,
    MemoryStore,
    RunOptions,
)
from beacon_orchestrator.cli._live import JobView
from beacon_orchestrator.cli._render import Glyphs
from beacon_orchestrator.cli._runner import CommandRun, run_cli_job
from beacon_orchestrator.testing import FakeExecutor, run_virtual

from ..stores.support import make_spec

C, F, X = ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED


class KeysOnlyStore(MemoryStore):
    """A store that refuses to hand out every record of a job."""

    async def records(self, job_id: str) -> list[ExecutionRecord]:
        raise AssertionError("the CLI read every record of the job")


def stored() -> list[ExecutionRecord]:
    """q0 completed everywhere (one empty), q1 failed at m0@us-east, cancelled at m1@eu-west."""
    spec = make_spec()
    out = [
        ExecutionRecord(key=k, status=C, empty=k.model_id == "m1" and k.region == "us-east")
        for k in spec.plan()
        if k.question_id == "q0"
    ]
    out.append(ExecutionRecord(key=ExecutionKey("q1", "m0", "us-east"), status=F))
    out.append(ExecutionRecord(key=ExecutionKey("q1", "m1", "eu-west"), status=X))
    return out


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("rerun_failed", [True, False])
def test_a_resume_counts_what_it_keeps_from_the_keys(backend: str, rerun_failed: bool) -> None:
    spec = make_spec()
    store = KeysOnlyStore()
    err = io.StringIO()

    async def main() -> int:
        await store.open_job(spec)
        await store.write_many(spec.id, stored())
        return await run_cli_job(
            spec,
            FakeExecutor(),
            store,
            CommandRun(
                store_path=Path("x.db"), progress="plain", run=RunOptions(rerun_failed=rerun_failed)
            ),
            out=Console(file=io.StringIO()),
            err=Console(file=err, width=200),
        )

    assert run_virtual(main, backend=backend) == 0
    kept = "" if rerun_failed else ", 1 failed kept (--keep-failed)"
    to_run = spec.size - 6 - (0 if rerun_failed else 1)
    assert (
        f"Resuming job job: 6 of {spec.size} executions already completed{kept}; {to_run} to run"
    ) in err.getvalue()


@pytest.mark.anyio
async def test_the_live_view_shows_the_kept_keys_as_the_records_would() -> None:
    """Preloaded from the keys, the view holds the cells (and empty answers) that preloading
    the records gives, for both resume rules."""
    spec = make_spec()
    store = MemoryStore()
    await store.open_job(spec)
    await store.write_many(spec.id, stored())
    found = [e async for e in store.keys(spec.id)]
    for rerun_failed in (True, False):
        by_keys = JobView(spec, Console(file=io.StringIO()), Glyphs.for_encoding("utf-8"))
        by_keys.preload_keys(found, rerun_failed=rerun_failed)
        by_records = JobView(spec, Console(file=io.StringIO()), Glyphs.for_encoding("utf-8"))
        by_records.preload(stored(), rerun_failed=rerun_failed)
        assert by_keys._cells == by_records._cells
        assert by_keys._empties == by_records._empties
        assert len(by_keys._cells) == 6 + (0 if rerun_failed else 1)
