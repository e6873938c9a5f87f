"""One initialisation law for both frameworks (docs/design.md, "Initialisation and training").

Parity checks copy weights from one framework to the other, so they cannot see how each
framework initialises. Here each framework draws its own parameters (its own seeds); for every
tensor of the weight map the pooled draws must have the mean and standard deviation of the law
`common.init.law_for` gives, constants must be equal, and mask parameters (set from the
configuration) must be equal across frameworks.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from implementations.common import init as law
from implementations.common import weight_map as wm
from implementations.common.config import ModelConfig, tiny_config
from implementations.jax import model as jm
from implementations.torch import build_model as build_torch

SEEDS = 6
# 6 standard errors: the std of a sample mean is sigma / sqrt(n); the std of a sample standard
# deviation is sigma sqrt((kurtosis - 1) / (4 n)) <= 0.71 sigma / sqrt(n) (normal: kurtosis 3)
Z = 6.0


def _config(kind: str) -> ModelConfig:
    small = dict(width=6, max_width=10, max_blocks=3, kernel_hidden=16)
    if kind == "retrieval":
        return tiny_config("krwd", (33,), task="retrieval", embed_dim=5, w0=27500.0, **small)
    if kind == "dense2d":
        return tiny_config(
            "krwd", (11, 9), task="dense", out_size=1, in_channels=3, w0=24500.0, **small
        )
    return tiny_config("ccnn", (29,), out_size=10, in_channels=1, **small)


def _draws(cfg: ModelConfig):
    """{torch name: (torch draws (S, *shape), jax draws in torch layout (S, *shape))}."""
    entries = wm.weight_map(cfg)
    t_all = {e.torch_name: [] for e in entries}
    j_all = {e.torch_name: [] for e in entries}
    jmodel = jm.build_model(cfg)
    jinit = lambda k: jm.init_variables(jmodel, k)  # eager: draws on the host
    for s in range(SEEDS):
        torch.manual_seed(100 + s)
        state = {k: v.detach().numpy() for k, v in build_torch(cfg).state_dict().items()}
        jstate = wm.jax_to_torch(jax.tree_util.tree_map(np.asarray, jinit(jax.random.key(s))), cfg)
        for e in entries:
            t_all[e.torch_name].append(state[e.torch_name])
            j_all[e.torch_name].append(jstate[e.torch_name])
    return {k: (np.stack(t_all[k]), np.stack(j_all[k])) for k in t_all}


@pytest.mark.parametrize("kind", ["retrieval", "dense2d"])  # every kind of tensor
def test_every_tensor_follows_the_one_law_in_both_frameworks(kind):
    cfg = _config(kind)
    draws = _draws(cfg)
    checked = 0
    for name, (t, j) in draws.items():
        rule = law.law_for(name, cfg)
        if rule.kind == "mask":  # computed from the configuration: identical
            np.testing.assert_allclose(t, j, rtol=1e-6, err_msg=name)
            continue
        if rule.kind == "constant":
            assert np.all(t == rule.scale) and np.all(j == rule.scale), name
            continue
        mean, std = rule.moments()
        n = t.size
        for who, x in (("torch", t), ("jax", j)):
            if rule.kind == "uniform":  # the support, exactly (per row for W)
                bound = np.broadcast_to(rule.row_scale(), x.shape[1:])
                assert np.all(np.abs(x) <= bound * (1 + 1e-6)), (who, name)
                x = x / bound * np.sqrt(np.mean(np.asarray(rule.scale) ** 2))  # pool rows
            assert abs(x.mean() - mean) <= Z * std / math.sqrt(n), (who, name, x.mean())
            assert abs(x.std() / std - 1.0) <= Z * 0.71 / math.sqrt(n), (who, name, x.std(), std)
        checked += 1
    assert checked >= 8


def test_the_law_covers_every_tensor_of_every_variant():
    for variant in ("ccnn", "k", "kr", "krwd"):
        for kind in ("retrieval", "dense2d", "global"):
            cfg = _config(kind).replace(variant=variant)
            for e in wm.weight_map(cfg):
                law.law_for(e.torch_name, cfg)  # raises KeyError on a tensor without a law
    with pytest.raises(KeyError, match="no law"):
        law.law_for("blocks.0.mystery.weight", _config("global"))


def test_kernel_network_output_scale_matches_across_frameworks():
    """Kernel-net output std at initialisation agrees across the frameworks within 15 % over 6
    seeds (L = 1024, w0 = 27.5k, the paper's 4 x 128 kernel network): two laws that differ in
    the last layer's scale give stds an order of magnitude apart (0.585 vs 0.033)."""
    from implementations.common.grids import kernel_taps
    from implementations.common.masks import axis_coordinates
    from implementations.jax.kernels import KernelNet as JaxKernelNet
    from implementations.torch.kernels import KernelNet as TorchKernelNet

    taps = (kernel_taps(1024),)
    args = (1, 128, 4, 4 * 140, 27500.0, taps)  # D, hidden, layers, rows, w0, full taps
    coords = axis_coordinates(taps[0])[:, None]
    t_std, j_std = [], []
    jnet = JaxKernelNet(*args)
    x = jnp.asarray(coords, jnp.float32)
    run = jax.jit(lambda k: jnp.std(jnet.apply(jnet.init(k, x), x)))
    for s in range(SEEDS):
        torch.manual_seed(s)
        net = TorchKernelNet(*args)
        with torch.no_grad():
            h = net.features(torch.as_tensor(coords, dtype=torch.float32))
            t_std.append(float(net.rows(h, 0, args[3]).std()))
        j_std.append(float(run(jax.random.key(s))))
    assert np.mean(j_std) == pytest.approx(np.mean(t_std), rel=0.15), (t_std, j_std)
    assert 0.2 < np.mean(t_std) < 2.0  # about unit scale (the law's purpose)


def test_jax_host_draws_are_seeded_by_the_key_and_need_no_random_program():
    """init_variables draws on the host: the same key gives the same tensors, other
    keys others (every random tensor differs, per-tensor streams: no two tensors of equal shape
    repeat each other); constants and masks equal the Flax modules' own init; under jax.jit it
    falls back to the Flax draws with the same layout; the placeholder switch does not outlive
    its block."""
    from implementations.jax import init as jinit

    cfg = _config("retrieval")
    model = jm.build_model(cfg)
    a = wm.jax_to_torch(
        jax.tree_util.tree_map(np.asarray, jm.init_variables(model, jax.random.key(3))), cfg
    )
    b = wm.jax_to_torch(
        jax.tree_util.tree_map(np.asarray, jm.init_variables(model, jax.random.key(3))), cfg
    )
    c = wm.jax_to_torch(
        jax.tree_util.tree_map(np.asarray, jm.init_variables(model, jax.random.PRNGKey(4))), cfg
    )
    flax_init = model.init({"params": jax.random.key(3)}, jm.example_input(cfg, 2))
    flax = wm.jax_to_torch(jax.tree_util.tree_map(np.asarray, dict(flax_init)), cfg)
    drawn = [
        e.torch_name
        for e in wm.weight_map(cfg)
        if law.law_for(e.torch_name, cfg).kind in ("uniform", "normal")
    ]
    assert len(drawn) >= 10
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
        if name in drawn:
            assert not np.array_equal(a[name], c[name]), name
            assert a[name].dtype == flax[name].dtype and a[name].shape == flax[name].shape
        else:  # constants and masks: exactly the modules' values
            np.testing.assert_array_equal(a[name], flax[name], err_msg=name)
    same_shape = [n for n in drawn if a[n].shape == a["blocks.0.linear1.weight"].shape]
    assert len(same_shape) >= 2
    assert not np.array_equal(a[same_shape[0]], a[same_shape[1]])
    # under a trace (jit, eval_shape) the Flax modules draw with jax.random: same layout
    traced = jax.jit(lambda k: jm.init_variables(model, k))(jax.random.key(3))
    traced = wm.jax_to_torch(jax.tree_util.tree_map(np.asarray, traced), cfg)
    for name in a:
        assert traced[name].shape == a[name].shape and traced[name].dtype == a[name].dtype
    with jinit.placeholder_draws():
        assert float(jnp.abs(jinit.draw(jax.random.key(0), law.embedding(), (3,))).max()) == 0.0
    assert float(jnp.abs(jinit.draw(jax.random.key(0), law.embedding(), (3,))).max()) > 0.0
