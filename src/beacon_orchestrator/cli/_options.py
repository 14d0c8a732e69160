"""The options commands share, each declared once.

Decorators group them as the commands use them: ``--store`` alone, where executions go
(:func:`executor_options`), how a job runs (:func:`run_options`) and how its progress shows
(:func:`progress_options`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar
from urllib.parse import urlsplit

import click

from ._executors import EXECUTORS
from ._locations import StoreLocationType

if TYPE_CHECKING:
    from ._live import ProgressMode

__all__ = [
    "DEFAULT_STORE",
    "LIMIT_OPTIONS",
    "executor_options",
    "flag_of",
    "job_document",
    "job_id_option",
    "json_option",
    "limit_options",
    "plan_options",
    "progress_options",
    "run_options",
    "speed_option",
    "store_option",
    "url_problem",
]

_P = ParamSpec("_P")
_T = TypeVar("_T")
_Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

DEFAULT_STORE = "beacon.db"
_PROGRESS: tuple[ProgressMode, ...] = ("auto", "live", "plain", "off")

# Each overrides the Limits field of its name. N counts executions; SECONDS is a duration.
_LIMITS: tuple[tuple[str, str, str], ...] = (
    ("max_concurrency", "N", "In flight at once."),
    ("per_region", "N", "In flight at once per region."),
    ("per_endpoint", "N", "In flight at once per model x region (default 1)."),
    ("attempt_timeout", "SECONDS", "Time for one attempt."),
    ("job_timeout", "SECONDS", "Time for the whole job."),
)

LIMIT_OPTIONS: tuple[str, ...] = tuple(name for name, _, _ in _LIMITS)
"""The parameter names of the options that override the job's limits."""


def flag_of(name: str) -> str:
    """The option a parameter comes from: ``max_concurrency`` -> ``--max-concurrency``."""
    return "--" + name.replace("_", "-")


def _apply(fn: Callable[_P, _T], decorators: Sequence[_Decorator]) -> Callable[_P, _T]:
    """Apply ``decorators`` as if stacked above ``fn`` in this order (options show in order)."""
    out: Callable[..., Any] = fn
    for decorate in reversed(decorators):
        out = decorate(out)
    return out


class _Positive(click.FloatRange):
    """A positive, finite number (``nan`` and ``inf`` pass a plain range check)."""

    name = "positive number"

    def __init__(self) -> None:
        super().__init__(min=0, min_open=True)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"expected a finite positive number, got {value!r}.", param, ctx)
        return number


def _number(flag: str, metavar: str, text: str, **settings: Any) -> _Decorator:
    """An option taking a positive number: a count (``N``), or seconds or a factor (float)."""
    kind = click.IntRange(min=1) if metavar == "N" else _Positive()
    return click.option(flag, metavar=metavar, type=kind, help=text, **settings)


def url_problem(value: str) -> str | None:
    """What is wrong with ``value`` as an absolute http(s) URL, or ``None``."""
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        host = None
    if host and parts.scheme in ("http", "https"):
        return None
    return f"expected an absolute http:// or https:// URL, got {value!r}"


def _check_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and (problem := url_problem(value)):
        raise click.BadParameter(problem, ctx, param)
    return value


def _check_pair_urls(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[str, ...]:
    for value in values:
        # A value that is no NAME=URL pair is reported, with an example, when it is parsed.
        name, sep, url = value.partition("=")
        if sep and url.strip() and (problem := url_problem(url.strip())):
            raise click.BadParameter(f"{name.strip()}={url}: {problem}", ctx, param)
    return values


def _choice(flag: str, choices: Sequence[str], default: str, text: str) -> _Decorator:
    """An option taking one of ``choices``, with its default shown."""
    return click.option(
        flag, type=click.Choice(choices), default=default, show_default=True, help=text
    )


def _from_env(flag: str, envvar: str, text: str, **settings: Any) -> _Decorator:
    """An option that an environment variable can give instead (``--help`` names it)."""
    return click.option(flag, envvar=envvar, show_envvar=True, help=text, **settings)


def store_option(fn: Callable[_P, _T]) -> Callable[_P, _T]:
    """``--store``: the SQLite file (or PostgreSQL DSN) every command reads and writes."""
    return click.option(
        "--store",
        "store_path",
        type=StoreLocationType(),
        default=DEFAULT_STORE,
        show_default=True,
        envvar="BEACON_STORE",
        show_envvar=True,
        help="SQLite file holding jobs and records, or a postgresql:// DSN.",
    )(fn)


def speed_option(text: str) -> _Decorator:
    """``--speed``: how much faster than real time the demo executor answers."""
    return _number("--speed", "X", text, default=1.0, show_default=True)


def executor_options(fn: Callable[_P, _T]) -> Callable[_P, _T]:
    """Where executions go, and what that executor needs (secrets come from the environment)."""
    options: list[_Decorator] = [
        _from_env(
            "--executor",
            "BEACON_EXECUTOR",
            "Where executions go. 'demo' simulates answers; it calls no model.",
            type=click.Choice(EXECUTORS),
        ),
        _from_env(
            "--router-url",
            "BEACON_ROUTER_URL",
            "Hybrid router base URL. API key: BEACON_ROUTER_API_KEY.",
            metavar="URL",
            callback=_check_url,
        ),
        click.option(
            "--modal-endpoint",
            "modal_endpoints",
            multiple=True,
            callback=_check_pair_urls,
            metavar="REGION=URL",
            help="A Modal inference URL for a region (repeat per region). "
            "Token: BEACON_MODAL_TOKEN.",
        ),
        click.option(
            "--modal-health",
            "modal_health",
            multiple=True,
            callback=_check_pair_urls,
            metavar="REGION=URL",
            help="A Modal region's health URL, for --preflight (default: derived from its "
            "inference URL, '-inference' becoming '-health').",
        ),
        _from_env(
            "--openai-base-url",
            "OPENAI_BASE_URL",
            "OpenAI-compatible server (vLLM, Ollama, ...). API key: OPENAI_API_KEY.",
            metavar="URL",
            callback=_check_url,
        ),
        click.option(
            "--model-map",
            multiple=True,
            metavar="MODEL=NAME",
            help="The name the OpenAI-compatible server knows a job's model by (repeatable).",
        ),
        speed_option("Pace of the demo executor: 1 runs the demo job in about 10 s, 10 in 1 s."),
        _number("--attempts", "N", "Attempts per execution, the first included (default 3)."),
    ]
    return _apply(fn, options)


def json_option(fn: Callable[_P, _T]) -> Callable[_P, _T]:
    """``--json``: the result as one JSON document on stdout (messages stay on stderr)."""
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print the result as JSON on stdout, and nothing else there "
        "(schema: the 'JSON output' reference page).",
    )(fn)


