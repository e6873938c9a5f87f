"""Fourier-domain convolution and resampling against direct float64 computations."""

import numpy as np
import pytest
import torch

from implementations.torch.fourier import (
    crop_spectrum,
    embed_spectrum,
    fft_conv,
    real_spectrum,
    resample,
    spectrum,
)


def _direct_same_conv_1d(x, k):
    c = (len(k) - 1) // 2
    full = np.convolve(x, k)  # length L + K - 1
    return full[c : c + len(x)]


def test_fft_conv_1d_equals_direct_linear_convolution():
    rng = np.random.default_rng(0)
    for length, taps in ((97, 7), (97, 195), (64, 1), (33, 65)):
        x = rng.normal(size=(2, 3, length))
        k = rng.normal(size=(3, taps))
        got = fft_conv(torch.from_numpy(x), torch.from_numpy(k)).numpy()
        want = np.stack([[_direct_same_conv_1d(x[b, c], k[c]) for c in range(3)] for b in range(2)])
        np.testing.assert_allclose(got, want, atol=1e-11, rtol=0)


def test_fft_conv_2d_equals_direct_linear_convolution():
    from scipy.signal import convolve2d

    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 2, 31, 17))
    k = rng.normal(size=(2, 9, 35))
    got = fft_conv(torch.from_numpy(x), torch.from_numpy(k)).numpy()
    for b in range(2):
        for c in range(2):
            full = convolve2d(x[b, c], k[c])  # (31 + 8, 17 + 34)
            np.testing.assert_allclose(got[b, c], full[4 : 4 + 31, 17 : 17 + 17], atol=1e-11)


def test_resample_interpolates_cosine_band_limited_signals_exactly():
    # cell-centred grids (sample i of n at (i + 1/2) / n) and a cosine series with fewer
    # frequencies than either grid has samples: resampling is exact both ways, odd sizes
    def signal(h, w):
        ty, tx = np.meshgrid((np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w, indexing="ij")
        return (
            1.0
            + np.cos(np.pi * 2 * ty) * np.cos(np.pi * 3 * tx)
            + 0.5 * np.cos(np.pi * 5 * ty)
            - 0.3 * np.cos(np.pi * 7 * tx) * np.cos(np.pi * 1 * ty)
        )

    up = resample(torch.from_numpy(signal(15, 9))[None, None], (31, 17))[0, 0].numpy()
    np.testing.assert_allclose(up, signal(31, 17), atol=1e-12)
    down = resample(torch.from_numpy(signal(31, 17))[None, None], (15, 9))[0, 0].numpy()
    np.testing.assert_allclose(down, signal(15, 9), atol=1e-12)


def test_resample_has_no_wrap_around_ringing():
    """A ramp is not periodic: the periodic (DFT) interpolation rings at the wrap by about half
    the jump; the even extension is continuous there (what a block's output needs)."""
    t = (np.arange(24) + 0.5) / 24
    up = resample(torch.from_numpy(t)[None, None], (96,))[0, 0].numpy()
    want = (np.arange(96) + 0.5) / 96
    assert np.abs(up - want).max() < 0.02


def test_crop_then_embed_keeps_exactly_the_low_band():
    x = torch.randn(1, 1, 20, 12, dtype=torch.float64)
    f = spectrum(x, 2)  # (1, 1, 20, 7)
    kept = (4, 3)
    c = crop_spectrum(f, kept)
    assert c.shape[-2:] == (7, 3)
    e = embed_spectrum(c, kept, (20, 12))
    assert e.shape == f.shape
    rows = [0, 1, 2, 3, 17, 18, 19]
    np.testing.assert_array_equal(e[..., rows, :3].numpy(), f[..., rows, :3].numpy())
    mask = torch.ones_like(e.real, dtype=torch.bool)
    mask[..., rows, :3] = False
    assert torch.all(e[mask] == 0)


def test_fft_conv_hand_written_backward_passes_gradcheck():
    g = torch.Generator().manual_seed(3)
    for xs, ks in (((2, 3, 13), (3, 5)), ((2, 2, 7, 6), (2, 3, 9)), ((1, 2, 9), (2, 19))):
        x = torch.randn(*xs, generator=g, dtype=torch.float64, requires_grad=True)
        k = torch.randn(*ks, generator=g, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(fft_conv, (x, k))


def _rfftn_cropped(x, dims, padded, kept):
    """The plain autograd path `real_spectrum` replaces."""
    dd = tuple(d % x.ndim for d in dims)
    xf = torch.fft.rfftn(x, s=padded, dim=dd)
    if kept is None:
        return xf
    if len(dd) == 1:
        return xf.narrow(dd[0], 0, kept[0])
    return crop_spectrum(xf, kept)


@pytest.mark.parametrize(
    ("shape", "dims", "padded", "kept"),
    [
        ((2, 3, 8), (-1,), (16,), None),
        ((2, 3, 8), (-1,), (16,), (5,)),
        ((2, 3, 7), (-1,), (15,), (8,)),  # odd P: no Nyquist bin, every bin kept
        ((2, 2, 6, 5), (-2, -1), (12, 10), (4, 3)),  # rectangular 2D crop
        ((2, 2, 5, 7), (-2, -1), (11, 14), None),
        ((2, 3, 6, 4), (-2,), (12,), (4,)),  # one non-trailing axis (resample's case)
    ],
)
def test_real_spectrum_backward_equals_autograd_of_rfftn(shape, dims, padded, kept):
    """The real-FFT backward of `real_spectrum` (cropped or not, one axis or trailing 2D,
    even and odd padded sizes, Nyquist bin included) equals autograd through
    torch.fft.rfftn + crop (float64, 1e-12) and passes gradcheck."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)
    out_shape = _rfftn_cropped(x, dims, padded, kept).shape
    w = torch.randn(*out_shape, generator=g, dtype=torch.complex128)

    def loss(y):
        return (y * w).real.sum() + (y.abs() ** 2).sum()

    (want,) = torch.autograd.grad(loss(_rfftn_cropped(x, dims, padded, kept)), x)
    (got,) = torch.autograd.grad(loss(real_spectrum(x, dims, padded, kept)), x)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(lambda t: real_spectrum(t, dims, padded, kept), (x,))
