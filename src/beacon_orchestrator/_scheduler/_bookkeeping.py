"""The runner's bookkeeping around each execution: its start, its end, and idle workers.

Plain synchronous code (the idle wait aside) that the worker loop calls once per execution:
which slot a start takes and the events it emits, what a stored record updates (counts, events,
lockstep gates, early stop), and waking an idle worker when a slot frees.

:class:`Bookkeeping` is mixed into :class:`~beacon_orchestrator.RegionQueue`, which owns the
state declared on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio
from anyio.lowlevel import checkpoint_if_cancelled

from .._events import EventHandler, ExecutionFinished, QuestionFinished, QuestionStarted
from .._spec import JobSpec
from .._status import StatusPolicy
from .._types import ExecutionRecord
from ._plan import EndpointState, Plan

if TYPE_CHECKING:
    from .._events import CancelSource, Event
    from ._journal import JobLog
    from ._ledger import Ledger
    from ._options import RunOptions
    from ._picker import Picker

__all__ = ["Bookkeeping"]


class Bookkeeping:
    """A start and an end of an execution, and idle workers, for the runner that owns this state."""

    spec: JobSpec
    options: RunOptions
    policy: StatusPolicy
    _stopping: bool
    _emit: EventHandler | None
    _now: Callable[[], float]
    _ledger: Ledger
    _plan: Plan
    _picker: Picker
    _log: JobLog
    _idle: int
    _wake: anyio.Event

    if TYPE_CHECKING:  # provided by Stopping; declared for the type checker only, so that no
        # stub here can ever stand in front of them, whatever the order of the mixins

        def _wake_idle(self) -> None: ...

        def _emit_safely(self, event: Event) -> None: ...

        def _request_cancel(self, source: CancelSource, reason: str) -> None: ...

    def _start(self, e: EndpointState) -> int:
        """Take ``e``'s next slot; returns its index."""
        started = self._ledger.question_started
        slot = e.cursor
        q = slot // self._plan.samples
        if not started[q]:
            started[q] = True
            if self._emit is not None:  # before the picker takes it: a raise leaves it unstarted
                qid = self._plan.question_ids[q]
                self._emit(QuestionStarted(self.spec.id, qid, q, self._now()))
        self._picker.start(e)
        if self._picker.unstarted == 0 and self._idle:
            self._wake_idle()  # nothing left to pick: let the idle workers end
        return slot

    def _wake_if_ready(self) -> None:
        """Wake an idle worker if something may start (a slot freed, a limit grew)."""
        if self._idle and self._picker.ready:
            self._wake_idle()

    async def _idle_wait(self) -> None:
        """Wait until a slot frees or a group advances (or the job stops)."""
        self._idle += 1
        try:
            await self._wake.wait()
        finally:
            self._idle -= 1
        # A set event returns its value even if the caller's scope was cancelled meanwhile
        # (trio), so check before going on to pick.
        await checkpoint_if_cancelled()

    def _release(self, e: EndpointState) -> None:
        """Free an execution's slots; wake an idle worker if that made work startable."""
        self._picker.release(e, requeue=not self._stopping)
        self._wake_if_ready()

    def _finished(self, record: ExecutionRecord, e: EndpointState, slot: int) -> None:
        """Bookkeeping once a record is stored: counts, events, gates, early stop."""
        ledger = self._ledger
        last_of_question = ledger.account(record, e, slot)
        if self._log.debug:  # asked once per job: nothing per execution unless on
            self._log.execution(record)
        if self._emit is not None:
            self._emit_safely(ExecutionFinished(self.spec.id, record, self._now()))
            if last_of_question:
                q = self._plan.question_of(slot)
                qid = self._plan.question_ids[q]
                self._emit_safely(QuestionFinished(self.spec.id, qid, q, self._now()))
        if e.group is not None:
            self._picker.finished(e, slot)
            self._wake_if_ready()
        if self.options.early_stop and not self._stopping:
            verdict = self.policy.decided(ledger.tally())
            if verdict is not None:
                self._request_cancel(
                    "early_stop", f"the verdict can no longer change ({verdict.status.value})"
                )
