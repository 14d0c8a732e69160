"""The served-region check: an answer from another region than the one asked is a failure.

Any executor may say which region served an answer (:attr:`Response.served_region`); the
attempt loop hands every answer to :func:`verify_served_region` before it becomes a record, so
user executors get the same check as the built-in adapters. The check is pure and synchronous.
"""

from __future__ import annotations

from ._errors import WrongRegionError
from ._executor import Response
from ._spec import RegionTable

__all__ = ["verify_served_region"]

# Built-in aliases are accepted for a served region: Beacon's APAC app says "asia-southeast".
_BUILT_IN = RegionTable.default()


def verify_served_region(requested: str, response: Response) -> None:
    """Raise unless ``response`` was served by ``requested`` (or does not say where).

    Raises:
        WrongRegionError: Naming the requested and the serving region (``WRONG_REGION``).
    """
    served: object = response.served_region
    if served is None or served == requested:
        return
    if isinstance(served, str) and _BUILT_IN.lookup(served) == requested:
        return
    raise WrongRegionError(
        requested,
        served if isinstance(served, str) else repr(served),
        system_prompt=response.system_prompt,
        request_sha256=response.request_sha256,
    )
