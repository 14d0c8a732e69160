"""The models of a Beacon jobspec, and the regions each one runs in.

Models come from ``models`` or, when that is empty, from ``metadata.models``; an entry may be a
bare model id. A model that lists no regions inherits the constraints' regions.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from attrs import evolve, frozen

from .._checks import duplicates, optional_text_problem
from .._errors import SpecProblem
from ._documents import (
    INVALID,
    Invalid,
    Problems,
    any_invalid,
    id_check,
    is_list,
    join,
    region_list,
    take,
)
from ._regions import RegionTable
from ._values import ModelTarget

__all__ = ["beacon_models"]

_MODEL_FIELDS: Final = ("id", "name", "provider", "regions")


@frozen
class _ModelEntry:
    """A model as a Beacon document lists it, before its regions are settled.

    The id, name and provider are :data:`INVALID` where they failed their checks.

    Attributes:
        path: Where the entry is in the document.
        id: The model id.
        name: The display name, or ``None``.
        provider: The provider label, or ``None``.
        regions: Its own regions, or ``None`` to inherit the constraints' regions.
    """

    path: str
    id: Any
    name: Any
    provider: Any
    regions: list[str] | Invalid | None = None


def beacon_models(
    inner: Mapping[str, Any],
    base: str,
    metadata: dict[Any, Any] | Invalid,
    inherited: list[str] | Invalid | None,
    table: RegionTable,
    problems: Problems,
) -> tuple[list[ModelTarget] | Invalid, dict[str, Any]]:
    """The job's models, and the fields of model entries the library does not map, by id.

    Models come from ``models`` or, when that is empty, from ``metadata.models``; one that
    lists no regions runs in the ``inherited`` ones (the constraints' regions).
    """
    path = join(base, "models")
    raw = inner.get("models")
    extras: dict[str, Any] = {}
    if raw is not None and not is_list(raw):
        problems.append(SpecProblem(path, "expected a list of models", raw))
        return INVALID, extras
    before = len(problems)
    entries: list[_ModelEntry] | Invalid
    if raw:
        entries = _listed_models(raw, path, table, extras, problems)
    else:
        entries = _metadata_models(metadata, base, path, problems)
    if isinstance(entries, Invalid):
        return INVALID, extras
    models = _settle_regions(entries, inherited, problems)
    # Any problem on the way leaves the models unusable, even if some were built.
    return (models if len(problems) == before else INVALID), extras


def _listed_models(
    raw: list[Any], path: str, table: RegionTable, extras: dict[str, Any], problems: Problems
) -> list[_ModelEntry]:
    entries: list[_ModelEntry] = []
    for i, item in enumerate(raw):
        where = f"{path}[{i}]"
        entry = _model_object(item, where, "a model object {id, name, provider, regions}", problems)
        if entry is None:
            continue
        model = _model_entry(entry, where, problems)
        own = entry.get("regions")
        # An empty list, like a missing one, inherits the constraints' regions.
        if own is not None and not (is_list(own) and not own):
            where_regions = f"{where}.regions"
            regions = region_list(own, where_regions, table, problems, allow_empty=True)
            model = evolve(model, regions=regions)
        unmapped = {k: copy.deepcopy(v) for k, v in entry.items() if k not in _MODEL_FIELDS}
        if unmapped and isinstance(model.id, str):
            extras[model.id] = unmapped
        entries.append(model)
    return entries


def _metadata_models(
    metadata: dict[Any, Any] | Invalid, base: str, path: str, problems: Problems
) -> list[_ModelEntry] | Invalid:
    if isinstance(metadata, Invalid):
        return INVALID
    listed = metadata.get("models")
    meta_path = f"{join(base, 'metadata')}.models"
    if listed is None or (is_list(listed) and not listed):
        problems.append(
            SpecProblem(
                path,
                "expected at least one model: 'models' is empty and metadata.models names none",
            )
        )
        return INVALID
    if not is_list(listed):
        problems.append(
            SpecProblem(meta_path, "expected a list of model ids or {id, name} objects", listed)
        )
        return INVALID
    entries: list[_ModelEntry] = []
    for j, item in enumerate(listed):
        where = f"{meta_path}[{j}]"
        entry = _model_object(item, where, "a model id or an {id, name} object", problems)
        if entry is not None:
            entries.append(_model_entry(entry, where, problems))
    return entries


def _model_object(
    item: Any, where: str, expected: str, problems: Problems
) -> Mapping[str, Any] | None:
    """A model entry as an object: a bare string is a model id."""
    if isinstance(item, str):
        return {"id": item}
    if not isinstance(item, Mapping):
        problems.append(SpecProblem(where, f"expected {expected}", item))
        return None
    return item


def _model_entry(entry: Mapping[str, Any], where: str, problems: Problems) -> _ModelEntry:
    return _ModelEntry(
        where,
        take(entry, "id", where, problems, id_check("model id"), required=True),
        take(entry, "name", where, problems, optional_text_problem, required=False),
        take(entry, "provider", where, problems, optional_text_problem, required=False),
    )


def _settle_regions(
    entries: list[_ModelEntry], inherited: list[str] | Invalid | None, problems: Problems
) -> list[ModelTarget]:
    """Build each valid entry's target, inheriting regions where it lists none."""
    out: list[ModelTarget] = []
    for entry in entries:
        regions = entry.regions
        if regions is None:
            regions = _inherit(entry.path, inherited, problems)
        if isinstance(regions, Invalid) or any_invalid(entry.id, entry.name, entry.provider):
            continue
        out.append(ModelTarget(entry.id, regions, entry.name, entry.provider))
    ids = [(f"{e.path}.id", e.id) for e in entries if not isinstance(e.id, Invalid)]
    problems.extend(duplicates(ids, "model id"))
    return out


def _inherit(
    path: str, inherited: list[str] | Invalid | None, problems: Problems
) -> list[str] | Invalid:
    if inherited is None or (isinstance(inherited, list) and not inherited):
        problems.append(
            SpecProblem(
                f"{path}.regions",
                "expected at least one region: the model lists none and "
                "constraints.regions (or target_regions) is empty",
            )
        )
        return INVALID
    return inherited
