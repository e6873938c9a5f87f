"""Where the kernel normalisation acts (`ModelConfig.kernel_scale`, `common.init`), in both
frameworks: `init` (default) draws the kernel network's last layer sqrt(1 / taps) smaller once
and renders kernels with no factor; `forward` multiplies every rendered kernel by
1 / sqrt(taps). The two give the same kernels at initialisation, the factor is applied exactly
once, and re-drawing or loading a checkpoint never applies it again.

Tolerances: kernels of the two choices drawn from the same seed differ only by the float32
rounding of the weights (one multiplication moved): relative error <= 1e-6 of the kernel's
largest value; everything that should be identical is compared exactly."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from implementations.common import init as law
from implementations.common.config import tiny_config
from implementations.jax import model as jm
from implementations.torch.model import build_model

SHAPES = [(33,), (11, 9)]
VARIANTS = ["ccnn", "k", "kr"]


def _cfg(variant, shape, kernel_scale):
    return tiny_config(variant, shape, kernel_hidden=16, kernel_scale=kernel_scale)


def _torch_kernels(model):
    """(rendered kernel, kernel-net rows times the kernel mask) of every block at its full plan,
    float64: (n_blocks, N, *K) each."""
    net, n = model.kernel_net, model.cfg.n_channels
    rendered, raw = [], []
    with torch.no_grad():
        for block in model.blocks:
            plan = block.make_plan(None)
            rendered.append(block.kernel(net, n, plan, None))
            grid = block.kernel_grid(plan, net.freqs)
            mesh = torch.meshgrid(*[x for x, _ in grid], indexing="ij")
            h = net.features(torch.stack([m.reshape(-1) for m in mesh], dim=-1))
            start = block.index * n
            k = net.rows(h, start, start + n).reshape(n, *block.full_taps)
            for a, (_, m) in enumerate(grid):
                if m is not None:
                    shape = [1] * (len(block.full_taps) + 1)
                    shape[a + 1] = -1
                    k = k * m.view(shape)
            raw.append(k)
    return torch.stack(rendered).double().numpy(), torch.stack(raw).double().numpy()


def _jax_kernels(model, variables):
    """As `_torch_kernels`, channels last: (n_blocks, *K, N) each."""
    n = model.cfg.n_channels

    def f(mdl):
        rows = mdl.kernel_rows()
        out, raw = [], []
        for b, block in enumerate(mdl.blocks):
            r = rows[:, b * n : (b + 1) * n]
            out.append(block.kernel(r))
            k = r.reshape(*block.full_taps, n)
            for a, (_, m) in enumerate(block.kernel_grid(block.input_shape, False, r.dtype)):
                if m is not None:
                    shape = [1] * (len(block.full_taps) + 1)
                    shape[a] = -1
                    k = k * m.reshape(shape)
            raw.append(k)
        return jnp.stack(out), jnp.stack(raw)

    rendered, raw = model.apply(variables, method=f)
    return np.asarray(rendered, np.float64), np.asarray(raw, np.float64)


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("variant", VARIANTS)
def test_torch_scale_acts_once_and_equals_the_forward_scaled_kernel(variant, shape):
    taps = law.kernel_taps_count(shape)
    kernels = {}
    for ks in ("init", "forward"):
        torch.manual_seed(0)
        model = build_model(_cfg(variant, shape, ks))
        rendered, raw = _torch_kernels(model)
        if ks == "init":  # after the build the forward pass applies no factor
            np.testing.assert_array_equal(rendered, raw)
        else:  # every forward pass multiplies by 1 / sqrt(taps)
            np.testing.assert_allclose(rendered, raw / math.sqrt(taps), rtol=1e-6, atol=0)
        kernels[ks] = rendered
    # the same kernel at initialisation: today's forward-scaled one (the same draws)
    assert _rel(kernels["init"], kernels["forward"]) <= 1e-6
    if variant == "ccnn":  # no mask: kernel values of about 1 / sqrt(taps)
        assert 0.2 < np.std(kernels["forward"]) * math.sqrt(taps) < 5.0


def test_torch_no_second_application():
    """Doubling the last layer's weights doubles the kernel (no factor is re-derived from them);
    building again from the same seed and loading a checkpoint (state dict, and the training
    backend's checkpoint bytes) give the same kernels, never a second sqrt(1 / taps)."""
    from implementations.torch.train import Backend

    cfg = _cfg("k", (11, 9), "init")
    torch.manual_seed(0)
    model = build_model(cfg)
    before, _ = _torch_kernels(model)
    last = model.kernel_net.layers[-1]
    with torch.no_grad():
        last.weight.mul_(2.0)
    doubled, _ = _torch_kernels(model)
    np.testing.assert_allclose(doubled, 2.0 * before, rtol=1e-6, atol=1e-12)
    with torch.no_grad():
        last.weight.mul_(0.5)
    torch.manual_seed(0)
    np.testing.assert_array_equal(_torch_kernels(build_model(cfg))[0], before)  # re-drawn
    torch.manual_seed(1)
    other = build_model(cfg)
    assert not np.array_equal(_torch_kernels(other)[0], before)
    other.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(_torch_kernels(other)[0], before)
    hp = {"lr": 0.01, "weight_decay": 0.0}
    a = Backend(cfg, hp, 0, "cross_entropy", 0.0, (1, 4))
    b = Backend(cfg, hp, 1, "cross_entropy", 0.0, (1, 4))
    b.restore(a.checkpoint_bytes({"epoch": 0}))
    np.testing.assert_array_equal(_torch_kernels(b.model)[0], _torch_kernels(a.model)[0])
    np.testing.assert_array_equal(_torch_kernels(a.model)[0], before)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_jax_scale_acts_once_and_equals_the_forward_scaled_kernel(shape):
    """The same in JAX (host draws of `init_variables`, and the traced Flax draws under
    jax.jit), and each framework's init-scaled kernel from PyTorch's weights equals
    PyTorch's."""
    from implementations.common import weight_map as wm

    taps = law.kernel_taps_count(shape)
    kernels = {}
    for ks in ("init", "forward"):
        cfg = _cfg("k", shape, ks)
        model = jm.build_model(cfg)
        variables = jm.init_variables(model, jax.random.key(0))
        rendered, raw = _jax_kernels(model, variables)
        if ks == "init":
            np.testing.assert_array_equal(rendered, raw)
        else:
            np.testing.assert_allclose(rendered, raw / math.sqrt(taps), rtol=1e-6, atol=0)
        kernels[ks] = rendered
        # the traced Flax draws follow the same law: the last layer's std carries the gain
        traced = jax.jit(lambda k, model=model: jm.init_variables(model, k))(jax.random.key(1))
        w = np.asarray(traced["params"]["kernel_net"][f"dense_{cfg.kernel_layers - 1}"]["kernel"])
        want = law.kernel_init_gain(ks, taps) / math.sqrt(cfg.kernel_hidden)
        assert abs(w.std() / want - 1.0) <= 6 * 0.71 / math.sqrt(w.size), (ks, w.std(), want)
        # re-drawing with the same key gives the same weights: the factor is in the law
        again = jm.init_variables(model, jax.random.key(0))
        np.testing.assert_array_equal(_jax_kernels(model, again)[0], rendered)
        # PyTorch's weights copied: the same kernels (PyTorch channels first)
        torch.manual_seed(0)
        tmodel = build_model(cfg)
        state = {k: v.detach().numpy() for k, v in tmodel.state_dict().items()}
        copied = jax.tree_util.tree_map(jnp.asarray, wm.torch_to_jax(state, cfg))
        t_rendered = _torch_kernels(tmodel)[0]
        j_rendered = np.moveaxis(_jax_kernels(model, copied)[0], -1, 1)
        assert _rel(j_rendered, t_rendered) <= 1e-6, ks
    assert _rel(kernels["init"], kernels["forward"]) <= 1e-6


def test_jax_checkpoint_round_trip_applies_no_second_scale():
    from implementations.jax.train import Backend

    cfg = _cfg("k", (11, 9), "init")
    hp = {"lr": 0.01, "weight_decay": 0.0}
    a = Backend(cfg, hp, 0, "cross_entropy", 0.0, (1, 4))
    b = Backend(cfg, hp, 1, "cross_entropy", 0.0, (1, 4))
    variables = lambda s: {"params": s.params, "buffers": s.buffers}
    want = _jax_kernels(a.model, variables(a.state))[0]
    assert not np.array_equal(_jax_kernels(b.model, variables(b.state))[0], want)
    b.restore(a.checkpoint_bytes({"epoch": 0}))
    np.testing.assert_array_equal(_jax_kernels(b.model, variables(b.state))[0], want)
    # the backend's own draw, repeated: the same kernels (the backend splits its seed's key)
    fresh = jm.init_variables(a.model, jax.random.split(jax.random.PRNGKey(0))[0])
    np.testing.assert_array_equal(_jax_kernels(a.model, fresh)[0], want)
