"""The torch <-> JAX weight map covers every tensor of every variant exactly once, both ways,
with matching shapes after the layout transform, and round-trips bit-exactly."""

from __future__ import annotations

import itertools

import jax
import numpy as np
import pytest
import torch

from implementations.common import weight_map as wm
from implementations.common.config import ModelConfig, tiny_config
from implementations.jax import model as jm
from implementations.torch import build_model as build_torch

CASES = [
    (v, d, h)
    for v, d in itertools.product(("ccnn", "k", "kr", "krwd"), (1, 2))
    for h in (("global", "dense", "retrieval") if d == 1 else ("global", "dense"))
]


def config(variant: str, data_dim: int, head: str) -> ModelConfig:
    shape = (13,) if data_dim == 1 else (7, 5)
    small = dict(width=3, max_width=5, max_blocks=3, kernel_hidden=4, kernel_layers=3)
    if head == "retrieval":
        return tiny_config(variant, shape, task=head, vocab_size=7, embed_dim=4, **small)
    return tiny_config(variant, shape, task=head, **small)


@pytest.mark.parametrize(("variant", "data_dim", "head"), CASES)
def test_map_covers_every_tensor_once_both_ways(variant, data_dim, head):
    cfg = config(variant, data_dim, head)
    entries = wm.weight_map(cfg)
    torch_names = [e.torch_name for e in entries]
    jax_paths = [e.jax_path for e in entries]
    assert len(set(torch_names)) == len(torch_names), "a torch name is mapped twice"
    assert len(set(jax_paths)) == len(jax_paths), "a JAX path is mapped twice"

    state = build_torch(cfg).state_dict()
    assert sorted(state) == sorted(torch_names)

    model = jm.build_model(cfg)
    variables = jax.eval_shape(lambda k: jm.init_variables(model, k), jax.random.key(0))
    leaves = wm.jax_leaf_paths(variables)
    assert sorted(leaves) == sorted(jax_paths)

    for e in entries:
        t_shape = tuple(state[e.torch_name].shape)
        leaf = variables
        for key in e.jax_path:
            leaf = leaf[key]
        j_shape = tuple(leaf.shape)
        want = t_shape[::-1] if e.transform == "transpose" else t_shape
        assert j_shape == want, f"{e.torch_name} -> {'/'.join(e.jax_path)}: {t_shape} vs {j_shape}"


@pytest.mark.parametrize(("variant", "data_dim", "head"), CASES)
def test_round_trip_is_bit_exact(variant, data_dim, head):
    cfg = config(variant, data_dim, head)
    torch.manual_seed(1)
    state = {k: v.numpy() for k, v in build_torch(cfg).state_dict().items()}
    back = wm.jax_to_torch(wm.torch_to_jax(state, cfg), cfg)
    assert sorted(back) == sorted(state)
    for k, v in state.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape
        assert np.array_equal(back[k], v), k
    # and from JAX: jax -> torch -> jax
    model = jm.build_model(cfg)
    variables = jax.tree_util.tree_map(np.asarray, jm.init_variables(model, jax.random.key(2)))
    again = wm.torch_to_jax(wm.jax_to_torch(variables, cfg), cfg)
    flat_a = jax.tree_util.tree_leaves_with_path(variables)
    flat_b = dict(jax.tree_util.tree_leaves_with_path(again))
    assert len(flat_a) == len(flat_b)
    for path, leaf in flat_a:
        assert np.array_equal(flat_b[path], leaf), path


def test_unmapped_names_fail_loudly():
    cfg = config("krwd", 1, "global")
    state = {k: v.numpy() for k, v in build_torch(cfg).state_dict().items()}
    with pytest.raises(KeyError, match="unmapped torch names"):
        wm.torch_to_jax({**state, "extra.weight": np.zeros(1)}, cfg)
    missing = dict(state)
    missing.pop("depth_mask.mu")
    with pytest.raises(KeyError, match="missing"):
        wm.torch_to_jax(missing, cfg)
    variables = wm.torch_to_jax(state, cfg)
    variables["params"]["stray"] = np.zeros(1)
    with pytest.raises(KeyError, match="unmapped JAX paths"):
        wm.jax_to_torch(variables, cfg)


def test_transforms_are_explicit():
    with pytest.raises(ValueError, match="valid"):
        wm.Entry("a", ("params", "a"), "guess")
    w = np.arange(6.0).reshape(2, 3)
    assert np.array_equal(wm.to_jax_layout(w, "transpose"), w.T)
    assert np.array_equal(wm.to_torch_layout(wm.to_jax_layout(w, "transpose"), "transpose"), w)
