"""What an execution used, as the provider reports it: tokens, inference seconds, its cost.

A value of its own (below the executor and the record, which both carry it) with the encoding
that flattens it into a record's dict form, a SQLite column and an export column.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from attrs import asdict, field, frozen

from ._checks import NON_NEGATIVE_INT, NON_NEGATIVE_NUMBER
from ._record_codec import EncodeError, Encoding

__all__ = ["USAGE_ENCODING", "Usage"]


@frozen(kw_only=True)
class Usage:
    """What one execution used, as its provider reported it (``None``: not reported).

    Attributes:
        tokens_in: Prompt tokens.
        tokens_out: Generated tokens.
        inference_seconds: Seconds the provider says the model ran (cold start excluded,
            if it says so).
        provider_cost: The provider's own cost estimate, in the currency of its price list.

    Raises:
        SpecError: For a negative, NaN or non-numeric value; the message names the field.
    """

    tokens_in: int | None = field(default=None, validator=NON_NEGATIVE_INT.or_none().validator())
    tokens_out: int | None = field(default=None, validator=NON_NEGATIVE_INT.or_none().validator())
    inference_seconds: float | None = field(
        default=None, validator=NON_NEGATIVE_NUMBER.or_none().validator()
    )
    provider_cost: float | None = field(
        default=None, validator=NON_NEGATIVE_NUMBER.or_none().validator()
    )

    def to_dict(self) -> dict[str, Any]:
        """The reported figures as a dict (``None`` ones left out)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Usage:
        """Rebuild a usage from :meth:`to_dict` output (unknown keys are ignored)."""
        return cls(**{k: data[k] for k in _FIELDS if data.get(k) is not None})


_FIELDS: Final = ("tokens_in", "tokens_out", "inference_seconds", "provider_cost")
_compact: Final = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode


def _to_plain(value: Usage | None) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Usage):
        raise EncodeError(f"must be a Usage or None, got {type(value).__name__}")
    return value.to_dict()


def _from_plain(value: Mapping[str, Any] | None) -> Usage | None:
    return None if value is None else Usage.from_dict(value)


def _to_text(value: Usage | None) -> str | None:
    plain = _to_plain(value)
    return None if plain is None else _compact(plain)


def _from_text(text: str | None) -> Usage | None:
    return None if text is None else Usage.from_dict(json.loads(text))


USAGE_ENCODING: Final = Encoding(
    to_plain=_to_plain,
    from_plain=_from_plain,
    to_sql=_to_text,
    from_sql=_from_text,
    to_export=_to_text,
)
"""A :class:`Usage` (or ``None``): a dict in the dict form, JSON text in a table or an export."""
