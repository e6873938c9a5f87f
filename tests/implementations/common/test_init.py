"""One initialisation law for both frameworks (docs/design.md, "Initialisation and training").

Parity checks copy weights from one framework to the other, so they cannot see how each
framework initialises. Here each framework draws its own parameters (its own seeds); for every
tensor of the weight map the pooled draws must have the mean and standard deviation of the law
`common.init.law_for` gives, constants must be equal, and mask parameters (set from the
configuration) must be equal across frameworks. Both initialisation choices of `ModelConfig`
(kernel_scale init | forward, linear_init ccnn | uniform) are checked, and the laws themselves
against what the CCNN code draws (torch.nn.init.kaiming_normal_, Chang et al.'s
sqrt(1 / taps)).
"""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from implementations.common import init as law
from implementations.common import weight_map as wm
from implementations.common.config import ModelConfig, tiny_config
from implementations.common.grids import kernel_taps
from implementations.jax import model as jm
from implementations.torch import build_model as build_torch

SEEDS = 6
# the pointwise layers and the decoder: what linear_init draws
POINTWISE = re.compile(r"(encoder\.linear|blocks\.\d+\.linear[12]|head(\.\d+)?)\.(weight|bias)")
# 6 standard errors: the std of a sample mean is sigma / sqrt(n); the std of a sample standard
# deviation is sigma sqrt((kurtosis - 1) / (4 n)) <= 0.71 sigma / sqrt(n) (normal: kurtosis 3)
Z = 6.0


# (kernel_scale, linear_init): the defaults (the CCNN code's practice) and the alternatives
CHOICES = [("init", "ccnn"), ("forward", "uniform")]


def _config(kind: str, kernel_scale: str = "init", linear_init: str = "ccnn") -> ModelConfig:
    small = dict(width=6, max_width=10, max_blocks=3, kernel_hidden=16)
    small.update(kernel_scale=kernel_scale, linear_init=linear_init)
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


@pytest.mark.parametrize("choices", CHOICES, ids=lambda c: "-".join(c))
@pytest.mark.parametrize("kind", ["retrieval", "dense2d"])  # every kind of tensor
def test_every_tensor_follows_the_one_law_in_both_frameworks(kind, choices):
    """Pooled over 6 seeds, each random tensor's mean and standard deviation are within 6
    standard errors of its law's (std: relative error <= 6 x 0.71 / sqrt(n), n the pooled
    entries: from 7.7 % (3072 entries) to 55 % (the 60-entry head), enough to tell the two
    pointwise laws apart, whose stds are 2.45 times apart; the wide-layer test below holds the
    pointwise stds to 3.3 %); uniform draws stay within their bounds; constants (zero biases
    under linear_init ccnn) are exact."""
    cfg = _config(kind, *choices)
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
            for choices in CHOICES:
                cfg = _config(kind, *choices).replace(variant=variant)
                for e in wm.weight_map(cfg):
                    law.law_for(e.torch_name, cfg)  # KeyError on a tensor without a law
    with pytest.raises(KeyError, match="no law"):
        law.law_for("blocks.0.mystery.weight", _config("global"))


@pytest.mark.parametrize("kernel_scale", ["init", "forward"])
def test_kernel_network_output_scale_matches_across_frameworks(kernel_scale):
    """Kernel-net output std at initialisation agrees across the frameworks within 15 % over 6
    seeds (L = 1024, w0 = 27.5k, the paper's 4 x 128 kernel network): two laws that differ in
    the last layer's scale give stds an order of magnitude apart (0.585 vs 0.033). `forward`:
    unit-scale values (the blocks divide by sqrt(taps)); `init`: 1 / sqrt(taps) of that."""
    from implementations.common.masks import axis_coordinates
    from implementations.jax.kernels import KernelNet as JaxKernelNet
    from implementations.torch.kernels import KernelNet as TorchKernelNet

    taps = (kernel_taps(1024),)
    args = (1, 128, 4, 4 * 140, 27500.0, taps)  # D, hidden, layers, rows, w0, full taps
    coords = axis_coordinates(taps[0])[:, None]
    t_std, j_std = [], []
    jnet = JaxKernelNet(*args, kernel_scale=kernel_scale)
    x = jnp.asarray(coords, jnp.float32)
    run = jax.jit(lambda k: jnp.std(jnet.apply(jnet.init(k, x), x)))
    for s in range(SEEDS):
        torch.manual_seed(s)
        net = TorchKernelNet(*args, kernel_scale=kernel_scale)
        with torch.no_grad():
            h = net.features(torch.as_tensor(coords, dtype=torch.float32))
            t_std.append(float(net.rows(h, 0, args[3]).std()))
        j_std.append(float(run(jax.random.key(s))))
    assert np.mean(j_std) == pytest.approx(np.mean(t_std), rel=0.15), (t_std, j_std)
    unit = np.mean(t_std) * (math.sqrt(taps[0]) if kernel_scale == "init" else 1.0)
    assert 0.2 < unit < 2.0  # about unit scale before the normalisation (the law's purpose)


