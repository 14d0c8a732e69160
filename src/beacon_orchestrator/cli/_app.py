"""The ``beacon`` command group: run, resume, status, export, jobs and demo."""

from __future__ import annotations

import datetime as _dt
import functools
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn, ParamSpec, TypeVar

import anyio
import click
from attrs import evolve
from rich.console import Console

from .. import __version__
from .._errors import (
    BeaconError,
    JobConflictError,
    SpecError,
    StoreError,
    UsageError,
)
from .._scheduler import STRATEGIES as _STRATEGIES
from .._spec import JobSpec, Limits, load_jobspec, read_document
from .._types import ExecutionRecord
from ..stores import JobInfo, Store
from ._executors import EXECUTORS, ExecutorOptions, command_line
from ._live import ProgressMode
from ._render import Glyphs, jobs_table, legend, status_matrix, verdict_style, verdict_table
from ._runner import EXIT_CANCELLED, EXIT_FAILED, EXIT_OK, EXIT_USAGE, RunOptions, run_cli_job

__all__ = ["cli", "main"]

_P = ParamSpec("_P")
_T = TypeVar("_T")

DEFAULT_STORE = "beacon.db"
_PROGRESS: tuple[ProgressMode, ...] = ("auto", "live", "plain", "off")


# -- errors and the event loop ----------------------------------------------------------------


