"""httpx is an optional dependency: only ``beacon_orchestrator.adapters`` may import it."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.slow
def test_importing_the_package_does_not_import_httpx() -> None:
    code = (
        "import sys, beacon_orchestrator\n"
        "assert 'httpx' not in sys.modules, sorted(m for m in sys.modules if 'http' in m)\n"
        "import beacon_orchestrator.adapters\n"
        "assert 'httpx' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_adapters_public_names_exist() -> None:
    import beacon_orchestrator.adapters as adapters

    assert len(set(adapters.__all__)) == len(adapters.__all__)
    for name in adapters.__all__:
        assert getattr(adapters, name) is not None
