"""Job files: reading JSON and YAML strictly, and loading a JobSpec from one.

Strictly means what a user would want from a job file: a repeated key is an error rather than
a silently dropped half of a job, YAML timestamps stay text (as they would be in JSON), and a
syntax error names its line and column. Every problem names the file.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import SpecError, SpecProblem, UsageError
from ._beacon_format import fields_from_beacon, looks_like_beacon
from ._documents import Problems
from ._jobspec import JobSpec
from ._own_format import fields_from_dict

if TYPE_CHECKING:
    from yaml import SafeLoader
    from yaml.nodes import MappingNode

__all__ = ["load_jobspec", "read_document"]


def load_jobspec(
    path: str | Path,
    *,
    questions: Mapping[str, str] | Sequence[Mapping[str, Any]] | None = None,
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
            a syntax error (with line and column), a repeated key or an empty file; ``source``
            names the file.
        UsageError: For a YAML file when PyYAML is missing (install
            ``beacon-orchestrator[yaml]``).
    """
    source = str(path)
    doc, problems = _parse_file(path, source)
    if doc is None:
        problems.append(SpecProblem("", "the file holds no document"))
    if problems:
        raise SpecError(problems, source=source)
    return doc


def _parse_file(path: Path, source: str) -> tuple[Any, Problems]:
    """The parsed document, and the repeated keys found on the way (each a problem)."""
    text = _read_text(path, source)
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _parse_json(text, source)
    if suffix in (".yaml", ".yml"):
        return _parse_yaml(text, source)
    raise SpecError(
        [SpecProblem("", "unsupported file type; expected .json, .yaml or .yml", path.name)],
        source=source,
    )


def _read_text(path: Path, source: str) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        problem = SpecProblem("", "file not found", source)
    except IsADirectoryError:
        problem = SpecProblem("", "is a directory; expected a job file", source)
    except OSError as exc:
        problem = SpecProblem("", f"cannot read the file ({exc.strerror or exc})", source)
    else:
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            problem = SpecProblem("", f"not UTF-8 text (bad byte at offset {exc.start})")
    raise SpecError([problem], source=source)


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
                        "", f"duplicate key {key!r} in one object; only one value can be kept"
                    )
                )
            out[key] = value
        return out

    try:
        doc = json.loads(text, object_pairs_hook=pairs_hook)
    except json.JSONDecodeError as exc:
        raise SpecError(
            [SpecProblem("", f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")],
            source=source,
        ) from None
    return doc, duplicates


def _parse_yaml(text: str, source: str) -> tuple[Any, Problems]:
    try:
        import yaml
    except ImportError:
        raise UsageError(
            f"{source} is YAML, and reading YAML needs PyYAML: "
            "pip install 'beacon-orchestrator[yaml]'"
        ) from None
    duplicates: Problems = []
    loader = _strict_loader(duplicates)(text)
    try:
        doc = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = exc.problem or exc.context or "syntax error"
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError([SpecProblem("", f"invalid YAML{where}: {what}")], source=source) from None
    except yaml.YAMLError as exc:
        raise SpecError([SpecProblem("", f"invalid YAML: {exc}")], source=source) from None
    finally:
        loader.dispose()
    return doc, duplicates


def _strict_loader(duplicates: Problems) -> type[SafeLoader]:
    """A safe loader that records repeated keys in ``duplicates`` and keeps timestamps as text."""
    import yaml  # PyYAML is optional; the caller has checked it is installed

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=deep)
                if not isinstance(key, Hashable):
                    continue
                if key in seen:
                    mark = key_node.start_mark
                    duplicates.append(
                        SpecProblem(
                            "",
                            f"duplicate key {key!r} at line {mark.line + 1}, column "
                            f"{mark.column + 1}; only one value can be kept",
                        )
                    )
                seen.add(key)
            result: dict[Any, Any] = super().construct_mapping(node, deep=deep)
            return result

    def timestamp_as_text(loader: SafeLoader, node: yaml.Node) -> Any:
        return loader.construct_scalar(node)  # type: ignore[arg-type]

    Loader.add_constructor("tag:yaml.org,2002:timestamp", timestamp_as_text)
    return Loader
