"""Fourier-domain operations of the residual block (paper Sec. 2.4.2, Eqs. 5-7; docs/design.md,
"Network" and "Learned downsampling"), channels-LAST: (B, L, C) or (B, H, W, C).

Mirrors `implementations.torch.fourier` (channels-first there); the spatial axes are
1..data_dim here instead of the last data_dim axes. The model (virtual mode) uses `fft_conv`
and `masked_conv` without a crop; the crop path of `masked_conv` (with `crop_spectrum`,
`embed_spectrum`, `crop_phase`), `resample`, `spectrum` and `from_spectrum` are kept for name
parity with PyTorch's trim mode and tested against the PyTorch versions.

- `fft_conv`: centred, linear (zero-padded, non-circular) depthwise convolution; the padded
  length is `common.grids.conv_length`, the same as PyTorch, so float64 results agree to
  rounding.
- `spectrum` / `from_spectrum`: amplitude-preserving transforms (norm="forward").
- `masked_conv`: Eq. 7 (a block with a resolution mask), as PyTorch's: P = 2 L points, the
  product spectrum masked and, when a smaller resolution is asked for, cropped.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from implementations.common.grids import conv_length, padded_length


def _dims(data_dim: int) -> tuple[int, ...]:
    """Spatial axes of a channels-last array (B, *S, C)."""
    return tuple(range(1, data_dim + 1))


def spectrum(x: jax.Array, data_dim: int) -> jax.Array:
    """rfft over the spatial axes, normalised by the number of samples. (B, *S, C) ->
    (B, *F, C), the last spatial axis halved."""
    return jnp.fft.rfftn(x, axes=_dims(data_dim), norm="forward")


def from_spectrum(xf: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Inverse of `spectrum` at the spatial `shape`."""
    return jnp.fft.irfftn(xf, s=shape, axes=_dims(len(shape)), norm="forward")


def crop_spectrum(xf: jax.Array, kept: tuple[int, ...]) -> jax.Array:
    """Keep frequency indices |k| < kept[a] on every spatial axis a of a channels-last rfftn
    output (B, *F, C): the last spatial axis holds non-negative indices only."""
    d = len(kept)
    out = jax.lax.slice_in_dim(xf, 0, kept[-1], axis=d)
    for a in range(d - 1):  # full-FFT axes: rows 0..k-1 and the k-1 negative ones at the end
        axis = 1 + a
        k, n = kept[a], xf.shape[axis]
        if 2 * k - 1 >= n:
            continue
        pos = jax.lax.slice_in_dim(out, 0, k, axis=axis)
        neg = jax.lax.slice_in_dim(out, n - (k - 1), n, axis=axis)
        out = jnp.concatenate([pos, neg], axis=axis)
    return out


def embed_spectrum(xc: jax.Array, kept: tuple[int, ...], shape: tuple[int, ...]) -> jax.Array:
    """Place a spectrum cropped to `kept` indices into the rfftn spectrum of spatial `shape`."""
    d = len(shape)
    out = xc
    for a in range(d - 1):
        axis = 1 + a
        k, n = kept[a], shape[a]
        if out.shape[axis] == n:
            continue
        m = out.shape[axis]
        pos = jax.lax.slice_in_dim(out, 0, k, axis=axis)
        neg = jax.lax.slice_in_dim(out, m - (k - 1), m, axis=axis)
        zshape = list(out.shape)
        zshape[axis] = n - (2 * k - 1)
        out = jnp.concatenate([pos, jnp.zeros(zshape, out.dtype), neg], axis=axis)
    bins = shape[-1] // 2 + 1
    pad = bins - out.shape[d]
    if pad > 0:
        widths = [(0, 0)] * out.ndim
        widths[d] = (0, pad)
        out = jnp.pad(out, widths)
    elif pad < 0:
        out = jax.lax.slice_in_dim(out, 0, bins, axis=d)
    return out


def _resample_axis(x: jax.Array, axis: int, n: int) -> jax.Array:
    """One axis of `resample`: m cell-centred samples -> n (PyTorch's `_resample_axis`)."""
    m = x.shape[axis]
    if m == n:
        return x
    e = jnp.concatenate([x, jnp.flip(x, axis=axis)], axis=axis)  # even extension, period 2m
    k = min(m, n)
    ef = jax.lax.slice_in_dim(jnp.fft.rfft(e, axis=axis), 0, k, axis=axis)
    f = np.arange(k)
    phase = np.exp(1j * np.pi * f * (1.0 / (2 * n) - 1.0 / (2 * m)))
    shape = [1] * x.ndim
    shape[axis] = k
    ef = ef * jnp.asarray(phase.reshape(shape), ef.dtype)
    y = jnp.fft.irfft(ef, n=2 * n, axis=axis) * (n / m)
    return jax.lax.slice_in_dim(y, 0, n, axis=axis)


