"""What a resumed run keeps of an earlier one: one byte per cell, read from the store in bulk.

A run reads the keys the store already holds a finished record for (``Store.keys``, endpoint by
endpoint), not the records themselves, and keeps, for each endpoint, one byte per question: 0
for a cell to run, else the kept record's outcome. A job of 500,000 cells needs half a megabyte
for it, and finding an endpoint's next cell to run is a byte search.
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

    A set of keys (``key in kept``), stored as one ``bytearray`` per endpoint.

    Args:
        question_ids: The job's question ids, in order.
    """

    def __init__(self, question_ids: Sequence[str]) -> None:
        self._questions = {qid: i for i, qid in enumerate(question_ids)}
        self._n = len(question_ids)
        self._cells: dict[tuple[str, str], bytearray] = {}
        self._count = 0

    @classmethod
    async def read(
        cls, question_ids: Sequence[str], found: AsyncIterator[EndpointKeys]
    ) -> KeptKeys:
        """Fill from a store's :meth:`~beacon_orchestrator.Store.keys`."""
        kept = cls(question_ids)
        async for endpoint in found:
            kept.add(endpoint)
        return kept

    def add(self, endpoint: EndpointKeys) -> None:
        """Keep an endpoint's keys (ids the job does not plan are left out)."""
        row = self._cells.get((endpoint.model_id, endpoint.region))
        if row is None:
            row = self._cells[endpoint.model_id, endpoint.region] = bytearray(self._n)
        index = self._questions.get
        codes = _CODES
        for qid, status, empty in zip(
            endpoint.question_ids, endpoint.statuses, endpoint.empty, strict=True
        ):
            q = index(qid)
            if q is None:
                continue
            if not row[q]:
                self._count += 1
            row[q] = _EMPTY if empty and status is ExecutionStatus.COMPLETED else codes[status]

    def next_to_run(self, model: str, region: str, q: int) -> int:
        """The first question index ``>= q`` of the endpoint that is not kept (a byte search)."""
        row = self._cells.get((model, region))
        if row is None:
            return q
        found = row.find(_RUN, q)
        return self._n if found < 0 else found

    def rows(self) -> Iterator[tuple[str, str, bytearray]]:
        """Each endpoint's model, region and row of cells (0: to run)."""
        for (model, region), row in self._cells.items():
            yield model, region, row

    @staticmethod
    def counts(row: bytearray) -> dict[ExecutionStatus | str, int]:
        """A row's kept cells by status (``"empty"``: completed with an empty answer, apart)."""
        found: dict[ExecutionStatus | str, int] = {s: row.count(c) for s, c in _CODES.items()}
        found["empty"] = row.count(_EMPTY)
        return found

    @staticmethod
    def present(row: bytearray) -> bytes:
        """A row with 1 for every kept cell and 0 for every cell to run (column sums add up)."""
        return bytes(row).translate(_PRESENT)

    def outcomes(self) -> Iterator[tuple[str, str, int, ExecutionStatus, bool]]:
        """Every kept cell: model, region, question index, status, whether the answer is empty."""
        completed = ExecutionStatus.COMPLETED
        for (model, region), row in self._cells.items():
            for q, code in enumerate(row):
                if code == _EMPTY:
                    yield model, region, q, completed, True
                elif code:
                    yield model, region, q, _STATUS_OF[code], False

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, tuple) or len(key) != len(ExecutionKey._fields):
            return False
        question, model, region = key
        row = self._cells.get((model, region))
        q = self._questions.get(question)
        return row is not None and q is not None and row[q] != 0

    def __iter__(self) -> Iterator[ExecutionKey]:
        ids = list(self._questions)
        for model, region, q, _, _ in self.outcomes():
            yield ExecutionKey(ids[q], model, region)

    def __len__(self) -> int:
        return self._count
