"""Regions in an adapter: its endpoint maps normalised once, the region that served an answer.

Every adapter takes a ``regions`` table (default: :meth:`RegionTable.default`, Beacon's three
regions and their aliases) and normalises the region keys it is built with through it, so
``{"EU": url}`` is ``eu-west`` from the start; a key the table does not know, or two keys for
the same region, fail the construction naming the keys. The region a provider reports in an
answer goes through the same table, so ``asia-southeast`` compares equal to ``asia-pacific``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, TypeVar

from .._errors import PermanentError, SpecError
from .._spec import RegionTable
from ._config import AdapterConfigError

__all__ = [
    "REGION_NOT_REPORTED",
    "beacon_prompt",
    "flag",
    "normalised_keys",
    "region_table",
    "served_region",
]

T = TypeVar("T")

REGION_NOT_REPORTED: Final = "REGION_NOT_REPORTED"


def region_table(value: Any) -> RegionTable:
    """The ``regions`` argument: a :class:`RegionTable`, ``None`` for the default one."""
    if value is None:
        return RegionTable.default()
    if not isinstance(value, RegionTable):
        raise AdapterConfigError(
            f"regions: expected a RegionTable or None, got {type(value).__name__}"
        )
    return value


def normalised_keys(value: Mapping[str, T], name: str, table: RegionTable) -> dict[str, T]:
    """``value`` with every region key canonical; an unknown or repeated region is an error.

    Raises:
        AdapterConfigError: Naming the key (``endpoints['Mars']: unknown region; ...``), or
            both keys of one region.
    """
    result: dict[str, T] = {}
    given: dict[str, str] = {}
    for key, item in value.items():
        try:
            region = table.normalize(key)
        except SpecError as exc:
            problem = "; ".join(p.message for p in exc.problems)
            raise AdapterConfigError(f"{name}[{key!r}]: {problem}") from None
        if region in result:
            raise AdapterConfigError(
                f"{name}: keys {given[region]!r} and {key!r} both name region {region!r}"
            )
        result[region], given[region] = item, key
    return result


def served_region(reported: Any, table: RegionTable, *, what: str, field: str) -> str:
    """The canonical region a provider reports for an answer (or its own name, if unknown).

    An unknown name is kept as reported (folded to lower case) so the mismatch names it.

    Raises:
        PermanentError: ``REGION_NOT_REPORTED`` when the answer names no region; the message
            says how to turn the check off for a provider that never reports one.
    """
    if not isinstance(reported, str) or not reported.strip():
        raise PermanentError(
            f"{what}: the answer does not say which region served it (no {field}); "
            "pass verify_region=False for a provider that never reports one",
            code=REGION_NOT_REPORTED,
        )
    known = table.lookup(reported) if reported.isascii() else None
    return known if known is not None else reported.strip().lower()


def beacon_prompt(prompt: str, system_prompt: str | None) -> str:
    """The prompt as Beacon's runner sends it to the router and Modal: one text.

    When there is a system prompt, five lines: ``system``, the system prompt, ``user``, the
    question, ``assistant`` (and a final newline); the question alone otherwise.
    """
    if system_prompt is None:
        return prompt
    return f"system\n{system_prompt}\nuser\n{prompt}\nassistant\n"


def flag(name: str) -> Any:
    """A validator accepting only ``True`` or ``False`` for the argument ``name``."""

    def check(_: Any, __: Any, value: Any) -> None:
        if not isinstance(value, bool):
            raise AdapterConfigError(f"{name}: expected True or False, got {value!r}")

    return check
