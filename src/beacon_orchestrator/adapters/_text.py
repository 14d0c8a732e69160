"""How URLs, bodies and values appear in error messages: short, on one line, without secrets."""

from __future__ import annotations

import re

import httpx

from ._secrets import Scrubber

__all__ = ["display_url", "excerpt", "trim"]

_EXCERPT_LIMIT = 300
_WS = re.compile(r"\s+")


def trim(text: str, limit: int = _EXCERPT_LIMIT) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    text = _WS.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def display_url(url: httpx.URL | str) -> str:
    """The URL without user info, query or fragment (those may carry credentials)."""
    u = httpx.URL(url)
    port = f":{u.port}" if u.port is not None else ""
    return f"{u.scheme}://{u.host}{port}{u.path}"


def excerpt(response: httpx.Response, scrubber: Scrubber) -> str:
    """A short, scrubbed, one-line excerpt of a response body for an error message."""
    try:
        body = response.text
    except (UnicodeDecodeError, LookupError):
        body = response.content.decode("utf-8", "replace")
    body = scrubber.text(body)
    return trim(body) if body.strip() else "<empty body>"
