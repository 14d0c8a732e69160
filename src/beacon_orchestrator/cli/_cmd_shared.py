"""``beacon worker`` and ``beacon cancel``: many workers sharing the jobs of a PostgreSQL store.

``beacon worker`` joins every open job of the store until it is stopped: SIGTERM or Ctrl-C
stops its requests and hands back the endpoints it holds (another worker re-runs what it
interrupted). ``beacon cancel`` cancels a job for every worker at once.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import anyio
import click

from .._errors import UsageError
from .._scheduler import RunOptions
from .._scheduler._shared import SharedOptions, SharedRun, shares_jobs
from ._cmd_run import _executor_from, load_job
from ._locations import StoreDsn, StoreLocation, open_store
from ._options import executor_options, store_option
from ._runner import EXIT_OK
from ._shell import exits_with_code, run_async

__all__ = ["cancel", "worker"]


def _shared_store(location: StoreLocation) -> Any:
    if not isinstance(location, StoreDsn):
        raise UsageError(
            f"--store {str(location)!r}: many workers share a job only in a PostgreSQL store; "
            "give a postgresql:// DSN"
        )
    store = open_store(location)
    assert shares_jobs(store)
    return store


@click.command(short_help="Work on every open job of a PostgreSQL store until stopped.")
@click.argument("jobs", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@executor_options
@store_option
@click.option(
    "--lease",
    type=click.FloatRange(min=1.0),
    default=30.0,
    show_default=True,
    help="Seconds an endpoint stays this worker's without a renewal (takeover after a crash).",
)
@click.option(
    "--capacity",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Endpoints this worker runs at once.",
)
@exits_with_code
def worker(
    jobs: tuple[Path, ...], store_path: StoreLocation, lease: float, capacity: int, **kw: Any
) -> int:
    """Join the open jobs of the store (--store postgresql://...) and run their executions.

    JOBS (job files, JSON or YAML) are opened in the store first, for every worker to share.
    Any number of workers, on any number of machines, share a job: each claims endpoints
    (model x region) under a lease, so every execution runs once. SIGTERM or Ctrl-C stops this
    worker's requests and hands back what it holds.
    """
    specs = [load_job(path, None) for path in jobs]
    executor = _executor_from(kw)
    built = executor.build()
    options = RunOptions(retry=executor.retry())
    shared = SharedOptions(lease=lease, capacity=capacity)

    async def main() -> int:
        async with _shared_store(store_path) as store, anyio.create_task_group() as tg:
            for spec in specs:
                await store.publish_job(spec)

            async def stop_on_signal() -> None:
                with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                    async for _ in signals:
                        click.echo("Stopping: handing back the endpoints held.", err=True)
                        tg.cancel_scope.cancel()
                        return

            tg.start_soon(stop_on_signal)
            click.echo(f"Worker on {store_path}: waiting for work.", err=True)
            await SharedRun(store, built, options, shared).run()
        return EXIT_OK

    return run_async("asyncio", main)


@click.command(short_help="Cancel a job for every worker of a PostgreSQL store.")
@click.argument("job_id")
@store_option
@click.option("--reason", default="cancelled from the command line", show_default=True)
@exits_with_code
def cancel(job_id: str, store_path: StoreLocation, reason: str) -> int:
    """Cancel job JOB_ID: no execution starts after this returns, on any worker.

    Running executions are interrupted (stored CANCELLED) and the others stored SKIPPED.
    """

    async def main() -> bool:
        async with _shared_store(store_path) as store:
            await store.load_spec(job_id)
            done: bool = await store.cancel_job(job_id, reason)
            return done

    if run_async("asyncio", main):
        click.echo(f"Cancelled {job_id}: no execution starts after this.", err=True)
    else:
        click.echo(f"{job_id} was already cancelled or finished.", err=True)
    return EXIT_OK
