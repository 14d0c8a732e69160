"""The options commands share, each declared once.

Decorators group them as the commands use them: ``--store`` alone, where executions go
(:func:`executor_options`), how a job runs (:func:`run_options`) and how its progress shows
(:func:`progress_options`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click

from .._scheduler import STRATEGIES
from ._executors import EXECUTORS
from ._live import ProgressMode

__all__ = [
    "DEFAULT_STORE",
    "LIMIT_OPTIONS",
    "executor_options",
    "flag_of",
    "progress_options",
    "run_options",
    "speed_option",
    "store_option",
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


def _number(flag: str, metavar: str, text: str, **settings: Any) -> _Decorator:
    """An option taking a positive number: a count (``N``), or seconds or a factor (float)."""
    kind = click.IntRange(min=1) if metavar == "N" else click.FloatRange(min=0, min_open=True)
    return click.option(flag, metavar=metavar, type=kind, help=text, **settings)


def _choice(flag: str, choices: Sequence[str], default: str, text: str) -> _Decorator:
    """An option taking one of ``choices``, with its default shown."""
    return click.option(
        flag, type=click.Choice(choices), default=default, show_default=True, help=text
    )


def _from_env(flag: str, envvar: str, text: str, **settings: Any) -> _Decorator:
    """An option that an environment variable can give instead (``--help`` names it)."""
    return click.option(flag, envvar=envvar, show_envvar=True, help=text, **settings)


def store_option(fn: Callable[_P, _T]) -> Callable[_P, _T]:
    """``--store``: the SQLite file every command reads and writes."""
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
        ),
        click.option(
            "--modal-endpoint",
            "modal_endpoints",
            multiple=True,
            metavar="REGION=URL",
            help="A Modal inference URL for a region (repeat per region). "
            "Token: BEACON_MODAL_TOKEN.",
        ),
        _from_env(
            "--openai-base-url",
            "OPENAI_BASE_URL",
            "OpenAI-compatible server (vLLM, Ollama, ...). API key: OPENAI_API_KEY.",
            metavar="URL",
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


def run_options(fn: Callable[_P, _T]) -> Callable[_P, _T]:
    """The store, the strategy, the limits and the run's behaviour on the way, then progress."""
    options: list[_Decorator] = [
        store_option,
        _choice(
            "--strategy",
            STRATEGIES,
            "endpoint",
            "How questions advance: per endpoint, per region, or all regions in lockstep.",
        ),
        *(_number(flag_of(name), metavar, text) for name, metavar, text in _LIMITS),
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
        progress_options,
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
