"""Reading YAML job files strictly, and at a bounded cost.

Strictly: a repeated key is a problem (with its line and column) rather than a silently dropped
half of a job, and timestamps stay text, as they would be in JSON. At a bounded cost: the
scanner and the composer (which recurses once per level) refuse nesting over ``MAX_DEPTH``
levels, at most
``MAX_ALIASES`` aliases are followed, and an integer too long to convert becomes a
``LongInteger`` for the document checks to report. Whatever PyYAML raises on bad input becomes a
:class:`~beacon_orchestrator.SpecError` naming the file, the line and the column.

This module imports PyYAML, which is optional: ``_files`` imports it only for a YAML file, once
it has checked that PyYAML is installed.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

import yaml
from yaml.composer import Composer, ComposerError
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode
from yaml.parser import Parser
from yaml.reader import Reader, ReaderError
from yaml.resolver import Resolver
from yaml.scanner import Scanner, ScannerError

from .._checks import describe_char
from .._errors import SpecError, SpecProblem, short_repr
from ._bounds import MAX_ALIASES, MAX_DEPTH, MAX_INT_DIGITS, TOO_DEEP, LongInteger
from ._documents import Problems

__all__ = ["PythonLoader", "StrictComposer", "StrictLoader", "parse_yaml"]

# What PyYAML's constructors let through from Python when a value does not fit its tag.
_PYTHON_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError)


def parse_yaml(text: str, source: str) -> tuple[Any, Problems]:
    """The document in ``text`` and the repeated keys found on the way (each a problem).

    Raises:
        SpecError: For a syntax error, a character YAML does not allow, a value its tag does
            not fit, or a file over the bounds above; with the line and column where known.
    """
    loader: StrictComposer | None = None
    try:
        # Inside the try: the reader refuses control characters as soon as it is built.
        loader = StrictLoader(text)
        doc = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = exc.problem or exc.context or "syntax error"
        if "maximum nesting depth" in what:  # LibYAML's own limit, met before ours
            what = TOO_DEEP
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        # Shortened: a problem may quote an anchor's name, which may be as long as the file.
        problem = SpecProblem("", f"invalid YAML{where}: {_shorten(what)}")
        raise SpecError([problem], source=source) from None
    except ReaderError as exc:
        raise SpecError([_reader_problem(exc, text)], source=source) from None
    except yaml.YAMLError as exc:
        problem = SpecProblem("", f"invalid YAML: {_shorten(str(exc))}")
        raise SpecError([problem], source=source) from None
    except _PYTHON_ERRORS as exc:
        # The last resort: PyYAML lets Python's own errors out of some constructors it runs
        # late (a tag on a value it does not fit); a bad file is still a SpecError.
        problem = SpecProblem("", f"invalid YAML: {type(exc).__name__}: {_shorten(str(exc))}")
        raise SpecError([problem], source=source) from None
    finally:
        if loader is not None:
            loader.dispose()
    return doc, loader.duplicates


def _shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _reader_problem(exc: ReaderError, text: str) -> SpecProblem:
    """A character YAML does not allow, at its line and column (the reader counts offsets)."""
    position = exc.position
    if not isinstance(exc.character, int) or not 0 <= position <= len(text):
        return SpecProblem("", f"invalid YAML: {_shorten(str(exc.reason))}")
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    return SpecProblem(
        "",
        f"invalid YAML at line {line}, column {column}: {describe_char(chr(exc.character))} is "
        "not allowed in a YAML file (control characters other than tab and line breaks must be "
        'written as escapes in a double-quoted string, such as "\\x01")',
    )


class StrictComposer(Composer, SafeConstructor, Resolver):
    """PyYAML's safe composing and constructing, strict about repeated keys, bounded in cost.

    The events come from one of the two loaders below: LibYAML's parser in C when PyYAML was
    built with it (five times faster on a large file), else PyYAML's own, in Python. Composing
    is always done here, in Python, so the bounds hold either way.

    Attributes:
        duplicates: A problem for each repeated key, in the order they were found.
    """

    def __init__(self) -> None:
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        self.duplicates: Problems = []
        self._aliases = 0
        self._depth = 0

    if TYPE_CHECKING:  # provided by the parser a loader combines this with

        def peek_event(self) -> Any: ...

        def dispose(self) -> None: ...

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        """Compose one node, counting aliases and the depth of collections first."""
        # An alias costs nothing here but may stand for a whole tree; the document checks
        # count what it stands for, and this bounds how many there are.
        event = self.peek_event()
        mark: Any = event.start_mark
        if isinstance(event, yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise ComposerError(None, None, f"more than {MAX_ALIASES} aliases (*name)", mark)
        if not isinstance(event, yaml.CollectionStartEvent):
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise ComposerError(None, None, TOO_DEEP, mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        """Construct one value; a tag the value does not fit is a problem at its place."""
        try:
            return super().construct_object(node, deep=deep)
        except _PYTHON_ERRORS as exc:
            # !!int abc, !!float x, !!bool maybe: PyYAML lets Python's own error through.
            raise ConstructorError(
                None,
                None,
                f"cannot read this value as {node.tag}: {_shorten(str(exc))}",
                node.start_mark,
            ) from None

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        """Construct a mapping, recording each repeated key (PyYAML keeps the last silently)."""
        # Typed as a mapping, but !!map or !!set on a scalar get here too: PyYAML says so.
        pairs: Any = node.value if isinstance(node.value, list) else []
        seen: set[Any] = set()
        for key_node, _ in pairs:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue
            if key in seen:
                mark = key_node.start_mark
                self.duplicates.append(
                    SpecProblem(
                        "",
                        f"duplicate key {short_repr(key)} at line {mark.line + 1}, column "
                        f"{mark.column + 1}; only one value can be kept",
                    )
                )
            seen.add(key)
        result: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return result

    def timestamp_as_text(self, node: ScalarNode) -> str:
        """A timestamp, kept as the text it was written as (JSON has no timestamps)."""
        return str(self.construct_scalar(node))

    def bounded_int(self, node: ScalarNode) -> int | LongInteger:
        """An integer, or a :class:`LongInteger` for one of too many digits (not converted)."""
        text = str(self.construct_scalar(node))
        digits = len(text.replace("_", "").lstrip("+-"))
        if digits > MAX_INT_DIGITS:
            # int() refuses over 4300 digits, and base 60 (1:2:3) costs more than it reads.
            return LongInteger(digits)
        value: int = self.construct_yaml_int(node)
        return value


StrictComposer.add_constructor(  # type: ignore[type-var]
    "tag:yaml.org,2002:timestamp", StrictComposer.timestamp_as_text
)
StrictComposer.add_constructor("tag:yaml.org,2002:int", StrictComposer.bounded_int)  # type: ignore[type-var]


class PythonLoader(Reader, Scanner, Parser, StrictComposer):
    """The strict loader on PyYAML's own reader, scanner and parser (always available)."""

    def __init__(self, stream: str) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        StrictComposer.__init__(self)

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        """Scan ``[`` or ``{``, refusing flow nesting deeper than a document may nest."""
        # Before the composer sees anything, the scanner looks ahead over every open bracket,
        # and re-checks each open level per token: 10,000 "[" cost seconds. Bounded here.
        if self.flow_level >= MAX_DEPTH:
            raise ScannerError(None, None, TOO_DEEP, self.get_mark())
        super().fetch_flow_collection_start(TokenClass)


StrictLoader: Callable[[str], StrictComposer] = PythonLoader
"""The loader :func:`parse_yaml` uses: on LibYAML's parser when PyYAML has it, else Python's."""

if yaml.__with_libyaml__:
    from yaml._yaml import CParser

    class LibYAMLLoader(StrictComposer, CParser):
        """The strict loader on LibYAML's parser (which also limits nesting itself, in C)."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            StrictComposer.__init__(self)

    StrictLoader = LibYAMLLoader
