"""The JAX DNArch: shapes for every variant x data_dim x head, complexity (ratio 1 at
initialisation, differentiable), clamps, weight-decay groups and `architecture()` row for row
against PyTorch's, input checks. Cross-framework numerics live in tests/pipelines/test_parity.py."""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from implementations.common import weight_map as wm
from implementations.common.config import ModelConfig, tiny_config
from implementations.jax import kernels as jk
from implementations.jax import model as jm
from implementations.torch import build_model as build_torch
from implementations.torch import kernels as tk
from implementations.torch.masks import GaussianMask, SigmoidMask

jax.config.update("jax_enable_x64", True)

CASES = [
    (v, d, h)
    for v, d in itertools.product(("ccnn", "k", "kr", "krwd"), (1, 2))
    for h in (("global", "dense", "retrieval") if d == 1 else ("global", "dense"))
]


def config(variant: str, data_dim: int, head: str = "global") -> ModelConfig:
    shape = (19,) if data_dim == 1 else (9, 7)
    if head == "retrieval":
        return tiny_config(variant, shape, task=head, vocab_size=9)
    return tiny_config(variant, shape, task=head)


@pytest.mark.parametrize(("variant", "data_dim", "head"), CASES)
def test_output_shapes(variant, data_dim, head):
    cfg = config(variant, data_dim, head)
    model = jm.build_model(cfg)
    variables = jax.eval_shape(lambda k: jm.init_variables(model, k), jax.random.key(0))
    x = jm.example_input(cfg, batch=3)
    out = jax.eval_shape(model.apply, variables, x)
    want = (3, *cfg.input_shape, 3) if head == "dense" else (3, cfg.out_size)
    assert out.shape == want


@pytest.mark.parametrize("variant", ["ccnn", "k", "kr", "krwd"])
def test_complexity_ratio_is_one_at_initialisation(variant):
    cfg = config(variant, 2)
    model = jm.build_model(cfg, jnp.float64)
    variables = jm.init_variables(model, jax.random.key(0))
    assert jm.complexity_ratio(model, variables) == pytest.approx(1.0, rel=1e-12)
    assert float(jm.complexity_loss(model, variables)) == pytest.approx(0.0, abs=1e-20)
    y = model.apply(variables, jnp.ones((2, 9, 7, 2)))
    assert bool(jnp.all(jnp.isfinite(y)))


def test_complexity_is_differentiable_in_every_mask():
    cfg = config("krwd", 1)
    model = jm.build_model(cfg, jnp.float64)
    variables = jm.init_variables(model, jax.random.key(0))
    params = variables["params"]  # every block counts: depth mask at its upper clamp
    params = {**params, "depth_mask": {"mu": jnp.asarray(jm.mask_bounds(cfg)[-1][2])}}
    variables = {**variables, "params": params}
    grads = jax.grad(lambda p: jm.complexity(model, {**variables, "params": p}))(
        variables["params"]
    )
    for path, _, _ in jm.mask_bounds(cfg):
        if path[-1] == "sigma":
            continue  # kernel sizes are not counted in the complexity (Appx. C)
        g = grads
        for key in path:
            g = g[key]
        assert np.all(np.asarray(g) != 0), path


def randomise_torch_masks(model, rng) -> None:
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, SigmoidMask):
                m.mu.copy_(torch.as_tensor(rng.uniform(m.mu_min, m.mu_max, m.mu.shape)))
            elif isinstance(m, GaussianMask):
                lo, hi = np.asarray(m.sigma_min), np.asarray(m.sigma_max)
                m.sigma.copy_(torch.as_tensor(lo + (hi - lo) * rng.uniform(size=lo.shape)))


