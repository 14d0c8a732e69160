"""The mutants of ``fleet_worker`` applied in this process, for the tests of one process.

``fleet_worker.apply_mutant`` replaces functions of ``_claims`` for a whole worker process;
here each is patched with ``monkeypatch`` and restored after the test.
"""

from __future__ import annotations

import inspect

import pytest

from beacon_orchestrator.stores.postgres import _claims

from .fleet_worker import MUTANTS


def mutate(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Replace the functions of ``_claims`` that mutant ``name`` edits, for this test only."""
    sources: dict[str, str] = {}
    for function, old, new in MUTANTS[name]:
        source = sources.get(function) or inspect.getsource(getattr(_claims, function))
        assert old in source, f"mutant {name}: {old!r} not in {function}"
        sources[function] = source.replace(old, new)
    for function, source in sources.items():
        namespace = dict(vars(_claims))
        exec(source, namespace)
        monkeypatch.setattr(_claims, function, namespace[function])
