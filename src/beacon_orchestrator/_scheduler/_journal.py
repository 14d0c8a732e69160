"""The scheduler's log lines, on the logger ``beacon_orchestrator._scheduler._journal``.

Lines name ids, counts, error codes and reasons only, never a prompt, an answer, a request or
a header: nothing a secret could hide in. Error messages are not logged either (executors scrub
theirs, but a record is the place for them); a preflight failure's message is, because it is
what the user must read, and it is built from regions and scrubbed problems.

Levels: ``INFO`` for a job's start and end, preflight results, retries and cancellation;
``WARNING`` for a failed preflight; ``DEBUG`` for every finished execution. Whether ``DEBUG`` is
on is asked once per job, so a job nobody logs at ``DEBUG`` pays nothing per execution.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from .._executor import SupportsPreflight
from .._status import JobResult
from .._types import ExecutionKey, ExecutionRecord

__all__ = ["JobLog"]

_log = logging.getLogger(__name__)


class JobLog:
    """Writes one job's log lines.

    Args:
        job_id: The job every line names.
    """

    __slots__ = ("debug", "job_id")

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.debug = _log.isEnabledFor(logging.DEBUG)

    def started(self, planned: int, to_run: int, kept: int, strategy: str) -> None:
        """The job started."""
        _log.info(
            "job %s started: %d planned, %d to run, %d kept from an earlier run, strategy %s",
            self.job_id, planned, to_run, kept, strategy,
        )  # fmt: skip

    def warn_if_samples_alike(self, samples: int, params: Mapping[str, Any]) -> None:
        """Warn of several samples per cell at temperature 0: only the provider's noise differs."""
        if samples <= 1 or params.get("temperature") != 0:
            return
        _log.warning(
            "job %s: %d samples of each cell at temperature 0: greedy decoding answers alike, so "
            "the samples show only the provider's own nondeterminism; set a temperature above 0 "
            "to tell a regional difference from sampling noise",
            self.job_id, samples,
        )  # fmt: skip

    async def preflight(self, executor: SupportsPreflight, regions: Sequence[str]) -> None:
        """Run the executor's preflight check and log its result (then re-raise a failure)."""
        try:
            await executor.preflight(regions)
        except Exception as exc:
            _log.warning("job %s: preflight failed: %s", self.job_id, exc)
            raise
        _log.info("job %s: preflight passed for %s", self.job_id, ", ".join(regions))

    def retrying(self, key: ExecutionKey, code: str | None, attempt: int, wait: float) -> None:
        """An attempt failed transiently and another starts after ``wait`` seconds."""
        _log.info(
            "job %s: %s attempt %d failed (%s); retrying in %.3g s",
            self.job_id, key, attempt, code, wait,
        )  # fmt: skip

    def cancelled(self, source: str, reason: str) -> None:
        """Cancellation was requested."""
        _log.info("job %s: cancelled by %s: %s", self.job_id, source, reason)

    def execution(self, record: ExecutionRecord) -> None:
        """An execution's record is stored (``DEBUG``; callers check :attr:`debug` first)."""
        code = f" ({record.error_code})" if record.error_code else ""
        _log.debug(
            "job %s: %s %s after %d attempt(s)%s",
            self.job_id, record.key, record.status.value, record.attempts, code,
        )  # fmt: skip

    def finished(self, result: JobResult) -> None:
        """The verdict is stored."""
        counts = ", ".join(f"{s.value} {n}" for s, n in result.counts.items() if n)
        _log.info(
            "job %s finished: %s: %s (%s)",
            self.job_id, result.status.value, result.reason, counts or "no records",
        )  # fmt: skip
