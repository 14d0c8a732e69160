"""The commands that run a job: ``run`` (a job file), ``resume`` (a stored job) and ``demo``."""

from __future__ import annotations

import datetime as _dt
import re
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click
from attrs import evolve
from rich.markup import escape

from .._cost import CostModel, Price
from .._errors import JobConflictError, SpecError, StoreError, UsageError
from .._executor import Executor
from .._scheduler import RunOptions
from .._spec import JobSpec, Limits, load_jobspec, read_document
from ..stores import Store
from ._executors import EXECUTORS, ExecutorOptions, command_line
from ._locations import StoreLocation, open_store
from ._options import (
    DEFAULT_STORE,
    LIMIT_OPTIONS,
    executor_options,
    flag_of,
    job_document,
    job_id_option,
    json_option,
    progress_options,
    run_options,
    speed_option,
    store_option,
)
from ._runner import CommandRun, run_cli_job
from ._shell import consoles, exits_with_code, run_async
from ._stored import existing, load_stored_spec

__all__ = [
    "check_stored_spec",
    "demo",
    "load_job",
    "resume",
    "run",
    "with_id",
    "with_limits",
    "with_options",
]

_T = TypeVar("_T")


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
        modal_health=tuple(kw["modal_health"]),
        openai_base_url=kw["openai_base_url"],
        model_map=tuple(kw["model_map"]),
        speed=kw["speed"],
        attempts=kw["attempts"],
    )


def with_options(make: Callable[[], _T], options: Mapping[str, str]) -> _T:
    """``make()``, with a spec error's paths replaced by the options the values came from.

    Args:
        make: Builds a value from command-line values (``evolve(spec, id=...)``, ...).
        options: The option of each path a problem may name (``{"id": "--job-id"}``).
    """
    try:
        return make()
    except SpecError as exc:
        problems = [evolve(p, path=options.get(p.path, p.path)) for p in exc.problems]
        raise UsageError("; ".join(map(str, problems))) from None


def with_limits(spec: JobSpec, kw: Mapping[str, Any]) -> Limits | None:
    """The job's limits with those given on the command line in their place."""
    overrides = {name: kw[name] for name in LIMIT_OPTIONS if kw[name] is not None}
    if not overrides:
        return None
    paths = {f"limits.{name}": flag_of(name) for name in LIMIT_OPTIONS}
    return with_options(lambda: evolve(spec.limits, **overrides), paths)


def with_id(spec: JobSpec, job_id: str | None) -> JobSpec:
    """``spec`` under the id ``--job-id`` gives, if it gives one."""
    if job_id is None:
        return spec
    return with_options(lambda: evolve(spec, id=job_id), {"id": "--job-id"})


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
    args += [flag for flag in ("--adaptive", "--breaker") if kw.get(flag[2:])]
    if kw.get("cost_per_second") is not None:
        args += ["--cost-per-second", f"{kw['cost_per_second']:g}"]
    if not kw["rerun_failed"]:
        args.append("--keep-failed")
    return args


async def check_stored_spec(store: Store, spec: JobSpec, path: StoreLocation) -> bool:
    """Whether ``store`` holds job ``spec.id``; refuses a different spec under that id.

    Raises:
        JobConflictError: The store holds another spec under the id, saying which fields
            differ and how to run the edited job anyway (``--job-id``).
    """
    try:
        stored = await store.load_spec(spec.id)
    except StoreError:
        return False
    if stored == spec:
        return True
    mine, theirs = spec.to_dict(), stored.to_dict()
    fields = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
    raise JobConflictError(
        f"job {spec.id!r} is already stored in {str(path)!r} with a different spec "
        f"(differs in: {', '.join(fields) or 'details'}): run the edited job under a new id "
        f"with --job-id NEW, or finish the stored one with: beacon resume {shlex.quote(spec.id)}"
    )


def _prices(per_second: float | None) -> CostModel | None:
    return None if per_second is None else CostModel(default=Price(per_second=per_second))


def _run_options_from(
    spec: JobSpec, executor: ExecutorOptions, kw: Mapping[str, Any]
) -> CommandRun:
    resume = command_line(["beacon", "resume", spec.id, *_run_args(kw), *executor.args()])
    run = RunOptions(
        strategy=kw["strategy"],
        limits=with_limits(spec, kw),
        retry=executor.retry(),
        early_stop=kw["early_stop"],
        rerun_failed=kw["rerun_failed"],
        preflight=kw["preflight"],
        adaptive=kw.get("adaptive", False),  # the demo has no fleet options
        breaker=kw.get("breaker", False),
        cost_model=_prices(kw.get("cost_per_second")),
    )
    return CommandRun(
        store_path=kw["store_path"],
        run=run,
        progress=kw["progress"],
        interval=kw["progress_interval"],
        resume_command=resume,
        simulated=executor.simulated,
        as_json=kw["as_json"],
    )


