"""The ``beacon`` command group: run, resume, status, export, jobs and demo.

Each command lives with its kind: :mod:`._cmd_run` runs jobs, :mod:`._cmd_store` reads the
store. Options they share are declared in :mod:`._options`; how errors become exit codes is
in :mod:`._shell`.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from .. import __version__
from ._cmd_report import report
from ._cmd_run import demo, resume, run
from ._cmd_store import export, jobs, status

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="beacon")
def cli() -> None:
    """Run cross-region LLM probe jobs: questions x models x regions.

    Start with 'beacon demo' (simulated answers, about 10 seconds).
    """


for _command in (run, resume, status, export, jobs, demo):
    cli.add_command(_command)
cli.add_command(report)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``beacon`` command."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="beacon")
