"""Where a command meets the shell: its exit code, its error messages and its consoles.

Library errors become one line on standard error and an exit code, never a traceback:
2 for bad input, unknown jobs and conflicting specs (``SpecError`` lists each problem of a job
document on a line of its own), 1 for every other failure (the store cannot be created or
written: a full disk, a read-only directory; an export cannot be written), 130 for Ctrl-C.

A failure inside a running job can reach here several times over, in an exception group (the
job's task and the one waiting for it both raise it): it is still one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import os
import sys
from collections.abc import Awaitable, Callable
from typing import NoReturn, ParamSpec, TypeVar

import anyio
import click
from rich.console import Console

from .._errors import BeaconError, JobConflictError, SpecError, UsageError
from ._runner import EXIT_CANCELLED, EXIT_FAILED, EXIT_USAGE

__all__ = ["consoles", "exits_with_code", "leaf", "library_error", "run_async"]

_P = ParamSpec("_P")
_T = TypeVar("_T")


def leaf(exc: BaseException) -> BaseException:
    """The one exception inside nested single-exception groups (task groups wrap them)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def library_error(exc: BaseException) -> BeaconError | None:
    """The library error ``exc`` stands for, if that is all it holds.

    Inside nested exception groups, every exception other than a cancellation must be a
    :class:`BeaconError` (often the same one twice); the first is returned. Anything else is
    a bug, and gets its traceback.
    """
    found: list[BaseException] = []
    pending = [exc]
    while pending:
        current = pending.pop()
        if isinstance(current, BaseExceptionGroup):
            pending.extend(reversed(current.exceptions))
        elif not _is_cancellation(current):
            found.append(current)
    errors = [e for e in found if isinstance(e, BeaconError)]
    return errors[0] if errors and len(errors) == len(found) else None


def _is_cancellation(exc: BaseException) -> bool:
    # After the event loop has ended anyio cannot say which class it uses: check both
    # backends' (trio's only if trio was ever imported, i.e. the job ran on it).
    if isinstance(exc, asyncio.CancelledError):
        return True
    trio = sys.modules.get("trio")
    return trio is not None and isinstance(exc, trio.Cancelled)


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    _quiet_stdout()
    sys.exit(code)


def _quiet_stdout() -> None:
    """If standard output cannot be written (a full disk), drop what is left in its buffer.

    Python writes it out again at exit and, failing, prints a traceback of its own.
    """
    try:
        sys.stdout.flush()
    except OSError:
        with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)


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
        found = library_error(exc)
        if found is not None:
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
