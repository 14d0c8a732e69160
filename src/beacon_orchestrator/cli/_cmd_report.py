"""``beacon report``: a stored job as one self-contained HTML file comparing its regions."""

from __future__ import annotations

from pathlib import Path

import click

from .._errors import UsageError
from ._classifier import load_classifier
from ._locations import StoreLocation
from ._options import store_option
from ._runner import EXIT_OK
from ._shell import exits_with_code
from ._stored import one_sample_per_cell, read_stored_job

__all__ = ["report"]


@click.command(short_help="Write a job's answers, region beside region, as one HTML file.")
@click.argument("job_id")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="HTML file to write (replaced if it exists).",
)
@store_option
@click.option(
    "--classifier",
    "classifier_path",
    metavar="MODULE:ATTR",
    help="Label answers with this classifier (an object, or a class or function that makes "
    "one) instead of the default refusal heuristic. MODULE is imported from the working "
    "directory or the installed packages.",
)
@exits_with_code
def report(
    job_id: str, output: Path, store_path: StoreLocation, classifier_path: str | None
) -> int:
    """Write job JOB_ID as one HTML file that compares its regions.

    The regions' answers side by side, ranked by how much they differ, with counts per region
    and per model. The file opens offline in any browser and loads nothing.
    """
    from ..analysis import write_report

    classifier = None if classifier_path is None else load_classifier(classifier_path)
    spec, records, info = read_stored_job(store_path, job_id)
    one_sample_per_cell(spec, "report")
    try:
        count = write_report(spec, records, output, classifier=classifier, result=info)
    except OSError as exc:
        raise UsageError(
            f"cannot write the report to {str(output)!r}: {exc.strerror or exc}"
        ) from None
    click.echo(f"Wrote the report of {job_id} ({count} records) to {output}.", err=True)
    return EXIT_OK
