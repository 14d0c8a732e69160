"""Secrets are scrubbed from every string of an answer, whatever its JSON encoding."""

from __future__ import annotations

import json
import string
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from beacon_orchestrator.adapters import Secret
from beacon_orchestrator.adapters._secrets import Scrubber

secrets = st.text(alphabet=string.ascii_letters + string.digits + '-_/.+é<&"', min_size=6).map(
    lambda s: "tok-" + s
)


def json_values(secret: str) -> st.SearchStrategy[Any]:
    words = st.sampled_from(["", "a", "receipt", secret, f"Bearer {secret}", f"x{secret}y"])
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.lists(words, max_size=3).map("".join),
        st.text(max_size=5),
    )
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(st.lists(words, max_size=2).map("".join), inner, max_size=4),
        ),
        max_leaves=12,
    )


@given(st.data(), secrets, st.booleans(), st.sampled_from(["plain", "slash", "go"]))
def test_scrubbed_answer_never_contains_the_secret(
    data: st.DataObject, secret: str, ascii_only: bool, style: str
) -> None:
    """Invariant: after for_body(raw).value(parsed), no string in the answer holds the secret."""
    value = data.draw(json_values(secret))
    raw = json.dumps(value, ensure_ascii=ascii_only)
    if style == "slash":
        raw = raw.replace("/", "\\/")
    elif style == "go":
        raw = raw.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    scrubbed = Scrubber.of(Secret(secret)).for_body(raw.encode()).value(json.loads(raw))
    assert secret not in json.dumps(scrubbed, ensure_ascii=False)


@given(secrets)
def test_a_body_without_the_secret_needs_no_scrubbing(secret: str) -> None:
    """Invariant: a body that does not mention the secret is passed through untouched."""
    scrubber = Scrubber.of(Secret(secret)).for_body(b'{"response": "Paris."}')
    assert scrubber.secrets == ()


def test_text_scrubbing_and_empty_tokens() -> None:
    scrubber = Scrubber.of(Secret("s3cr3t-token"), None)
    assert scrubber.text("Bearer s3cr3t-token and s3cr3t-token") == "Bearer *** and ***"
    assert Scrubber.of().value({"a": ["b"]}) == {"a": ["b"]}
