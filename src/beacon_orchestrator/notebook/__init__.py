"""Watching a job from a notebook: a progress line for ``on_event``.

``await run_job(spec, executor, on_event=notebook_progress())`` shows a bar and the counts in
the cell's output, updated in place while the job runs, and the verdict at the end. Outside
IPython the same handler prints plain lines. A finished job's result shows itself in a notebook
too (a compact question x model x region matrix), and
:func:`beacon_orchestrator.analysis.comparison_frame` puts the regions' answers side by side.
"""

from ._progress import NotebookProgress, ProgressDisplay, ProgressLine, notebook_progress

__all__ = ["NotebookProgress", "ProgressDisplay", "ProgressLine", "notebook_progress"]