def test_the_laws_are_the_ccnn_codes():
    """linear_init ccnn is torch.nn.init.kaiming_normal_ with its defaults (fan_in mode, gain
    sqrt(2): std sqrt(2 / fan_in)) on every pointwise layer and the decoder, zero biases; the
    embedding and the kernel network's hidden layers do not depend on the choices; kernel_scale
    init draws the last kernel layer sqrt(1 / taps) smaller, taps of the input's full grid."""
    torch.manual_seed(0)
    w = torch.empty(4096, 64, 1)  # a 1x1 Conv1d weight, the CCNN code's pointwise layer
    torch.nn.init.kaiming_normal_(w)
    rule = law.linear_weight(64, "ccnn")
    assert rule.kind == "normal" and rule.scale == pytest.approx(math.sqrt(2.0 / 64), rel=1e-12)
    # 262144 draws: the std's standard error is 0.14 %; 1 % is 7 of them
    assert float(w.std()) == pytest.approx(rule.scale, rel=0.01)
    assert law.linear_bias(64, "ccnn") == law.Law("constant", 0.0)
    assert law.linear_weight(64, "uniform") == law.Law("uniform", 1 / 8)
    assert law.linear_bias(64, "uniform") == law.Law("uniform", 1 / 8)
    for kind in ("retrieval", "dense2d", "global"):
        a, b = _config(kind, "init", "ccnn"), _config(kind, "forward", "uniform")
        taps = math.prod(kernel_taps(s) for s in a.input_shape)
        assert law.kernel_taps_count(a.input_shape) == taps
        pointwise = 0
        for e in wm.weight_map(a):
            name = e.torch_name
            la, lb = law.law_for(name, a), law.law_for(name, b)
            if name == f"kernel_net.layers.{a.kernel_layers - 1}.weight":
                assert la.kind == lb.kind == "normal"
                assert la.scale == pytest.approx(lb.scale / math.sqrt(taps), rel=1e-12)
                assert lb.scale == pytest.approx(1 / math.sqrt(a.kernel_hidden), rel=1e-12)
            elif POINTWISE.fullmatch(name):
                pointwise += 1
                if name.endswith(".weight"):
                    assert la.kind == "normal" and lb.kind == "uniform", name
                    fan_in = 1.0 / lb.scale**2
                    assert la.scale == pytest.approx(math.sqrt(2.0 / fan_in), rel=1e-12), name
                else:
                    assert la == law.zeros() and lb.kind == "uniform", name
            else:
                assert la == lb, name  # every other law is the same under both choices
        assert pointwise >= 6


@pytest.mark.parametrize("linear_init", ["ccnn", "uniform"])
def test_wide_pointwise_layers_have_the_laws_moments(linear_init):
    """CCNN_{2,64}: the blocks' four 64 x 64 PWLinear weights pooled (16384 entries) per
    framework, each divided by its law's std: std 1 within 6 standard errors (3.3 %), mean 0
    within 6 standard errors (0.047), kurtosis that of the law's shape within 0.2 (normal 3,
    uniform 1.8; standard error ~0.04); biases exactly 0 (ccnn) or within their bound and not
    all 0 (uniform)."""
    cfg = tiny_config(
        "ccnn", (33,), in_channels=1, width=64, max_width=64, kernel_hidden=8,
        linear_init=linear_init,
    )  # fmt: skip
    rule = law.law_for("blocks.0.linear1.weight", cfg)
    torch.manual_seed(0)
    tstate = {k: v.numpy() for k, v in build_torch(cfg).state_dict().items()}
    jmodel = jm.build_model(cfg)
    jvars = jax.tree_util.tree_map(np.asarray, jm.init_variables(jmodel, jax.random.key(0)))
    jstate = wm.jax_to_torch(jvars, cfg)
    names = [f"blocks.{b}.linear{i}" for b in range(cfg.n_blocks) for i in (1, 2)]
    for who, state in (("torch", tstate), ("jax", jstate)):
        w = np.concatenate([state[f"{n}.weight"].ravel() for n in names]) / rule.moments()[1]
        n = w.size
        assert n == 16384
        assert abs(w.std() - 1.0) <= Z * 0.71 / math.sqrt(n), (who, w.std())
        assert abs(w.mean()) <= Z / math.sqrt(n), (who, w.mean())
        kurtosis = float(np.mean(w**4) / np.mean(w**2) ** 2)
        assert kurtosis == pytest.approx(3.0 if linear_init == "ccnn" else 1.8, abs=0.2), who
        biases = np.concatenate([state[f"{n}.bias"] for n in [*names, "head", "encoder.linear"]])
        if linear_init == "ccnn":
            assert np.all(biases == 0.0), who
        else:
            assert np.all(np.abs(biases) <= 1.0) and np.any(biases != 0.0), who


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
