"""The public API's promises: every exported name is documented and in the reference docs."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

import beacon_orchestrator
import beacon_orchestrator.analysis
import beacon_orchestrator.stores
import beacon_orchestrator.testing

REFERENCE = Path(__file__).resolve().parent.parent / "docs" / "reference"
MODULES = [
    beacon_orchestrator,
    beacon_orchestrator.analysis,
    beacon_orchestrator.stores,
    beacon_orchestrator.testing,
]


def public_names() -> list[tuple[str, str]]:
    return [
        (module.__name__, name)
        for module in MODULES
        for name in module.__all__
        if not name.startswith("__")
    ]


def test_every_exported_name_is_importable() -> None:
    # (The order of __all__ is ruff's RUF022 business.)
    for module in MODULES:
        for name in module.__all__:
            assert getattr(module, name) is not None


@pytest.mark.parametrize(("module", "name"), public_names())
def test_public_name_has_a_docstring(module: str, name: str) -> None:
    obj = getattr(__import__(module, fromlist=[name]), name)
    if inspect.isclass(obj) or inspect.isfunction(obj):
        assert inspect.getdoc(obj), f"{module}.{name} has no docstring"


def test_every_top_level_name_is_in_the_reference_docs() -> None:
    text = "".join(p.read_text() for p in REFERENCE.glob("*.md"))
    missing = [
        name
        for name in beacon_orchestrator.__all__
        if not name.startswith("__")
        and f"beacon_orchestrator.{name}" not in text
        and f"beacon_orchestrator.stores.{name}" not in text
    ]
    assert missing == []