@pytest.mark.parametrize(("variant", "data_dim"), [("k", 2), ("kr", 1), ("krwd", 1), ("krwd", 2)])
def test_architecture_matches_pytorch_row_for_row(variant, data_dim):
    cfg = config(variant, data_dim)
    rng = np.random.default_rng(0)
    tmodel = build_torch(cfg).double()
    jmodel = jm.build_model(cfg, jnp.float64)
    seen = set()
    for _ in range(6):
        randomise_torch_masks(tmodel, rng)
        state = {k: v.numpy() for k, v in tmodel.state_dict().items()}
        variables = wm.torch_to_jax(state, cfg)
        rows = jm.architecture(jmodel, variables)
        assert rows == tmodel.architecture()
        seen.add(str(rows))
        sizes = jm.mask_sizes(jmodel, variables)
        ref = tmodel.mask_sizes()
        assert sorted(sizes) == sorted(ref)
        for k in ref:
            assert sizes[k] == pytest.approx(ref[k], rel=1e-12)
    assert len(seen) > 1  # the random masks really changed the architecture


def test_clamp_masks_matches_pytorch():
    cfg = config("krwd", 2)
    tmodel = build_torch(cfg).double()
    with torch.no_grad():
        for i, p in enumerate(tmodel.mask_parameters()):
            p.fill_(5.0 if i % 2 else -5.0)
    state = {k: v.numpy().copy() for k, v in tmodel.state_dict().items()}
    jmodel = jm.build_model(cfg, jnp.float64)
    variables = wm.torch_to_jax(state, cfg)
    clamped = jm.clamp_masks(jmodel, variables["params"])
    tmodel.clamp_masks()
    back = wm.jax_to_torch({"params": clamped, "buffers": variables["buffers"]}, cfg)
    for name, value in tmodel.state_dict().items():
        assert np.array_equal(back[name], value.numpy()), name
    assert len(jm.mask_bounds(cfg)) == len(tmodel.mask_parameters())


@pytest.mark.parametrize(
    ("variant", "data_dim", "head"), [("krwd", 1, "retrieval"), ("k", 2, "dense")]
)
def test_weight_decay_groups_match_pytorch(variant, data_dim, head):
    cfg = config(variant, data_dim, head)
    tmodel = build_torch(cfg)
    names = {id(p): n for n, p in tmodel.named_parameters()}
    decay = {names[id(p)] for p in tmodel.param_groups(0.1)[0]["params"]}
    jmodel = jm.build_model(cfg)
    variables = jax.eval_shape(lambda k: jm.init_variables(jmodel, k), jax.random.key(0))
    groups = jm.param_groups(jmodel, variables["params"])
    jdecay = set()
    for e in wm.weight_map(cfg):
        if e.jax_path[0] != "params":
            continue
        leaf = groups
        for key in e.jax_path[1:]:
            leaf = leaf[key]
        if leaf:
            jdecay.add(e.torch_name)
    assert jdecay == decay


def test_input_checks():
    cfg = config("k", 1)
    model = jm.build_model(cfg)
    variables = jax.eval_shape(lambda k: jm.init_variables(model, k), jax.random.key(0))
    with pytest.raises(ValueError, match="channels-last"):
        jax.eval_shape(model.apply, variables, jnp.zeros((2, 2, 19)))  # channels first
    with pytest.raises(TypeError, match="floating-point"):
        jax.eval_shape(model.apply, variables, jnp.zeros((2, 19, 2), jnp.int32))
    tcfg = config("k", 1, "retrieval")
    tmodel = jm.build_model(tcfg)
    tvars = jm.init_variables(tmodel, jax.random.key(0))
    with pytest.raises(ValueError, match="token ids must lie"):
        tmodel.apply(tvars, jnp.full((2, 2, 19), 9, jnp.int32))
    with pytest.raises(TypeError):
        jm.build_model({"variant": "k"})
    for bad in ((), (0.0, 1.0), (0.5, 1.5)):
        with pytest.raises(ValueError, match="width_buckets must be fractions"):
            jm.build_model(cfg, width_buckets=bad)
    wide = config("krwd", 1).replace(width=5, max_width=9)
    assert jm.build_model(wide, width_buckets=(0.25, 0.5)).bucket_widths() == (3, 5, 9)
    assert jm.build_model(cfg, width_buckets=(0.5,)).bucket_widths() == (cfg.n_channels,)