def _leaf(exc: BaseException) -> BaseException:
    """The one exception inside nested single-exception groups (task groups wrap them)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def _exit_code_for(exc: BeaconError) -> int:
    """Bad input, unknown jobs and conflicting specs are usage errors (2); others failures (1)."""
    usage = isinstance(exc, SpecError | UsageError | JobConflictError)
    return EXIT_USAGE if usage else EXIT_FAILED


def _run_async(backend: str, fn: Callable[[], Awaitable[_T]]) -> _T:
    """Run ``fn`` in a new event loop; turn library errors into messages and exit codes."""
    try:
        return anyio.run(fn, backend=backend)
    except KeyboardInterrupt:
        _fail("interrupted.", EXIT_CANCELLED)
    except BaseException as exc:
        leaf = _leaf(exc)
        if isinstance(leaf, BeaconError):
            # SpecError already says "invalid job spec ..." with one problem per line.
            _fail(str(leaf), _exit_code_for(leaf))
        raise


def _command(fn: Callable[_P, int]) -> Callable[_P, None]:
    """Exit with the code a command returns; print library errors instead of tracebacks."""

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> None:
        try:
            code = fn(*args, **kwargs)
        except BeaconError as exc:
            _fail(str(exc), _exit_code_for(exc))
        else:
            sys.exit(code)

    return wrapper


def _consoles() -> tuple[Console, Console]:
    """Results go to stdout; progress and messages to stderr, so stdout stays pipeable."""
    return Console(highlight=False), Console(stderr=True, highlight=False)


# -- stores -----------------------------------------------------------------------------------


def _store_option(fn: Callable[_P, _T]) -> Callable[_P, _T]:
    return click.option(
        "--store",
        "store_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=DEFAULT_STORE,
        show_default=True,
        envvar="BEACON_STORE",
        show_envvar=True,
        help="SQLite file holding jobs and records.",
    )(fn)


def _existing(path: Path) -> Path:
    """``path``, if a store is there (commands that only read must not create one)."""
    if str(path) != ":memory:" and not path.exists():
        raise UsageError(
            f"no store at {str(path)!r}: run a job first, or point --store (or BEACON_STORE) "
            "at an existing file"
        )
    return path


async def _load_stored_spec(store: Store, job_id: str, path: Path) -> JobSpec:
    try:
        return await store.load_spec(job_id)
    except StoreError:
        known = [j.job_id for j in await store.jobs()]
        hint = f"; jobs there: {', '.join(known[-5:])}" if known else "; it holds no jobs"
        raise UsageError(f"no job {job_id!r} in {str(path)!r}{hint}") from None


# -- options shared by run, resume and demo ---------------------------------------------------


_Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def _apply(fn: Callable[_P, _T], decorators: Sequence[_Decorator]) -> Callable[_P, _T]:
    """Apply ``decorators`` as if stacked above ``fn`` in this order (options show in order)."""
    out: Callable[..., Any] = fn
    for decorate in reversed(decorators):
        out = decorate(out)
    return out


def _executor_options(fn: Callable[_P, _T]) -> Callable[_P, _T]:
    options: list[_Decorator] = [
        click.option(
            "--executor",
            type=click.Choice(EXECUTORS),
            envvar="BEACON_EXECUTOR",
            show_envvar=True,
            help="Where executions go. 'demo' simulates answers; it calls no model.",
        ),
        click.option(
            "--router-url",
            metavar="URL",
            envvar="BEACON_ROUTER_URL",
            show_envvar=True,
            help="Hybrid router base URL. API key: BEACON_ROUTER_API_KEY.",
        ),
        click.option(
            "--modal-endpoint",
            "modal_endpoints",
            multiple=True,
            metavar="REGION=URL",
            help="A Modal inference URL for a region (repeat per region). "
            "Token: BEACON_MODAL_TOKEN.",
        ),
        click.option(
            "--openai-base-url",
            metavar="URL",
            envvar="OPENAI_BASE_URL",
            show_envvar=True,
            help="OpenAI-compatible server (vLLM, Ollama, ...). API key: OPENAI_API_KEY.",
        ),
        click.option(
            "--model-map",
            multiple=True,
            metavar="MODEL=NAME",
            help="The name the OpenAI-compatible server knows a job's model by (repeatable).",
        ),
        click.option(
            "--speed",
            metavar="X",
            type=click.FloatRange(min=0, min_open=True),
            default=1.0,
            show_default=True,
            help="Pace of the demo executor: 1 runs the demo job in about 10 s, 10 in 1 s.",
        ),
        click.option(
            "--attempts",
            metavar="N",
            type=click.IntRange(min=1),
            help="Attempts per execution, the first included (default 3).",
        ),
    ]
    return _apply(fn, options)


def _run_options(fn: Callable[_P, _T]) -> Callable[_P, _T]:
    positive_int = click.IntRange(min=1)
    seconds = click.FloatRange(min=0, min_open=True)
    options: list[_Decorator] = [
        _store_option,
        click.option(
            "--strategy",
            type=click.Choice(_STRATEGIES),
            default="endpoint",
            show_default=True,
            help="How questions advance: per endpoint, per region, or all regions in lockstep.",
        ),
        click.option(
            "--max-concurrency", metavar="N", type=positive_int, help="In flight at once."
        ),
        click.option(
            "--per-region", metavar="N", type=positive_int, help="In flight at once per region."
        ),
        click.option(
            "--per-endpoint",
            metavar="N",
            type=positive_int,
            help="In flight at once per model x region (default 1).",
        ),
        click.option(
            "--attempt-timeout", metavar="SECONDS", type=seconds, help="Time for one attempt."
        ),
        click.option(
            "--job-timeout", metavar="SECONDS", type=seconds, help="Time for the whole job."
        ),
        click.option(
            "--early-stop",
            is_flag=True,
            help="Stop as soon as the verdict can no longer change (saves GPU time).",
        ),
        click.option(
            "--rerun-failed/--keep-failed",
            default=True,
            show_default=True,
            help="On resume, run failed and timed-out executions again, or keep them.",
        ),
        click.option(
            "--preflight", is_flag=True, help="Health-check every region before starting."
        ),
        _progress_options,
    ]
    return _apply(fn, options)


def _progress_options(fn: Callable[_P, _T]) -> Callable[_P, _T]:
    fn = click.option(
        "--backend",
        type=click.Choice(["asyncio", "trio"]),
        default="asyncio",
        hidden=True,
        help="Event loop to run on.",
    )(fn)
    fn = click.option(
        "--progress-interval",
        metavar="SECONDS",
        type=click.FloatRange(min=0, min_open=True),
        default=10.0,
        show_default=True,
        help="Seconds between plain progress lines.",
    )(fn)
    return click.option(
        "--progress",
        type=click.Choice(_PROGRESS),
        default="auto",
        show_default=True,
        help="Live display on a terminal, plain lines for logs (auto picks), or none.",
    )(fn)


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


_LIMIT_OPTIONS = ("max_concurrency", "per_region", "per_endpoint", "attempt_timeout", "job_timeout")


def _limits_from(spec: JobSpec, kw: Mapping[str, Any]) -> Limits | None:
    """The job's limits with those given on the command line in their place."""
    overrides = {name: kw[name] for name in _LIMIT_OPTIONS if kw[name] is not None}
    return evolve(spec.limits, **overrides) if overrides else None


