"""Distributed connected components (large-star / small-star) on hand-made graphs."""

from __future__ import annotations

import itertools
import random

import apache_beam as beam
import pytest
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.util import assert_that, equal_to

from pipelines.connected_components import ConnectedComponents, large_star, node_state, small_star


def labels_of(components: list[list[int]]) -> list[tuple[int, int]]:
    return [(node, min(component)) for component in components for node in component]


def run_components(edges: list[tuple], expected: list[tuple], max_rounds: int = 20) -> None:
    with beam.Pipeline(runner=FnApiRunner()) as pipeline:
        labels = pipeline | beam.Create(edges) | ConnectedComponents(max_rounds)
        assert_that(labels, equal_to(expected))


def test_chains_stars_cycles_pairs_and_a_long_shuffled_path_in_one_graph():
    chain = [(i, i + 1) for i in range(10, 20)]
    star = [(100, leaf) for leaf in range(101, 130)]
    cycle = [(200 + i, 200 + (i + 1) % 12) for i in range(12)]
    pair = [(301, 300)]
    duplicates_and_loops = [(11, 10), (300, 301), (5, 5)]
    path_nodes = list(range(1000, 4000))
    random.Random(4).shuffle(path_nodes)
    long_path = list(itertools.pairwise(path_nodes))  # needs ~10 rounds
    components = [list(range(10, 21)), list(range(100, 130)), list(range(200, 212)), [300, 301], path_nodes]
    run_components(chain + star + cycle + pair + duplicates_and_loops + long_path, labels_of(components), 14)


def test_string_ids_and_a_star_whose_centre_is_not_the_smallest():
    edges = [("m", leaf) for leaf in "nopqz"] + [("z", "a")]
    run_components(edges, labels_of([list("amnopqz")]), 4)


def test_not_converging_within_max_rounds_fails_loudly():
    edges = [(i, i + 1) for i in range(3000)]  # sorted path: ~12 rounds needed
    with pytest.raises(Exception, match="did not converge in 2 rounds"):
        run_components(edges, labels_of([list(range(3001))]), max_rounds=2)


def test_round_steps_follow_the_paper():
    # large-star at node 3 with neighbours {1, 5, 7}: larger neighbours go to the neighbourhood minimum.
    assert sorted(large_star(3, [1, 5, 7])) == [(5, 1), (7, 1)]
    # small-star at node 9 with smaller neighbours {4, 2}: all of them and itself go to 2.
    assert sorted(small_star(9, [4, 2])) == [(4, 2), (9, 2)]
    assert node_state(9, [(True, 2)]) == (9, 2, True)
    assert node_state(9, [(True, 2), (True, 4)])[2] is False
    assert node_state(4, [(True, 2), (False, None)])[2] is False
