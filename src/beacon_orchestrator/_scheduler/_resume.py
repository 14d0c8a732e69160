"""What a resumed run keeps of an earlier one: one byte per slot, read from the store in bulk.

A run reads the keys the store already holds a finished record for (``Store.keys``, endpoint by
endpoint), not the records themselves, and keeps, for each endpoint, one byte per slot (slot
``q * samples + s`` is sample ``s`` of question ``q``, as in the plan): 0 for a slot to run,
else the kept record's outcome. A job of 500,000 executions needs half a megabyte for it, and
finding an endpoint's next slot to run is a byte search.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence, Set

from .._types import ExecutionKey, ExecutionStatus
from ..stores import EndpointKeys

__all__ = ["KeptKeys"]

_EMPTY = len(ExecutionStatus) + 1  # a COMPLETED record with an empty answer
_CODES = {s: i for i, s in enumerate(ExecutionStatus, start=1)}
_STATUS_OF = {i: s for s, i in _CODES.items()}
_RUN = b"\x00"
_PRESENT = bytes([0] + [1] * 255)  # bytes.translate: any outcome -> 1, to run -> 0


class KeptKeys(Set[ExecutionKey]):
    """The keys an earlier run finished that this run keeps, and each one's outcome.

    A set of keys (``key in kept``), stored as one ``bytearray`` per endpoint, one byte per slot.

    Args:
        question_ids: The job's question ids, in order.
        samples: The job's samples per cell.
    """

    def __init__(self, question_ids: Sequence[str], samples: int = 1) -> None:
        self._questions = {qid: i for i, qid in enumerate(question_ids)}
        self.samples = samples
        self._n = len(question_ids) * samples
        self._cells: dict[tuple[str, str], bytearray] = {}
        self._count = 0
        self.spent = 0.0  # what the kept records cost (a job's budget counts it)

    @classmethod
    async def read(
        cls, question_ids: Sequence[str], samples: int, found: AsyncIterator[EndpointKeys]
    ) -> KeptKeys:
        """Fill from a store's :meth:`~beacon_orchestrator.Store.keys`."""
        kept = cls(question_ids, samples)
        async for endpoint in found:
            kept.add(endpoint)
        return kept

    def add(self, endpoint: EndpointKeys) -> None:
        """Keep an endpoint's keys (ids and samples the job does not plan are left out)."""
        row = self._cells.get((endpoint.model_id, endpoint.region))
        if row is None:
            row = self._cells[endpoint.model_id, endpoint.region] = bytearray(self._n)
        self.spent += endpoint.cost or 0.0
        index = self._questions.get
        codes = _CODES
        samples = self.samples
        for qid, sample, status, empty in zip(
            endpoint.question_ids, endpoint.samples, endpoint.statuses, endpoint.empty, strict=True
        ):
            q = index(qid)
            if q is None or not 0 <= sample < samples:
                continue
            slot = q * samples + sample
            if not row[slot]:
                self._count += 1
            row[slot] = _EMPTY if empty and status is ExecutionStatus.COMPLETED else codes[status]

    def next_to_run(self, model: str, region: str, slot: int) -> int:
        """The first slot ``>= slot`` of the endpoint that is not kept (a byte search)."""
        row = self._cells.get((model, region))
        if row is None:
            return slot
        found = row.find(_RUN, slot)
        return self._n if found < 0 else found

    def rows(self) -> Iterator[tuple[str, str, bytearray]]:
        """Each endpoint's model, region and row of slots (0: to run)."""
        for (model, region), row in self._cells.items():
            yield model, region, row

    @staticmethod
    def counts(row: bytearray) -> dict[ExecutionStatus | str, int]:
        """A row's kept slots by status (``"empty"``: completed with an empty answer, apart)."""
        found: dict[ExecutionStatus | str, int] = {s: row.count(c) for s, c in _CODES.items()}
        found["empty"] = row.count(_EMPTY)
        return found

    @staticmethod
    def present(row: bytearray) -> bytes:
        """A row with 1 for every kept slot and 0 for every slot to run (column sums add up)."""
        return bytes(row).translate(_PRESENT)

    def outcomes(self) -> Iterator[tuple[str, str, int, ExecutionStatus, bool]]:
        """Every kept slot: model, region, slot, status, whether the answer is empty."""
        completed = ExecutionStatus.COMPLETED
        for (model, region), row in self._cells.items():
            for slot, code in enumerate(row):
                if code == _EMPTY:
                    yield model, region, slot, completed, True
                elif code:
                    yield model, region, slot, _STATUS_OF[code], False

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, tuple) or len(key) != len(ExecutionKey._fields):
            return False
        question, model, region, sample = key
        row = self._cells.get((model, region))
        q = self._questions.get(question)
        if row is None or q is None or type(sample) is not int or not 0 <= sample < self.samples:
            return False
        return row[q * self.samples + sample] != 0

    def __iter__(self) -> Iterator[ExecutionKey]:
        ids = list(self._questions)
        for model, region, slot, _, _ in self.outcomes():
            q, sample = divmod(slot, self.samples)
            yield ExecutionKey(ids[q], model, region, sample)

    def __len__(self) -> int:
        return self._count
