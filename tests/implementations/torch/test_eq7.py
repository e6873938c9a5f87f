"""Block level: PyTorch `trim` and `virtual` compute Eq. 7.

A block's convolution path (`ResidualBlock.conv_path`: Gaussian kernel mask, kernel on the full
tap grid, resolution mask on the product spectrum, crop in trim) against the float64 NumPy
reference `implementations.common.reference`, at Table 6's w0 values, for several
resolution-mask states (no crop, mild and strong crops, odd sizes, a rectangular 2D crop, one
axis cut beside one whose mask reaches the Nyquist bin), under both kernel normalisations
(`ModelConfig.kernel_scale`): relative error <= 1e-9. Then the sigma
floor: at every kept-bin count the floor keeps >= 3 taps on the block's own grid and d loss / d
sigma is non-zero there.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from implementations.common import grids
from implementations.common import masks as ref
from implementations.common import reference as R
from implementations.common.config import tiny_config
from implementations.torch.fourier import masked_conv
from implementations.torch.masks import coordinates
from implementations.torch.model import build_model
from tests.implementations.eq7_cases import KERNEL_SCALES, STATES, W0, scale_for_reference

T = 0.1


def _block(shape, w0, mu, sigma, mode, kernel_scale="init"):
    cfg = tiny_config(
        "kr", shape, in_channels=1, out_size=2, width=5, blocks=1, kernel_hidden=32, w0=w0,
        mode=mode, kernel_scale=kernel_scale,
    )  # fmt: skip
    torch.manual_seed(0)
    model = build_model(cfg).double()
    block = model.blocks[0]
    with torch.no_grad():
        block.res_mask.mu.copy_(torch.tensor(mu, dtype=torch.float64))
        block.kernel_mask.sigma.copy_(torch.tensor(sigma, dtype=torch.float64))
    return cfg, model, block


def _raw_kernel(model, shape, n):
    """The kernel network's values on the block's full tap grid: (n, *K)."""
    axes = [coordinates(grids.kernel_taps(s), model.kernel_net.freqs) for s in shape]
    mesh = torch.meshgrid(*axes, indexing="ij")
    coords = torch.stack([m.reshape(-1) for m in mesh], dim=-1)
    with torch.no_grad():
        rows = model.kernel_net.rows(model.kernel_net.features(coords), 0, n)
    return rows.reshape(n, *[len(a) for a in axes]).numpy()


def reference_conv(model, block, cfg, h, resolution):
    shape = cfg.input_shape
    raw = _raw_kernel(model, shape, cfg.width)
    # the reference multiplies the kernel network's values by 1 / sqrt(taps) (the `forward`
    # normalisation); under `init` the weights already carry that factor
    raw = raw * scale_for_reference(cfg)
    psi = R.render_kernel(raw, tuple(float(s) for s in block.kernel_mask.sigma.detach()), T)
    masks = [
        R.resolution_mask_values(s, float(block.res_mask.mu.detach()[a]), cfg.tau_resolution, T)
        for a, s in enumerate(shape)
    ]
    return R.eq7(h, psi, masks, resolution)


@pytest.mark.parametrize("kernel_scale", KERNEL_SCALES)
@pytest.mark.parametrize("mode", ["trim", "virtual"])
@pytest.mark.parametrize("w0", W0)
@pytest.mark.parametrize("state", STATES, ids=lambda s: f"{s[0]}-{s[1]}")
def test_block_convolution_is_eq7(mode, w0, state, kernel_scale):
    shape, mu, sigma = state
    cfg, model, block = _block(shape, w0, mu, sigma, mode, kernel_scale)
    h = torch.randn(
        2, cfg.width, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    with torch.no_grad():
        _, _, plans = model.plan(mode == "trim")
        y = block.conv_path(h, model.kernel_net, plans[0]).numpy()
    want = reference_conv(model, block, cfg, h.numpy(), plans[0].resolution)
    assert y.shape == want.shape == (2, cfg.width, *plans[0].resolution)
    if mode == "virtual":
        assert plans[0].resolution == shape
    err = np.abs(y - want).max() / np.abs(want).max()
    assert err <= 1e-9, err


def test_trim_crops_where_the_states_say():
    crops = []
    for shape, mu, sigma in STATES:
        _, model, _ = _block(shape, 21500.0, mu, sigma, "trim")
        _, _, plans = model.plan(True)
        crops.append(plans[0].resolution != shape)
    assert crops == [False] + [True] * 9


def test_masked_conv_gradients():
    """gradcheck of Eq. 7 (input, kernel window, mask values) with and without the crop."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 2, 13, dtype=torch.float64, generator=g, requires_grad=True)
    k = torch.randn(2, 9, dtype=torch.float64, generator=g, requires_grad=True)  # a window
    m = torch.linspace(1.0, 0.0, 14, dtype=torch.float64)
    m = torch.where(m >= 0.4, m, torch.zeros_like(m)).requires_grad_()
    kept = (int(torch.count_nonzero(m)),)
    r = (grids.resolution_for_padded_bins(kept[0], 13),)
    assert r[0] < 13
    for res in ((13,), r):
        assert torch.autograd.gradcheck(
            lambda a, b, c, res=res: masked_conv(a, b, [c], kept, res), (x, k, m)
        )


