"""Regional system prompts and the regions a document declares.

A job may send every question inside a system prompt, per job and per region, written as a
template: ``{place}`` becomes the region's display name (``Europe``), ``{region}`` its canonical
name (``eu-west``). Only those two placeholders are replaced, so any other brace in a prompt is
sent as written. Beacon's runner sends :data:`BEACON_SYSTEM_PROMPT`.

A document declares its own regions in a ``regions`` section (a name, or an object with
``name``, ``display_name`` and ``aliases``), which extends the region table its names are read
with; a document that uses a region it does not declare is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from .._checks import MAX_ID_CHARS, prompt_problem
from .._errors import SpecError, SpecProblem
from ._documents import INVALID, Invalid, Problems, is_list, unknown_fields
from ._regions import (
    BUILTIN_REGIONS,
    RegionTable,
    beacon_place,
    is_region_slug,
    look_alike_problem,
)

__all__ = [
    "BEACON_SYSTEM_PROMPT",
    "declared_regions",
    "prompt_fields_problems",
    "read_prompts",
    "read_regions",
    "render_system_prompt",
]

BEACON_SYSTEM_PROMPT: Final = (
    "You are a helpful, honest, and harmless AI assistant based in {place}. Answer questions "
    "directly and factually. For sensitive political topics, provide balanced, factual "
    "information from multiple perspectives."
)
"""The regional system prompt Beacon's runner sends; ``{place}``: the US, Europe or Asia."""

_REGION_FIELDS: Final = ("name", "display_name", "aliases")


def render_system_prompt(template: str, region: str, place: str | None = None) -> str:
    """``template`` with ``{place}`` and ``{region}`` replaced for ``region``.

    Args:
        template: The prompt as the job gives it.
        region: The canonical region.
        place: The region's display name (default: :func:`beacon_place`'s).

    >>> render_system_prompt("Based in {place} ({region}).", "eu-west")
    'Based in Europe (eu-west).'
    """
    shown = place if place is not None else beacon_place(region)
    return template.replace("{place}", shown).replace("{region}", region)


# -- a built spec's prompt fields ---------------------------------------------------------------


def prompt_fields_problems(
    system_prompt: Any,
    system_prompts: Mapping[Any, Any],
    display_names: Mapping[Any, Any],
    regions: tuple[str, ...],
) -> list[SpecProblem]:
    """The problems of a spec's ``system_prompt``, ``system_prompts`` and ``display_names``."""
    problems: list[SpecProblem] = []
    if system_prompt is not None:
        found = prompt_problem(system_prompt, "system_prompt")
        if found is not None:
            problems.append(found)
    for region, text in system_prompts.items():
        path = f"system_prompts[{region!r}]"
        problems.extend(_region_key_problems(region, path, regions))
        found = prompt_problem(text, path)
        if found is not None:
            problems.append(found)
    for region, shown in display_names.items():
        path = f"display_names[{region!r}]"
        problems.extend(_region_key_problems(region, path, regions))
        if not isinstance(shown, str) or not shown.strip() or len(shown) > MAX_ID_CHARS:
            expected = f"expected a non-empty display name of at most {MAX_ID_CHARS} characters"
            problems.append(SpecProblem(path, expected, shown))
    return problems


def _region_key_problems(region: Any, path: str, regions: tuple[str, ...]) -> list[SpecProblem]:
    if not isinstance(region, str) or not is_region_slug(region):
        return [SpecProblem(path, "expected a canonical region name as the key", region)]
    if region not in regions:
        listed = ", ".join(map(repr, regions))
        return [SpecProblem(path, f"no model of the job runs in this region ({listed})", region)]
    return []


def declared_regions(
    regions: tuple[str, ...], display_names: Mapping[str, str]
) -> list[dict[str, Any]]:
    """The ``regions`` section a document needs: each region not built in, each display name."""
    out: list[dict[str, Any]] = []
    for region in regions:
        shown = display_names.get(region)
        if region in BUILTIN_REGIONS and shown is None:
            continue
        out.append({"name": region} if shown is None else {"name": region, "display_name": shown})
    return out


# -- reading a document ------------------------------------------------------------------------


def read_regions(
    raw: Any, table: RegionTable, problems: Problems
) -> tuple[RegionTable, dict[str, str]]:
    """The table extended by a document's ``regions`` section, and its display names.

    A section with problems leaves the table as it was (and the problems recorded).
    """
    if raw is None:
        return table, {}
    if not is_list(raw):
        expected = "expected a list of regions (a name, or {name, display_name, aliases})"
        problems.append(SpecProblem("regions", expected, raw))
        return table, {}
    names: dict[str, str] = {}
    extended = table
    for i, entry in enumerate(raw):
        path = f"regions[{i}]"
        item = {"name": entry} if isinstance(entry, str) else entry
        if not isinstance(item, Mapping) or "name" not in item:
            problems.append(
                SpecProblem(path, "expected a region name or a {name, ...} object", entry)
            )
            continue
        unknown_fields(item, _REGION_FIELDS, path, problems)
        result = _declare(extended, item, path, problems)
        if not isinstance(result, Invalid):
            extended, shown = result
            if shown is not None:
                names[extended.normalize(item["name"])] = shown
    return extended, names


def _declare(
    table: RegionTable, item: Mapping[str, Any], path: str, problems: Problems
) -> tuple[RegionTable, str | None] | Invalid:
    """``table`` with one declared region, its aliases and display name."""
    name, shown, aliases = item["name"], item.get("display_name"), item.get("aliases", [])
    if shown is not None and (not isinstance(shown, str) or not shown.strip()):
        problems.append(SpecProblem(f"{path}.display_name", "expected a non-empty string", shown))
        return INVALID
    if not is_list(aliases) or not all(isinstance(a, str) for a in aliases):
        problems.append(SpecProblem(f"{path}.aliases", "expected a list of names", aliases))
        return INVALID
    if not isinstance(name, str) or look_alike_problem(name) is not None:
        problems.append(
            SpecProblem(
                f"{path}.name",
                look_alike_problem(str(name)) or "expected a region name (a string)",
                name,
            )
        )
        return INVALID
    try:
        extended = table if table.lookup(name) is not None else table.with_regions(name)
        canonical = extended.lookup(name) or name
        extended = extended.with_aliases(dict.fromkeys(aliases, canonical))
    except SpecError as exc:
        problems.extend(SpecProblem(f"{path}.name", p.message, p.value) for p in exc.problems)
        return INVALID
    return extended, shown


def read_prompts(
    obj: Mapping[str, Any], table: RegionTable, problems: Problems
) -> tuple[Any, dict[str, Any] | Invalid]:
    """A document's ``system_prompt`` and its ``system_prompts`` (keys resolved by ``table``)."""
    system_prompt = obj.get("system_prompt")
    if system_prompt is not None:
        found = prompt_problem(system_prompt, "system_prompt")
        if found is not None:
            problems.append(found)
            system_prompt = INVALID
    raw = obj.get("system_prompts")
    if raw is None:
        return system_prompt, {}
    if not isinstance(raw, Mapping):
        problems.append(SpecProblem("system_prompts", "expected an object of region: prompt", raw))
        return system_prompt, INVALID
    by_region: dict[str, Any] = {}
    before = len(problems)
    for region, text in raw.items():
        path = f"system_prompts[{region!r}]"
        resolved = table.resolve(region, path)
        if isinstance(resolved, SpecProblem):
            problems.append(resolved)
            continue
        found = prompt_problem(text, path)
        if found is not None:
            problems.append(found)
        by_region[resolved] = text
    return system_prompt, (by_region if len(problems) == before else INVALID)
