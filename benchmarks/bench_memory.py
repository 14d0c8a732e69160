"""Peak memory of a job of 1,000 and of 1,000,000 executions: it must not grow with the job.

Each size runs in a fresh interpreter (``python -m benchmarks.bench_memory --child N BACKEND``)
so one run's peak cannot hide another's; the child reads its own peak resident set size after
the job (reported in MB, 10^6 bytes). On Linux that is ``VmHWM`` from ``/proc/self/status``, not
``resource.getrusage(RUSAGE_SELF).ru_maxrss``: the latter carries over the parent's peak across
``fork``/``exec``, so a child started by a runner that already holds 50 MB reports at least
50 MB whatever it does. ``ru_maxrss`` is used where ``/proc`` is missing, and kept in the JSON.
Both jobs have the same 1,000 endpoints (50 models x 20 regions, so 1,000 workers) and differ
only in the number of questions (1 and 1,000); the executor answers at once and the store is
a :class:`CountingStore` that counts what it is given and keeps nothing, so what remains is the
scheduler's own memory.

Target (DESIGN §8): peak RSS at 1,000,000 executions under 100 MB more than at 1,000. Quick mode
uses 100,000 executions for the large job (and says so in the row's name and note).

Run: ``python -m benchmarks.bench_memory [--quick]``.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Collection, Sequence, Set

import anyio

from beacon_orchestrator import (
    ExecutionKey,
    ExecutionRecord,
    ExecutionStatus,
    Holder,
    JobInfo,
    JobResult,
    JobSpec,
    Lease,
    StoredProgress,
    StoreError,
    run_job,
)
from beacon_orchestrator.stores import EndpointKeys, grant_lease, is_current_lease, renewed_lease

from ._common import BACKENDS, REPO_ROOT, BenchmarkBroken, Row, check, row
from .bench_overhead import NoopExecutor, make_spec

SMALL = 1_000
LARGE = 1_000_000
QUICK_LARGE = 100_000
TARGET_MB = 100.0
CHILD_TIMEOUT_S = 600.0


class CountingStore:
    """A :class:`~beacon_orchestrator.Store` that counts the records it is given and keeps none.

    It remembers each job's spec and verdict (a few objects), so the job runs as on a real
    store; :meth:`records` is always empty.
    """

    def __init__(self) -> None:
        self.written = 0
        self.by_status: Counter[ExecutionStatus] = Counter()
        self._specs: dict[str, JobSpec] = {}
        self._results: dict[str, JobResult] = {}
        self._created: dict[str, float] = {}
        self._leases: dict[str, Lease | None] = {}

    async def __aenter__(self) -> CountingStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    def _spec(self, job_id: str) -> JobSpec:
        try:
            return self._specs[job_id]
        except KeyError:
            raise StoreError(f"unknown job id {job_id!r}") from None

    async def open_job(self, spec: JobSpec) -> None:
        """Remember the spec."""
        self._specs.setdefault(spec.id, spec)
        self._created.setdefault(spec.id, time.time())

    async def load_spec(self, job_id: str) -> JobSpec:
        """The spec the job was opened with."""
        return self._spec(job_id)

    async def completed_keys(self, job_id: str) -> Set[ExecutionKey]:
        """Nothing is kept, so nothing is completed from a resumer's point of view."""
        self._spec(job_id)
        return frozenset()

    async def write(self, job_id: str, record: ExecutionRecord) -> None:
        """Count the record."""
        self.written += 1
        self.by_status[record.status] += 1

    async def write_many(self, job_id: str, records: Sequence[ExecutionRecord]) -> None:
        """Count the records."""
        for record in records:
            await self.write(job_id, record)

    async def records(self, job_id: str) -> list[ExecutionRecord]:
        """Always empty: the store keeps nothing."""
        self._spec(job_id)
        return []

    async def iter_records(
        self,
        job_id: str,
        *,
        status: ExecutionStatus | Collection[ExecutionStatus] | None = None,
        region: str | None = None,
        model: str | None = None,
        question: str | None = None,
        batch: int = 1000,
    ) -> AsyncIterator[ExecutionRecord]:
        """Nothing: the store keeps nothing."""
        self._spec(job_id)
        nothing: tuple[ExecutionRecord, ...] = ()
        for record in nothing:
            yield record

    async def keys(
        self, job_id: str, *, status: Collection[ExecutionStatus] | None = None
    ) -> AsyncIterator[EndpointKeys]:
        """Nothing is kept, so a resumer finds no key."""
        self._spec(job_id)
        nothing: tuple[EndpointKeys, ...] = ()
        for found in nothing:
            yield found

    async def progress(self, job_id: str) -> StoredProgress:
        """The counts only; nothing per question, region or model is kept."""
        return StoredProgress(job_id, self._spec(job_id).size, dict(self.by_status), {}, {}, {})

    async def finish_job(self, job_id: str, result: JobResult) -> None:
        """Remember the verdict."""
        self._results[job_id] = result

    async def jobs(self) -> list[JobInfo]:
        """The jobs opened, with the number of records counted (across all jobs)."""
        return [
            JobInfo(
                job_id,
                spec.size,
                self.written,
                None if job_id not in self._results else self._results[job_id].status,
                None if job_id not in self._results else self._results[job_id].reason,
                self._created[job_id],
                None,
            )
            for job_id, spec in self._specs.items()
        ]

    async def acquire_lease(self, job_id: str, holder: Holder, ttl: float) -> Lease:
        """Grant the lease by the library's rules (one lease, no history of tokens)."""
        self._spec(job_id)
        lease = grant_lease(self._leases.get(job_id), job_id, holder, ttl, time.time())
        self._leases[job_id] = lease
        return lease

    async def renew_lease(self, lease: Lease) -> Lease:
        """Renew by the library's rules."""
        renewed = renewed_lease(self._leases.get(lease.job_id), lease, time.time())
        self._leases[lease.job_id] = renewed
        return renewed

    async def release_lease(self, lease: Lease) -> None:
        """Release by the library's rules."""
        if is_current_lease(self._leases.get(lease.job_id), lease):
            self._leases[lease.job_id] = None