def resample(x: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Resample the spatial axes of x (B, *S, C) to `shape`: cell-centred grids, even
    extension (PyTorch's `resample` documents why), axis by axis."""
    for a, n in enumerate(shape):
        x = _resample_axis(x, 1 + a, n)
    return x


def crop_phase(
    kept: tuple[int, ...], padded: tuple[int, ...], resolution: tuple[int, ...]
) -> list[np.ndarray]:
    """Per axis, the phase that puts the cropped output on the coarse grid's cell centres
    (PyTorch's `crop_phase`; static, NumPy)."""
    d = len(kept)
    out = []
    for a, (k, p, r) in enumerate(zip(kept, padded, resolution)):
        s = (p // 2 / r - 1.0) / 2.0
        if a == d - 1:
            f = np.arange(k)
        elif 2 * k - 1 < p:
            f = np.concatenate([np.arange(k), np.arange(1 - k, 0)])
        else:
            j = np.arange(p)
            f = np.where(j < (p + 1) // 2, j, j - p)
        out.append(np.exp(2j * np.pi * f * s / p))
    return out


def fft_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """Centred linear depthwise convolution, channels-last.

    x: (B, *S, C); kernel: (*K, C) with every K odd. Returns (B, *S, C):
    y[n] = sum_j kernel[j] x[n - (j - c)], c = (K - 1) / 2 per axis, x zero outside.

    The backward is JAX's own (its transpose of `rfft` goes through a complex FFT). A
    hand-written real-FFT backward like PyTorch's `_FFTConv` speeds up this convolution alone
    (by about a sixth on a CPU) but no whole train step measurably, and it pushes a float32
    resolution-mask gradient that cancels to 1e-7 past parity's 2e-4 tolerance
    (pipelines/parity.py, kr 1D global).
    """
    d = kernel.ndim - 1
    spatial = tuple(x.shape[1 : 1 + d])
    taps = tuple(kernel.shape[:d])
    padded = tuple(conv_length(s, k) for s, k in zip(spatial, taps))
    xf = jnp.fft.rfftn(x, s=padded, axes=_dims(d))  # (B, *P', C)
    kf = jnp.fft.rfftn(kernel, s=padded, axes=tuple(range(d)))  # (*P', C)
    y = jnp.fft.irfftn(xf * kf, s=padded, axes=_dims(d))  # (B, *P, C): full linear convolution
    for a, (s, k) in enumerate(zip(spatial, taps)):
        y = jax.lax.slice_in_dim(y, (k - 1) // 2, (k - 1) // 2 + s, axis=1 + a)  # "same" window
    return y


def wrap_kernel(kernel: jax.Array, padded: tuple[int, ...]) -> jax.Array:
    """(*K, C) centred kernel (K odd) -> (*P, C): tap t at index (t - (K - 1) / 2) mod P."""
    d = kernel.ndim - 1
    widths = [(0, p - k) for k, p in zip(kernel.shape[:d], padded)] + [(0, 0)]
    out = jnp.pad(kernel, widths)
    shifts = tuple(-((k - 1) // 2) for k in kernel.shape[:d])
    return jnp.roll(out, shifts, axis=tuple(range(d)))


def masked_conv(
    x: jax.Array,
    kernel: jax.Array,
    masks: list[jax.Array],
    kept: tuple[int, ...] | None = None,
    resolution: tuple[int, ...] | None = None,
) -> jax.Array:
    """Eq. 7, channels-last: x (B, *L, C), kernel (*K, C), masks per axis (L + 1 values at the
    P-grid's non-negative frequencies). Without `resolution` (virtual) the first L samples of
    F_P^-1[m F_P[x] F_P[kernel]]; with it, the spectrum cropped to `kept` P-bins and
    transformed back on P_r = 2 r points (scaled by P_r / P). See PyTorch's `masked_conv`."""
    d = kernel.ndim - 1
    spatial = tuple(x.shape[1 : 1 + d])
    padded = tuple(padded_length(s) for s in spatial)
    kf = jnp.fft.rfftn(wrap_kernel(kernel, padded), s=padded, axes=tuple(range(d)))  # (*P', C)
    for a, m in enumerate(masks):  # the mask multiplies the kernel side: no batch axis
        if a < d - 1:  # full-FFT axis: index j holds frequency min(j, P - j)
            j = np.arange(padded[a])
            m = m[np.minimum(j, padded[a] - j)]
        shape = [1] * kf.ndim
        shape[a] = -1
        kf = kf * m.reshape(shape)
    xf = jnp.fft.rfftn(x, s=padded, axes=_dims(d))  # (B, *P', C)
    if resolution is None or tuple(resolution) == spatial:
        y = jnp.fft.irfftn(xf * kf, s=padded, axes=_dims(d))
        for a, s in enumerate(spatial):
            y = jax.lax.slice_in_dim(y, 0, s, axis=1 + a)
        return y
    small = tuple(padded_length(r) for r in resolution)
    kc = crop_spectrum(kf[None], kept)
    for a, ph in enumerate(crop_phase(kept, padded, resolution)):
        shape = [1] * kc.ndim
        shape[1 + a] = -1
        kc = kc * jnp.asarray(ph.reshape(shape), kc.dtype)
    z = crop_spectrum(xf, kept) * kc
    y = jnp.fft.irfftn(embed_spectrum(z, kept, small), s=small, axes=_dims(d))
    y = y * math.prod(q / p for q, p in zip(small, padded))
    for a, r in enumerate(resolution):
        y = jax.lax.slice_in_dim(y, 0, r, axis=1 + a)
    return y
