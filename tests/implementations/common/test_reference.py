"""The float64 NumPy reference of Eq. 7 (`implementations.common.reference`) against
independent computations: direct summation of the linear convolution, and direct evaluation of
the band-limited full-resolution output at the positions the cropped output samples."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import convolve

from implementations.common import grids
from implementations.common import reference as R

T = 0.1


def _direct_same(f: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """y[n] = sum_j psi[j] f[n - (j - c)], centred kernel, zeros outside (scipy 'same')."""
    lead = f.shape[:2]
    out = np.empty_like(f)
    for idx in np.ndindex(*lead):
        out[idx] = convolve(f[idx], psi[idx[1]], mode="same", method="direct")
    return out


@pytest.mark.parametrize("shape", [(37,), (40,), (17, 12), (9, 14)])
def test_unmasked_eq7_is_the_linear_convolution(shape):
    rng = np.random.default_rng(0)
    taps = tuple(grids.kernel_taps(s) for s in shape)
    f = rng.standard_normal((2, 3, *shape))
    psi = R.render_kernel(rng.standard_normal((3, *taps)), (0.4,) * len(shape), T)
    np.testing.assert_allclose(R.eq7(f, psi, None), _direct_same(f, psi), rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("length", "mu", "tau"), [(37, 0.2, 50.0), (64, -0.3, 25.0), (101, 0.5, 100.0)]
)
def test_cropped_output_samples_the_band_limited_full_output(length, mu, tau):
    rng = np.random.default_rng(1)
    f = rng.standard_normal((2, 3, length))
    psi = R.render_kernel(rng.standard_normal((3, grids.kernel_taps(length))), (0.3,), T)
    m = R.resolution_mask_values(length, mu, tau, T)
    (k,) = R.kept_padded_bins([m])
    r = grids.resolution_for_padded_bins(k, length)
    assert r < length  # a real crop
    z = R.product_spectrum(f, psi, [m])
    cropped = R.eq7(f, psi, [m], (r,))
    direct = R.evaluate_band_limited(z, length, (np.arange(r) + 0.5) * length / r - 0.5)
    np.testing.assert_allclose(cropped, direct, rtol=0, atol=1e-12 * np.abs(direct).max())
    full = R.eq7(f, psi, [m])
    np.testing.assert_allclose(full, R.evaluate_band_limited(z, length, np.arange(length)),
                               rtol=0, atol=1e-12 * np.abs(full).max())  # fmt: skip


def _sampled_2d(z: np.ndarray, shape, res) -> np.ndarray:
    """The virtual output's band-limited function (its full P-grid spectrum, summed directly)
    at the coarse cell centres (i + 1/2) L / r - 1/2 of each axis (integers where r = L)."""
    padded = tuple(grids.padded_length(s) for s in shape)
    full = np.fft.fftn(np.fft.irfftn(z, s=padded, axes=(2, 3)), axes=(2, 3))
    ey, ex = (
        np.exp(2j * np.pi * np.outer((np.arange(r) + 0.5) * s / r - 0.5, np.fft.fftfreq(p) * p) / p)
        for r, s, p in zip(res, shape, padded)
    )
    return np.real(np.einsum("ia,nmab,jb->nmij", ey, full, ex)) / np.prod(padded)


@pytest.mark.parametrize(
    ("shape", "mu", "cut"),
    [
        ((17, 12), (0.1, -0.2), (True, True)),  # rectangular, both axes cut, differently
        # one axis cut, the other's mask non-zero up to the P-grid's Nyquist bin (k = L + 1)
        ((17, 12), (0.1, 1.0), (True, False)),
        ((12, 17), (1.0, 0.1), (False, True)),
        ((15, 13), (2.0, 0.4), (False, True)),  # odd sizes
        ((13, 9), (-0.5, 2.0), (True, False)),
    ],
)
def test_2d_crop_samples_the_full_output(shape, mu, cut):
    rng = np.random.default_rng(2)
    f = rng.standard_normal((2, 3, *shape))
    taps = tuple(grids.kernel_taps(s) for s in shape)
    psi = R.render_kernel(rng.standard_normal((3, *taps)), (0.4, 0.3), T)
    ms = [R.resolution_mask_values(s, m, 25.0, T) for s, m in zip(shape, mu)]
    kept = R.kept_padded_bins(ms)
    res = tuple(grids.resolution_for_padded_bins(k, s) for k, s in zip(kept, shape))
    assert tuple(r < s for r, s in zip(res, shape)) == cut
    assert all(c or k == s + 1 for c, k, s in zip(cut, kept, shape))  # uncut: up to Nyquist
    if all(cut):
        assert res[0] != res[1]
    direct = _sampled_2d(R.product_spectrum(f, psi, ms), shape, res)
    np.testing.assert_allclose(R.eq7(f, psi, ms, res), direct, atol=1e-12 * np.abs(direct).max())


def test_a_crop_needs_masks_and_room():
    f = np.zeros((1, 1, 20))
    psi = np.zeros((1, grids.kernel_taps(20)))
    with pytest.raises(ValueError, match="needs the resolution masks"):
        R.eq7(f, psi, None, (10,))
    with pytest.raises(ValueError, match="do not fit"):
        R.eq7(f, psi, [np.ones(21)], (10,))
