"""MkDocs hook: put the `beacon` command's own --help output into the CLI reference.

A page line ``<!-- beacon-help: run -->`` becomes a code block with ``beacon run --help``, so
the reference cannot drift from the command.
"""

from __future__ import annotations

import re
from typing import Any

_MARKER = re.compile(r"^<!-- beacon-help:(?P<command>[ a-z-]*)-->$", re.MULTILINE)


def _help(command: str) -> str:
    from click.testing import CliRunner

    from beacon_orchestrator.cli import cli

    args = [*command.split(), "--help"]
    result = CliRunner().invoke(cli, args, prog_name="beacon", terminal_width=100)
    if result.exit_code != 0:
        raise RuntimeError(f"beacon {' '.join(args)} failed: {result.output}")
    return result.output.rstrip()


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    return _MARKER.sub(lambda m: f"```text\n{_help(m.group('command'))}\n```", markdown)
