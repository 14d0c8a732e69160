"""Connection strings: checking them and hiding their passwords.

A DSN may carry a password (``postgresql://user:secret@host/db`` or ``password=secret``); it
must never reach a log line, a repr or an error message, so everything the store prints about
where it is connected goes through :func:`redact_dsn`, and every error text from the driver
through :func:`scrub`.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

__all__ = ["is_postgres_dsn", "redact_dsn", "scrub"]

_SCHEMES: Final = ("postgresql://", "postgres://")
_HIDDEN: Final = "***"
# key=value form: password=secret, password = 'it''s \' secret'
_KV_PASSWORD: Final = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def is_postgres_dsn(value: str) -> bool:
    """Whether ``value`` is a PostgreSQL URL (``postgresql://`` or ``postgres://``)."""
    return value.lower().startswith(_SCHEMES)


def redact_dsn(dsn: str) -> str:
    """``dsn`` with any password replaced by ``***``, in the URL and in ``key=value`` form."""
    if not is_postgres_dsn(dsn):
        return _KV_PASSWORD.sub(lambda m: m.group(1) + _HIDDEN, dsn)
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return "postgresql://" + _HIDDEN  # unparseable: show nothing that may be secret
    netloc = parts.netloc
    userinfo, at, hosts = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.partition(':')[0]}:{_HIDDEN}@{hosts}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, _HIDDEN if k.lower() == "password" else v) for k, v in pairs], safe="/*"
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _secrets(dsn: str) -> list[str]:
    """The password(s) written in ``dsn``, as they appear and decoded."""
    found: list[str] = []
    if is_postgres_dsn(dsn):
        try:
            parts = urlsplit(dsn)
        except ValueError:
            return found
        if parts.password:
            found.append(parts.password)
        found += [v for k, v in parse_qsl(parts.query) if k.lower() == "password" and v]
    else:
        found += [m.group(2).strip("'") for m in _KV_PASSWORD.finditer(dsn)]
    raw = [s for s in found if s]

    return sorted({*raw, *(unquote(s) for s in raw)}, key=len, reverse=True)


def scrub(text: str, dsn: str) -> str:
    """``text`` (an error message) with the DSN shown redacted and its password(s) hidden."""
    text = text.replace(dsn, redact_dsn(dsn))
    for secret in _secrets(dsn):
        text = text.replace(secret, _HIDDEN)
    return text
