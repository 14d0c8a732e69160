"""Labels for answers, how far the regions' answers to the same question are apart, and a report.

Every execution record gets a :class:`Label`: ``substantive``, ``refusal``, ``empty`` or
``technical_failure``. A :class:`Classifier` decides refusal from substantive; the default,
:class:`RefusalClassifier`, is a phrase-table heuristic for six languages, and
:func:`label_record` gives every classifier the same rules for failed and empty executions.
:func:`compare_regions` groups a job's records by question and model and ranks the cells whose
regions disagree: a refusal in one region and an answer in another first, then by how different
the answers' texts are. :func:`write_report` puts all of it in one HTML file that opens offline.

:func:`comparison_frame` puts the regions' answers side by side in a pandas data frame, for a
notebook (it needs the ``pandas`` extra).

Everything here is synchronous and pure: it reads records, it never runs a job.
"""

from ._columns import LABEL_COLUMNS, label_columns
from ._divergence import CellDivergence, compare_regions, text_divergence
from ._frame import comparison_frame
from ._labels import Classification, Classifier, Label, label_record
from ._refusal import RefusalClassifier
from ._report import render_report, write_report

__all__ = [
    "LABEL_COLUMNS",
    "CellDivergence",
    "Classification",
    "Classifier",
    "Label",
    "RefusalClassifier",
    "compare_regions",
    "comparison_frame",
    "label_columns",
    "label_record",
    "render_report",
    "text_divergence",
    "write_report",
]