def _check_modal(spec: JobSpec, executor: Executor, preflight: bool) -> None:
    """Every region of the job has a --modal-endpoint, with a health URL for --preflight."""
    from ..adapters.modal import ModalExecutor

    if not isinstance(executor, ModalExecutor):  # pragma: no cover - built from the options
        return
    missing = [r for r in spec.regions if r not in executor.endpoints]
    if missing:
        given = ", ".join(executor.endpoints) or "none"
        raise UsageError(
            f"job {spec.id!r} runs in {', '.join(missing)}: give --modal-endpoint REGION=URL "
            f"for each region of the job (given: {given})"
        )
    unhealthy = [r for r in spec.regions if executor.endpoints[r].health_url is None]
    if preflight and unhealthy:
        raise UsageError(
            f"--preflight: no health URL for {', '.join(unhealthy)}: give --modal-health "
            "REGION=URL (it is derived only from an inference URL with '-inference' in its "
            "host or 'inference' at the end of its path)"
        )


def _execute(
    path: StoreLocation, job: JobSpec | str, executor: ExecutorOptions, kw: Mapping[str, Any]
) -> int:
    """Run ``job`` (a spec, or the id of a job in the store) and return the exit code.

    Everything the options can get wrong is checked before the store is opened (created, for a
    new file) when the spec is at hand; a stored job's spec is only known once it is open.
    """
    built = executor.build()

    def prepare(spec: JobSpec) -> CommandRun:
        if executor.executor == "modal":
            _check_modal(spec, built, kw["preflight"])
        return _run_options_from(spec, executor, kw)

    ready = prepare(job) if isinstance(job, JobSpec) else None

    async def main() -> int:
        out, err = consoles()
        async with open_store(path) as store:
            if isinstance(job, JobSpec):
                spec = job
                await check_stored_spec(store, spec, path)
            else:
                spec = await load_stored_spec(store, job, path)
            options = ready or prepare(spec)
            return await run_cli_job(spec, built, store, options, out=out, err=err)

    return run_async(kw["backend"], main)


# -- loading documents --------------------------------------------------------------------------


# The loader's hint names both ways of giving a catalogue; here only the option applies.
_CATALOGUE_HINT = re.compile(r"\(questions=\.\.\. in Python, --questions on the command line\)")


def load_job(path: Path, catalogue: Path | None, job_id: str | None = None) -> JobSpec:
    """The job in file ``path`` (its questions from ``catalogue``), under ``job_id`` if given."""
    # The loader checks the catalogue's shape along with the job, reporting both at once.
    questions = None if catalogue is None else read_document(catalogue)
    try:
        spec = load_jobspec(path, questions=questions)
    except SpecError as exc:
        problems = [
            evolve(p, message=_CATALOGUE_HINT.sub("(--questions FILE)", p.message))
            for p in exc.problems
        ]
        raise SpecError(problems, source=exc.source) from None
    return with_id(spec, job_id)


# -- commands -----------------------------------------------------------------------------------


@click.command(short_help="Run a job file (JSON or YAML) and store every record.")
@job_document
@job_id_option("Run the job under this id instead of the document's (e.g. an edited copy).")
@executor_options
@run_options
@exits_with_code
def run(job: Path, catalogue: Path | None, job_id: str | None, **kw: Any) -> int:
    """Run the job described in JOB (JSON or YAML) and store every record.

    Running a job id the store already holds resumes it; to run an edited document again,
    give it a new id with --job-id. Limit options override the job's own limits. Ctrl-C once
    cancels cleanly (every execution gets a record; resume later); twice aborts at once.

    Exit codes: 0 completed, 1 failed, 2 bad usage or invalid job, 130 cancelled.
    """
    executor = _executor_from(kw)
    return _execute(kw["store_path"], load_job(job, catalogue, job_id), executor, kw)


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
@job_id_option("Id for the demo job (default: demo-<date>-<time>).")
@store_option
@progress_options
@json_option
@exits_with_code
def demo(speed: float, job_id: str | None, store_path: StoreLocation, **kw: Any) -> int:
    """Run a shipped 64-execution job against a SIMULATED executor (no model is called).

    Beacon's 8 questions, 3 models served in 3 regions, with realistic timing (cold starts),
    a few transient failures that are retried, one permanent failure and one empty answer.
    """
    from .._demo import demo_data

    default_id = _dt.datetime.now().strftime("demo-%Y%m%d-%H%M%S")
    spec = with_id(demo_data().spec, default_id if job_id is None else job_id)
    _, err = consoles()
    err.print(
        f"[bold yellow]Demo[/] job {escape(spec.id)}: {len(spec.questions)} questions x "
        f"{len(spec.endpoints)} endpoints ({len(spec.models)} models in "
        f"{len(spec.regions)} regions) = {spec.size} executions, sent to a [bold]SIMULATED[/] "
        "executor: no model is called and every answer is made up. The timing replays real "
        f"GPU endpoints, sped up. Records go to {escape(str(store_path))}.",
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
