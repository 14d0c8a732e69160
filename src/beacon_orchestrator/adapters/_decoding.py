"""Reading a service's answer: its JSON object, the fields in it, and what it amounts to.

A 2xx body that is not JSON is a :class:`~beacon_orchestrator.PermanentError`
``MALFORMED_RESPONSE``; JSON of an unexpected shape is ``UNEXPECTED_RESPONSE``. Both quote a
scrubbed excerpt of the body. Status documents (health, provider lists) are typed loosely:
the ``optional_*`` readers turn a field of the wrong type into ``None`` instead of failing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from .._errors import PermanentError, TransientError
from .._executor import Response
from .._usage import Usage
from ._secrets import Scrubber
from ._text import display_url, excerpt, trim
from ._transport import raise_for_status

__all__ = [
    "answer",
    "answer_text",
    "drop_none",
    "json_object",
    "ok_json",
    "optional_float",
    "optional_int",
    "optional_str",
    "reported_failure",
    "str_tuple",
    "timestamp",
    "unexpected",
]


def ok_json(response: httpx.Response, *, what: str, scrubber: Scrubber) -> dict[str, Any]:
    """The JSON object of a 2xx answer; the right error for any other status or body."""
    raise_for_status(response, what=what, scrubber=scrubber)
    return json_object(response, what=what, scrubber=scrubber)


def json_object(response: httpx.Response, *, what: str, scrubber: Scrubber) -> dict[str, Any]:
    """The response body as a JSON object, or a :class:`PermanentError` quoting it."""
    try:
        data = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        url = scrubber.text(display_url(response.request.url))
        raise PermanentError(
            f"{what}: body from {url} is not JSON: {excerpt(response, scrubber)}",
            code="MALFORMED_RESPONSE",
        ) from None
    if not isinstance(data, dict):
        problem = f"expected a JSON object, got {type(data).__name__}"
        raise unexpected(what, problem, response, scrubber)
    return data


def unexpected(
    what: str, problem: str, response: httpx.Response, scrubber: Scrubber
) -> PermanentError:
    """A :class:`PermanentError` for JSON of the wrong shape, naming the problem."""
    url = scrubber.text(display_url(response.request.url))
    return PermanentError(
        f"{what}: unexpected answer from {url}: {problem}: {excerpt(response, scrubber)}",
        code="UNEXPECTED_RESPONSE",
    )


# -- what an answer amounts to ------------------------------------------------------------


def answer_text(
    data: Mapping[str, Any], response: httpx.Response, *, what: str, scrubber: Scrubber
) -> str:
    """The ``response`` field of a success: a string, ``null`` meaning the empty answer."""
    text = data.get("response")
    if text is None:
        return ""
    if not isinstance(text, str):
        problem = f"expected 'response' to be a string, got {type(text).__name__}"
        raise unexpected(what, problem, response, scrubber)
    return text


def answer(
    text: str,
    *,
    provider: str | None,
    metadata: Iterable[tuple[str, Any]],
    scrubber: Scrubber,
    receipt: Any = None,
    usage: Usage | None = None,
) -> Response:
    """A :class:`~beacon_orchestrator.Response` whose metadata and receipt hold no secret.

    Metadata pairs whose value is ``None`` are left out; a receipt that is not a JSON object
    is dropped. ``usage`` is what the service reported the execution used (``_usage``).
    """
    return Response(
        text=text,
        provider=provider,
        metadata=scrubber.value(drop_none(metadata)),
        receipt=scrubber.value(receipt) if isinstance(receipt, dict) else None,
        usage=usage,
    )


def reported_failure(
    message: str, *, code: str, transient: bool, scrubber: Scrubber
) -> TransientError | PermanentError:
    """The error for a failure the service reported in a 2xx body, its message scrubbed."""
    text = scrubber.text(trim(message, 500))
    if transient:
        return TransientError(text, code=code)
    return PermanentError(text, code=code)


# -- loosely typed fields -----------------------------------------------------------------


def optional_str(value: Any) -> str | None:
    """``value`` if it is a string, else ``None`` (for loosely typed status documents)."""
    return value if isinstance(value, str) else None


def optional_float(value: Any) -> float | None:
    """``value`` as a float if it is a number (not a bool), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def optional_int(value: Any) -> int | None:
    """``value`` if it is an int (not a bool), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def timestamp(value: Any) -> float | None:
    """A status document's time in seconds since the epoch, or ``None``.

    Beacon's router and Modal apps write a number (epoch seconds); an ISO 8601 text (with
    ``Z`` or an offset; UTC when it has neither) is read too. Anything else is ``None``.
    """
    number = optional_float(value)
    if number is not None:
        return number if math.isfinite(number) else None
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def str_tuple(value: Any) -> tuple[str, ...]:
    """Strings of a list, or the keys of an object; anything else gives ``()``."""
    if isinstance(value, Mapping):
        return tuple(str(k) for k in value)
    if isinstance(value, list | tuple):
        return tuple(v for v in value if isinstance(v, str))
    return ()


def drop_none(items: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """A dict of the pairs whose value is not ``None``."""
    return {k: v for k, v in items if v is not None}
