"""Where a command meets the shell: its exit code, its error messages and its consoles.

Library errors become one line on standard error and an exit code, never a traceback:
2 for bad input, unknown jobs and conflicting specs, 1 for every other failure, 130 for Ctrl-C.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Awaitable, Callable
from typing import NoReturn, ParamSpec, TypeVar

import anyio
import click
from rich.console import Console

from .._errors import BeaconError, JobConflictError, SpecError, UsageError
from ._runner import EXIT_CANCELLED, EXIT_FAILED, EXIT_USAGE

__all__ = ["consoles", "exits_with_code", "leaf", "run_async"]

_P = ParamSpec("_P")
_T = TypeVar("_T")


def leaf(exc: BaseException) -> BaseException:
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


def run_async(backend: str, fn: Callable[[], Awaitable[_T]]) -> _T:
    """Run ``fn`` in a new event loop; turn library errors into messages and exit codes."""
    try:
        return anyio.run(fn, backend=backend)
    except KeyboardInterrupt:
        _fail("interrupted.", EXIT_CANCELLED)
    except BaseException as exc:
        found = leaf(exc)
        if isinstance(found, BeaconError):
            # SpecError already says "invalid job spec ..." with one problem per line.
            _fail(str(found), _exit_code_for(found))
        raise


def exits_with_code(fn: Callable[_P, int]) -> Callable[_P, None]:
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


def consoles() -> tuple[Console, Console]:
    """Results go to stdout; progress and messages to stderr, so stdout stays pipeable."""
    return Console(highlight=False), Console(stderr=True, highlight=False)
