"""HTTP executors for Beacon's services and OpenAI-compatible servers (extra ``http``).

Install with ``pip install beacon-orchestrator[http]``. Importing ``beacon_orchestrator``
does not import httpx; importing this package does.

- :class:`HybridRouterExecutor`: Beacon's hybrid router (``POST /inference``).
- :class:`ModalExecutor`: the per-region Modal GPU web endpoints, following their 303s.
- :class:`OpenAICompatExecutor`: any ``/v1/chat/completions`` server.

Every adapter classifies failures the same way: connect errors, timeouts, dropped
connections, HTTP 408, 429 (with ``Retry-After`` as ``retry_after``) and 5xx are
:class:`~beacon_orchestrator.TransientError`; other 4xx, bodies that are not JSON, JSON of
an unexpected shape and answers larger than ``max_response_bytes`` are
:class:`~beacon_orchestrator.PermanentError`. Error codes: ``CONNECT_ERROR``,
``CONNECT_TIMEOUT``, ``READ_TIMEOUT`` (also: an answer still arriving at its deadline),
``WRITE_TIMEOUT``, ``POOL_TIMEOUT``, ``CONNECTION_DROPPED``, ``HTTP_<status>``,
``MALFORMED_RESPONSE``, ``UNEXPECTED_RESPONSE``, ``RESPONSE_TOO_LARGE``, ``INVALID_TOKEN``,
``NO_ENDPOINT``, plus each service's own codes (Modal: ``DEADLINE_EXCEEDED``,
``TOO_MANY_POLLS``).

Region names (endpoint maps, ``region_map``, per-region model maps) are normalised through the
executor's ``regions`` table when it is built; an unknown key or two keys for one region is an
:class:`AdapterConfigError` naming them. The Modal and router executors check the region each
answer reports against the one asked (``verify_region=True``): another region is the permanent
``WRONG_REGION``, none at all the permanent ``REGION_NOT_REPORTED``.

Every wait is bounded: an answer body by ``max_response_bytes`` (8 MiB) as it arrives and by
the attempt's deadline as a whole, a Modal 303 chain by ``max_polls`` (10) paced by
``poll_interval`` (1 s). The how-to "Run against real endpoints" lists these defaults.

Secrets are read from arguments or environment variables (``BEACON_ROUTER_API_KEY``,
``BEACON_MODAL_TOKEN``, ``OPENAI_API_KEY``) and checked when the executor is built: white
space at either end (a file's trailing newline), control characters and non-ASCII are refused
with an :class:`AdapterConfigError` naming the argument or variable, never the token. They are
held in :class:`Secret`, and never appear in a repr, a log line, an error message, a
response's metadata or receipt, in any escaped form.
"""

from ._base import HttpExecutorBase
from ._config import AdapterConfigError
from ._secrets import Secret
from ._transport import parse_retry_after
from .hybrid_router import (
    ROUTER_API_KEY_ENV,
    HybridRouterExecutor,
    RouterHealth,
    RouterProvider,
)
from .modal import MODAL_TOKEN_ENV, ModalEndpoint, ModalExecutor, ModalHealth
from .openai_compat import OPENAI_API_KEY_ENV, OpenAICompatExecutor

__all__ = [
    "MODAL_TOKEN_ENV",
    "OPENAI_API_KEY_ENV",
    "ROUTER_API_KEY_ENV",
    "AdapterConfigError",
    "HttpExecutorBase",
    "HybridRouterExecutor",
    "ModalEndpoint",
    "ModalExecutor",
    "ModalHealth",
    "OpenAICompatExecutor",
    "RouterHealth",
    "RouterProvider",
    "Secret",
    "parse_retry_after",
]
