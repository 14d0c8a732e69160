"""Labels and divergence as export columns, so they travel with the records they describe."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .._types import ExecutionKey, ExecutionRecord
from ..stores import Extra
from ._divergence import compare_regions
from ._labels import Classifier
from ._refusal import RefusalClassifier

__all__ = ["LABEL_COLUMNS", "label_columns"]

LABEL_COLUMNS: tuple[str, ...] = (
    "label",
    "label_score",
    "classifier",
    "classifier_version",
    "divergence",
    "label_split",
)
"""The columns :func:`label_columns` adds to an export, in order."""


def label_columns(
    records: Iterable[ExecutionRecord], *, classifier: Classifier | None = None
) -> Extra:
    """Export columns that carry each record's label and its cell's divergence across regions.

    Pass the result as ``extra=`` to :func:`~beacon_orchestrator.export_csv` or
    :func:`~beacon_orchestrator.export_jsonl` with the same records. The columns are
    :data:`LABEL_COLUMNS`: the record's label and the classifier's confidence, the classifier's
    name and version (so a label never travels without what decided it), and its question x
    model cell's text divergence (``None`` where fewer than two regions answered) and whether
    the regions' labels split.

    Args:
        records: The job's records (read once, to classify and compare them).
        classifier: What labels the answers (default :class:`RefusalClassifier`).
    """
    chosen: Classifier = RefusalClassifier() if classifier is None else classifier
    values: dict[ExecutionKey, Mapping[str, Any]] = {}
    for cell in compare_regions(records, chosen):
        split = cell.label_split
        for region, c in cell.classifications.items():
            key = ExecutionKey(cell.question_id, cell.model_id, region)
            values[key] = {
                "label": c.label.value,
                "label_score": c.score,
                "classifier": chosen.name,
                "classifier_version": chosen.version,
                "divergence": cell.text_divergence,
                "label_split": split,
            }
    empty = dict.fromkeys(LABEL_COLUMNS)
    return Extra(LABEL_COLUMNS, lambda record: values.get(record.key, empty))
