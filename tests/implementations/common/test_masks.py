"""The float64 NumPy mask reference (Eqs. 1-4, 9-10, Appx. E) against hand computations."""

import math

import numpy as np
import pytest

from implementations.common import masks as ref

T = 0.1


def test_coordinates_are_symmetric_and_span_the_axis():
    for n in (2, 3, 8, 97, 280, 1025):
        x = ref.axis_coordinates(n)
        assert x[0] == -1.0 and x[-1] == 1.0
        np.testing.assert_array_equal(x, -x[::-1])
        np.testing.assert_allclose(np.diff(x), 2.0 / (n - 1), rtol=1e-12)


def test_cutoffs_invert_the_masks():
    for sigma in (0.01, 0.0325, 0.3, 0.46):
        c = ref.gaussian_cutoff(sigma, T)
        assert math.exp(-0.5 * (c / sigma) ** 2) == pytest.approx(T, rel=1e-12)
    for tau in (8.0, 25.0, 50.0, 100.0):
        for mu in (-0.7, 0.0, 0.4):
            x_t = ref.sigmoid_cutoff(mu, tau, T)
            assert 1.0 - 1.0 / (1.0 + math.exp(-tau * (x_t - mu))) == pytest.approx(T, rel=1e-12)
            assert ref.sigmoid_mu_from_cutoff(x_t, tau, T) == pytest.approx(mu, abs=1e-14)


def test_masks_are_zero_below_threshold_and_exact_above():
    x = np.linspace(-1, 1, 1001)
    g = ref.gaussian_mask(x, 0.2, T)
    raw = np.exp(-0.5 * (x / 0.2) ** 2)
    np.testing.assert_array_equal(g[raw >= T], raw[raw >= T])
    assert np.all(g[raw < T] == 0)
    s = ref.sigmoid_mask(x, 0.1, 25.0, T)
    raw = 1 - 1 / (1 + np.exp(-25.0 * (x - 0.1)))
    np.testing.assert_array_equal(s[raw >= T], raw[raw >= T])
    assert np.all(s[raw < T] == 0)


@pytest.mark.parametrize("tau", [8.0, 16.0, 25.0, 50.0, 100.0])
def test_mu_bounds_give_the_appendix_e_values(tau):
    lo, hi = ref.sigmoid_mu_bounds(tau)
    assert ref.sigmoid_mask(-1.0, lo, tau, T) == pytest.approx(0.95, rel=1e-12)
    assert ref.sigmoid_mask(1.0, hi, tau, T) == pytest.approx(0.85, rel=1e-12)


@pytest.mark.parametrize(
    ("tau", "fraction"),
    # Appx. E.2: tau 25, 50, 100 -> minimum size 10 %, 5 %, 2.5 % of the axis
    [(25.0, 0.10), (50.0, 0.05), (100.0, 0.025)],
)
def test_minimum_sizes_stated_by_the_paper(tau, fraction):
    lo, _ = ref.sigmoid_mu_bounds(tau)
    n = 280
    size = ref.sigmoid_size(lo, tau, T, n)
    # 2.57 / tau of the axis: within 3 % of the stated percentage
    assert size / n == pytest.approx(fraction, rel=0.03)
    kept = ref.kept_prefix(ref.sigmoid_mask(ref.axis_coordinates(n), lo, tau, T))
    assert kept == math.floor((ref.sigmoid_cutoff(lo, tau, T) + 1) * (n - 1) / 2) + 1


def test_minimum_channel_width_is_tables_29_of_280():
    lo, _ = ref.sigmoid_mu_bounds(25.0)
    kept = ref.kept_prefix(ref.sigmoid_mask(ref.axis_coordinates(280), lo, 25.0, T))
    assert kept == 29  # Table 4: [29 29 163] (Image) is the smallest width found


@pytest.mark.parametrize(("tau", "blocks"), [(8.0, 2), (16.0, 1)])
def test_minimum_depth_stated_by_the_paper(tau, blocks):
    lo, _ = ref.sigmoid_mu_bounds(tau)
    assert math.floor(ref.sigmoid_size(lo, tau, T, 8)) == blocks


@pytest.mark.parametrize(("size", "n"), [(140, 280), (4, 8), (7, 13), (1, 5)])
def test_initial_offsets_keep_exactly_the_base_size(size, n):
    tau = 25.0
    mu = ref.sigmoid_mu_init_for_size(size, n, tau, T)
    assert ref.sigmoid_size(mu, tau, T, n) == pytest.approx(size, rel=1e-12)
    assert ref.kept_prefix(ref.sigmoid_mask(ref.axis_coordinates(n), mu, tau, T)) == size


def test_full_size_initialisation_weights_the_last_entry_by_085():
    mu = ref.sigmoid_mu_init_for_size(1025, 1025, 50.0, T)
    assert ref.sigmoid_mask(1.0, mu, 50.0, T) == pytest.approx(0.85, rel=1e-12)


@pytest.mark.parametrize("n", [3, 33, 85, 2049])
def test_gaussian_clamps_keep_three_taps_and_stay_inside(n):
    lo, hi = ref.gaussian_sigma_bounds(n, T)
    x = ref.axis_coordinates(n)
    assert np.count_nonzero(ref.gaussian_mask(x, lo, T)) == 3
    assert np.count_nonzero(ref.gaussian_mask(x, hi, T)) == n
    assert ref.gaussian_cutoff(hi, T) == pytest.approx(1.0, rel=1e-12)


def test_initial_kernel_sigma_at_2048():
    # sigma = 0.0325 (Sec. 3): cutoff 0.0697 of [-1, 1] -> 143 of 2049 taps
    x = ref.axis_coordinates(2049)
    kept = np.count_nonzero(ref.gaussian_mask(x, 0.0325, T))
    assert kept == 2 * math.floor(ref.gaussian_cutoff(0.0325, T) * 1024) + 1 == 143


def test_clip_size():
    assert ref.clip_size(300.0, 280) == 280
    assert ref.clip_size(12.5, 280) == 12.5
