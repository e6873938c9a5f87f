"""JAX masks against the float64 NumPy reference (implementations.common.masks) and against
the PyTorch masks: values, cutoffs, sizes, clamps, straight-through gradient."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from implementations.common import masks as ref
from implementations.jax import masks as jmk

jax.config.update("jax_enable_x64", True)


def test_coordinates_symmetric_and_match_reference():
    for n in (1, 2, 3, 8, 17, 280):
        x = np.asarray(jmk.coordinates(n, jnp.float64))
        assert np.array_equal(x, ref.axis_coordinates(n))
        assert np.array_equal(x, -x[::-1])


@pytest.mark.parametrize("mu", [-0.7, 0.0, 0.31, 1.05])
@pytest.mark.parametrize("tau", [8.0, 25.0, 50.0])
def test_sigmoid_mask_matches_reference(mu, tau):
    x = ref.axis_coordinates(97)
    got = jmk.sigmoid_mask(jnp.asarray(x), jnp.asarray(mu), tau, 0.1)
    np.testing.assert_allclose(np.asarray(got), ref.sigmoid_mask(x, mu, tau, 0.1), rtol=1e-13)
    assert float(jmk.sigmoid_cutoff(mu, tau, 0.1)) == pytest.approx(
        ref.sigmoid_cutoff(mu, tau, 0.1), rel=1e-14
    )


@pytest.mark.parametrize("sigma", [0.02, 0.0325, 0.2, 0.46])
def test_gaussian_mask_matches_reference(sigma):
    x = ref.axis_coordinates(31)
    got = jmk.gaussian_mask(jnp.asarray(x), jnp.asarray(sigma), 0.1)
    np.testing.assert_allclose(np.asarray(got), ref.gaussian_mask(x, sigma, 0.1), rtol=1e-13)
    assert float(jmk.gaussian_cutoff(sigma, 0.1)) == pytest.approx(
        ref.gaussian_cutoff(sigma, 0.1), rel=1e-14
    )


def test_straight_through_clip():
    f = lambda s: jmk.straight_through_clip(s, 10.0)
    assert float(f(jnp.asarray(12.0))) == 10.0
    assert float(jax.grad(f)(jnp.asarray(12.0))) == 1.0  # gradient of the unclipped size
    assert float(f(jnp.asarray(7.5))) == 7.5


def _bind(module):
    variables = module.init(jax.random.key(0), method=lambda m: m.values())
    return module.bind(variables), variables


def test_sigmoid_mask_module_initial_size_and_bounds():
    # width mask: 140 of 280 channels at initialisation, the paper's minimum sizes at the clamps
    mask = jmk.SigmoidMask(280, 25.0, 0.1, 140, jnp.float64)
    bound, _ = _bind(mask)
    assert float(bound.size()) == pytest.approx(140.0, abs=1e-9)
    assert mask.bounds() == ref.sigmoid_mu_bounds(25.0)
    mu_min, _ = mask.bounds()
    low = mask.bind({"params": {"mu": jnp.asarray(mu_min)}})
    assert float(low.size()) == pytest.approx(ref.sigmoid_size(mu_min, 25.0, 0.1, 280))
    assert low.kept() == ref.kept_prefix(
        ref.sigmoid_mask(ref.axis_coordinates(280), mu_min, 25.0, 0.1)
    )


def test_resolution_mask_starts_full_and_counts_samples():
    bins = (17, 4)
    mask = jmk.SigmoidMask(bins, 50.0, 0.1, tuple(b + 1 for b in bins), jnp.float64)
    variables = mask.init(jax.random.key(0), method=lambda m: m.values(0))
    bound = mask.bind(variables)
    _, mu_max = mask.bounds()
    np.testing.assert_allclose(np.asarray(variables["params"]["mu"]), [mu_max, mu_max])
    assert bound.kept(0) == 17 and bound.kept(1) == 4
    assert float(bound.size(0, total=33)) == 33.0  # clipped to the axis length
    assert float(bound.values(0)[-1]) == pytest.approx(0.85)


def test_gaussian_mask_module_bounds_keep_three_taps():
    mask = jmk.GaussianMask((33, 7), 0.1, 0.0325, jnp.float64)
    lo, hi = mask.bounds()
    variables = {"params": {"sigma": jnp.asarray(lo)}}
    bound = mask.bind(variables)
    for a, k in enumerate((33, 7)):
        m = bound.values(jmk.coordinates(k, jnp.float64), a)
        assert jmk.kept_window(m) == ((k - 3) // 2, (k - 3) // 2 + 3)
        assert (lo[a], hi[a]) == ref.gaussian_sigma_bounds(k, 0.1)


def test_masks_match_pytorch():
    import torch

    from implementations.torch import masks as tmk

    x = ref.axis_coordinates(41)
    for mu in (-0.5, 0.2, 0.9):
        t = tmk.sigmoid_mask(torch.as_tensor(x), torch.tensor(mu, dtype=torch.float64), 25.0, 0.1)
        j = jmk.sigmoid_mask(jnp.asarray(x), jnp.asarray(mu), 25.0, 0.1)
        np.testing.assert_allclose(np.asarray(j), t.numpy(), rtol=1e-14, atol=0)
    for sigma in (0.05, 0.3):
        t = tmk.gaussian_mask(torch.as_tensor(x), torch.tensor(sigma, dtype=torch.float64), 0.1)
        j = jmk.gaussian_mask(jnp.asarray(x), jnp.asarray(sigma), 0.1)
        np.testing.assert_allclose(np.asarray(j), t.numpy(), rtol=1e-14, atol=0)