async def _child_job(size: int) -> dict[str, object]:
    spec = make_spec(size, "memory")
    store = CountingStore()
    start = time.perf_counter()
    result = await run_job(spec, NoopExecutor(), store=store)
    elapsed = time.perf_counter() - start
    return {
        "size": size,
        "written": store.written,
        "completed": result.counts[ExecutionStatus.COMPLETED],
        "seconds": elapsed,
    }


def child(size: int, backend: str) -> dict[str, object]:
    """Run one job here and return what it did and this process's peak RSS in KiB."""
    out = anyio.run(_child_job, size, backend=backend)
    # Linux reports ru_maxrss in KiB (it includes the parent's peak: see the module docstring).
    out["ru_maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out["vm_hwm_kib"] = _vm_hwm_kib()
    out["backend"] = backend
    return out


def _vm_hwm_kib() -> int | None:
    """This process's own peak RSS in KiB (Linux), or ``None`` without ``/proc``."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def spawn(size: int, backend: str) -> dict[str, object]:
    """Run :func:`child` in a fresh interpreter and return its report."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_memory", "--child", str(size), backend],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0:
        raise BenchmarkBroken(
            f"the {size:,}-execution child on {backend} exited with {proc.returncode}:\n"
            f"{proc.stderr.strip()[-2000:]}"
        )
    report: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    check(
        report.get("written") == size and report.get("completed") == size,
        f"the {size:,}-execution child on {backend} wrote {report.get('written')} records and "
        f"completed {report.get('completed')}",
    )
    return report


def _mb(report: dict[str, object]) -> float:
    kib = report["vm_hwm_kib"]
    if kib is None:
        kib = report["ru_maxrss_kib"]
    assert isinstance(kib, int)
    return kib * 1024 / 1e6


def measure(small: int, large: int, backends: Sequence[str] = BACKENDS) -> list[Row]:
    """Peak RSS at ``small`` and ``large`` executions, one pair of fresh processes per backend."""
    rows: list[Row] = []
    label = f"{large // 1000}k" if large < 1_000_000 else f"{large // 1_000_000}m"
    for backend in backends:
        lo, hi = spawn(small, backend), spawn(large, backend)
        lo_mb, hi_mb = _mb(lo), _mb(hi)
        seconds = hi["seconds"]
        assert isinstance(seconds, float)
        rows.append(
            row(
                f"memory_peak_rss_{label}_{backend}",
                hi_mb,
                "MB",
                baseline=lo_mb,
                note=(
                    f"peak RSS of a fresh process after a job of {large:,} executions "
                    f"({large // 1000} questions x 1000 endpoints, {seconds:.1f} s) on {backend}, "
                    f"counting sink store; baseline: the same with {small:,} executions"
                ),
            )
        )
        rows.append(
            row(
                f"memory_growth_{label}_{backend}",
                hi_mb - lo_mb,
                "MB",
                target=TARGET_MB,
                target_of="value",
                target_op="<",
                note=(
                    f"peak RSS at {large:,} minus at {small:,} executions, on {backend}"
                    + ("" if large >= LARGE else f" (quick mode: {large:,}, not 1,000,000)")
                ),
            )
        )
    return rows


def run(quick: bool) -> list[Row]:
    """Measure peak memory at a small and a large job size."""
    return measure(SMALL, QUICK_LARGE if quick else LARGE)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(child(int(sys.argv[2]), sys.argv[3])))
    else:
        for r in run(quick="--quick" in sys.argv):
            print(json.dumps(r))
