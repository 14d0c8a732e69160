"""The commands that run a job: ``run`` (a job file), ``resume`` (a stored job) and ``demo``."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
from attrs import evolve

from .._scheduler import RunOptions
from .._spec import JobSpec, Limits, load_jobspec, read_document
from ._executors import EXECUTORS, ExecutorOptions, command_line
from ._options import (
    DEFAULT_STORE,
    LIMIT_OPTIONS,
    executor_options,
    flag_of,
    progress_options,
    run_options,
    speed_option,
    store_option,
)
from ._runner import CommandRun, run_cli_job
from ._shell import consoles, exits_with_code, run_async
from ._stored import existing, load_stored_spec

__all__ = ["demo", "resume", "run"]


# -- from options to a run ----------------------------------------------------------------------


def _executor_from(kw: Mapping[str, Any]) -> ExecutorOptions:
    if kw["executor"] is None:
        raise click.UsageError(
            "choose where executions go with --executor "
            f"({', '.join(EXECUTORS)}) or BEACON_EXECUTOR; 'demo' simulates answers"
        )
    return ExecutorOptions(
        executor=kw["executor"],
        router_url=kw["router_url"],
        modal_endpoints=tuple(kw["modal_endpoints"]),
        openai_base_url=kw["openai_base_url"],
        model_map=tuple(kw["model_map"]),
        speed=kw["speed"],
        attempts=kw["attempts"],
    )


def _limits_from(spec: JobSpec, kw: Mapping[str, Any]) -> Limits | None:
    """The job's limits with those given on the command line in their place."""
    overrides = {name: kw[name] for name in LIMIT_OPTIONS if kw[name] is not None}
    return evolve(spec.limits, **overrides) if overrides else None


def _run_args(kw: Mapping[str, Any]) -> list[str]:
    """The run options a resume must repeat to run the same way."""
    args: list[str] = []
    if kw["store_path"] != Path(DEFAULT_STORE):
        args += ["--store", str(kw["store_path"])]
    if kw["strategy"] != "endpoint":
        args += ["--strategy", kw["strategy"]]
    for name in LIMIT_OPTIONS:
        if kw[name] is not None:
            args += [flag_of(name), f"{kw[name]:g}"]
    if kw["early_stop"]:
        args.append("--early-stop")
    if not kw["rerun_failed"]:
        args.append("--keep-failed")
    return args


def _run_options_from(
    spec: JobSpec, executor: ExecutorOptions, kw: Mapping[str, Any]
) -> CommandRun:
    resume = command_line(["beacon", "resume", spec.id, *_run_args(kw), *executor.args()])
    run = RunOptions(
        strategy=kw["strategy"],
        limits=_limits_from(spec, kw),
        retry=executor.retry(),
        early_stop=kw["early_stop"],
        rerun_failed=kw["rerun_failed"],
        preflight=kw["preflight"],
    )
    return CommandRun(
        store_path=kw["store_path"],
        run=run,
        progress=kw["progress"],
        interval=kw["progress_interval"],
        resume_command=resume,
        simulated=executor.simulated,
    )


def _execute(
    path: Path, job: JobSpec | str, executor: ExecutorOptions, kw: Mapping[str, Any]
) -> int:
    """Run ``job`` (a spec, or the id of a job in the store) and return the exit code."""
    from ..stores import SQLiteStore

    async def main() -> int:
        out, err = consoles()
        async with SQLiteStore(path) as store:
            spec = job if isinstance(job, JobSpec) else await load_stored_spec(store, job, path)
            options = _run_options_from(spec, executor, kw)
            return await run_cli_job(spec, executor.build(), store, options, out=out, err=err)

    return run_async(kw["backend"], main)


# -- loading documents --------------------------------------------------------------------------


def _load_job(path: Path, catalogue: Path | None) -> JobSpec:
    # The loader checks the catalogue's shape along with the job, reporting both at once.
    questions = None if catalogue is None else read_document(catalogue)
    return load_jobspec(path, questions=questions)


# -- commands -----------------------------------------------------------------------------------


@click.command(short_help="Run a job file (JSON or YAML) and store every record.")
@click.argument("job", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--questions",
    "catalogue",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Question catalogue (JSON or YAML) for a job in Beacon's format.",
)
@executor_options
@run_options
@exits_with_code
def run(job: Path, catalogue: Path | None, **kw: Any) -> int:
    """Run the job described in JOB (JSON or YAML) and store every record.

    Running a job id the store already holds resumes it. Limit options override the job's
    own limits. Ctrl-C once cancels cleanly (every execution gets a record; resume later);
    twice aborts at once.

    Exit codes: 0 completed, 1 failed, 2 bad usage or invalid job, 130 cancelled.
    """
    executor = _executor_from(kw)
    return _execute(kw["store_path"], _load_job(job, catalogue), executor, kw)


@click.command(short_help="Finish a stored job; completed executions are kept.")
@click.argument("job_id")
@executor_options
@run_options
@exits_with_code
def resume(job_id: str, **kw: Any) -> int:
    """Finish job JOB_ID from the store: completed executions are not run again.

    Give the executor options again (they are not stored, nor are API keys).
    """
    executor = _executor_from(kw)
    return _execute(existing(kw["store_path"]), job_id, executor, kw)


@click.command(short_help="Run the demo job on a SIMULATED executor (about 10 s).")
@speed_option("Pace: 1 takes about 10 s, 10 about 1 s, 0.1 about 100 s.")
@click.option("--job-id", help="Id for the demo job (default: demo-<date>-<time>).")
@store_option
@progress_options
@exits_with_code
def demo(speed: float, job_id: str | None, store_path: Path, **kw: Any) -> int:
    """Run a shipped 64-execution job against a SIMULATED executor (no model is called).

    Beacon's 8 questions, 3 models served in 3 regions, with realistic timing (cold starts),
    a few transient failures that are retried, one permanent failure and one empty answer.
    """
    from .._demo import demo_data

    base = demo_data().spec
    spec = evolve(base, id=job_id or _dt.datetime.now().strftime("demo-%Y%m%d-%H%M%S"))
    _, err = consoles()
    err.print(
        f"[bold yellow]Demo[/] job {spec.id}: {len(spec.questions)} questions x "
        f"{len(spec.endpoints)} endpoints ({len(spec.models)} models in "
        f"{len(spec.regions)} regions) = {spec.size} executions, sent to a [bold]SIMULATED[/] "
        "executor: no model is called and every answer is made up. The timing replays real "
        f"GPU endpoints, sped up. Records go to {store_path}.",
        soft_wrap=True,
    )
    executor = ExecutorOptions(executor="demo", speed=speed)
    defaults = {
        "store_path": store_path,
        "strategy": "endpoint",
        **dict.fromkeys(LIMIT_OPTIONS),
        "early_stop": False,
        "rerun_failed": True,
        "preflight": False,
    }
    return _execute(store_path, spec, executor, {**defaults, **kw})
