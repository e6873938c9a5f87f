"""The kernel network: Fourier features not aliased at initialisation (docs/design.md,
"Network")."""

import math

import numpy as np
import pytest
import torch

from implementations.common.grids import kernel_taps
from implementations.torch.kernels import BAND, W0_MAX, KernelNet


@pytest.mark.parametrize(("length", "w0"), [(1024, 12500.0), (2048, 30000.0), (32, 21500.0)])
def test_feature_frequencies_below_nyquist_of_the_largest_grid(length, w0):
    torch.manual_seed(0)
    taps = kernel_taps(length)
    net = KernelNet(1, 128, 4, 10, w0, (taps,))
    nyquist = (taps - 1) / 4.0  # cycles per unit on [-1, 1] with taps points
    freq = w0 * net.freqs.abs().max().item()
    assert freq <= BAND * (w0 / W0_MAX) * nyquist + 1e-9
    assert freq < nyquist


@pytest.mark.parametrize(("length", "w0"), [(256, 30000.0), (2048, 27500.0)])
def test_rendered_kernels_are_not_aliased_at_initialisation(length, w0):
    """Render on the largest grid and on a 4x finer one (which contains it): the kernel's
    energy above the coarse grid's Nyquist frequency must be small (< 2 %)."""
    torch.manual_seed(1)
    taps = kernel_taps(length)
    net = KernelNet(1, 128, 4, 16, w0, (taps,)).double()
    fine = 4 * (taps - 1) + 1
    x = torch.linspace(-1, 1, fine, dtype=torch.float64)[:, None]
    with torch.no_grad():
        k = net.rows(net.features(x), 0, 16).numpy()  # (16, fine)
    spec = np.abs(np.fft.rfft(k - k.mean(axis=1, keepdims=True), axis=1)) ** 2
    cut = (taps - 1) // 2 + 1  # bins of the coarse grid's band
    high = spec[:, cut:].sum() / spec.sum()
    assert high < 0.02


@pytest.mark.parametrize("kernel_scale", ["init", "forward"])
def test_outputs_have_unit_scale_at_initialisation(kernel_scale):
    """`forward`: unit-scale kernel values (the blocks multiply them by 1 / sqrt(taps));
    `init`: the weights carry that factor, so the values times sqrt(taps) have unit scale."""
    torch.manual_seed(2)
    net = KernelNet(2, 128, 4, 64, 20000.0, (33, 33), kernel_scale=kernel_scale)
    x = torch.rand(500, 2) * 2 - 1
    with torch.no_grad():
        std = net.rows(net.features(x), 0, 64).std().item()
    if kernel_scale == "init":
        std *= math.sqrt(33 * 33)
    assert 0.2 < std < 5.0, std
    assert math.isfinite(std)
