"""Tokens: where they come from, where they may go, and keeping them out of every text.

A token is given as an argument or read from an environment variable, held in a
:class:`Secret` (whose ``repr`` and ``str`` are ``***``), sent only as an ``Authorization``
header to its own service's origin, and replaced by ``***`` (by a :class:`Scrubber`) in every
error message, metadata value and receipt an adapter hands back.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from attrs import field, frozen

from ._config import AdapterConfigError

__all__ = [
    "Scrubber",
    "Secret",
    "bearer",
    "env_secret_factory",
    "same_origin",
    "secret_from_env",
    "to_secret",
]

_UNESCAPED_RUN = re.compile(r"[A-Za-z0-9 !#$%()*+,.:;=?@^_`{|}~-]+")


@frozen(repr=False)
class Secret:
    """A token or API key that never shows itself by accident.

    ``repr``, ``str`` and f-strings give ``***``; only :meth:`reveal` returns the value, and the
    adapters call it only to build a request header.

    Example:
        >>> key = Secret("sk-123")
        >>> key, f"{key}"
        (***, '***')
        >>> key.reveal()
        'sk-123'
    """

    _value: str = field(alias="value")

    def reveal(self) -> str:
        """The secret value itself (for a request header, nothing else)."""
        return self._value

    def __repr__(self) -> str:
        return "***"

    __str__ = __repr__


def to_secret(value: str | Secret | None) -> Secret | None:
    """Wrap a token given as an argument; ``None`` and ``""`` mean "no token"."""
    if value is None:
        return None
    if isinstance(value, Secret):
        return value if value.reveal() else None
    if not isinstance(value, str):
        raise AdapterConfigError(
            f"a token must be a str or Secret, got a {type(value).__name__} (value hidden)"
        )
    return Secret(value) if value else None


def secret_from_env(name: str) -> Secret | None:
    """The token in environment variable ``name``, if it is set and not empty."""
    return to_secret(os.environ.get(name))


def env_secret_factory(name: str) -> Callable[[], Secret | None]:
    """An attrs default factory reading ``name`` from the environment at construction."""

    def factory() -> Secret | None:
        return secret_from_env(name)

    return factory


def bearer(secret: Secret | None) -> dict[str, str]:
    """The ``Authorization`` header carrying ``secret``, or no header without one."""
    if secret is None:
        return {}
    return {"Authorization": "Bearer " + secret.reveal()}


def same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    """Whether two URLs share scheme, host and port (where a token may be sent)."""
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)


@frozen
class Scrubber:
    """Replaces every secret it knows with ``***`` in text and in nested JSON values."""

    secrets: tuple[str, ...] = ()

    @classmethod
    def of(cls, *secrets: Secret | None) -> Scrubber:
        """A scrubber for the given secrets (``None`` ignored)."""
        return cls(tuple(s.reveal() for s in secrets if s is not None))

    def for_body(self, content: bytes) -> Scrubber:
        """This scrubber if a secret may occur in a JSON body, else one that does nothing.

        Scrubbing a parsed answer walks all of it; a substring test on the raw bytes makes the
        common case (no secret in the answer) free. The test looks for the longest run of the
        secret made of characters JSON encoders leave alone, so it finds the secret however
        the server encoded ``/``, quotes, ``<>&`` (Go escapes them) or non-ASCII characters;
        a secret without such a run of 4 characters is always scrubbed.
        """
        for secret in self.secrets:
            runs = _UNESCAPED_RUN.findall(secret)
            longest = max(runs, key=len, default="")
            if len(longest) < min(4, len(secret)) or longest.encode() in content:
                return self
        return _NO_SCRUB

    def text(self, value: str) -> str:
        """``value`` with each secret replaced by ``***``."""
        for secret in self.secrets:
            value = value.replace(secret, "***")
        return value

    def value(self, value: Any) -> Any:
        """A copy of a JSON value with each secret replaced in every string (keys included)."""
        if not self.secrets:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value


_NO_SCRUB = Scrubber()
