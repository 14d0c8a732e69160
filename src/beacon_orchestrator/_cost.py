"""The cost model: what an execution costs, from its endpoint's price and what it used.

Prices are per second of inference, per 1,000 tokens in and out, and per request (attempt),
given per endpoint (``model@region``), per model, or as a default. The same prices bound what an
execution *may* cost before it runs (:meth:`CostModel.worst_case`), which is what a job's
``max_cost`` holds in reserve for each execution in flight.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from attrs import field, frozen

from ._checks import NON_NEGATIVE_NUMBER, POSITIVE_INT
from ._errors import UsageError
from ._types import Endpoint
from ._usage import Usage

__all__ = ["CostModel", "Price"]

_NUMBER = NON_NEGATIVE_NUMBER.validator()


@frozen(kw_only=True)
class Price:
    """What one endpoint charges (every part defaults to 0).

    Attributes:
        per_second: Per second of inference (a GPU's price). An execution that does not
            report its inference seconds is charged for the seconds its attempts took.
        per_1k_tokens_in: Per 1,000 prompt tokens.
        per_1k_tokens_out: Per 1,000 generated tokens.
        per_request: Per attempt sent.

    Raises:
        SpecError: For a negative or non-numeric price; the message names the field.
    """

    per_second: float = field(default=0.0, validator=_NUMBER)
    per_1k_tokens_in: float = field(default=0.0, validator=_NUMBER)
    per_1k_tokens_out: float = field(default=0.0, validator=_NUMBER)
    per_request: float = field(default=0.0, validator=_NUMBER)


def _prices(value: Mapping[str, Price]) -> Mapping[str, Price]:
    out = dict(value)
    for name, price in out.items():
        if not isinstance(price, Price):
            raise UsageError(f"the price of {name!r} must be a Price, got {type(price).__name__}")
    return out


@frozen(kw_only=True)
class CostModel:
    """Gives each execution a cost (pass as ``RunOptions(cost_model=...)``).

    The price of an endpoint is the first of ``endpoints["model@region"]``,
    ``models["model"]`` and ``default``.

    Attributes:
        default: The price of endpoints and models not named.
        models: Prices per model id.
        endpoints: Prices per endpoint (``model@region``).
        trust_provider: When the provider reports its own cost estimate, use it instead of
            the prices (it then also counts against ``max_cost``).
        prompt_chars_per_token: For the worst case before an execution runs: its prompt is
            counted as ``len(prompt) / prompt_chars_per_token`` tokens (default 1: no
            tokenizer yields more tokens than characters in practice).
        default_max_tokens: For the worst case when the job's params set no ``max_tokens``.
    """

    default: Price = field(factory=Price)
    models: Mapping[str, Price] = field(factory=dict, converter=_prices)
    endpoints: Mapping[str, Price] = field(factory=dict, converter=_prices)
    trust_provider: bool = True
    prompt_chars_per_token: float = field(default=1.0, validator=_NUMBER)
    default_max_tokens: int = field(default=4096, validator=POSITIVE_INT.validator())

    def price(self, endpoint: Endpoint) -> Price:
        """The price of ``endpoint``."""
        price = self.endpoints.get(str(endpoint))
        if price is None:
            price = self.models.get(endpoint.model_id, self.default)
        return price

    def cost(
        self, endpoint: Endpoint, usage: Usage | None, *, seconds: float, attempts: int
    ) -> float:
        """What one execution cost.

        Args:
            endpoint: Where it ran.
            usage: What the provider reported (``None``: nothing).
            seconds: How long its attempts took, start to end, the backoffs excluded; used
                when the provider reports no inference seconds.
            attempts: Attempts sent.
        """
        if usage is not None and usage.provider_cost is not None and self.trust_provider:
            return usage.provider_cost
        p = self.price(endpoint)
        total = p.per_request * attempts
        if usage is not None:
            if usage.inference_seconds is not None:
                seconds = usage.inference_seconds
            total += p.per_1k_tokens_in * (usage.tokens_in or 0) / 1000
            total += p.per_1k_tokens_out * (usage.tokens_out or 0) / 1000
        return total + p.per_second * seconds

    def worst_case(
        self,
        endpoint: Endpoint,
        *,
        attempts: int,
        seconds: float | None,
        prompt_chars: int,
        max_tokens: int | None,
    ) -> float:
        """The most one execution may cost: every attempt sent, each running its full timeout.

        Args:
            endpoint: Where it runs.
            attempts: The most attempts it may send (the retry policy's ``attempts``).
            seconds: The most seconds all its attempts may take together (``None``: no bound).
            prompt_chars: The length of its prompt.
            max_tokens: The job's ``max_tokens`` (``None``: :attr:`default_max_tokens`).

        Returns:
            The bound; ``inf`` when the price charges seconds and nothing bounds them.
        """
        p = self.price(endpoint)
        tokens_out = self.default_max_tokens if max_tokens is None else max_tokens
        tokens_in = prompt_chars / max(self.prompt_chars_per_token, 1e-9)
        per_attempt = (
            p.per_request
            + p.per_1k_tokens_in * tokens_in / 1000
            + p.per_1k_tokens_out * tokens_out / 1000
        )
        total = per_attempt * attempts
        if p.per_second > 0:
            total += math.inf if seconds is None else p.per_second * seconds
        return total
