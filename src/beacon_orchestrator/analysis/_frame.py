"""A job's answers side by side, one row per question x model, as a pandas data frame."""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .._errors import UsageError
from .._types import ExecutionKey, ExecutionRecord
from ._divergence import compare_regions
from ._labels import Classifier

if TYPE_CHECKING:
    import pandas

__all__ = ["comparison_frame", "label_column", "regions_in_order"]

PANDAS_HINT = "pip install 'beacon-orchestrator[pandas]'"


def label_column(region: str) -> str:
    """The name of the label column of ``region`` in :func:`comparison_frame`."""
    return f"{region} label"


def regions_in_order(records: Iterable[ExecutionRecord]) -> list[str]:
    """The regions of ``records``, in the order they first appear (a job's plan order)."""
    return list(dict.fromkeys(r.key.region for r in records))


def _pandas(caller: str) -> Any:
    try:
        return importlib.import_module("pandas")
    except ImportError:
        raise UsageError(f"{caller} needs pandas: {PANDAS_HINT}") from None


def comparison_frame(
    records: Iterable[ExecutionRecord], *, classifier: Classifier | None = None
) -> pandas.DataFrame:
    """The regions' answers side by side: one row per question x model, most divergent first.

    Columns, in this order:

    * ``question_id``, ``model_id``;
    * one column per region (named after it, in the order the records name the regions)
      with the answer's text, missing (``pandas.isna``) where the execution did not complete
      or the model is not served in that region;
    * one label column per region, ``"<region> label"``: the :class:`Label` value
      (``"substantive"``, ``"refusal"``, ``"empty"``, ``"technical_failure"``), missing where
      the model is not served;
    * ``text_divergence`` (``NaN`` when fewer than two regions answered), ``label_split`` and
      ``score``, as in :class:`CellDivergence`.

    Rows are ranked as :func:`compare_regions` ranks its cells, so ``frame.head()`` shows where
    the regions differ most; sort by ``question_id`` for the job's order.

    Needs pandas (the ``pandas`` extra: ``pip install 'beacon-orchestrator[pandas]'``).

    Args:
        records: Execution records of one job (``await store.records(job_id)``,
            ``result.records``, an export read back with ``load_jsonl``).
        classifier: Labels each record; the default is :class:`RefusalClassifier`.

    Returns:
        A :class:`pandas.DataFrame` as described.

    Raises:
        UsageError: pandas is not installed (the message says how to install it), or
            :func:`compare_regions` refused the records or the classifier.
    """
    pd = _pandas("comparison_frame")
    records = list(records)
    texts: dict[ExecutionKey, str | None] = {r.key: r.text for r in records}
    regions = regions_in_order(records)
    rows: list[dict[str, object]] = []
    for cell in compare_regions(records, classifier):
        row: dict[str, object] = {"question_id": cell.question_id, "model_id": cell.model_id}
        for region in regions:
            row[region] = texts.get(ExecutionKey(cell.question_id, cell.model_id, region))
        for region in regions:
            label = cell.classifications.get(region)
            row[label_column(region)] = None if label is None else label.label.value
        row["text_divergence"] = cell.text_divergence
        row["label_split"] = cell.label_split
        row["score"] = cell.score
        rows.append(row)
    columns = [
        "question_id",
        "model_id",
        *regions,
        *(label_column(r) for r in regions),
        "text_divergence",
        "label_split",
        "score",
    ]
    frame = pd.DataFrame(rows, columns=columns)
    frame["text_divergence"] = frame["text_divergence"].astype(float)
    return frame
