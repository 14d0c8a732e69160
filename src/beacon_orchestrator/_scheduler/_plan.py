"""The plan: a job's endpoints, regions and groups, and where each endpoint resumes.

A job's executions are never materialised. Each endpoint (model x region) keeps a cursor over
its *slots*: slot ``q * samples + s`` is sample ``s`` of question ``q``, so an endpoint runs its
questions in order and each question's samples one after another. A key is identified by
``(endpoint, slot)``; with one sample per cell (the default) a slot is a question index. The
plan is built from the spec, the strategy and the keys already done in the store, and is plain
synchronous data that the picker and the ledger share.
"""

from __future__ import annotations

from collections.abc import Iterator, Set

from .._spec import JobSpec
from .._types import ExecutionKey
from ._options import Strategy
from ._resume import KeptKeys

__all__ = ["EndpointState", "EndpointTally", "GroupState", "Plan", "RegionState"]


class EndpointTally:
    """Terminal records of one endpoint, as the status policy counts them.

    ``busy`` is the seconds this run's finished executions took, start to record (the ETA's
    pace); records kept from an earlier run are not in it.
    """

    __slots__ = ("busy", "completed", "empty", "failed", "unfinished")

    def __init__(self) -> None:
        self.completed = 0
        self.empty = 0
        self.failed = 0
        self.unfinished = 0
        self.busy = 0.0

    @property
    def done(self) -> int:
        """Executions of this endpoint with a terminal record."""
        return self.completed + self.empty + self.failed + self.unfinished


class RegionState:
    """What is in flight in one region, and the endpoints parked until a slot frees."""

    __slots__ = ("in_flight", "name", "parked")

    def __init__(self, name: str) -> None:
        self.name = name
        self.in_flight = 0
        self.parked: list[EndpointState] = []


class GroupState:
    """Endpoints that advance through the slots together (``region`` or ``lockstep``).

    Members may only start the group's ``current`` slot (a sample of a question);
    ``outstanding`` counts the members' executions of it that are not terminal yet.
    """

    __slots__ = ("current", "members", "outstanding")

    def __init__(self) -> None:
        self.members: list[EndpointState] = []
        self.current = 0
        self.outstanding = 0


class EndpointState:
    """Mutable scheduling state of one endpoint (a slots class: it is on the hot path).

    Attributes:
        model: The model id.
        region: The region's state, shared by the region's endpoints.
        label: ``model@region``, as progress reports show it.
        cursor: Index of the next slot (sample of a question) to start here.
        in_flight: Executions started here and not yet terminal.
        queued: Whether the endpoint is in the picker's ready queue.
        parked: Whether it waits for a slot of its region.
        group: Its group under ``region``/``lockstep``, else ``None``.
        tally: Its terminal records.
    """

    __slots__ = (
        "cursor",
        "group",
        "in_flight",
        "label",
        "model",
        "parked",
        "queued",
        "region",
        "tally",
    )

    def __init__(self, model: str, region: RegionState) -> None:
        self.model = model
        self.region = region
        self.label = f"{model}@{region.name}"
        self.cursor = 0
        self.in_flight = 0
        self.queued = False
        self.parked = False
        self.group: GroupState | None = None
        self.tally = EndpointTally()


class Plan:
    """A job's endpoints, regions, groups and resume cursors.

    Args:
        spec: The job.
        strategy: Decides the groups: none (``endpoint``), one per region, or one for all.
        done: Keys an earlier run already finished and this run keeps; cursors skip them.

    Attributes:
        samples: Executions per cell.
        n_slots: Slots per endpoint: ``n_questions * samples``.
    """

    def __init__(self, spec: JobSpec, strategy: Strategy, done: Set[ExecutionKey]) -> None:
        self.question_ids: tuple[str, ...] = tuple(q.id for q in spec.questions)
        self.prompts: tuple[str, ...] = tuple(q.prompt for q in spec.questions)
        self.n_questions = len(self.question_ids)
        self.samples = spec.samples
        self.n_slots = self.n_questions * self.samples
        self.done = done
        self.regions: dict[str, RegionState] = {}
        self.endpoints: list[EndpointState] = []
        for model in spec.models:
            for name in model.regions:
                region = self.regions.get(name)
                if region is None:
                    region = self.regions[name] = RegionState(name)
                self.endpoints.append(EndpointState(model.id, region))
        self.size = self.n_slots * len(self.endpoints)
        self._question_index = {qid: i for i, qid in enumerate(self.question_ids)}
        self._by_endpoint = {(e.model, e.region.name): e for e in self.endpoints}
        for e in self.endpoints:
            e.cursor = self.next_slot(e, 0)
        self.groups = self._make_groups(strategy)
        for g in self.groups:
            self.reset_group(g)

    def _make_groups(self, strategy: Strategy) -> list[GroupState]:
        groups: dict[str, GroupState] = {}
        for e in self.endpoints:
            if strategy == "endpoint":
                continue
            name = e.region.name if strategy == "region" else ""
            e.group = groups.setdefault(name, GroupState())
            e.group.members.append(e)
        return list(groups.values())

    def key(self, e: EndpointState, slot: int) -> ExecutionKey:
        """The execution key of ``slot`` on ``e``."""
        samples = self.samples
        if samples == 1:
            return ExecutionKey(self.question_ids[slot], e.model, e.region.name)
        q, s = divmod(slot, samples)
        return ExecutionKey(self.question_ids[q], e.model, e.region.name, s)

    def next_slot(self, e: EndpointState, slot: int) -> int:
        """The first slot ``>= slot`` whose key on ``e`` still needs to run."""
        done = self.done
        if not done:
            return slot
        if isinstance(done, KeptKeys):  # a resumed run: a byte search
            return done.next_to_run(e.model, e.region.name, slot)
        n_slots = self.n_slots
        while slot < n_slots and self.key(e, slot) in done:
            slot += 1
        return slot

    def reset_group(self, g: GroupState) -> None:
        """Move a group to the earliest slot any member still has to start."""
        current = min(m.cursor for m in g.members)
        g.current = current
        if current >= self.n_slots:
            g.outstanding = 0
        else:
            g.outstanding = sum(1 for m in g.members if m.cursor == current)

    def endpoint(self, model: str, region: str) -> EndpointState | None:
        """The state of the endpoint ``model@region``, or ``None`` if the job does not plan it."""
        return self._by_endpoint.get((model, region))

    def locate(self, key: ExecutionKey) -> tuple[EndpointState, int] | None:
        """The endpoint and slot of ``key``, or ``None`` if the job does not plan it."""
        e = self._by_endpoint.get((key.model_id, key.region))
        q = self._question_index.get(key.question_id)
        if e is None or q is None or not 0 <= key.sample < self.samples:
            return None
        return e, q * self.samples + key.sample

    def question_of(self, slot: int) -> int:
        """The index of the question a slot is a sample of."""
        return slot // self.samples

    def unstarted(self) -> Iterator[tuple[ExecutionKey, EndpointState, int]]:
        """Every key not yet started, endpoint by endpoint; moves each cursor to the end."""
        n_slots = self.n_slots
        for e in self.endpoints:
            slot = e.cursor
            while slot < n_slots:
                yield self.key(e, slot), e, slot
                slot = self.next_slot(e, slot + 1)
            e.cursor = n_slots