def test_kernel_net_constants_and_scale_match_pytorch():
    assert (jk.W0_MAX, jk.BAND) == (tk.W0_MAX, tk.BAND)
    cfg = config("k", 2)
    model = jm.build_model(cfg)
    freqs = np.asarray(
        jm.init_variables(model, jax.random.key(3))["buffers"]["kernel_net"]["freqs"]
    )
    taps = (9, 7)
    for d, k in enumerate(taps):  # no Fourier feature above BAND * Nyquist of the largest grid
        bound = jk.BAND * (k - 1) / 4.0 / jk.W0_MAX
        assert np.all(np.abs(freqs[d]) <= bound)
        assert np.abs(freqs[d]).max() > 0.5 * bound


def test_clip01_has_torch_clamp_gradient_at_the_ends():
    for v, want in ((0.0, 1.0), (1.0, 1.0), (0.5, 1.0), (1.5, 0.0), (-0.2, 0.0)):
        t = torch.tensor(v, requires_grad=True)
        torch.clamp(t, 0.0, 1.0).backward()
        assert float(t.grad) == want
        assert float(jax.grad(jm.clip01)(jnp.asarray(v))) == want, v
        assert float(jm.clip01(jnp.asarray(v))) == min(max(v, 0.0), 1.0)


@pytest.mark.parametrize("offset", [0.0, 10.0, 1e3, 1e4])
def test_batch_norm_float32_is_accurate_whatever_the_mean(offset):
    """Corrected two-pass statistics: the float32 result is within 2e-6 of float64 BatchNorm
    of the same (float32-representable) input, however large the mean is next to the spread.
    A plain two-pass version misses by ~1.1e-4 at offset 1e3 and ~1.4e-3 at 1e4; PyTorch's CPU
    kernel gets there by accumulating in float64, and the float32 parity of the resolution-mask
    gradients depends on it (pipelines/parity.py)."""
    rng = np.random.default_rng(0)
    x = (offset + rng.standard_normal((4, 33, 7))).astype(np.float32)
    x64 = x.astype(np.float64)
    scale = rng.uniform(0.5, 2.0, 7)
    bias = rng.standard_normal(7)
    want = (x64 - x64.mean((0, 1))) / np.sqrt(x64.var((0, 1)) + jm.BN_EPS) * scale + bias
    got = jm.batch_norm(
        jnp.asarray(x), jnp.asarray(scale, jnp.float32), jnp.asarray(bias, jnp.float32)
    )
    assert got.dtype == jnp.float32
    assert np.abs(np.asarray(got, np.float64) - want).max() <= 2e-6


def _random_masks(model, variables, rng):
    """Every mask parameter uniform inside its clamps (widths, depth, resolution, kernels)."""
    params = variables["params"]
    for path, lo, hi in jm.mask_bounds(model.cfg):
        leaf = jm.leaf_at(params, path)
        value = lo + (np.asarray(hi) - np.asarray(lo)) * rng.uniform(size=leaf.shape)
        params = jm._replace_leaf(params, path, jnp.asarray(value, leaf.dtype))
    return {"params": params, "buffers": variables["buffers"]}


