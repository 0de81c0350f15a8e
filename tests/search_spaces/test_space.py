import itertools
import json

import numpy as np
import pytest

from nasengine.search_spaces import Choice, Condition, Space, read_archs, sample_unique, write_archs
from nasengine.search_spaces.builtin import elastic_mobilenet_space


@pytest.fixture
def small() -> Space:
    return Space([
        Choice("depth", [1, 2, 3], tag="depth"),
        Choice("b1.kernel", [3, 5], tag="kernel", active_if=Condition("depth", ">", 1)),
        Choice("b2.kernel", [3, 5, 7], tag="kernel", active_if=Condition("depth", ">", 2)),
        Choice("resolution", [16, 24], tag="resolution"),
    ], name="small")


def brute_force_size(space: Space) -> int:
    archs = {space.key(space._from_indices(idx)) for idx in itertools.product(*(range(len(g)) for g in space.genes))}
    return len(archs)


def test_size_counts_conditional_genes_once_per_context(small: Space) -> None:
    # depth 1: 1 * 2 res; depth 2: 2 kernels * 2 res; depth 3: 2*3 kernels * 2 res
    assert small.size == 2 + 4 + 12 == brute_force_size(small)
    listed = small.enumerate()
    assert len(listed) == small.size == len({small.key(a) for a in listed})  # each canonical arch once
    assert small.enumerate(limit=small.size) is None  # more encodings than canonical archs: over the guard
    assert small.enumerate(limit=10_000) == listed


def test_size_of_mobilenet_space_matches_closed_form() -> None:
    space = elastic_mobilenet_space(2, depths=(1, 2), kernels=(3, 5), expands=(3, 6), resolutions=(8, 12))
    per_stage = 4 + 4 * 4  # depth 1: one block (2x2 choices); depth 2: two blocks
    assert space.size == 2 * per_stage ** 2 == brute_force_size(space)


def test_validate_canonicalises_inactive_genes(small: Space) -> None:
    arch = small.validate({"depth": 1, "b1.kernel": 5, "b2.kernel": 7, "resolution": 16})
    assert arch == {"depth": 1, "b1.kernel": None, "b2.kernel": None, "resolution": 16}
    assert small.key({"depth": 1, "resolution": 16}) == small.key(arch)


@pytest.mark.parametrize("arch, message", [
    ({"depth": 2, "b1.kernel": 3, "resolution": 16, "bogus": 1}, "unknown gene 'bogus'"),
    ({"depth": 2, "resolution": 16}, "gene 'b1.kernel' is missing"),
    ({"depth": 4, "resolution": 16}, "gene 'depth': 4 is not one of its choices"),
    ({"depth": 2, "b1.kernel": 4, "resolution": 16}, "gene 'b1.kernel'"),
    ([1, 2], "dict of gene"),
])
def test_validate_names_the_offending_gene(small: Space, arch: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        small.validate(arch)  # type: ignore[arg-type]


def test_sampling_is_seeded_and_canonical(small: Space) -> None:
    assert small.sample(seed=3) == small.sample(seed=3)
    draws = [small.sample(seed=s) for s in range(200)]
    assert all(small.validate(a) == a for a in draws)
    assert len({small.key(a) for a in draws}) == small.size  # uniform draws reach every arch


def test_min_and_max(small: Space) -> None:
    assert small.min() == {"depth": 1, "b1.kernel": None, "b2.kernel": None, "resolution": 16}
    assert small.max() == {"depth": 3, "b1.kernel": 5, "b2.kernel": 7, "resolution": 24}


@pytest.mark.parametrize("kind", ["int", "onehot"])
def test_encode_decode_roundtrip(small: Space, kind: str) -> None:
    for seed in range(30):
        arch = small.sample(seed=seed)
        vec = small.encode(arch, kind)
        assert vec.shape == (small.encoding_width(kind),)
        assert small.decode(vec, kind) == arch


def test_onehot_leaves_inactive_blocks_empty(small: Space) -> None:
    vec = small.encode(small.min(), "onehot")
    assert vec.sum() == 2  # depth and resolution only
    np.testing.assert_array_equal(vec[3:8], 0)


def test_decode_rejects_out_of_range(small: Space) -> None:
    with pytest.raises(ValueError, match="gene 'b2.kernel': index 3"):
        small.decode([2, 0, 3, 0])
    with pytest.raises(ValueError, match="4 entries"):
        small.decode([0, 0])


def test_restrict_by_tag_and_name(small: Space) -> None:
    sub = small.restrict(by_tag={"kernel": [3]}, by_name={"resolution": [24]})
    assert sub.size == 3
    assert sub.max() == {"depth": 3, "b1.kernel": 3, "b2.kernel": 3, "resolution": 24}
    with pytest.raises(ValueError, match="no gene is tagged"):
        small.restrict(by_tag={"width": [1]})


def test_space_definition_errors() -> None:
    with pytest.raises(ValueError, match="declared twice"):
        Space([Choice("a", [1]), Choice("a", [2])])
    with pytest.raises(ValueError, match="must be declared before"):
        Space([Choice("b", [1], active_if=Condition("a", ">", 0)), Choice("a", [1])])
    with pytest.raises(ValueError, match="duplicate options"):
        Choice("a", [1, 1])
    with pytest.raises(ValueError, match="operator"):
        Condition("a", "~", 1)


def test_json_roundtrip_of_space_and_archs(small: Space, tmp_path) -> None:
    again = Space.from_dict(json.loads(json.dumps(small.to_dict())))
    assert again.size == small.size and again.names == small.names
    archs = sample_unique(small, 10, seed=1, include_extremes=True)
    assert archs[0] == small.min() and archs[1] == small.max()
    assert len({small.key(a) for a in archs}) == 10
    write_archs(tmp_path / "a.jsonl", archs)
    assert read_archs(tmp_path / "a.jsonl") == archs
