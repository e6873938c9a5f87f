"""Fourier-domain operations of the residual block (paper Sec. 2.4.2, Eqs. 5-7; method.md
"Convolution", "Learned downsampling"), channels-LAST: (B, L, C) or (B, H, W, C).

Mirrors `implementations.torch.fourier` (channels-first there); the spatial axes are
1..data_dim here instead of the last data_dim axes. Only what `virtual` mode needs is used by
the model (`spectrum`, `from_spectrum`, `fft_conv`); `crop_spectrum`, `embed_spectrum` and
`resample` are kept for name parity and tested against the PyTorch versions.

- `fft_conv`: centred, linear (zero-padded, non-circular) depthwise convolution; the padded
  length is `common.grids.conv_length`, the same as PyTorch, so float64 results agree to
  rounding.
- `spectrum` / `from_spectrum`: amplitude-preserving transforms (norm="forward").
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from implementations.common.grids import conv_length


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


def resample(x: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Fourier-resample the spatial axes of x (B, *S, C) to `shape`."""
    src = tuple(x.shape[1 : 1 + len(shape)])
    if src == tuple(shape):
        return x
    kept = tuple(min((s + 1) // 2, (t + 1) // 2) for s, t in zip(src, shape))
    xf = crop_spectrum(spectrum(x, len(shape)), kept)
    return from_spectrum(embed_spectrum(xf, kept, shape), shape)


def fft_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """Centred linear depthwise convolution, channels-last.

    x: (B, *S, C); kernel: (*K, C) with every K odd. Returns (B, *S, C):
    y[n] = sum_j kernel[j] x[n - (j - c)], c = (K - 1) / 2 per axis, x zero outside.

    The backward is JAX's own (its transpose of `rfft` goes through a complex FFT). A
    hand-written real-FFT backward like PyTorch's `_FFTConv` was tried: 78 -> 64 ms for
    (8, 2048, 140) with 2049 taps on 2 CPU cores, forward + backward, but nothing measurable
    in a whole train step, and it moved a float32 resolution-mask gradient that cancels to
    1e-7 from 3.8e-5 to 2.6e-4 of float64 (pipelines/parity.py, kr 1D global): not kept.
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
