"""Job specs: the values that describe a job, their checks, and the documents they load from.

Modules, each importing only those listed before it (annotations under TYPE_CHECKING aside):

* ``_bounds``: what a document may cost (size, depth, values), and paths inside one;
* ``_regions``: region names and the :class:`RegionTable` that normalises them;
* ``_prompts``: regional system prompts and the regions a document declares;
* ``_values``: :class:`Question`, :class:`ModelTarget` and :class:`Limits`;
* ``_validate``: what a built JobSpec must satisfy;
* ``_documents``: reading a parsed document, collecting every problem;
* ``_own_format``: the library's own document format;
* ``_beacon_catalogue``, ``_beacon_constraints``, ``_beacon_models``, ``_beacon_format``:
  Beacon's wire format;
* ``_jobspec``: :class:`JobSpec`;
* ``_files``: JSON and YAML files, :func:`load_jobspec` and :func:`read_document`.

The rules single values are checked against live in ``beacon_orchestrator._checks``, shared
with the retry and status policies.
"""

from ._files import load_jobspec, read_document
from ._jobspec import JobSpec
from ._prompts import BEACON_SYSTEM_PROMPT
from ._regions import (
    BUILTIN_ALIASES,
    BUILTIN_REGIONS,
    RegionTable,
    is_region_slug,
    normalize_region,
)
from ._values import Limits, ModelTarget, Question

__all__ = [
    "BEACON_SYSTEM_PROMPT",
    "BUILTIN_ALIASES",
    "BUILTIN_REGIONS",
    "JobSpec",
    "Limits",
    "ModelTarget",
    "Question",
    "RegionTable",
    "is_region_slug",
    "load_jobspec",
    "normalize_region",
    "read_document",
]
