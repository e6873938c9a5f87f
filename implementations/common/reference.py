"""Float64 NumPy reference of one residual block's convolution path: paper Eq. 7 with the
Gaussian kernel mask (Eq. 1, Sec. 2.4.1) and the sigmoid resolution mask (Eq. 2, Sec. 2.4.2).

    (f * psi)_down = F^-1[ crop_{> w_max}( m . F[f] . F[psi] ) ]                      (Eq. 7)

Conventions (`implementations.common.grids`; docs/design.md, "Learned downsampling"):
- psi is rendered on the block's FULL tap grid (K = kernel_taps(L) taps per axis, coordinates
  on [-1, 1]), multiplied by the Gaussian mask and by 1 / sqrt(prod K) (the kernel
  normalisation of `implementations.torch.kernels`); taps where the mask is below T_m are 0.
- The linear ("same", centred, zero-padded) convolution is computed on a circle of P = 2 L
  points per axis with the kernel's centre tap at index 0. The mask multiplies the product
  spectrum at the P-grid's frequencies (`grids.padded_frequency_coordinates`; on the full-FFT
  axes of a 2D input bin j has frequency index min(j, P - j)).
- Virtual (uncropped): the first L samples of F_P^-1[m F_P[f] F_P[psi]].
- Cropped to r samples per axis (trim): the first k P-bins are kept (|index| < k on full-FFT
  axes), shifted by s = (L / r - 1) / 2 input samples (a phase), placed into the spectrum of
  P_r = 2 r points and transformed back there, scaled by P_r / P (amplitude preserving); the
  first r samples are the output. An axis the mask does not cut keeps r = L samples and goes
  over unchanged (shift 0, every P-bin once, its Nyquist bin included: `_band`). Sample i is
  the band-limited virtual output at position (i + 1/2) L / r - 1/2, the centre of coarse cell
  i when sample n of the input is the centre of cell n (`evaluate_band_limited` checks this by
  direct summation, independently of any FFT). Cell-centred grids are what the block's final
  upsampling assumes (`implementations.torch.fourier.resample`).

Everything here is float64 and written for clarity, not speed: it is what the PyTorch (`trim`,
`virtual`) and JAX implementations are tested against.
"""

from __future__ import annotations

import math

import numpy as np

from implementations.common import grids
from implementations.common import masks as ref


def gaussian_kernel_mask(taps: int, sigma: float, threshold: float) -> np.ndarray:
    """Eq. 1 (mu = 0) on a grid of `taps` coordinates on [-1, 1]."""
    return ref.gaussian_mask(ref.axis_coordinates(taps), sigma, threshold)


def render_kernel(raw: np.ndarray, sigma: tuple[float, ...] | None, threshold: float) -> np.ndarray:
    """psi on the full tap grid. raw: (C, *K), the kernel network's values at the grid's
    coordinates ('ij' order); sigma: one Gaussian sigma per axis, or None (no kernel mask)."""
    psi = np.asarray(raw, dtype=np.float64)
    taps = psi.shape[1:]
    if sigma is not None:
        for a, (k, s) in enumerate(zip(taps, sigma)):
            shape = [1] * psi.ndim
            shape[a + 1] = -1
            psi = psi * gaussian_kernel_mask(k, s, threshold).reshape(shape)
    return psi / math.sqrt(math.prod(taps))


def resolution_mask_values(length: int, mu: float, tau: float, threshold: float) -> np.ndarray:
    """The sigmoid resolution mask at the P-grid's non-negative frequencies (L + 1 values)."""
    return ref.sigmoid_mask(grids.padded_frequency_coordinates(length), mu, tau, threshold)


def _axis_mask(values: np.ndarray, p: int, full_axis: bool) -> np.ndarray:
    """Mask values along one axis of an rfftn spectrum of P points: full-FFT axes index
    |frequency| = min(j, P - j); the last (rfft) axis holds j = 0 .. P / 2."""
    if not full_axis:
        return values
    j = np.arange(p)
    return values[np.minimum(j, p - j)]