def _run_args(kw: Mapping[str, Any]) -> list[str]:
    """The run options a resume must repeat to run the same way."""
    args: list[str] = []
    if kw["store_path"] != Path(DEFAULT_STORE):
        args += ["--store", str(kw["store_path"])]
    if kw["strategy"] != "endpoint":
        args += ["--strategy", kw["strategy"]]
    for name in _LIMIT_OPTIONS:
        if kw[name] is not None:
            args += ["--" + name.replace("_", "-"), f"{kw[name]:g}"]
    if kw["early_stop"]:
        args.append("--early-stop")
    if not kw["rerun_failed"]:
        args.append("--keep-failed")
    return args


def _run_options_from(
    spec: JobSpec, executor: ExecutorOptions, kw: Mapping[str, Any]
) -> RunOptions:
    resume = command_line(["beacon", "resume", spec.id, *_run_args(kw), *executor.args()])
    return RunOptions(
        store_path=kw["store_path"],
        strategy=kw["strategy"],
        limits=_limits_from(spec, kw),
        retry=executor.retry(),
        early_stop=kw["early_stop"],
        rerun_failed=kw["rerun_failed"],
        preflight=kw["preflight"],
        progress=kw["progress"],
        interval=kw["progress_interval"],
        resume_command=resume,
        simulated=executor.simulated,
    )


# -- loading documents ------------------------------------------------------------------------


def _read_catalogue(path: Path) -> Any:
    """Parse a question catalogue file (JSON, or YAML), as strictly as job files are parsed."""
    return read_document(path)


def _load_job(path: Path, catalogue: Path | None) -> JobSpec:
    # The loader checks the catalogue's shape along with the job, reporting both at once.
    questions = None if catalogue is None else _read_catalogue(catalogue)
    return load_jobspec(path, questions=questions)


# -- commands ---------------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="beacon")
def cli() -> None:
    """Run cross-region LLM probe jobs: questions x models x regions.

    Start with 'beacon demo' (simulated answers, about 10 seconds).
    """


@cli.command(short_help="Run a job file (JSON or YAML) and store every record.")
@click.argument("job", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--questions",
    "catalogue",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Question catalogue (JSON or YAML) for a job in Beacon's format.",
)
@_executor_options
@_run_options
@_command
def run(job: Path, catalogue: Path | None, **kw: Any) -> int:
    """Run the job described in JOB (JSON or YAML) and store every record.

    Running a job id the store already holds resumes it. Limit options override the job's
    own limits. Ctrl-C once cancels cleanly (every execution gets a record; resume later);
    twice aborts at once.

    Exit codes: 0 completed, 1 failed, 2 bad usage or invalid job, 130 cancelled.
    """
    executor = _executor_from(kw)
    return _execute(kw["store_path"], _load_job(job, catalogue), executor, kw)


@cli.command(short_help="Finish a stored job; completed executions are kept.")
@click.argument("job_id")
@_executor_options
@_run_options
@_command
def resume(job_id: str, **kw: Any) -> int:
    """Finish job JOB_ID from the store: completed executions are not run again.

    Give the executor options again (they are not stored, nor are API keys).
    """
    executor = _executor_from(kw)
    return _execute(_existing(kw["store_path"]), job_id, executor, kw)


def _execute(
    path: Path, job: JobSpec | str, executor: ExecutorOptions, kw: Mapping[str, Any]
) -> int:
    """Run ``job`` (a spec, or the id of a job in the store) and return the exit code."""
    from ..stores import SQLiteStore

    async def main() -> int:
        out, err = _consoles()
        async with SQLiteStore(path) as store:
            spec = job if isinstance(job, JobSpec) else await _load_stored_spec(store, job, path)
            options = _run_options_from(spec, executor, kw)
            return await run_cli_job(spec, executor.build(), store, options, out=out, err=err)

    return _run_async(kw["backend"], main)