def _at_kept(cfg, axis_kept):
    """mu per axis whose P-bin mask keeps exactly the given counts (None where unreachable)."""
    mus = []
    for s, k in zip(cfg.input_shape, axis_kept):
        x = grids.padded_frequency_coordinates(s)
        # cutoff halfway between the last kept and the first dropped P-bin
        cut = (x[k - 1] + x[k]) / 2 if k < len(x) else x[-1] + 1.0
        mu = ref.sigmoid_mu_from_cutoff(cut, cfg.tau_resolution, T)
        lo, hi = ref.sigmoid_mu_bounds(cfg.tau_resolution)
        if not lo <= mu <= hi:
            return None
        mus.append(mu)
    return mus


@pytest.mark.parametrize("mode", ["trim", "virtual"])
def test_sigma_gradient_is_nonzero_at_the_floor_for_every_kept_bin_count(mode):
    """At the floor of every reachable resolution the kernel keeps >= 3 taps on the block's own
    grid and d loss / d sigma != 0 (a floor computed for the full grid leaves trim with a
    gradient of exactly 0, e.g. at resolutions 540 and 240 of 1024)."""
    length = 64
    cfg, model, block = _block((length,), 27500.0, (0.0,), (0.1,), mode)
    cfg = cfg.replace(tau_resolution=25.0)  # tau 25 reaches the smallest resolutions
    torch.manual_seed(0)
    model = build_model(cfg).double()
    block = model.blocks[0]
    h = torch.randn(2, cfg.width, length, dtype=torch.float64)
    g = torch.randn(2, cfg.width, length, dtype=torch.float64)
    seen = 0
    for k in range(1, grids.padded_bins(length) + 1):
        mus = _at_kept(cfg, (k,))
        if mus is None:
            continue
        with torch.no_grad():
            block.res_mask.mu.copy_(torch.tensor(mus, dtype=torch.float64))
            block.kernel_mask.sigma.fill_(1e-6)
        model.clamp_masks()  # raises sigma to the floor of the current resolution
        floor = ref.kernel_sigma_floor(k, length, T)
        assert float(block.kernel_mask.sigma.detach()) == pytest.approx(floor, rel=1e-12)
        _, _, plans = model.plan(mode == "trim")
        if mode == "trim":
            assert plans[0].kept_bins == (k,)
        r = grids.resolution_for_padded_bins(k, length)
        if r >= 3:
            assert block.kernel_size_at((r,), block.kernel_mask.sigma)[0] >= 3
        model.zero_grad()
        y = block.conv_path(h, model.kernel_net, plans[0])
        (y * g[..., : y.shape[-1]]).sum().backward()
        grad = float(block.kernel_mask.sigma.grad)
        assert abs(grad) > 1e-8, (k, r, grad)
        seen += 1
    assert seen >= 20
