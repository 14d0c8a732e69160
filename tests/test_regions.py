"""Region names: the default table, aliases, strictness, extension and the never-remap rule."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import beacon_orchestrator as bo
from beacon_orchestrator import RegionTable, SpecError, normalize_region
from beacon_orchestrator._spec import BUILTIN_ALIASES, is_region_slug

CANONICAL = ("us-east", "eu-west", "asia-pacific")

ALIASES = [
    ("US", "us-east"),
    ("us", "us-east"),
    ("USA", "us-east"),
    ("NA", "us-east"),
    ("EU", "eu-west"),
    ("Europe", "eu-west"),
    ("EUROPE", "eu-west"),
    ("APAC", "asia-pacific"),
    ("ASIA", "asia-pacific"),
    ("Asia", "asia-pacific"),
    ("asia-southeast", "asia-pacific"),
    ("ASIA-SOUTHEAST", "asia-pacific"),
]


def test_default_table_has_beacons_three_regions() -> None:
    table = RegionTable.default()
    assert table.regions == CANONICAL
    assert table.strict is True  # documents and executors refuse names nobody declared
    assert RegionTable() == table


@pytest.mark.parametrize(("name", "canonical"), ALIASES)
def test_documented_aliases_normalise_case_insensitively(name: str, canonical: str) -> None:
    assert normalize_region(name) == canonical
    assert RegionTable.default(strict=True).normalize(name) == canonical


@pytest.mark.parametrize("name", [*CANONICAL, "US-EAST", "Eu-West", "ASIA-PACIFIC"])
def test_canonical_names_in_any_case_normalise_to_themselves(name: str) -> None:
    assert normalize_region(name) == name.lower()


def test_docstring_lists_every_default_alias() -> None:
    doc = RegionTable.__doc__ or ""
    for alias, canonical in BUILTIN_ALIASES.items():
        line = next(
            (ln for ln in doc.splitlines() if f"`{alias}`" in ln.lower()),
            None,
        )
        assert line is not None, f"alias {alias!r} missing from the RegionTable docstring"
        assert canonical in line


@pytest.mark.parametrize("name", ["us-west", "eu-central", "asia-northeast", "ap-south-1"])
def test_unknown_name_is_kept_not_mapped_to_a_known_region(name: str) -> None:
    # Production once sent an unknown region to another region's GPUs; a close spelling must
    # stay itself (lenient table) or be refused (strict table), never be guessed.
    assert RegionTable.default(strict=False).normalize(name) == name
    with pytest.raises(SpecError) as info:
        normalize_region(name)
    (problem,) = info.value.problems
    assert problem.value == name
    assert "unknown region" in problem.message
    assert "'us-east', 'eu-west', 'asia-pacific'" in problem.message


def test_strict_table_suggests_a_close_name_without_using_it() -> None:
    with pytest.raises(SpecError) as info:
        RegionTable.default(strict=True).normalize("eu-wst")
    assert "did you mean 'eu-west'?" in info.value.problems[0].message


def test_undeclared_region_is_folded_to_lower_case_by_a_lenient_table() -> None:
    assert RegionTable.default(strict=False).normalize("SA-East") == "sa-east"
    assert RegionTable.default().with_regions("sa-east").normalize("SA-East") == "sa-east"


@pytest.mark.parametrize("name", ["eu west", "", "-east", "us_east", "us/east"])
def test_names_that_are_not_slugs_are_problems(name: str) -> None:
    with pytest.raises(SpecError) as info:
        RegionTable.default(strict=False).normalize(name)
    (problem,) = info.value.problems
    assert problem.path == "region"
    assert problem.value == name
    assert "not a valid region name" in problem.message


@pytest.mark.parametrize("value", [None, 5, True, ["us-east"]])
def test_non_strings_are_problems(value: object) -> None:
    with pytest.raises(SpecError, match="expected a region name"):
        RegionTable.default().normalize(value)  # type: ignore[arg-type]


def test_boolean_from_yaml_gets_a_quoting_hint() -> None:
    result = RegionTable.default().resolve(False, "models[0].regions[2]")
    assert isinstance(result, bo.SpecProblem)
    assert result.path == "models[0].regions[2]"
    assert "quote" in result.message


def test_with_regions_and_aliases_extend_the_table() -> None:
    table = RegionTable.default().with_regions("SA-East").with_aliases({"BR": "sa-east"})
    assert table.regions == (*CANONICAL, "sa-east")
    assert table.normalize("br") == "sa-east"
    assert table.normalize("EU") == "eu-west"
    assert "Brazil" not in table
    assert "BR" in table
    strict = table.with_strict()
    assert strict.strict
    assert strict.normalize("SA-EAST") == "sa-east"
    with pytest.raises(SpecError):
        strict.normalize("brazil")
    assert RegionTable.default().lookup("sa-east") is None


def test_with_regions_keeps_each_region_once() -> None:
    assert RegionTable.default().with_regions("us-east", "x1", "x1").regions == (*CANONICAL, "x1")


def test_an_alias_can_be_redirected() -> None:
    table = RegionTable.default().with_regions("asia-east").with_aliases({"ASIA": "asia-east"})
    assert table.normalize("asia") == "asia-east"
    assert table.normalize("APAC") == "asia-pacific"


def test_alias_to_an_unknown_region_is_refused() -> None:
    with pytest.raises(SpecError) as info:
        RegionTable.default().with_aliases({"BR": "sa-east"})
    (problem,) = info.value.problems
    assert problem.path == "aliases['br']"
    assert problem.value == "sa-east"
    assert "with_regions" in problem.message


def test_a_built_in_alias_cannot_become_a_canonical_region() -> None:
    with pytest.raises(SpecError) as info:
        RegionTable.default().with_regions("eu")
    assert "built-in alias of 'eu-west'" in str(info.value)


def test_an_alias_of_the_table_cannot_also_be_a_region() -> None:
    table = RegionTable.default().with_regions("sa-east").with_aliases({"br": "sa-east"})
    with pytest.raises(SpecError, match="alias cannot also be a canonical region"):
        table.with_regions("br")


def test_invalid_canonical_names_are_refused_with_every_problem() -> None:
    with pytest.raises(SpecError) as info:
        RegionTable(regions=("us-east", "Bad Name", "us-east"), aliases={})
    assert [p.path for p in info.value.problems] == ["regions[1]", "regions[2]"]


def test_a_table_without_a_built_in_alias_does_not_keep_it_as_a_region() -> None:
    # "eu" always means eu-west somewhere; a table that drops the alias must not silently
    # record a second region called "eu".
    table = RegionTable(regions=("us-east",), aliases={})
    with pytest.raises(SpecError, match="built-in alias of 'eu-west'"):
        table.normalize("EU")


def test_table_is_immutable_hashable_and_compared_by_value() -> None:
    table = RegionTable.default()
    with pytest.raises(TypeError):
        table.aliases["mars"] = "us-east"  # type: ignore[index]
    assert hash(table) == hash(RegionTable.default())
    assert table != table.with_strict(False)
    assert {table, RegionTable.default()} == {table}


def test_public_names_are_exported() -> None:
    assert bo.RegionTable is RegionTable
    assert bo.normalize_region is normalize_region
    assert {"RegionTable", "normalize_region"} <= set(bo.__all__)


@given(st.text(max_size=20))
def test_normalisation_is_idempotent_and_never_remaps_unknown_names(name: str) -> None:
    """Invariant: a normalised name is a canonical slug that normalises to itself, and a name
    the table does not know is only ever folded to lower case, never mapped elsewhere."""
    table = RegionTable.default(strict=False)
    try:
        result = table.normalize(name)
    except SpecError:
        assert table.lookup(name) is None
        return
    assert is_region_slug(result)
    assert table.normalize(result) == result
    if table.lookup(name) is None:
        assert result == name.lower()
    else:
        assert result in CANONICAL


@given(st.sampled_from([a for a, _ in ALIASES] + list(CANONICAL)), st.booleans())
def test_known_names_resolve_the_same_in_strict_and_lenient_tables(name: str, strict: bool) -> None:
    """Invariant: strictness only changes how unknown names are treated."""
    assert RegionTable.default(strict=strict).normalize(name) == normalize_region(name)


@pytest.mark.parametrize(
    ("name", "char", "looks_like"),
    [
        ("\u212aR", "U+212A KELVIN SIGN", "'K'"),  # the Kelvin sign once became region "k"
        ("\u0435u-west", "U+0435 CYRILLIC SMALL LETTER IE", None),
        ("\uff25\uff35", "U+FF25 FULLWIDTH LATIN CAPITAL LETTER E", "'E'"),
        ("us-east\u200b", "U+200B ZERO WIDTH SPACE", None),
    ],
)
@pytest.mark.parametrize("strict", [True, False])
def test_a_look_alike_character_is_refused_naming_it_never_folded(
    name: str, char: str, looks_like: str | None, strict: bool
) -> None:
    table = RegionTable.default(strict=strict).with_regions("kr")
    with pytest.raises(SpecError) as info:
        table.normalize(name)
    (problem,) = info.value.problems
    assert char in problem.message
    assert "ASCII" in problem.message
    if looks_like is not None:
        assert f"looks like {looks_like}" in problem.message
    assert table.lookup(name) is None
    assert name not in table


def test_an_unknown_name_is_refused_with_a_did_you_mean_and_how_to_declare_one() -> None:
    with pytest.raises(SpecError) as info:
        normalize_region("eu-wset")
    message = info.value.problems[0].message
    assert "did you mean 'eu-west'?" in message
    assert "'regions' section" in message
    assert "with_regions" in message


def test_display_names_default_to_beacons_places_and_can_be_declared() -> None:
    table = RegionTable.default().with_regions("sa-east").with_aliases({"BR": "sa-east"})
    assert [table.display_name(r) for r in table.regions] == [
        "the US",
        "Europe",
        "Asia",
        "sa-east",
    ]
    named = table.with_display_names({"br": "Brazil", "EU": "the EU"})
    assert named.display_name("sa-east") == "Brazil"
    assert named.display_name("eu-west") == "the EU"
    assert named != table
    with pytest.raises(SpecError, match="display name must be given for a canonical region"):
        table.with_display_names({"mars": "Mars"})
    with pytest.raises(SpecError, match="non-empty name"):
        table.with_display_names({"sa-east": " "})
