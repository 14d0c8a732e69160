"""Helpers for the CLI tests: job files, the command runner and a look into SQLite files."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from beacon_orchestrator._demo import demo_data
from beacon_orchestrator.cli import cli

# What `python -m beacon_orchestrator.cli` runs: the `beacon` command, whatever PATH holds.
BEACON = [sys.executable, "-m", "beacon_orchestrator.cli"]

TERMINAL = frozenset({"completed", "failed", "timeout", "cancelled", "skipped"})


def invoke(args: Sequence[str], *, env: Mapping[str, str] | None = None) -> Result:
    """Run ``beacon ARGS`` in-process; output is not a terminal, so progress is plain."""
    runner = CliRunner()
    return runner.invoke(cli, list(args), env={"COLUMNS": "120", **(env or {})})


def write_json(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    return path


def demo_job_file(path: Path, job_id: str = "demo-job") -> Path:
    """The demo job, in the library's own format, with id ``job_id``."""
    doc = demo_data().spec.to_dict()
    doc["id"] = job_id
    return write_json(path, doc)


def statuses(db: Path, job_id: str) -> Counter[str]:
    """Record counts per status, read straight from the SQLite file."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT status, COUNT(*) FROM records WHERE job_id = ? GROUP BY status", (job_id,)
        ).fetchall()
    return Counter(dict(rows))


def keys(db: Path, job_id: str) -> list[tuple[str, str, str]]:
    """Every stored key of a job (duplicates would show twice)."""
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT question_id, model_id, region FROM records WHERE job_id = ?", (job_id,)
        ).fetchall()


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a `beacon` subprocess: no colour or width surprises from the host."""
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "COLUMNS")}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


# -- the JSON output's documented schema ----------------------------------------------------------

JSON_PAGE = Path(__file__).resolve().parents[2] / "docs" / "reference" / "json.md"

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}
_ROW = re.compile(r"^\| `(?P<path>[^`]+)` \| (?P<type>[^|]+?) \| .+\|$")


@dataclass(frozen=True)
class Field:
    """One documented field: its types, and whether it may be absent."""

    types: frozenset[str]
    optional: bool


def documented_fields(command: str, page: Path = JSON_PAGE) -> dict[str, Field]:
    """The field table of the section of ``docs/reference/json.md`` that names ``command``."""
    sections = re.split(r"^## ", page.read_text(encoding="utf-8"), flags=re.MULTILINE)
    (section,) = [s for s in sections if f"`beacon {command}`" in s.splitlines()[0]]
    fields: dict[str, Field] = {}
    for line in section.splitlines():
        if (m := _ROW.match(line)) is None:
            continue
        kind = m.group("type")
        optional = kind.endswith(" (optional)")
        names = frozenset(kind.removesuffix(" (optional)").split(" or "))
        unknown = names - _JSON_TYPES.keys()
        assert not unknown, f"json.md, {command}: unknown type {kind!r} of {m.group('path')}"
        fields[m.group("path")] = Field(names, optional)
    assert fields, f"json.md has no field table for beacon {command}"
    return fields


def _is(value: Any, names: frozenset[str]) -> bool:
    for name in names:
        # bool is an int in Python, not in JSON.
        if isinstance(value, bool) and name in ("integer", "number"):
            continue
        if isinstance(value, _JSON_TYPES[name]):
            return True
    return False


def _parent(path: str) -> str:
    """``a[].b`` -> ``a[]``, ``a.b`` -> ``a``, ``a`` -> ``""``."""
    return path.rsplit(".", 1)[0] if "." in path else ""


def schema_problems(doc: Any, fields: Mapping[str, Field], prefix: str = "") -> list[str]:
    """What in ``doc`` disagrees with ``fields``: missing, undocumented or mistyped fields.

    Every object is checked on its own (each element of an array too), so one element that
    lacks a field is found.
    """
    if isinstance(doc, list):
        return [p for item in doc for p in schema_problems(item, fields, f"{prefix}[]")]
    if not isinstance(doc, dict):
        return []
    problems: list[str] = []
    for path, documented in fields.items():
        key = path.rsplit(".", 1)[-1]
        if _parent(path) == prefix and key not in doc and not documented.optional:
            problems.append(f"{path}: missing")
    for key, value in doc.items():
        path = f"{prefix}.{key}" if prefix else key
        found = fields.get(path)
        if found is None:
            problems.append(f"{path}: not documented")
            continue
        if not _is(value, found.types):
            problems.append(f"{path}: {value!r} is not {' or '.join(sorted(found.types))}")
        problems += schema_problems(value, fields, path)
    return problems
