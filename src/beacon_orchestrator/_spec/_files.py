"""Job files: reading JSON and YAML strictly, and loading a JobSpec from one.

Strictly means what a user would want from a job file: a repeated key is an error rather than
a silently dropped half of a job, YAML timestamps stay text (as they would be in JSON), and a
syntax error names its line and column. Every problem names the file.

A file is also read at a bounded cost, whoever wrote it: at most ``MAX_DOCUMENT_BYTES`` of JSON
or ``MAX_YAML_BYTES`` of YAML are read, YAML nests at most ``MAX_DEPTH`` levels and uses at
most ``MAX_ALIASES`` aliases (``_yaml``), JSON that nests deeper than Python can parse is
refused rather than crashing, and an integer too long to convert is kept as a ``LongInteger``
for the document checks to report (``_bounds``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from .._errors import SpecError, SpecProblem, UsageError, short_repr
from ._beacon_format import fields_from_beacon, looks_like_beacon
from ._bounds import (
    MAX_DOCUMENT_BYTES,
    MAX_INT_DIGITS,
    MAX_YAML_BYTES,
    TOO_DEEP,
    LongInteger,
    document_problems,
)
from ._documents import Problems
from ._jobspec import JobSpec
from ._own_format import fields_from_dict

__all__ = ["load_jobspec", "read_document"]

_MIB = 1024 * 1024
_CHUNK = 64 * 1024


def load_jobspec(
    path: str | Path,
    *,
    questions: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    regions: Any = None,
) -> JobSpec:
    """Load a job spec from a JSON or YAML file.

    The library's own format is assumed unless the document looks like Beacon's (or a
    ``questions`` catalogue is given), in which case :meth:`JobSpec.from_beacon` is used.

    Region names are normalised through ``regions`` (default: the built-in
    :class:`~beacon_orchestrator.RegionTable`); files are ``.json``, ``.yaml`` or ``.yml``.

    Raises:
        SpecError: For a missing or unreadable file, a syntax error (with line and column),
            a repeated key, or an invalid spec; ``source`` names the file.
        UsageError: For a YAML file when PyYAML is missing (install
            ``beacon-orchestrator[yaml]``).
    """
    path = Path(path)
    source = str(path)
    doc, problems = _parse_file(path, source)
    if doc is None:
        problems.append(SpecProblem("", "the file holds no document; expected a job document"))
        raise SpecError(problems, source=source)
    try:
        if questions is not None or looks_like_beacon(doc):
            spec = JobSpec(**fields_from_beacon(doc, questions=questions, regions=regions))
        else:
            spec = JobSpec(**fields_from_dict(doc, regions))
    except SpecError as exc:
        # A repeated key and the problems of the document it left are reported together.
        raise SpecError([*problems, *exc.problems], source=source) from None
    if problems:
        raise SpecError(problems, source=source)
    return spec


def read_document(path: Path) -> Any:
    """Read and parse a JSON or YAML file as strictly as a job file is.

    The suffix decides the syntax: ``.json``, ``.yaml`` or ``.yml``, in any case. The command
    line reads question catalogues with it.

    Raises:
        SpecError: For a missing or unreadable file, a file that is not UTF-8, another suffix,
            a syntax error (with line and column), a repeated key, an empty file, or a document
            over the bounds of a job document (size, depth, values); ``source`` names the file.
        UsageError: For a YAML file when PyYAML is missing (install
            ``beacon-orchestrator[yaml]``).
    """
    source = str(path)
    doc, problems = _parse_file(path, source)
    if doc is None:
        problems.append(SpecProblem("", "the file holds no document"))
    else:
        problems.extend(document_problems(doc))
    if problems:
        raise SpecError(problems, source=source)
    return doc


def _parse_file(path: Path, source: str) -> tuple[Any, Problems]:
    """The parsed document, and the repeated keys found on the way (each a problem)."""
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _parse_json(_read_text(path, source, MAX_DOCUMENT_BYTES), source)
    if suffix in (".yaml", ".yml"):
        return _parse_yaml(_read_text(path, source, MAX_YAML_BYTES), source)
    _read_text(path, source, MAX_DOCUMENT_BYTES)  # a missing file is told so first
    raise SpecError(
        [SpecProblem("", "unsupported file type; expected .json, .yaml or .yml", path.name)],
        source=source,
    )


def _read_text(path: Path, source: str, limit: int) -> str:
    """The file's text, if it is UTF-8 and at most ``limit`` bytes long."""
    try:
        with path.open("rb") as fp:
            data = _read_bounded(fp, limit)
    except FileNotFoundError:
        problem = SpecProblem("", "file not found", source)
    except IsADirectoryError:
        problem = SpecProblem("", "is a directory; expected a job file", source)
    except OSError as exc:
        problem = SpecProblem("", f"cannot read the file ({exc.strerror or exc})", source)
    else:
        if len(data) > limit:
            raise SpecError([SpecProblem("", _too_large(limit))], source=source)
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            problem = SpecProblem("", f"not UTF-8 text (bad byte at offset {exc.start})")
    raise SpecError([problem], source=source)


def _too_large(limit: int) -> str:
    if limit == MAX_YAML_BYTES:
        return (
            f"too large: a YAML job file is at most {limit // _MIB} MiB ({limit} bytes); YAML is "
            f"slow to read, so write a larger job as JSON (up to {MAX_DOCUMENT_BYTES // _MIB} MiB)"
        )
    return f"too large: a job file is at most {limit // _MIB} MiB ({limit} bytes)"


def _read_bounded(fp: BinaryIO, limit: int) -> bytes:
    """At most one byte more than ``limit``: enough to say "too large"."""
    # The size the file says it has is read at once (no buffer of the largest size allowed is
    # allocated for a small file); a pipe or a growing file is read on in chunks.
    want = min(os.fstat(fp.fileno()).st_size, limit) + 1
    chunks: list[bytes] = []
    total = 0
    while total <= limit:
        chunk = fp.read(min(want, limit + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
        want = _CHUNK
    return b"".join(chunks)


def _parse_json(text: str, source: str) -> tuple[Any, Problems]:
    duplicates: Problems = []

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        # json keeps the last of repeated keys without a word; a repeated "models" would
        # silently drop half a job.
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                duplicates.append(
                    SpecProblem(
                        "",
                        f"duplicate key {short_repr(key)} in one object; only one value can be "
                        "kept",
                    )
                )
            out[key] = value
        return out

    try:
        doc = json.loads(text, object_pairs_hook=pairs_hook, parse_int=_json_int)
    except json.JSONDecodeError as exc:
        raise SpecError(
            [SpecProblem("", f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")],
            source=source,
        ) from None
    except RecursionError:
        # The json parser recurses once per level; Python's stack is the limit, far beyond
        # what a job document may nest (the document checks refuse over MAX_DEPTH levels).
        raise SpecError(
            [SpecProblem("", f"{TOO_DEEP} (this one is deeper than the parser can follow)")],
            source=source,
        ) from None
    return doc, duplicates


def _json_int(text: str) -> int | LongInteger:
    digits = len(text) - text.startswith("-")
    return LongInteger(digits) if digits > MAX_INT_DIGITS else int(text)


def _parse_yaml(text: str, source: str) -> tuple[Any, Problems]:
    try:
        import yaml  # noqa: F401  (PyYAML is optional: say how to install it)
    except ImportError:
        raise UsageError(
            f"{source} is YAML, and reading YAML needs PyYAML: "
            "pip install 'beacon-orchestrator[yaml]'"
        ) from None
    from ._yaml import parse_yaml

    return parse_yaml(text, source)
