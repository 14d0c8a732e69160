"""The ``beacon`` command (extra ``cli``): run, resume, inspect and export jobs from a shell.

Commands: ``beacon run JOB``, ``beacon resume JOB_ID``, ``beacon plan JOB``,
``beacon status JOB_ID``, ``beacon export JOB_ID``, ``beacon jobs`` and ``beacon demo``. Run
``beacon --help`` or ``beacon COMMAND --help`` for their options.

Exit codes: 0 the job completed, 1 it failed, 2 bad usage or an invalid job, 130 cancelled.
"""

from __future__ import annotations

try:
    import click as _click  # noqa: F401
    import rich as _rich  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on how the package was installed
    raise ImportError(
        "the beacon command needs the 'cli' extra: pip install 'beacon-orchestrator[cli]'"
    ) from exc

from ._app import cli, main

__all__ = ["cli", "main"]
