"""The ``beacon`` command group: run, resume, plan, status, export, jobs and demo.

Each command lives with its kind: :mod:`._cmd_run` runs jobs, :mod:`._cmd_plan` plans one
without running it, :mod:`._cmd_store` reads the store. Options they share are declared in
:mod:`._options`; how errors become exit codes, and where output and log lines go, is in
:mod:`._shell`.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from .. import __version__
from ._cmd_plan import plan
from ._cmd_report import report
from ._cmd_run import demo, resume, run
from ._cmd_shared import cancel, worker
from ._cmd_show import show
from ._cmd_store import export, jobs, status
from ._shell import LOG_LEVELS, open_shell

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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


for _command in (run, resume, plan, status, export, jobs, demo, worker, cancel):
    cli.add_command(_command)
cli.add_command(show)
cli.add_command(report)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``beacon`` command."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="beacon")
