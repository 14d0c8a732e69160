"""The ``beacon`` command group: run, resume, plan, status, export, jobs, show, report, demo.

Each command lives with its kind: :mod:`._cmd_run` runs jobs, :mod:`._cmd_plan` plans one
without running it, :mod:`._cmd_store` reads the store. Options they share are declared in
:mod:`._options`; how errors become exit codes, and where output and log lines go, is in
:mod:`._shell`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence

import click

from .. import __version__
from ._shell import LOG_LEVELS, open_shell

__all__ = ["cli", "main"]

# Each command's module, imported when the command is asked for: `beacon status` need not
# pay for the scheduler, the analysis and the live display (half a second of imports).
_COMMANDS: Mapping[str, str] = {
    "run": "._cmd_run:run",
    "resume": "._cmd_run:resume",
    "demo": "._cmd_run:demo",
    "plan": "._cmd_plan:plan",
    "status": "._cmd_store:status",
    "export": "._cmd_store:export",
    "jobs": "._cmd_store:jobs",
    "show": "._cmd_show:show",
    "report": "._cmd_report:report",
    "worker": "._cmd_shared:worker",
    "cancel": "._cmd_shared:cancel",
}


class _LazyGroup(click.Group):
    """A command group that imports a command's module only when the command is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is not None or cmd_name not in _COMMANDS:
            return found
        module, _, attr = _COMMANDS[cmd_name].partition(":")
        command = getattr(importlib.import_module(module, __package__), attr)
        assert isinstance(command, click.Command), cmd_name
        self.add_command(command, cmd_name)
        return command


@click.group(
    cls=_LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, "-V", "--version", prog_name="beacon")
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="Log lines on stderr: -v from INFO, -vv from DEBUG (HTTP requests included).",
)
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    envvar="BEACON_LOG_LEVEL",
    show_envvar=True,
    help="Log lines from this level on (instead of -v; default: warning).",
)
@click.pass_context
def cli(ctx: click.Context, verbose: int, log_level: str | None) -> None:
    """Run cross-region LLM probe jobs: questions x models x regions.

    Start with 'beacon demo' (simulated answers, about 10 seconds).
    """
    open_shell(ctx, verbose, log_level)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``beacon`` command."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="beacon")
