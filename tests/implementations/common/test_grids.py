"""Grid conventions: fast FFT lengths, kernel grids, resolutions of cropped spectra."""

import numpy as np
import pytest

from implementations.common import grids


def _smooth(n):
    for p in (2, 3, 5):
        while n % p == 0:
            n //= p
    return n == 1


@pytest.mark.parametrize("n", [1, 2, 3, 7, 97, 2047, 2048, 2049, 4095, 4097, 16384 + 5])
def test_fast_length_is_the_smallest_even_5_smooth(n):
    m = grids.fast_length(n)
    assert m >= n
    if n > 2:
        assert m % 2 == 0 and _smooth(m)
        assert not any(k % 2 == 0 and _smooth(k) for k in range(n, m))


def test_kernel_taps_are_odd_and_global():
    for r in (3, 4, 97, 2048):
        k = grids.kernel_taps(r)
        assert k % 2 == 1 and k >= r


@pytest.mark.parametrize("length", [17, 31, 32, 97, 2048])
def test_resolution_represents_the_kept_band(length):
    bins = grids.frequency_bins(length)
    assert grids.resolution_for_bins(bins, length) == length
    for k in range(1, bins):
        r = grids.resolution_for_bins(k, length)
        assert r <= length
        assert r >= 2 * k - 1  # enough samples for frequencies 0..k-1
        # a band-limited signal survives the round trip through r samples
        rng = np.random.default_rng(k)
        spec = np.zeros(bins, complex)
        spec[:k] = rng.normal(size=k) + 1j * rng.normal(size=k)
        spec[0] = spec[0].real
        x = np.fft.irfft(spec, n=length, norm="forward")
        if r < length:
            y = np.fft.irfft(spec[:k], n=r, norm="forward")
            back = np.fft.irfft(
                np.fft.rfft(y, norm="forward")[: (r + 1) // 2], length, norm="forward"
            )
            np.testing.assert_allclose(back, x, atol=1e-12)
