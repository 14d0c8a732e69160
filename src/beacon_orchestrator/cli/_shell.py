"""Where a command meets the shell: its exit code, its error messages, consoles and log lines.

Library errors become one line on standard error and an exit code, never a traceback:
2 for bad input, unknown jobs and conflicting specs (``SpecError`` lists each problem of a job
document on a line of its own), 1 for every other failure (the store cannot be created or
written: a full disk, a read-only directory; an export cannot be written), 130 for Ctrl-C.

A failure inside a running job can reach here several times over, in an exception group (the
job's task and the one waiting for it both raise it): it is still one line.

The consoles are made once per ``beacon`` invocation (:func:`open_shell`) so that log lines
and the live display share standard error; a command asks for them with :func:`consoles`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn, ParamSpec, TypeVar

import anyio
import click
from attrs import frozen
from rich.console import Console

from .._errors import BeaconError, JobConflictError, SpecError, UsageError
from ._output import EXIT_CANCELLED, EXIT_FAILED, EXIT_USAGE

__all__ = [
    "LOG_LEVELS",
    "Consoles",
    "consoles",
    "exits_with_code",
    "leaf",
    "library_error",
    "log_level",
    "logging_to",
    "open_shell",
    "run_async",
]

_P = ParamSpec("_P")
_T = TypeVar("_T")

# Off a terminal nothing reads the width: a pipe or a file takes lines of any length, and rich's
# default of 80 columns there would cut table columns and names. Large, but finite, because rich
# allocates some layouts at the console's width.
_UNBOUNDED_WIDTH = 100_000

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_LIBRARY_LOGGER = "beacon_orchestrator"
# Their INFO lines name every request; they join in only at DEBUG (-vv).
_HTTP_LOGGERS = ("httpx", "httpcore")
# The tokens the executors read (the adapters' *_ENV names; the cli extra has no httpx to
# import them with). Whatever a log line says, these values are replaced with ***.
_SECRET_ENV_VARS = ("BEACON_ROUTER_API_KEY", "BEACON_MODAL_TOKEN", "OPENAI_API_KEY")


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


# -- consoles -------------------------------------------------------------------------------------


def _console(*, stderr: bool) -> Console:
    console = Console(stderr=stderr, highlight=False)
    # rich's own judgement (a tty, or FORCE_COLOR / TTY_COMPATIBLE saying it is one).
    if console.is_terminal:
        return console
    return Console(stderr=stderr, highlight=False, width=_UNBOUNDED_WIDTH, soft_wrap=True)


@frozen
class Consoles:
    """The two consoles of one invocation.

    Attributes:
        out: Standard output: results (tables, verdicts, JSON).
        err: Standard error: progress, messages and log lines.
    """

    out: Console
    err: Console

    @classmethod
    def for_streams(cls) -> Consoles:
        """Consoles on the current standard streams; off a terminal, lines are never cut."""
        return cls(_console(stderr=False), _console(stderr=True))


def consoles() -> tuple[Console, Console]:
    """Results go to stdout; progress and messages to stderr, so stdout stays pipeable.

    Within a ``beacon`` invocation these are the consoles the log lines go to as well.
    """
    ctx = click.get_current_context(silent=True)
    shared = None if ctx is None else ctx.find_object(Consoles)
    found = shared if shared is not None else Consoles.for_streams()
    return found.out, found.err


# -- log lines ------------------------------------------------------------------------------------


def log_level(verbose: int, level: str | None) -> int:
    """The level ``-v`` (INFO), ``-vv`` (DEBUG) or ``--log-level`` asks for; WARNING by default.

    ``--log-level`` wins over ``-v`` when both are given.
    """
    if level is not None:
        return logging.getLevelName(level.upper())  # type: ignore[no-any-return]
    return {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)


class _ScrubbingFormatter(logging.Formatter):
    """The plain format, with every known token replaced by ``***`` (tracebacks included)."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        super().__init__(_LOG_FORMAT)
        self._secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        for secret in self._secrets:
            line = line.replace(secret, "***")
        return line


class _ConsoleHandler(logging.Handler):
    """Writes log lines through a rich console, so they go above a live display, not into it."""

    def __init__(self, console: Console, level: int) -> None:
        super().__init__(level)
        self._console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._console.out(self.format(record), highlight=False)
        except Exception:  # logging must never break the command
            self.handleError(record)


@contextmanager
def logging_to(console: Console, level: int) -> Iterator[logging.Handler]:
    """Send the library's log records at ``level`` and above to ``console`` while inside.

    httpx and httpcore log through the same handler, at WARNING unless ``level`` is DEBUG.
    Everything is restored on the way out, so one process can run several commands (as the
    tests do).
    """
    secrets = tuple(v for name in _SECRET_ENV_VARS if (v := os.environ.get(name)))
    handler = _ConsoleHandler(console, level)
    handler.setFormatter(_ScrubbingFormatter(secrets))
    http_level = level if level <= logging.DEBUG else max(level, logging.WARNING)
    levels = {_LIBRARY_LOGGER: level, **dict.fromkeys(_HTTP_LOGGERS, http_level)}
    loggers = [(logging.getLogger(name), lvl) for name, lvl in levels.items()]
    saved = [(lg, lg.level, lg.propagate) for lg, _ in loggers]
    for lg, lvl in loggers:
        lg.setLevel(lvl)
        lg.addHandler(handler)
        # Shown here once; a root handler (an embedding application's) would show it again.
        lg.propagate = False
    try:
        yield handler
    finally:
        for lg, old_level, old_propagate in saved:
            lg.removeHandler(handler)
            lg.setLevel(old_level)
            lg.propagate = old_propagate


def open_shell(ctx: click.Context, verbose: int, level: str | None) -> Consoles:
    """Make the invocation's consoles and route log lines to standard error until it ends."""
    shell = Consoles.for_streams()
    ctx.obj = shell
    ctx.with_resource(logging_to(shell.err, log_level(verbose, level)))
    return shell
