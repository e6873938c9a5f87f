"""Block level: the JAX model computes Eq. 7, as PyTorch does
(tests/implementations/torch/test_eq7.py): the block's convolution path (virtual: uncropped)
against the float64 NumPy reference at Table 6's w0 values under both kernel normalisations
(`ModelConfig.kernel_scale`), and `fourier.masked_conv` with a crop; then the sigma floor of
every kept-bin count and a non-zero d loss / d sigma there."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from implementations.common import grids
from implementations.common import masks as ref
from implementations.common import reference as R
from implementations.common.config import tiny_config
from implementations.jax import model as jm
from implementations.jax.fourier import masked_conv
from tests.implementations.eq7_cases import KERNEL_SCALES, STATES, W0, scale_for_reference

jax.config.update("jax_enable_x64", True)

T = 0.1


def _model(shape, w0, tau=50.0, kernel_scale="init"):
    cfg = tiny_config(
        "kr", shape, in_channels=1, out_size=2, width=5, blocks=1, kernel_hidden=32, w0=w0,
        tau_resolution=tau, kernel_scale=kernel_scale,
    )  # fmt: skip
    model = jm.build_model(cfg, param_dtype=jnp.float64)
    return cfg, model, jm.init_variables(model, jax.random.key(0))


def _with(variables, mu, sigma):
    p = dict(variables["params"])
    p["blocks_0"] = {
        **p["blocks_0"],
        "res_mask": {"mu": jnp.asarray(mu, jnp.float64)},
        "kernel_mask": {"sigma": jnp.asarray(sigma, jnp.float64)},
    }
    return {**variables, "params": p}


def _conv_and_raw(model, variables, h):
    def f(mdl, h):
        rows = mdl.kernel_rows()[:, : mdl.cfg.n_channels]
        return mdl.blocks[0].conv_path(h, rows), rows

    return model.apply(variables, h, method=f)


@pytest.mark.parametrize("kernel_scale", KERNEL_SCALES)
@pytest.mark.parametrize("w0", W0)
@pytest.mark.parametrize("state", STATES, ids=lambda s: f"{s[0]}-{s[1]}")
def test_block_convolution_is_eq7(w0, state, kernel_scale):
    shape, mu, sigma = state
    cfg, model, variables = _model(shape, w0, kernel_scale=kernel_scale)
    variables = _with(variables, mu, sigma)
    h = np.random.default_rng(1).standard_normal((2, *shape, cfg.width))
    y, rows = _conv_and_raw(model, variables, jnp.asarray(h))
    taps = [grids.kernel_taps(s) for s in shape]
    raw = np.moveaxis(np.asarray(rows).reshape(*taps, cfg.width), -1, 0)
    raw = raw * scale_for_reference(cfg)  # the reference's psi is the `forward` normalisation
    psi = R.render_kernel(raw, sigma, T)
    masks = [R.resolution_mask_values(s, mu[a], cfg.tau_resolution, T) for a, s in enumerate(shape)]
    want = np.moveaxis(R.eq7(np.moveaxis(h, -1, 1), psi, masks), 1, -1)
    err = np.abs(np.asarray(y) - want).max() / np.abs(want).max()
    assert err <= 1e-9, err
    # and the cropped form (what PyTorch trim computes), with the same function
    kept = R.kept_padded_bins(masks)
    res = tuple(grids.resolution_for_padded_bins(k, s) for k, s in zip(kept, shape))
    kernel = np.moveaxis(psi, 0, -1)
    yc = masked_conv(
        jnp.asarray(h), jnp.asarray(kernel), [jnp.asarray(m) for m in masks], kept, res
    )
    want_c = np.moveaxis(R.eq7(np.moveaxis(h, -1, 1), psi, masks, res), 1, -1)
    assert np.abs(np.asarray(yc) - want_c).max() <= 1e-9 * np.abs(want_c).max()


def test_sigma_gradient_is_nonzero_at_the_floor_for_every_kept_bin_count():
    length = 64
    cfg, model, variables = _model((length,), 27500.0, tau=25.0)
    h = jnp.asarray(np.random.default_rng(0).standard_normal((2, length, cfg.width)))
    g = jnp.asarray(np.random.default_rng(1).standard_normal((2, length, cfg.width)))
    clamp = jax.jit(lambda p: jm.clamp_masks(model, p))

    @jax.jit
    def grad_sigma(variables):
        def loss(sigma):
            v = _with(variables, variables["params"]["blocks_0"]["res_mask"]["mu"], sigma)
            y, _ = _conv_and_raw(model, v, h)
            return jnp.sum(y * g)

        return jax.grad(loss)(variables["params"]["blocks_0"]["kernel_mask"]["sigma"])

    x = grids.padded_frequency_coordinates(length)
    lo, hi = ref.sigmoid_mu_bounds(cfg.tau_resolution)
    seen = 0
    for k in range(1, grids.padded_bins(length) + 1):
        cut = (x[k - 1] + x[k]) / 2 if k < len(x) else x[-1] + 1.0
        mu = ref.sigmoid_mu_from_cutoff(cut, cfg.tau_resolution, T)
        if not lo <= mu <= hi:
            continue
        v = _with(variables, (mu,), (1e-6,))
        v = {**v, "params": clamp(v["params"])}
        sigma = float(v["params"]["blocks_0"]["kernel_mask"]["sigma"][0])
        assert sigma == pytest.approx(ref.kernel_sigma_floor(k, length, T), rel=1e-12)
        grad = float(grad_sigma(v)[0])
        assert abs(grad) > 1e-8, (k, grad)
        seen += 1
    assert seen >= 20
