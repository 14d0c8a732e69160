"""Exit codes and JSON output: what every command needs, without importing what runs a job."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console

__all__ = ["EXIT_CANCELLED", "EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "print_json_to"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 130
"""128 + SIGINT, what shells report for a command stopped with Ctrl-C."""


def print_json_to(console: Console, value: Any) -> None:
    """``value`` as indented JSON on ``console``'s stream, alone (no markup, no wrapping)."""
    text = json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False)
    console.file.write(text + "\n")
    console.file.flush()
