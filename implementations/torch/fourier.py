"""Fourier-domain operations of the residual block (paper Sec. 2.4.2, Eqs. 5-7; docs/design.md,
"Network" and "Learned downsampling"), channels-first: (B, C, L) or (B, C, H, W).

- `fft_conv`: centred, linear (zero-padded, non-circular) depthwise convolution; the padded
  length is a fast FFT length (`common.grids.conv_length`).
- `spectrum` / `from_spectrum`: amplitude-preserving transforms (norm="forward"), so a signal
  keeps its values when its spectrum is represented at another resolution.
- `crop_spectrum` / `embed_spectrum`: keep the first k non-negative frequency indices of every
  spatial axis (and, for the full-FFT axes of 2D inputs, the k - 1 negative ones), and place
  such a cropped spectrum into the spectrum of another resolution (zeros elsewhere).
- `masked_conv`: Eq. 7, the convolution of a block with a resolution mask: kernel and input
  transformed on P = 2 L points, the product spectrum masked and (trim) cropped, transformed
  back at the block's resolution (`common.grids`, `common.reference` for the conventions).
- `resample`: band-limited resampling between CELL-CENTRED grids (sample i of n at position
  (i + 1/2) / n of the axis, `common.grids`), through the even (half-sample symmetric)
  extension: a cosine series, exact for signals with fewer cosine frequencies than both grids
  have samples. A block's output is not periodic over its axis (linear convolutions, zero
  padding), so the periodic (DFT) interpolation rings at the wrap from the last to the first
  sample (~50 % of the signal there, measured on Eq. 7 outputs); the even extension is
  continuous. The end of a block (Sec. 2.4.2: "upsample features ... to the resolution of the
  input") uses it.
"""

from __future__ import annotations

import math

import torch

from implementations.common.grids import conv_length, padded_length


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


def embed_spectrum(
    xc: torch.Tensor, kept: tuple[int, ...], shape: tuple[int, ...], pad_last: bool = True
) -> torch.Tensor:
    """Place a spectrum cropped to `kept` indices into the rfftn spectrum of spatial `shape`
    (with pad_last=False the real axis is left short: irfftn(s=shape) zero-pads it)."""
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
    if not pad_last:
        return out
    bins = shape[-1] // 2 + 1
    pad = bins - out.shape[-1]
    if pad > 0:
        out = torch.nn.functional.pad(out, (0, pad))
    elif pad < 0:
        out = out[..., :bins]
    return out


def _resample_axis(x: torch.Tensor, dim: int, n: int) -> torch.Tensor:
    """One axis of `resample`: m cell-centred samples -> n."""
    m = x.shape[dim]
    if m == n:
        return x
    e = torch.cat([x, torch.flip(x, dims=(dim,))], dim=dim)  # even extension, period 2m
    k = min(m, n)
    ef = real_spectrum(e, (dim,), (2 * m,), (k,))  # bins 0 .. k-1 of 0 .. m (m is 0 here)
    # sample 0 of m sits at 1 / (2m) of the axis, of n at 1 / (2n): shift by the difference
    f = torch.arange(k, device=x.device, dtype=x.dtype)
    # (the amplitude factor n / m rides on the phase vector: no pass over the batch)
    phase = torch.polar(torch.full_like(f, n / m), torch.pi * f * (1.0 / (2 * n) - 1.0 / (2 * m)))
    shape = [1] * x.ndim
    shape[dim] = k
    ef = ef * phase.view(shape)
    y = torch.fft.irfft(ef, n=2 * n, dim=dim)
    return y.narrow(dim, 0, n)


