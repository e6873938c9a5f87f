"""Fourier-domain operations of the residual block (paper Sec. 2.4.2, Eqs. 5-7; method.md
"Convolution", "Learned downsampling"), channels-first: (B, C, L) or (B, C, H, W).

- `fft_conv`: centred, linear (zero-padded, non-circular) depthwise convolution; the padded
  length is a fast FFT length (`common.grids.conv_length`).
- `spectrum` / `from_spectrum`: amplitude-preserving transforms (norm="forward"), so a signal
  keeps its values when its spectrum is represented at another resolution.
- `crop_spectrum` / `embed_spectrum`: keep the first k non-negative frequency indices of every
  spatial axis (and, for the full-FFT axes of 2D inputs, the k - 1 negative ones), and place
  such a cropped spectrum into the spectrum of another resolution (zeros elsewhere).
- `resample`: Fourier resampling. Going up (the end of a block, Sec. 2.4.2) keeps every
  frequency of the coarse signal except the Nyquist index of an even-length axis, which has
  no unambiguous place on a finer grid; with our odd/5-smooth resolutions this is the only loss.
"""

from __future__ import annotations

import torch

from implementations.common.grids import conv_length


def _dims(ndim: int, data_dim: int) -> tuple[int, ...]:
    return tuple(range(ndim - data_dim, ndim))


def spectrum(x: torch.Tensor, data_dim: int) -> torch.Tensor:
    """rfft over the spatial axes, normalised by the number of samples."""
    return torch.fft.rfftn(x, dim=_dims(x.ndim, data_dim), norm="forward")


def from_spectrum(xf: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Inverse of `spectrum` at the spatial `shape`."""
    return torch.fft.irfftn(xf, s=shape, dim=_dims(xf.ndim, len(shape)), norm="forward")


def crop_spectrum(xf: torch.Tensor, kept: tuple[int, ...]) -> torch.Tensor:
    """Keep frequency indices |k| < kept[a] on every spatial axis a. `xf` is an rfftn output:
    the last axis holds non-negative indices only, earlier spatial axes are full FFT axes."""
    d = len(kept)
    out = xf[..., : kept[-1]]
    for a in range(d - 1):  # full-FFT axes: rows 0..k-1 and the k-1 negative ones at the end
        dim = xf.ndim - d + a
        k = kept[a]
        n = xf.shape[dim]
        if 2 * k - 1 >= n:
            continue
        pos = out.narrow(dim, 0, k)
        neg = out.narrow(dim, n - (k - 1), k - 1)
        out = torch.cat([pos, neg], dim=dim)
    return out


def embed_spectrum(xc: torch.Tensor, kept: tuple[int, ...], shape: tuple[int, ...]) -> torch.Tensor:
    """Place a spectrum cropped to `kept` indices into the rfftn spectrum of spatial `shape`."""
    d = len(shape)
    out = xc
    for a in range(d - 1):
        dim = xc.ndim - d + a
        k, n = kept[a], shape[a]
        if out.shape[dim] == n:
            continue
        pos = out.narrow(dim, 0, k)
        neg = out.narrow(dim, out.shape[dim] - (k - 1), k - 1)
        zshape = list(out.shape)
        zshape[dim] = n - (2 * k - 1)
        zeros = out.new_zeros(zshape)
        out = torch.cat([pos, zeros, neg], dim=dim)
    bins = shape[-1] // 2 + 1
    pad = bins - out.shape[-1]
    if pad > 0:
        out = torch.nn.functional.pad(out, (0, pad))
    elif pad < 0:
        out = out[..., :bins]
    return out


def resample(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Fourier-resample the spatial axes of x to `shape` (band-limited interpolation)."""
    src = tuple(x.shape[x.ndim - len(shape) :])
    if src == tuple(shape):
        return x
    kept = tuple(min((s + 1) // 2, (t + 1) // 2) for s, t in zip(src, shape))
    xf = crop_spectrum(spectrum(x, len(shape)), kept)
    return from_spectrum(embed_spectrum(xf, kept, shape), shape)


class _FFTConv(torch.autograd.Function):
    """Linear convolution via zero-padded real FFTs with a hand-written backward.

    With x and k zero-padded to P points (P >= S + K - 1, so circular == linear) and
    z = irfft(rfft(x) rfft(k)), the output is y = z[c : c + S]. Backward: g padded back into
    P points at [c, c + S); dL/dx = irfft(rfft(g) conj(rfft(k)))[:S] and
    dL/dk = irfft(sum_b rfft(g) conj(rfft(x)))[:K] (circular correlations). Autograd's own
    backward of rfft goes through full complex FFTs; this uses real ones only (about half the
    transform work of a step on a CPU).
    """

    @staticmethod
    def forward(ctx, x, kernel):
        d = kernel.ndim - 1
        spatial = tuple(x.shape[-d:])
        taps = tuple(kernel.shape[1:])
        padded = tuple(conv_length(s, k) for s, k in zip(spatial, taps))
        dims = _dims(x.ndim, d)
        xf = torch.fft.rfftn(x, s=padded, dim=dims)  # (B, C, *P')
        kf = torch.fft.rfftn(kernel, s=padded, dim=tuple(range(1, d + 1)))  # (C, *P')
        y = torch.fft.irfftn(xf * kf, s=padded, dim=dims)  # (B, C, *P): full linear conv
        for a, (s, k) in enumerate(zip(spatial, taps)):
            y = y.narrow(x.ndim - d + a, (k - 1) // 2, s)  # "same" window, centred kernel
        ctx.save_for_backward(xf, kf)
        ctx.meta = (spatial, taps, padded, dims)
        return y.contiguous()

    @staticmethod
    def backward(ctx, g):
        xf, kf = ctx.saved_tensors
        spatial, taps, padded, dims = ctx.meta
        d = len(spatial)
        pad = []
        for s, k, p in reversed(list(zip(spatial, taps, padded))):
            c = (k - 1) // 2
            pad += [c, p - c - s]
        gf = torch.fft.rfftn(torch.nn.functional.pad(g, pad), s=padded, dim=dims)  # (B, C, *P')
        gx = gk = None
        if ctx.needs_input_grad[0]:
            gx = torch.fft.irfftn(gf * kf.conj(), s=padded, dim=dims)
            for a, s in enumerate(spatial):
                gx = gx.narrow(g.ndim - d + a, 0, s)
            gx = gx.contiguous()
        if ctx.needs_input_grad[1]:
            kd = tuple(range(1, d + 1))
            gk = torch.fft.irfftn((gf * xf.conj()).sum(0), s=padded, dim=kd)  # (C, *P)
            for a, k in enumerate(taps):
                gk = gk.narrow(1 + a, 0, k)
            gk = gk.contiguous()
        return gx, gk


def fft_conv(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Centred linear depthwise convolution.

    x: (B, C, *S); kernel: (C, *K) with every K odd. Returns (B, C, *S):
    y[n] = sum_j kernel[j] x[n - (j - c)], c = (K - 1) / 2 per axis, x zero outside.
    """
    return _FFTConv.apply(x, kernel)