def job_document(fn: Callable[_P, _T]) -> Callable[_P, _T]:
    """The ``JOB`` file argument and ``--questions``, its catalogue for Beacon's format."""
    return _apply(
        fn,
        [
            click.argument("job", type=click.Path(exists=True, dir_okay=False, path_type=Path)),
            click.option(
                "--questions",
                "catalogue",
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help="Question catalogue (JSON or YAML) for a job in Beacon's format.",
            ),
        ],
    )


def job_id_option(text: str) -> _Decorator:
    """``--job-id``: the id to run (or plan) a job document under."""
    return click.option("--job-id", metavar="ID", help=text)


def limit_options(fn: Callable[_P, _T]) -> Callable[_P, _T]:
    """One option per field of the job's limits, overriding it."""
    return _apply(fn, [_number(flag_of(name), metavar, text) for name, metavar, text in _LIMITS])


def _rerun_failed_option(fn: Callable[_P, _T]) -> Callable[_P, _T]:
    return click.option(
        "--rerun-failed/--keep-failed",
        default=True,
        show_default=True,
        help="On resume, run failed and timed-out executions again, or keep them.",
    )(fn)


def run_options(fn: Callable[_P, _T]) -> Callable[_P, _T]:
    """The store, the strategy, the limits and the run's behaviour on the way, then progress."""
    # Here, not at the top: `beacon status` and the other commands that only read a store
    # need not import the scheduler.
    from .._scheduler import STRATEGIES

    options: list[_Decorator] = [
        store_option,
        _choice(
            "--strategy",
            STRATEGIES,
            "endpoint",
            "How questions advance: per endpoint, per region, or all regions in lockstep.",
        ),
        limit_options,
        click.option(
            "--early-stop",
            is_flag=True,
            help="Stop as soon as the verdict can no longer change (saves GPU time).",
        ),
        _rerun_failed_option,
        click.option(
            "--preflight", is_flag=True, help="Health-check every region before starting."
        ),
        fleet_options,
        progress_options,
        json_option,
    ]
    return _apply(fn, options)


def fleet_options(fn: Callable[_P, _T]) -> Callable[_P, _T]:
    """Adaptive concurrency, the circuit breaker and a price (see "Protect a fleet")."""
    options: list[_Decorator] = [
        click.option(
            "--adaptive",
            is_flag=True,
            help="Adapt each endpoint's concurrency between 1 and --per-endpoint.",
        ),
        click.option(
            "--breaker",
            is_flag=True,
            help="Stop sending to an endpoint that keeps failing (ENDPOINT_DOWN).",
        ),
        _number(
            "--cost-per-second",
            "PRICE",
            "Price of a second of inference: records get a cost; the job's budget is enforced.",
        ),
    ]
    return _apply(fn, options)


def plan_options(fn: Callable[_P, _T]) -> Callable[_P, _T]:
    """What ``beacon plan`` assumes: the store to look in, limits, latencies; and ``--json``."""
    options: list[_Decorator] = [
        store_option,
        limit_options,
        _rerun_failed_option,
        _number(
            "--latency",
            "SECONDS",
            "Assumed time of one execution.",
            default=30.0,
            show_default=True,
        ),
        click.option(
            "--endpoint-latency",
            "endpoint_latencies",
            multiple=True,
            metavar="MODEL@REGION=SECONDS",
            help="Assumed time of one execution on one endpoint (repeatable).",
        ),
        json_option,
    ]
    return _apply(fn, options)


def progress_options(fn: Callable[_P, _T]) -> Callable[_P, _T]:
    """How progress shows, and (hidden, for tests) the event loop to run on."""
    options: list[_Decorator] = [
        _choice(
            "--progress",
            _PROGRESS,
            "auto",
            "Live display on a terminal, plain lines for logs (auto picks), or none.",
        ),
        _number(
            "--progress-interval",
            "SECONDS",
            "Seconds between plain progress lines.",
            default=10.0,
            show_default=True,
        ),
        click.option(
            "--backend",
            type=click.Choice(["asyncio", "trio"]),
            default="asyncio",
            hidden=True,
            help="Event loop to run on.",
        ),
    ]
    return _apply(fn, options)