def resample(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Resample the spatial axes of x to `shape`: cell-centred grids, even extension (module
    docstring), axis by axis."""
    d = len(shape)
    for a, n in enumerate(shape):
        x = _resample_axis(x, x.ndim - d + a, n)
    return x


def crop_phase(kept: tuple[int, ...], padded: tuple[int, ...], resolution: tuple[int, ...], like):
    """Per axis, the phase that moves a cropped P-grid spectrum (`crop_spectrum` layout: bins
    0 .. k-1, then -(k-1) .. -1 on full-FFT axes) by s = (L / r - 1) / 2 input samples, so that
    sample i of the r-point inverse is at position (i + 1/2) L / r - 1/2: the cell centres of
    the coarse grid (`resample`)."""
    d = len(kept)
    out = []
    for a, (k, p, r) in enumerate(zip(kept, padded, resolution)):
        length = p // 2
        s = (length / r - 1.0) / 2.0
        if a == d - 1:
            f = torch.arange(k, dtype=like.dtype, device=like.device)
        else:
            pos = torch.arange(k, dtype=like.dtype, device=like.device)
            f = torch.cat([pos, pos[1:].flip(0).neg()]) if 2 * k - 1 < p else None
            if f is None:  # nothing was cropped on this axis: its full signed index
                j = torch.arange(p, dtype=like.dtype, device=like.device)
                f = torch.where(j < (p + 1) // 2, j, j - p)
        out.append(torch.polar(torch.ones_like(f), 2.0 * torch.pi * f * s / p))
    return out


class _Spectrum(torch.autograd.Function):
    """rfftn of x zero-padded to `padded` points over `dims` (the last of them the real axis),
    optionally cropped to `kept` indices, with a real-FFT backward.

    For X = F x (x real), dL/dx_n = sum_k Re(G_k e^{+2 pi i k n / P}) over the computed bins.
    irfftn counts each interior bin of the real axis twice (its conjugate partner) and takes
    the real part of the edge bins, so that sum is prod(P) * irfftn(G with interior bins of the
    real axis halved). Autograd's own backward of rfftn pads G to the full complex spectrum and
    runs a complex inverse FFT: about twice the work at the same size.
    """

    @staticmethod
    def forward(ctx, x, dims, padded, kept):
        xf = torch.fft.rfftn(x, s=padded, dim=dims)
        if kept is not None:
            xf = _crop(xf, dims, kept)
        ctx.meta = (tuple(x.shape[d] for d in dims), dims, padded, kept)
        return xf

    @staticmethod
    def backward(ctx, g):
        spatial, dims, padded, kept = ctx.meta
        # halve the interior bins of the real axis on the (cropped, small) gradient, before
        # zero-padding it; norm="forward" leaves out irfftn's 1 / prod(P)
        p, last = padded[-1], dims[-1]
        g = g * 0.5
        g.narrow(last, 0, 1).mul_(2.0)
        if p % 2 == 0 and g.shape[last] == p // 2 + 1:  # the Nyquist bin is kept
            g.narrow(last, p // 2, 1).mul_(2.0)
        if kept is not None and len(dims) > 1:  # full-FFT axes: negative bins at their end
            g = embed_spectrum(g, kept, padded, pad_last=False)
        # irfftn zero-pads the real axis itself (s=padded): no explicit zero tensor
        gx = torch.fft.irfftn(g, s=padded, dim=dims, norm="forward")
        for dim, s in zip(dims, spatial):
            gx = gx.narrow(dim, 0, s)
        return gx.contiguous(), None, None, None


def _crop(xf: torch.Tensor, dims: tuple[int, ...], kept: tuple[int, ...]) -> torch.Tensor:
    if len(dims) == 1:
        return xf.narrow(dims[0], 0, kept[0])
    return crop_spectrum(xf, kept)  # dims are the trailing axes (checked by `real_spectrum`)


def real_spectrum(
    x: torch.Tensor,
    dims: tuple[int, ...],
    padded: tuple[int, ...],
    kept: tuple[int, ...] | None = None,
) -> torch.Tensor:
    """`torch.fft.rfftn(x, s=padded, dim=dims)`, cropped to `kept` (`crop_spectrum` layout;
    one axis: the first kept bins) when given, differentiable with real FFTs (`_Spectrum`).
    Several axes must be x's trailing ones."""
    dims = tuple(d % x.ndim for d in dims)
    if len(dims) > 1 and dims != _dims(x.ndim, len(dims)):
        raise ValueError(f"real_spectrum: axes {dims} must be the trailing axes of {x.ndim}")
    return _Spectrum.apply(x, dims, tuple(padded), None if kept is None else tuple(kept))


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


def wrap_kernel(kernel: torch.Tensor, padded: tuple[int, ...]) -> torch.Tensor:
    """(C, *K) centred kernel (K odd) -> (C, *P): tap t at index (t - (K - 1) / 2) mod P."""
    d = kernel.ndim - 1
    pad = []
    for k, p in reversed(list(zip(kernel.shape[1:], padded))):
        pad += [0, p - k]
    out = torch.nn.functional.pad(kernel, pad)
    shifts = tuple(-((k - 1) // 2) for k in kernel.shape[1:])
    return torch.roll(out, shifts, dims=tuple(range(1, d + 1)))


def masked_conv(
    x: torch.Tensor,
    kernel: torch.Tensor,
    masks: list[torch.Tensor],
    kept: tuple[int, ...],
    resolution: tuple[int, ...],
) -> torch.Tensor:
    """Eq. 7: F^-1[crop(m . F[x] . F[kernel])], a centred linear depthwise convolution on
    P = 2 L points per axis whose product spectrum is multiplied by the resolution mask and,
    when `resolution` is below the input's, cropped to `kept` P-bins and transformed back on
    P_r = 2 r points (scaled by P_r / P): output sample i is the band-limited full-resolution
    result at position (i + 1/2) L / r - 1/2, the coarse grid's cell centre (`crop_phase`,
    `common.reference.eq7`).

    x: (B, C, *L); kernel: (C, *K), K odd <= L + 1 (the kept window of the full tap grid is
    enough: taps outside it are 0); masks: per axis the mask's L + 1 values at the P-grid's
    non-negative frequencies; kept: per axis the non-zero prefix of those. Returns
    (B, C, *resolution)."""
    d = kernel.ndim - 1
    spatial = tuple(x.shape[-d:])
    padded = tuple(padded_length(s) for s in spatial)
    dims = _dims(x.ndim, d)
    kdims = tuple(range(1, d + 1))
    kf = torch.fft.rfftn(wrap_kernel(kernel, padded), s=padded, dim=kdims)  # (C, *P')
    for a, m in enumerate(masks):  # the mask multiplies the kernel side: no batch axis
        if a < d - 1:  # full-FFT axis: index j holds frequency min(j, P - j)
            p = padded[a]
            j = torch.arange(p, device=m.device)
            m = m[torch.minimum(j, p - j)]
        shape = [1] * kf.ndim
        shape[1 + a] = -1
        kf = kf * m.view(shape)
    if tuple(resolution) == spatial:
        xf = real_spectrum(x, dims, padded)  # (B, C, *P')
        y = torch.fft.irfftn(xf * kf, s=padded, dim=dims)
        for a, s in enumerate(spatial):
            y = y.narrow(x.ndim - d + a, 0, s)
        return y
    small = tuple(padded_length(r) for r in resolution)
    # the kernel side (no batch axis) carries the phase and the scale P_r / P
    kc = crop_spectrum(kf, kept) * math.prod(q / p for q, p in zip(small, padded))
    for a, ph in enumerate(crop_phase(kept, padded, resolution, kf.real)):
        shape = [1] * kc.ndim
        shape[1 + a] = -1
        kc = kc * ph.view(shape)
    z = real_spectrum(x, dims, padded, kept) * kc  # only the kept bins of the input's spectrum
    y = torch.fft.irfftn(embed_spectrum(z, kept, small, pad_last=False), s=small, dim=dims)
    for a, r in enumerate(resolution):
        y = y.narrow(x.ndim - d + a, 0, r)
    return y
