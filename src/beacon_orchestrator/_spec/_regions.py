"""Region names: the canonical names, their aliases, and the one table that maps between them.

Beacon's services disagree on how to spell a region (the portal says ``EU``, the runner and the
router ``eu-west``, the APAC GPU app reports ``asia-southeast``). Records keyed by different
spellings of the same region never match, so every name that enters the library from a document
goes through one :class:`RegionTable`, and a :class:`~beacon_orchestrator.JobSpec` only ever holds
canonical names.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, Final

from attrs import evolve, field, frozen

from .._checks import MAX_ID_CHARS, bool_hint
from .._errors import SpecError, SpecProblem

__all__ = [
    "BUILTIN_ALIASES",
    "BUILTIN_REGIONS",
    "RegionTable",
    "beacon_place",
    "is_region_slug",
    "normalize_region",
]

BUILTIN_REGIONS: tuple[str, ...] = ("us-east", "eu-west", "asia-pacific")
"""The canonical regions Beacon's GPU endpoints are deployed in."""

BUILTIN_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "us": "us-east",
        "usa": "us-east",
        "na": "us-east",
        "eu": "eu-west",
        "europe": "eu-west",
        "apac": "asia-pacific",
        "asia": "asia-pacific",
        "asia-southeast": "asia-pacific",
    }
)
"""The built-in aliases (folded to lower case) and the canonical region each one names.

These names are reserved: no table may use one as a canonical region, so the same region can
never be recorded under two spellings.
"""

_SLUG = re.compile(r"[a-z0-9][a-z0-9-]*")
# Beacon's runner names a region's place in its system prompt by the region's prefix.
_PLACES: Final = (("us-", "the US"), ("eu-", "Europe"), ("asia-", "Asia"))
# A region keys every record, as an id does, and is bounded as one.
_TOO_LONG = f"too long: a region name is at most {MAX_ID_CHARS} characters"


def is_region_slug(name: str) -> bool:
    """Whether ``name`` is spelled like a canonical region (``[a-z0-9][a-z0-9-]*``)."""
    return _SLUG.fullmatch(name) is not None


def _fold(name: str) -> str:
    return name.lower()


def beacon_place(region: str) -> str:
    """The place Beacon's system prompt names for ``region``: ``the US``, ``Europe``, ``Asia``.

    Beacon's runner picks it by the region's prefix (``us-``, ``eu-``, ``asia-``); any other
    region is named by itself.

    >>> beacon_place("asia-pacific")
    'Asia'
    """
    for prefix, place in _PLACES:
        if region.startswith(prefix):
            return place
    return region


def look_alike_problem(name: str) -> str | None:
    """Why ``name`` is refused for holding a character that is not ASCII, or ``None``.

    Region names are ASCII slugs. A look-alike (the Kelvin sign, a Cyrillic e) is refused rather
    than folded: folding the Kelvin sign to ``k`` would file records under a region the
    writer never typed. The message names the character and, when Unicode's compatibility
    normalisation (NFKC) maps it to ASCII, the character it imitates.
    """
    for char in name:
        if char.isascii():
            continue
        label = unicodedata.name(char, "unnamed character")
        folded = unicodedata.normalize("NFKC", char)
        like = f", which looks like {folded!r}" if folded.isascii() and folded.isprintable() else ""
        return (
            f"contains U+{ord(char):04X} {label}{like}; region names are ASCII "
            "(letters, digits and '-'): a character that is not ASCII is refused, never folded "
            "to one it looks like"
        )
    return None


def _loose(value: Mapping[str, str]) -> dict[Any, Any]:
    # Typed loosely on purpose: values come from users at run time, and are checked.
    return dict(value)