def _wrap_kernel(psi: np.ndarray, padded: tuple[int, ...]) -> np.ndarray:
    """(C, *K) -> (C, *P): tap t of each axis (offset t - (K - 1) / 2) at index offset mod P."""
    out = np.zeros((psi.shape[0], *padded))
    out[(slice(None), *(slice(0, k) for k in psi.shape[1:]))] = psi
    shifts = tuple(-((k - 1) // 2) for k in psi.shape[1:])
    return np.roll(out, shifts, axis=tuple(range(1, psi.ndim)))


def product_spectrum(f: np.ndarray, psi: np.ndarray, masks: list[np.ndarray] | None) -> np.ndarray:
    """m . F_P[f] . F_P[psi] as an rfftn spectrum over the spatial axes, P = 2 L per axis.
    f: (B, C, *L); psi: (C, *K) with K <= L + 1 odd; masks: one array of L + 1 values per axis
    (`resolution_mask_values`) or None."""
    d = psi.ndim - 1
    spatial = f.shape[-d:]
    padded = tuple(grids.padded_length(s) for s in spatial)
    axes = tuple(range(f.ndim - d, f.ndim))
    ff = np.fft.rfftn(f, s=padded, axes=axes)
    kf = np.fft.rfftn(_wrap_kernel(psi, padded), s=padded, axes=tuple(range(1, d + 1)))
    z = ff * kf
    if masks is not None:
        for a, (m, p) in enumerate(zip(masks, padded)):
            shape = [1] * z.ndim
            shape[z.ndim - d + a] = -1
            z = z * _axis_mask(np.asarray(m, np.float64), p, a < d - 1).reshape(shape)
    return z


def _band(kept: int, p: int, q: int, last: bool) -> np.ndarray:
    """The signed frequencies one axis carries from the P-grid (p points) to the P_r-grid
    (q points): 0 .. k-1 on the last (rfft) axis, and -(k-1) .. -1 too on full-FFT axes.

    They land on distinct P_r-bins when 2 k - 1 <= q. The one other case is an axis the mask
    does not cut, k = L + 1 (non-zero up to the P-grid's Nyquist bin, next to a cut axis): its
    band |f| <= L names the Nyquist bin twice, +L and -L, which are one bin of the p = 2 L
    points. Such an axis keeps r = L samples (`grids.resolution_for_padded_bins`), so q = p
    and the shift (L / r - 1) / 2 is 0: the axis goes over unchanged, every P-bin once."""
    if 2 * kept - 1 <= q:
        return (
            np.arange(kept) if last else np.concatenate([np.arange(kept), np.arange(1 - kept, 0)])
        )
    if q == p and kept == p // 2 + 1:
        j = np.arange(kept if last else p)
        return np.where(j <= p // 2, j, j - p)
    raise ValueError(f"eq7: {kept} kept bins do not fit a {q}-point grid (need 2k-1 <= P_r)")


def kept_padded_bins(masks: list[np.ndarray]) -> tuple[int, ...]:
    """Per axis: the P-bins a trimmed block keeps (the non-zero prefix of the mask)."""
    return tuple(ref.kept_prefix(m) for m in masks)


def eq7(
    f: np.ndarray,
    psi: np.ndarray,
    masks: list[np.ndarray] | None,
    resolution: tuple[int, ...] | None = None,
) -> np.ndarray:
    """Eq. 7 for a depthwise convolution. Returns (B, C, *resolution); resolution None: the
    input's (virtual: no crop). A cropped resolution needs masks (what is kept comes from them)."""
    d = psi.ndim - 1
    spatial = tuple(f.shape[-d:])
    padded = tuple(grids.padded_length(s) for s in spatial)
    z = product_spectrum(f, psi, masks)
    axes = tuple(range(f.ndim - d, f.ndim))
    if resolution is None or tuple(resolution) == spatial:
        y = np.fft.irfftn(z, s=padded, axes=axes)
        return y[(Ellipsis, *(slice(0, s) for s in spatial))]
    if masks is None:
        raise ValueError("eq7: a cropped resolution needs the resolution masks")
    kept = kept_padded_bins(masks)
    small = tuple(grids.padded_length(r) for r in resolution)
    zc = np.zeros(z.shape[: f.ndim - d] + small[:-1] + (small[-1] // 2 + 1,), dtype=complex)
    index_src, index_dst, phases = [], [], []
    for a, (k, p, q, r) in enumerate(zip(kept, padded, small, resolution)):
        freqs = _band(k, p, q, last=a == d - 1)
        index_src.append(freqs % p)
        index_dst.append(freqs % q)
        shift = (spatial[a] / r - 1.0) / 2.0  # coarse sample 0 sits at this input position
        phases.append(np.exp(2j * np.pi * freqs * shift / p))
    phase = phases[0]
    for ph in phases[1:]:
        phase = np.multiply.outer(phase, ph)
    zc[(Ellipsis, *np.ix_(*index_dst))] = z[(Ellipsis, *np.ix_(*index_src))] * phase
    y = np.fft.irfftn(zc, s=small, axes=axes) * math.prod(q / p for q, p in zip(small, padded))
    return y[(Ellipsis, *(slice(0, r) for r in resolution))]


def evaluate_band_limited(z: np.ndarray, length: int, positions: np.ndarray) -> np.ndarray:
    """1D only: the P-periodic band-limited function whose rfft spectrum (P = 2 L points) is z
    (..., P / 2 + 1), evaluated at real `positions` (in input samples) by direct summation."""
    p = grids.padded_length(length)
    j = np.arange(z.shape[-1])
    weight = np.where((j == 0) | (2 * j == p), 1.0, 2.0)  # Hermitian pairs counted twice
    phase = np.exp(2j * np.pi * np.outer(positions, j) / p)  # (n, bins)
    return np.real((z * weight) @ phase.T) / p
