"""Tokens: where they come from, where they may go, and keeping them out of every text.

A token is given as an argument or read from an environment variable and checked there (see
:func:`token_problem`): a token that cannot be sent as an HTTP header value is refused when the
executor is built, by an error that names the argument or variable and never quotes the token.
It is held in a :class:`Secret` (whose ``repr`` and ``str`` are ``***``), sent only as an
``Authorization`` header to its own service's origin, and replaced by ``***`` (by a
:class:`Scrubber`) in every error message, metadata value and receipt an adapter hands back,
in whatever escaped form a library or a server quoted it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
from attrs import Factory, field, frozen

from .._errors import PermanentError
from ._config import AdapterConfigError

__all__ = [
    "Scrubber",
    "Secret",
    "bearer",
    "check_token",
    "env_secret_factory",
    "same_origin",
    "secret_forms",
    "secret_from_env",
    "to_secret",
    "token_problem",
]

_UNESCAPED_RUN = re.compile(r"[A-Za-z0-9 !#$%()*+,.:;=?@^_`{|}~-]+")
# C0 controls, DEL and C1 controls: no HTTP header value may carry them, and a token that
# holds one was read wrongly (a file's newline, a pasted carriage return).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_NAMED = {
    "\n": "a newline (\\n)",
    "\r": "a carriage return (\\r)",
    "\t": "a tab",
    "\x00": "a NUL byte",
    " ": "a space",
}
_NON_ASCII = re.compile(r"[^\x00-\x7e]")
_PERCENT = re.compile(r"%[0-9A-F]{2}")


@frozen(repr=False)
class Secret:
    """A token or API key that never shows itself by accident.

    ``repr``, ``str`` and f-strings give ``***``; only :meth:`reveal` returns the value, and the
    adapters call it only to build a request header. A ``Secret`` checks nothing itself: the
    executor it is given to refuses a token that is not a valid header value.

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


def _describe(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    kind = "control character" if _CONTROL.match(char) else "white space character"
    return f"the {kind} U+{ord(char):04X}"


def token_problem(token: str) -> str | None:
    """What makes ``token`` unusable as a bearer token, or ``None``; never quotes the token.

    Refused: white space at either end (refused, not stripped: a token read from a file with
    its trailing newline is a mistake worth a clear message, and silently altering a secret
    would hide it), a control character anywhere (C0, DEL, C1: CR, LF and NUL would split or
    end the header), and any character outside ASCII (header values are ASCII). The message
    names the character's kind and position, which reveals nothing of the token.
    """
    stripped = token.strip()
    if token != stripped:
        if not stripped:
            return "it is only white space"
        at_end = token[-1].isspace()
        char = token[-1] if at_end else token[0]
        fix = "strip the surrounding white space"
        if char == "\n" and at_end:
            fix = "strip the trailing newline (a token read from a file keeps it)"
        return f"it {'ends' if at_end else 'starts'} with {_describe(char)}: {fix}"
    found = _CONTROL.search(token) or _NON_ASCII.search(token)
    if found is None:
        return None
    where = f"at position {found.start() + 1} of {len(token)}"
    if _CONTROL.match(found.group()):
        return f"it contains {_describe(found.group())} {where}: no header may carry it"
    return f"it contains a character that is not ASCII {where}: header values are ASCII"


def check_token(token: str, source: str) -> str:
    """``token`` if it can be sent; else :class:`AdapterConfigError` naming ``source``.

    Args:
        token: The token.
        source: Where it came from, as the message names it (``"api_key"``,
            ``"environment variable OPENAI_API_KEY"``).
    """
    problem = token_problem(token)
    if problem is not None:
        raise AdapterConfigError(f"{source}: unusable token (value hidden): {problem}")
    return token


def to_secret(value: str | Secret | None, source: str = "token") -> Secret | None:
    """Wrap and check a token given as ``source``; ``None`` and ``""`` mean "no token".

    Raises:
        AdapterConfigError: Naming ``source`` for a value that is not a string or a
            :class:`Secret`, or a token :func:`token_problem` refuses (the token is not quoted).
    """
    if value is None:
        return None
    if isinstance(value, Secret):
        token = value.reveal()
        if not isinstance(token, str):
            raise AdapterConfigError(
                f"{source}: a Secret must hold a str, got a {type(token).__name__} (value hidden)"
            )
        return Secret(check_token(token, source)) if token else None
    if not isinstance(value, str):
        raise AdapterConfigError(
            f"{source}: a token must be a str or Secret, got a {type(value).__name__} "
            "(value hidden)"
        )
    return Secret(check_token(value, source)) if value else None


def secret_from_env(name: str) -> Secret | None:
    """The token in environment variable ``name``, if it is set and not empty (checked)."""
    return to_secret(os.environ.get(name), f"environment variable {name}")


def env_secret_factory(name: str) -> Callable[[], Secret | None]:
    """An attrs default factory reading ``name`` from the environment at construction."""

    def factory() -> Secret | None:
        return secret_from_env(name)

    return factory


def bearer(secret: Secret | None) -> dict[str, str]:
    """The ``Authorization`` header carrying ``secret``, or no header without one.

    The token is checked again here, where it is sent: an executor subclass may hand over a
    secret that never met a converter, and a header httpx refuses would be quoted, escaped, in
    its error and in httpcore's debug log.

    Raises:
        PermanentError: ``INVALID_TOKEN``, for a token :func:`token_problem` refuses.
    """
    if secret is None:
        return {}
    token = secret.reveal()
    problem = token_problem(token)
    if problem is not None:
        raise PermanentError(f"unusable token (value hidden): {problem}", code="INVALID_TOKEN")
    return {"Authorization": "Bearer " + token}


def same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    """Whether two URLs share scheme, host and port (where a token may be sent)."""
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)


