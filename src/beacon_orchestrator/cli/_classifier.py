"""`--classifier MODULE:ATTR`: one loader of a user's classifier for show, report and export."""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING

from attrs import frozen

from .._errors import BeaconError, UsageError
from .._types import ExecutionRecord

if TYPE_CHECKING:
    from ..analysis import Classification, Classifier

__all__ = ["load_classifier"]

_FORM = "MODULE:ATTR, e.g. mypackage.labels:KeywordClassifier"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _import(module_name: str, origin: str) -> object:
    # The working directory comes first, as for `python -m`: a classifier written beside the
    # store is found without installing it.
    added = os.getcwd() not in sys.path
    if added:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise UsageError(f"--classifier {origin!r}: no module named {exc.name!r}") from None
        raise UsageError(
            f"--classifier {origin!r}: importing it raised {_first_line(exc)}"
        ) from exc
    except Exception as exc:
        raise UsageError(
            f"--classifier {origin!r}: importing it raised {_first_line(exc)}"
        ) from exc
    finally:
        if added:
            sys.path.remove(os.getcwd())


def load_classifier(origin: str) -> Classifier:
    """The classifier ``MODULE:ATTR`` names: a :class:`Classifier`, or a factory of one.

    ``ATTR`` may be dotted (``labels:Judges.strict``). A class, or any callable that is not
    itself a classifier, is called with no argument and must return one.

    Raises:
        UsageError: In one line, naming ``origin``: it is not ``MODULE:ATTR``, the module or
            the attribute does not exist, importing or calling it raised, or what it gives is
            not a classifier.
    """
    # Imported here, not with the module: the analysis costs every other command 0.1 s.
    from ..analysis import Classifier

    module_name, colon, attr = origin.partition(":")
    if not colon or not module_name.strip() or not attr.strip():
        raise UsageError(f"--classifier {origin!r}: expected {_FORM}")
    found = _import(module_name.strip(), origin)
    for part in attr.strip().split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise UsageError(
                f"--classifier {origin!r}: {module_name.strip()!r} has no attribute {attr!r}"
            ) from None
    if isinstance(found, Classifier) and not isinstance(found, type):
        return _Guarded(found, origin)
    if callable(found):
        try:
            made = found()
        except Exception as exc:
            raise UsageError(
                f"--classifier {origin!r}: calling {attr}() raised {_first_line(exc)}"
            ) from exc
        if isinstance(made, Classifier):
            return _Guarded(made, origin)
        found = made
    raise UsageError(
        f"--classifier {origin!r}: expected a Classifier (name, version and classify(record)) "
        f"or a zero-argument factory of one, got {found!r}"
    )


@frozen
class _Guarded:
    """A user's classifier whose exceptions become one-line errors that name it."""

    inner: Classifier
    origin: str

    @property
    def name(self) -> str:
        return str(self.inner.name)

    @property
    def version(self) -> str:
        return str(self.inner.version)

    def classify(self, record: ExecutionRecord) -> Classification:
        try:
            return self.inner.classify(record)
        except BeaconError:
            raise
        except Exception as exc:
            raise UsageError(
                f"--classifier {self.origin!r} raised {_first_line(exc)} on {record.key}"
            ) from exc
