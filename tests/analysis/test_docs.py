"""The analysis docs: every code block of the how-to runs as copied and prints what it shows."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

import beacon_orchestrator.analysis

ROOT = Path(__file__).resolve().parent.parent.parent
GUIDE = ROOT / "docs" / "how-to" / "plug-in-a-classifier.md"
REFERENCE = ROOT / "docs" / "reference" / "analysis.md"

# A Python block, and the text block right after it if there is one (its expected output).
BLOCK = re.compile(r"```python\n(.*?)```(?:\s*```text\n(.*?)```)?", re.S)
BLOCKS = BLOCK.findall(GUIDE.read_text(encoding="utf-8"))


def test_the_guide_has_examples() -> None:
    assert len(BLOCKS) >= 3
    assert all(output for _code, output in BLOCKS), "show what each example prints"


@pytest.mark.parametrize(("code", "output"), BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_every_example_runs_as_copied_and_prints_what_the_guide_shows(
    code: str, output: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, str(GUIDE), "exec"), {"__name__": "__main__"})
    assert printed.getvalue() == output


def test_every_public_name_is_in_the_reference_and_the_pages_in_the_nav() -> None:
    reference = REFERENCE.read_text(encoding="utf-8")
    missing = [
        name
        for name in beacon_orchestrator.analysis.__all__
        if f"::: beacon_orchestrator.analysis.{name}\n" not in reference
    ]
    assert missing == []
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert "how-to/plug-in-a-classifier.md" in nav
    assert "reference/analysis.md" in nav