@pytest.mark.parametrize(
    ("data_dim", "head", "seed"),
    [(1, "global", 0), pytest.param(2, "dense", 2, marks=pytest.mark.slow)],  # 2D: 30 s compile
)
def test_run_time_branches_change_no_output_and_no_gradient(data_dim, head, seed):
    """Skipping depth-cut blocks and running blocks at a bucket width (the default model)
    against the literal virtual computation, float64, random mask states: outputs, loss and
    every gradient to 1e-12; both branches really taken; one compiled program."""
    cfg = config("krwd", data_dim, head).replace(width=3, max_width=8)
    fast = jm.build_model(cfg, param_dtype=jnp.float64, width_buckets=(0.25, 0.5, 1.0))
    literal = jm.build_model(
        cfg, param_dtype=jnp.float64, skip_cut_blocks=False, width_buckets=(1.0,)
    )
    assert fast.bucket_widths() == (2, 4, 8) and literal.bucket_widths() == (8,)
    rng = np.random.default_rng(seed)
    x = jm.example_input(cfg, batch=3, dtype=jnp.float64)

    def loss(model, variables):
        def f(params):
            v = {"params": params, "buffers": variables["buffers"]}
            return jnp.sum(jnp.sin(model.apply(v, x))) + jm.complexity_loss(model, v)

        return jax.value_and_grad(f)(variables["params"])

    fast_loss, literal_loss = (
        jax.jit(functools.partial(loss, fast)),
        jax.jit(functools.partial(loss, literal)),
    )
    kept_widths, cut_blocks = set(), 0
    for _ in range(4):
        variables = _random_masks(fast, jm.init_variables(fast, jax.random.key(seed)), rng)
        depth = np.asarray(jm.mask_values(fast, variables)["depth"])
        cut_blocks += int(np.sum(depth == 0))
        kept_widths |= {max(row["width"]) for row in jm.architecture(fast, variables)}
        (ls, gs), (lf, gf) = fast_loss(variables), literal_loss(variables)
        assert abs(float(ls) - float(lf)) <= 1e-12 * max(1.0, abs(float(lf)))
        flat_f = dict(jax.tree_util.tree_leaves_with_path(gf))
        scale = max(float(np.abs(np.asarray(g)).max()) for g in flat_f.values())
        for path, g in jax.tree_util.tree_leaves_with_path(gs):
            want = np.asarray(flat_f[path])
            if jax.tree_util.keystr(path) == "['encoder']['linear']['bias']":
                # followed by BatchNorm: 0 in exact arithmetic, float64 rounding noise both
                # ways, which the zero input's constant BatchNorm input (variance 0: the
                # 1 / sqrt(eps) factor) amplifies to ~1e-11 of the model's gradient scale
                noise = max(np.abs(np.asarray(g)).max(), np.abs(want).max())
                assert noise <= 1e-10 * scale, (path, noise, scale)
                continue
            # 1e-12 of the tensor's and of the model's gradient scale: parameters before the
            # encoder's BatchNorm (embedding when every row sees one token) have a gradient
            # that is 0 in exact arithmetic, i.e. float64 rounding noise both ways
            tol = 1e-12 * (np.abs(want).max() + scale)
            assert np.abs(np.asarray(g) - want).max() <= tol, path
        for b in np.flatnonzero(depth == 0):  # a cut block's weights get exactly zero
            for path, leaf in jax.tree_util.tree_leaves_with_path(gs[f"blocks_{b}"]):
                if "mask" not in str(path[0]):  # its masks still count in C_curr
                    assert not np.any(np.asarray(leaf)), path
    assert cut_blocks > 0  # the depth branch was taken ...
    assert len(kept_widths) >= 2  # ... and blocks ran at more than one width
    assert fast_loss._cache_size() == 1
    text = str(jax.make_jaxpr(fast_loss)(variables))
    assert "cond[" in text  # decided at run time, not while tracing


def test_branches_default_on_only_for_wide_networks():
    """build_model's default: run-time branches (block skipping, half-width bucket) from
    BRANCH_MIN_CHANNELS channels up; narrower networks get the literal step."""
    small = ModelConfig(variant="krwd", data_dim=1, input_shape=(21,), in_channels=2, out_size=3)
    small = small.replace(width=8, max_width=16)
    wide = small.replace(width=140, max_width=280)
    assert small.n_channels < jm.BRANCH_MIN_CHANNELS <= wide.n_channels
    m = jm.build_model(small)
    assert (m.skip_cut_blocks, m.bucket_widths()) == (False, (16,))
    m = jm.build_model(wide)
    assert (m.skip_cut_blocks, m.bucket_widths()) == (True, (140, 280))
    m = jm.build_model(small, skip_cut_blocks=True, width_buckets=(0.5, 1.0))
    assert (m.skip_cut_blocks, m.bucket_widths()) == (True, (8, 16))
