"""Grid conventions shared by both frameworks: kernel tap grids, frequency axes, the
resolution a cropped spectrum is represented at, and FFT lengths (docs/design.md, "Masks" and
"Learned downsampling").

Choices (the paper is silent; both frameworks follow these):
- Kernel grid. A block working at resolution r along an axis renders its kernel on
  K = 2 floor(r / 2) + 1 taps (odd, so the kernel is centred on a tap) spanning [-1, 1]: a full
  kernel reaches every sample of the input from every other one (global, non-causal).
- Frequency axis. The resolution mask of an axis with L samples lives on the L // 2 + 1
  non-negative frequency indices of that axis (rfft bins; for the full-FFT axes of a 2D input
  the index is |k|).
- Eq. 7 (a block with a resolution mask). The linear convolution of an L-sample input with its
  full kernel (K <= L + 1 taps, offsets -(K-1)/2 .. (K-1)/2) is computed on a circle of
  P = 2 L points (`padded_length`; P >= L + K - 1, so nothing wraps), the kernel's centre tap at
  index 0: the first L samples of F_P^-1[F_P[f] F_P[psi]] are the "same" output. The resolution
  mask multiplies that product spectrum at the P-grid's frequencies: P-bin j (0 <= j <= P / 2)
  is L-bin j L / P = j / 2, i.e. mask coordinate x_j = -1 + j / (L // 2)
  (`padded_frequency_coordinates`; every second P-bin is an L-bin, the mask is the same
  function of frequency). Cropping keeps the first k P-bins (where the mask is >= T_m) and
  transforms back on P_r = 2 r points, r = `resolution_for_padded_bins(k, L)`: the smallest
  EVEN 5-smooth length >= k (`fast_length`; 2 r >= 2 k - 1, so the kept band is represented
  exactly; at L = 243, k = 75 that is 80, not 75), or L when that is not below L. The kept band
  is shifted by s = (L / r - 1) / 2 input samples (a phase), so sample i of the r-point output
  is the band-limited full-resolution output at position (i + 1/2) L / r - 1/2: the centre of
  coarse cell i when input sample n is the centre of cell n. Trim (cropped) and virtual
  (uncropped) sample one function, on the cell-centred grids the block's final upsampling
  assumes (`implementations.torch.fourier.resample`).
- Resolution (the block's stream after the crop): r samples spanning the input's L, as above.
  `resolution_for_bins` is the same rule for a band counted in L-grid bins; no block uses it
  (only tests/implementations/common/test_grids.py does).
- FFT lengths. A linear convolution of r samples with a K-tap kernel needs r + K - 1 points; it
  is padded to `fast_length` of that (a 5-smooth even number), never to an arbitrary length.
"""

from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=4096)
def fast_length(n: int) -> int:
    """Smallest m >= n whose only prime factors are 2, 3, 5 (and m even when n > 1)."""
    if n <= 2:
        return max(n, 1)
    m = n
    while True:
        if m % 2 == 0:
            k = m
            for p in (2, 3, 5):
                while k % p == 0:
                    k //= p
            if k == 1:
                return m
        m += 1


def kernel_taps(resolution: int) -> int:
    """Taps of the full (global) kernel grid at a resolution: 2 floor(r/2) + 1."""
    return 2 * (resolution // 2) + 1


def frequency_bins(length: int) -> int:
    """Non-negative frequency indices of an axis of `length` samples: length // 2 + 1."""
    return length // 2 + 1


def resolution_for_bins(kept_bins: int, length: int) -> int:
    """Samples that represent the first `kept_bins` frequency indices of an axis of `length`."""
    if kept_bins >= frequency_bins(length):
        return length
    return min(length, fast_length(max(2 * kept_bins - 1, 1)))


def padded_length(length: int) -> int:
    """P = 2 L: the circle on which a block with a resolution mask convolves (Eq. 7)."""
    return 2 * length


def padded_bins(length: int) -> int:
    """Non-negative frequency indices of the P = 2 L grid: L + 1."""
    return padded_length(length) // 2 + 1


def padded_frequency_coordinates(length: int) -> np.ndarray:
    """Mask coordinates of the P-grid's non-negative frequencies: x_j = -1 + j / (L // 2),
    j = 0 .. L (P-bin j is L-bin j / 2; the L-grid's bins sit at x = -1 + 2 i / (L // 2))."""
    half = length // 2
    j = np.arange(padded_bins(length), dtype=np.float64)
    return (j - half) / half


def resolution_for_padded_bins(kept_bins: int, length: int) -> int:
    """Samples r of a block whose resolution mask keeps the first `kept_bins` P-bins: the
    smallest even 5-smooth length r >= kept (`fast_length`; so 2 r >= 2 kept - 1 and the kept
    band fits the P_r = 2 r grid; 75 bins -> 80), or L if that is not below L."""
    r = fast_length(max(kept_bins, 1))
    return length if r >= length else r


def conv_length(resolution: int, taps: int) -> int:
    """FFT length of a linear (non-circular) convolution of `resolution` samples with `taps`."""
    return fast_length(resolution + taps - 1)


# Documented bounds on how far `trim` is from `virtual` once resolution masks cut frequencies
# (docs/design.md, "Learned downsampling"). Both compute Eq. 7 exactly
# (tests/implementations/*/test_eq7.py: 1e-15 at block level); after the convolution trim runs the
# pointwise layers and GELUs at the block's resolution r and upsamples at the end (cell-centred
# grids, even extension), virtual runs them at L and keeps the harmonics the GELUs create above
# the kept band, which r samples cannot hold. Measured with `python -m pipelines.bench trimdiff`
# (float64, weights at initialisation, 12 random mask states per case; kr and krwd, 1D L = 256 and
# 2D 31 x 17 dense; w0 = 5.5k, 21.5k, 30k; 501 cut blocks), relative to max |virtual|:
#   per block (each block fed the same input): median 0.7-2.4 %, 90th percentile 3.9-5.7 %,
#       max 18.8 % (RMS difference / RMS virtual: median 0.1-0.4 %, max 3.5 %);
#   network output: median 0.01 %, 90th percentile 0.19 %, max 0.70 %.
# Bounds are about 2-3x the worst seen.
# Asserted in tests/implementations/torch/test_model.py.
TRIM_RESOLUTION_BOUND = 0.02  # network output, max |trim - virtual| / max |virtual|
TRIM_BLOCK_BOUND = 0.4  # one block's residual branch, same measure