@cli.command(short_help="Show a job as a question x model x region matrix.")
@click.argument("job_id")
@_store_option
@_command
def status(job_id: str, store_path: Path) -> int:
    """Show job JOB_ID as a question x model x region matrix of status glyphs."""
    from ..stores import SQLiteStore

    path = _existing(store_path)

    async def main() -> int:
        out, _ = _consoles()
        async with SQLiteStore(path) as store:
            spec = await _load_stored_spec(store, job_id, path)
            records = await store.records(job_id)
            info = next(j for j in await store.jobs() if j.job_id == job_id)
        glyphs = Glyphs.for_encoding(out.encoding)
        verdict = "unfinished" if info.status is None else info.status.value.upper()
        out.print(
            f"[bold]{job_id}[/]: [{verdict_style(info.status)}]{verdict}[/]"
            f"{f' - {info.reason}' if info.reason else ''}",
            soft_wrap=True,
        )
        out.print(f"{len(records)} of {spec.size} executions have a record.")
        out.print(
            status_matrix(
                spec,
                {r.key: r.status for r in records},
                empties=[r.key for r in records if r.empty],
                glyphs=glyphs,
                width=out.size.width,
            )
        )
        out.print(legend(glyphs))
        out.print(verdict_table(spec, records, width=out.size.width))
        return EXIT_OK

    return _run_async("asyncio", main)


@cli.command()
@click.argument("job_id")
@_store_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv"]),
    default="jsonl",
    show_default=True,
    help="One JSON object per record (lossless), or CSV with a header row.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write (default: standard output).",
)
@_command
def export(job_id: str, store_path: Path, fmt: str, output: Path | None) -> int:
    """Write the records of job JOB_ID as JSON lines or CSV."""
    from ..stores import SQLiteStore, export_csv, export_jsonl

    path = _existing(store_path)

    async def main() -> list[ExecutionRecord]:
        async with SQLiteStore(path) as store:
            await _load_stored_spec(store, job_id, path)
            return await store.records(job_id)

    records = _run_async("asyncio", main)
    writer = export_jsonl if fmt == "jsonl" else export_csv
    count = writer(records, sys.stdout if output is None else output)
    if output is not None:
        click.echo(f"Wrote {count} records of {job_id} to {output}.", err=True)
    return EXIT_OK


@cli.command()
@_store_option
@_command
def jobs(store_path: Path) -> int:
    """List the jobs in the store, oldest first."""
    from ..stores import SQLiteStore

    path = _existing(store_path)

    async def main() -> list[JobInfo]:
        async with SQLiteStore(path) as store:
            return await store.jobs()

    found = _run_async("asyncio", main)
    out, _ = _consoles()
    out.print(jobs_table(found) if found else f"No jobs in {path}.")
    return EXIT_OK


@cli.command(short_help="Run the demo job on a SIMULATED executor (about 10 s).")
@click.option(
    "--speed",
    metavar="X",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Pace: 1 takes about 10 s, 10 about 1 s, 0.1 about 100 s.",
)
@click.option("--job-id", help="Id for the demo job (default: demo-<date>-<time>).")
@_store_option
@_progress_options
@_command
def demo(speed: float, job_id: str | None, store_path: Path, **kw: Any) -> int:
    """Run a shipped 64-execution job against a SIMULATED executor (no model is called).

    Beacon's 8 questions, 3 models served in 3 regions, with realistic timing (cold starts),
    a few transient failures that are retried, one permanent failure and one empty answer.
    """
    from .._demo import demo_data

    base = demo_data().spec
    spec = evolve(base, id=job_id or _dt.datetime.now().strftime("demo-%Y%m%d-%H%M%S"))
    _, err = _consoles()
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
        **dict.fromkeys(_LIMIT_OPTIONS),
        "early_stop": False,
        "rerun_failed": True,
        "preflight": False,
    }
    return _execute(store_path, spec, executor, {**defaults, **kw})


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``beacon`` command."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="beacon")