def _region_names(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _alias_map(value: Mapping[str, str]) -> Mapping[str, str]:
    # Keys are stored folded so lookup is a single dict access; the proxy keeps a frozen table
    # from being changed through its ``aliases`` attribute.
    return MappingProxyType(
        {(_fold(k) if isinstance(k, str) else k): v for k, v in _loose(value).items()}
    )


def _default_aliases() -> Mapping[str, str]:
    return dict(BUILTIN_ALIASES)


def _display_map(value: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(_loose(value))


def _display_problems(names: Mapping[Any, Any], regions: tuple[Any, ...]) -> list[SpecProblem]:
    problems: list[SpecProblem] = []
    for region, shown in names.items():
        path = f"display_names[{region!r}]"
        if region not in regions:
            problems.append(
                SpecProblem(path, "a display name must be given for a canonical region", region)
            )
        if not isinstance(shown, str) or not shown.strip() or len(shown) > MAX_ID_CHARS:
            problems.append(
                SpecProblem(
                    path, f"expected a non-empty name of at most {MAX_ID_CHARS} characters", shown
                )
            )
    return problems


def _canonical_name_problems(regions: tuple[Any, ...]) -> list[SpecProblem]:
    problems: list[SpecProblem] = []
    seen: set[str] = set()
    for i, name in enumerate(regions):
        path = f"regions[{i}]"
        if not isinstance(name, str) or not is_region_slug(name):
            problems.append(
                SpecProblem(
                    path,
                    "expected a canonical region name: lower-case letters, digits and '-' "
                    "(such as 'us-east')",
                    name,
                )
            )
        elif name in BUILTIN_ALIASES:
            problems.append(
                SpecProblem(
                    path,
                    f"{name!r} is a built-in alias of {BUILTIN_ALIASES[name]!r} and cannot "
                    "be a canonical region",
                    name,
                )
            )
        elif name in seen:
            problems.append(SpecProblem(path, "region listed twice", name))
        if isinstance(name, str):
            seen.add(name)
    return problems


def _alias_problems(aliases: Mapping[Any, Any], regions: tuple[Any, ...]) -> list[SpecProblem]:
    problems: list[SpecProblem] = []
    canonical = {name for name in regions if isinstance(name, str)}
    for alias, target in aliases.items():
        path = f"aliases[{alias!r}]"
        if not isinstance(alias, str) or not alias:
            problems.append(SpecProblem(path, "expected a non-empty alias string", alias))
        elif alias in canonical:
            problems.append(SpecProblem(path, "an alias cannot also be a canonical region", alias))
        if not isinstance(target, str) or target not in canonical:
            problems.append(
                SpecProblem(
                    path,
                    "an alias must name a canonical region of the table "
                    f"({', '.join(map(repr, regions))}); add it with with_regions()",
                    target,
                )
            )
    return problems


@frozen
class RegionTable:
    """Canonical region names and the aliases that normalise to them.

    Lookup is case-insensitive. A name resolves, in order, to:

    1. itself (folded to lower case) when it is a canonical region of the table;
    2. the canonical region an alias names;
    3. with ``strict=False``, itself folded to lower case when that is a valid slug
       (``[a-z0-9][a-z0-9-]*``): an undeclared region such as ``sa-east``;
    4. otherwise a problem: with ``strict=True`` (the default) an unknown name is refused with
       a did-you-mean. An unknown name is **never** mapped to another region.

    Names are ASCII: a name holding any other character (the Kelvin sign U+212A, a
    Cyrillic e) is refused with a message naming the character, never folded to the
    letter it looks like.

    The default table (:meth:`default`) has the canonical regions ``us-east``, ``eu-west`` and
    ``asia-pacific`` and these aliases (the spellings the Beacon portal, router and GPU apps
    use):

    | alias            | canonical region |
    |------------------|------------------|
    | `US`             | `us-east`        |
    | `USA`            | `us-east`        |
    | `NA`             | `us-east`        |
    | `EU`             | `eu-west`        |
    | `Europe`         | `eu-west`        |
    | `APAC`           | `asia-pacific`   |
    | `ASIA`           | `asia-pacific`   |
    | `asia-southeast` | `asia-pacific`   |

    Declare your own regions with :meth:`with_regions`, :meth:`with_aliases` and
    :meth:`with_display_names` (a job document does the same in its ``regions`` section); make
    it accept undeclared slugs with ``strict=False``. The built-in aliases are reserved: they
    cannot be canonical names of any table (``eu`` always means ``eu-west`` unless an alias
    redirects it), so a region is never recorded under two spellings.

    Example::

        table = RegionTable.default().with_regions("sa-east").with_aliases({"BR": "sa-east"})
        table.normalize("br")  # "sa-east"

    Attributes:
        regions: Canonical names, lower-case slugs, in a stable order.
        aliases: Alias (folded to lower case) to canonical name.
        strict: Whether a name the table does not know is a problem (the default) rather than
            an undeclared region kept as it is.
        display_names: Canonical name to the name a system prompt gives its place
            (``{place}``); a region without one gets :func:`beacon_place`'s.

    Raises:
        SpecError: When built with a canonical name that is not a slug or is a built-in alias,
            or with an alias that names no canonical region of the table.
    """

    regions: tuple[str, ...] = field(default=BUILTIN_REGIONS, converter=_region_names)
    aliases: Mapping[str, str] = field(factory=_default_aliases, converter=_alias_map)
    strict: bool = True
    display_names: Mapping[str, str] = field(factory=dict, converter=_display_map)

    def __attrs_post_init__(self) -> None:
        regions: tuple[Any, ...] = self.regions
        strict: Any = self.strict
        problems = [
            *_canonical_name_problems(regions),
            *_alias_problems(_loose(self.aliases), regions),
            *_display_problems(_loose(self.display_names), regions),
        ]
        if not isinstance(strict, bool):
            problems.append(SpecProblem("strict", "expected a boolean", strict))
        if problems:
            raise SpecError(problems)

    def __hash__(self) -> int:
        aliases = tuple(sorted(self.aliases.items()))
        shown = tuple(sorted(self.display_names.items()))
        return hash((self.regions, aliases, self.strict, shown))

    # -- building -------------------------------------------------------------------------

    @classmethod
    def default(cls, *, strict: bool = True) -> RegionTable:
        """The built-in table: Beacon's three regions and their documented aliases.

        Args:
            strict: Refuse names the table does not know (the default); ``False`` keeps an
                unknown slug as a region of its own.
        """
        return cls(strict=strict)

    def with_regions(self, *names: str) -> RegionTable:
        """A copy with more canonical regions (folded to lower case; known ones are kept once).

        Raises:
            SpecError: When a name is not a slug, is a built-in alias, or is an alias of this
                table.
        """
        given: tuple[Any, ...] = names
        added = [_fold(n) if isinstance(n, str) else n for n in given]
        regions = tuple(dict.fromkeys((*self.regions, *added)))
        return evolve(self, regions=regions)

    def with_aliases(self, aliases: Mapping[str, str]) -> RegionTable:
        """A copy with more aliases; an alias already in the table is redirected.

        Targets may be given in any case; each must be a canonical region of the table.

        Raises:
            SpecError: When a target is not a canonical region or an alias is one.
        """
        merged = dict(self.aliases)
        for alias, target in _loose(aliases).items():
            key = _fold(alias) if isinstance(alias, str) else alias
            merged[key] = _fold(target) if isinstance(target, str) else target
        return evolve(self, aliases=merged)

    def with_strict(self, strict: bool = True) -> RegionTable:
        """A copy that does (or does not) refuse names it does not know."""
        return evolve(self, strict=strict)

    def with_display_names(self, names: Mapping[str, str]) -> RegionTable:
        """A copy with the names system prompts give these regions' places (``{place}``).

        Keys may be any name the table resolves (an alias too).

        Raises:
            SpecError: When a key is not a region of the table or a name is empty.
        """
        merged = dict(self.display_names)
        for region, shown in _loose(names).items():
            key = self.lookup(region) if isinstance(region, str) else None
            merged[key if key is not None else region] = shown
        return evolve(self, display_names=merged)

    def display_name(self, region: str) -> str:
        """The name a system prompt gives ``region``'s place (its ``{place}``).

        A declared display name, else :func:`beacon_place` (``the US``, ``Europe``, ``Asia``
        by prefix, as Beacon's runner names them), else the region itself.
        """
        return self.display_names.get(region) or beacon_place(region)

    # -- lookup ---------------------------------------------------------------------------

    def __contains__(self, name: object) -> bool:
        """Whether ``name`` is a canonical region or an alias of this table (any case)."""
        return isinstance(name, str) and self.lookup(name) is not None

    def lookup(self, name: str) -> str | None:
        """The canonical region ``name`` is or aliases, or ``None`` if the table does not know it.

        Undeclared regions are not known to the table, nor is any name that is not ASCII.
        """
        if not name.isascii():
            return None
        folded = _fold(name)
        if folded in self.regions:
            return folded
        return self.aliases.get(folded)

    def normalize(self, name: str) -> str:
        """The canonical name for ``name``.

        Raises:
            SpecError: When the name is unknown to a strict table, or is not a valid region
                name.
        """
        result = self.resolve(name, "region")
        if isinstance(result, SpecProblem):
            raise SpecError([result])
        return result

    def resolve(self, name: Any, path: str) -> str | SpecProblem:
        """The canonical name for ``name``, or the problem with it located at ``path``.

        Document loaders use this to collect every problem before raising.
        """
        if not isinstance(name, str):
            return SpecProblem(path, f"expected a region name (a string){bool_hint(name)}", name)
        if len(name) > MAX_ID_CHARS:
            return SpecProblem(path, _TOO_LONG, name)
        odd = look_alike_problem(name)
        if odd is not None:
            return SpecProblem(path, odd, name)
        known = self.lookup(name)
        if known is not None:
            return known
        folded = _fold(name)
        if folded in BUILTIN_ALIASES:
            # A custom table dropped this alias; keeping it as a region of its own would give
            # one region two names, and mapping it would be a guess.
            return SpecProblem(
                path,
                f"{name!r} is a built-in alias of {BUILTIN_ALIASES[folded]!r}, which this table "
                "does not define; add the region or an alias for it",
                name,
            )
        if is_region_slug(folded):
            if self.strict:
                return SpecProblem(path, f"unknown region; {self._expectation(folded)}", name)
            return folded
        return SpecProblem(
            path,
            "not a valid region name; expected a known region or alias, or a slug of "
            "letters, digits and '-' (such as 'sa-east')",
            name,
        )

    def _expectation(self, folded: str) -> str:
        names = [*self.regions, *sorted(self.aliases)]
        close = difflib.get_close_matches(folded, names, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return (
            f"expected one of {', '.join(map(repr, self.regions))} or an alias "
            f"({', '.join(sorted(self.aliases))}){hint}; declare a region of your own in the "
            "document's 'regions' section or with RegionTable.with_regions()"
        )


def normalize_region(name: str, table: RegionTable | None = None) -> str:
    """The canonical name of a region, through ``table`` (default: :meth:`RegionTable.default`).

    The default table refuses names it does not know.

    >>> normalize_region("EU")
    'eu-west'
    >>> normalize_region("asia-southeast")
    'asia-pacific'

    Raises:
        SpecError: When the name is unknown to a strict table or is not a valid region name.
    """
    return (table if table is not None else RegionTable.default()).normalize(name)
