"""The benchmark suite of DESIGN §8: run it with ``python -m benchmarks [--quick] [--only NAME]``.

Each ``bench_*`` module exposes ``run(quick: bool) -> list[dict[str, object]]``: one dict (a
*row*) per figure, with at least ``name``, ``value`` and ``unit``, and where it has them a
``target``, the ``baseline`` measured in the same run and the ``ratio`` to it. The runner in
``__main__`` gathers the rows, judges each against its target, prints a table and writes a JSON
file. Figures below their target are reported, never fatal (timings are noisy on shared
machines); a benchmark that raises or returns malformed rows makes the run fail.
"""