def _json_forms(secret: str) -> set[str]:
    plain = json.dumps(secret, ensure_ascii=False)[1:-1]
    ascii_only = json.dumps(secret)[1:-1]
    # Some encoders escape "/" (PHP, older Java) or <, > and & (Go's encoding/json).
    go = ascii_only.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return {plain, ascii_only, ascii_only.replace("/", "\\/"), go}


def secret_forms(secret: str) -> tuple[str, ...]:
    r"""Every form ``secret`` may take in a text: itself, escaped and encoded; longest first.

    Error texts quote a value with ``repr`` (``\n`` for a newline, and ``b'...'`` for bytes,
    as h11 quotes a header it refuses), JSON escapes it, and URLs percent-encode it; each of
    these is a different string to search for.
    """
    forms = {
        secret,
        repr(secret)[1:-1],
        ascii(secret)[1:-1],
        repr(secret.encode("utf-8", "backslashreplace"))[2:-1],
        secret.encode("unicode_escape").decode("ascii"),
        *_json_forms(secret),
    }
    for encoded in _percent_forms(secret):
        forms.add(encoded)
        forms.add(_PERCENT.sub(lambda m: m.group().lower(), encoded))
    return tuple(sorted((f for f in forms if f), key=len, reverse=True))


def _percent_forms(secret: str) -> list[str]:
    """The URL-quoted forms of a secret, for each way its text can become bytes.

    A token read from the environment may hold lone surrogates (bytes that were not UTF-8),
    which strict UTF-8 cannot encode: it is quoted as those bytes would be, never an error.
    """
    forms = []
    for errors in ("strict", "surrogateescape", "surrogatepass"):
        try:
            forms += [
                quote(secret, safe="", errors=errors),
                quote_plus(secret, safe="", errors=errors),
            ]
        except UnicodeEncodeError:
            continue
        break
    return forms


def _all_forms(secrets: tuple[str, ...]) -> tuple[str, ...]:
    forms = {form for secret in secrets for form in secret_forms(secret)}
    return tuple(sorted(forms, key=len, reverse=True))


@frozen
class Scrubber:
    """Replaces every secret it knows, in every form it may be quoted in, with ``***``."""

    secrets: tuple[str, ...] = ()
    forms: tuple[str, ...] = field(
        default=Factory(lambda self: _all_forms(self.secrets), takes_self=True),
        init=False,
        repr=False,
        eq=False,
    )

    @classmethod
    def of(cls, *secrets: Secret | None) -> Scrubber:
        """A scrubber for the given secrets (``None`` ignored)."""
        return cls(tuple(s.reveal() for s in secrets if s is not None and s.reveal()))

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
        """``value`` with each secret, in each of its forms, replaced by ``***``."""
        for form in self.forms:
            if form in value:
                value = value.replace(form, "***")
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
