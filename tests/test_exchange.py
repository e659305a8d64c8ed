"""Key files and how their rows reach the units that decide on them: sorted runs, route slices, pass plans
that respect the memory budget."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from filters.line_dedup import KEY_SCHEMA
from filters.prepared import shard_paths
from pipelines.arrow_files import RoutedWriter, read_route_range
from pipelines.exchange import SLICES, SORT_OVERHEAD, plan_ranges
from tests.conftest import WEB


def test_a_key_file_of_several_runs_gives_every_route_range_exactly(tmp_path):
    rng = np.random.default_rng(0)
    writer = RoutedWriter(str(tmp_path / "keys.arrow"), KEY_SCHEMA)
    runs = []
    for size in (1000, 1, 0, 2500):
        run = pa.table(
            {
                "route": rng.integers(0, 2**64, size, dtype=np.uint64),
                "row": rng.integers(0, 100, size, dtype=np.uint32),
                "line": rng.integers(0, 9, size, dtype=np.uint32),
            },
            schema=KEY_SCHEMA,
        )
        writer.write_run(run)
        runs.append(run)
    info = writer.close()
    everything = pa.concat_tables(runs)
    routes = everything.column("route").to_numpy()
    assert info["rows"] == len(routes) == sum(info["histogram"])
    for low, high in [(0, 2**63), (2**63, None), (12345, 2**60), (0, None)]:
        got = read_route_range(info["path"], low, high).column("route").to_numpy()
        expected = routes[(routes >= low) & ((routes < high) if high is not None else True)]
        assert sorted(got.tolist()) == sorted(expected.tolist())


def test_pass_plans_cover_the_route_space_within_the_budget():
    histogram = np.random.default_rng(1).integers(0, 1000, SLICES)
    histogram[17] = 200_000  # one heavy slice (a boilerplate line repeated on every page)
    infos = [{"rows": int(histogram.sum()), "data_bytes": int(histogram.sum()) * 16, "histogram": histogram.tolist()}]
    total = histogram.sum() * 16
    for budget, workers in [(10**12, 1), (4 << 20, 1), (4 << 20, 2), (256 << 10, 2)]:
        units = sorted(plan_ranges(infos, budget, workers), key=lambda u: u["low"])
        assert units[0]["low"] == 0 and units[-1]["high"] == SLICES
        assert all(a["high"] == b["low"] for a, b in itertools.pairwise(units))  # contiguous, no gaps or overlaps
        assert sum(u["bytes"] for u in units) == total
        limit = budget / workers / SORT_OVERHEAD
        assert all(u["bytes"] <= limit or u["high"] - u["low"] == 1 for u in units)
    assert len(plan_ranges(infos, 10**12, 1)) == 1
    assert len(plan_ranges(infos, 10**12, 4)) >= 4  # enough to share among the workers


@pytest.mark.slow
def test_keys_written_in_small_runs_give_the_same_shards(prepared_sample, tmp_path, cli, monkeypatch):
    monkeypatch.setattr("pipelines.phases.KEY_RUN_BYTES", 2048)  # a run every few documents
    out = tmp_path / "runs"
    assert cli("prepare", WEB, "--output", out, "--keep-rejected", "--target-shard-mb", "1") == 0
    for kind in ("documents", "rejected"):
        ours, theirs = shard_paths(str(out), kind), shard_paths(str(prepared_sample), kind)
        assert [p.rsplit("/", 1)[1] for p in ours] == [p.rsplit("/", 1)[1] for p in theirs]
        for a, b in zip(ours, theirs, strict=True):
            assert Path(a).read_bytes() == Path(b).read_bytes()
