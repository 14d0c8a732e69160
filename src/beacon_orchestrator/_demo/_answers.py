"""What the simulated executor answers: made-up answers whose regions differ, some refusing."""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from importlib import resources
from typing import Any

from attrs import field, frozen

from .._types import ExecutionKey
from ..testing._fake import regional_answer

__all__ = ["DemoAnswers", "load_demo_answers", "simulated_text"]

SIMULATED_NOTE = "simulated answer: no model was called"
"""What every answer the simulated executor gives says about itself."""

# For questions the table does not know: a refusal in about one region in ten.
_OTHER_REFUSALS = 0.1
_OTHER_SEED = "beacon-demo"

# Where an answer is looked up, most specific first: keyed by "model@region", region, model,
# or one list for every endpoint ("any").
_Table = Mapping[str, Mapping[str, Any]]


def _check_table(_instance: object, _attribute: object, value: _Table) -> None:
    for question, entry in value.items():
        for scope, answers in entry.items():
            if scope == "any":
                _check_wordings(question, scope, answers)
            elif scope in ("endpoint", "region", "model"):
                for name, wordings in answers.items():
                    _check_wordings(question, f"{scope}.{name}", wordings)
            else:
                raise ValueError(f"answers.{question}: unknown scope {scope!r}")


def _check_wordings(question: str, where: str, value: object) -> None:
    ok = isinstance(value, str) or (
        isinstance(value, list) and value and all(isinstance(v, str) for v in value)
    )
    if not ok:
        raise ValueError(
            f"answers.{question}.{where}: expected a text or a non-empty list of texts, "
            f"got {value!r}"
        )


@frozen
class DemoAnswers:
    """The made-up answers of the demo battery, by question (see ``answers.json``).

    Attributes:
        table: Per question id, the answers by scope: ``endpoint`` (``"model@region"``),
            ``region``, ``model`` or ``any``; each a text or a list of wordings.
        regions: The demo's regions in order: a model's regions take consecutive wordings, so
            they word an answer differently whenever the list has enough wordings.
    """

    table: _Table = field(factory=dict, validator=_check_table)
    regions: tuple[str, ...] = ()

    def known(self, key: ExecutionKey) -> str | None:
        """The table's answer at ``key`` (without the simulated note), or ``None``."""
        entry = self.table.get(key.question_id)
        if entry is None:
            return None
        scopes = (("endpoint", str(key.endpoint)), ("region", key.region), ("model", key.model_id))
        for scope, name in scopes:
            found = entry.get(scope, {}).get(name)
            if found is not None:
                return self._pick(found, key)
        found = entry.get("any")
        return None if found is None else self._pick(found, key)

    def _pick(self, answers: str | list[str], key: ExecutionKey) -> str:
        """One wording per endpoint, the same on every run."""
        if isinstance(answers, str):
            return answers
        rank = (
            self.regions.index(key.region)
            if key.region in self.regions
            else zlib.crc32(key.region.encode())
        )
        return answers[(zlib.crc32(key.model_id.encode()) + rank) % len(answers)]


def load_demo_answers(regions: tuple[str, ...]) -> DemoAnswers:
    """The answers shipped with the demo job, whose regions are ``regions``, in order."""
    raw: dict[str, Any] = json.loads(
        resources.files(__package__).joinpath("answers.json").read_text(encoding="utf-8")
    )
    return DemoAnswers(raw["answers"], regions)


def simulated_text(answers: DemoAnswers, key: ExecutionKey) -> str:
    """The simulated answer at ``key``: the table's, or a generated one; marked as simulated.

    The note goes last: it would otherwise crowd out the start of every answer in a preview,
    and a refusal's cue is read at the opening of the answer.
    """
    known = answers.known(key)
    text = regional_answer(_OTHER_SEED, key, _OTHER_REFUSALS) if known is None else known
    return f"{text} [{SIMULATED_NOTE}]"
