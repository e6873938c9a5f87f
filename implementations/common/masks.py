"""Float64 NumPy reference of DNArch's differentiable masks (paper Sec. 2.1, Eqs. 1-4, 9-10,
Appx. E) and the conventions both frameworks share.

Coordinates (docs/design.md, "Masks"): every mask lives on [-1, 1]; entry i of an axis with n
entries sits at x_i = -1 + 2 i / (n - 1).

Sizes (Eqs. 9, 10). The paper normalises a mask's length by its length at initialisation:
    sigmoid (Eq. 10):  size = N_0 (x_T - x_min) / (x_T^0 - x_min)      (x_min = -1)
    gaussian (Eq. 9):  size = N_0 (2 x_T) / (2 x_T^0)
with x_T^0 the cutoff at initialisation and N_0 the size it stands for (`sigmoid_size`).
Width and depth masks start with their cutoff at x_T^0 = 2 N_0 / n - 1 (140 of 280 channels
-> x_T^0 = 0), so for them size = n (x_T + 1) / 2. Resolution masks start at mu_max (the highest
frequency weighted 0.85, Sec. 3), whose cutoff lies BEYOND the axis end: x_T^0 = 1 + (ln(17/3)
+ ln 9) / tau, and N_0 = L samples, so size = L (x_T + 1) / (x_T^0 + 1) is L at initialisation
(normalising by the axis length instead, L (x_T + 1) / 2, overstates it by x1.079 / 1.039 /
1.020 at tau = 25 / 50 / 100). The Gaussian kernel masks' sizes count taps of the full grid,
size = K x_T (N_0 / (2 x_T^0) = K / 2), and enter no cost (Fourier convolutions, Sec. 3.1).
With these, the minimum sizes the paper states follow from the clamps (Appx. E.2): tau = 25,
50, 100 give 10.3 %, 5.1 %, 2.6 % of a width axis (29 of 280 channels, Table 4's smallest
width), and tau_depth = 8, 16 give 2.57 and 1.29 of 8 blocks ("a minimum depth of 2 and 1
layers"). A trimmed network runs every block whose depth-mask value is >= T_m: 3 blocks at
tau_depth = 8 and 2 at 16 (the last one kept has weight 0.164 in both cases; dropping it would
change the function the masks define, so `trim` keeps it; the paper's "2 and 1" are the
sizes rounded down).

The number of entries a trimmed network keeps is the count of grid points where the mask is
>= T_m (for a sigmoid mask a prefix of the axis, for a centred Gaussian a symmetric window).
"""

from __future__ import annotations

import math

import numpy as np

from implementations.common import grids

# Mask values at the ends of the axis that define the clamps of a sigmoid mask's offset
# (Appx. E.1): at mu_min the first entry is weighted 0.95, at mu_max the last entry 0.85.
SIGMOID_LOW_VALUE = 0.95
SIGMOID_HIGH_VALUE = 0.85
# Relative margin of the Gaussian lower clamp above one grid step (see gaussian_sigma_bounds).
SIGMA_MARGIN = 1e-4


def axis_coordinates(n: int) -> np.ndarray:
    """The n coordinates of an axis on [-1, 1]: x_i = -1 + 2 i / (n - 1)."""
    if n < 1:
        raise ValueError(f"axis_coordinates: n={n} must be >= 1")
    if n == 1:
        return np.zeros(1)
    return (2.0 * np.arange(n, dtype=np.float64) - (n - 1)) / (n - 1)  # exactly symmetric


def gaussian_mask(x, sigma, threshold: float, mu: float = 0.0) -> np.ndarray:
    """Eq. 1: exp(-(x-mu)^2 / (2 sigma^2)) where that is >= threshold, else 0."""
    x = np.asarray(x, dtype=np.float64)
    m = np.exp(-0.5 * ((x - mu) / sigma) ** 2)
    return np.where(m >= threshold, m, 0.0)


def sigmoid_mask(x, mu, tau: float, threshold: float) -> np.ndarray:
    """Eq. 2: 1 - 1 / (1 + exp(-tau (x - mu))) where that is >= threshold, else 0."""
    x = np.asarray(x, dtype=np.float64)
    m = 1.0 - 1.0 / (1.0 + np.exp(-tau * (x - mu)))
    return np.where(m >= threshold, m, 0.0)


def gaussian_cutoff(sigma, threshold: float):
    """Eq. 3 with mu = 0: the Gaussian mask equals T_m at +-sigma sqrt(-2 ln T_m)."""
    return sigma * math.sqrt(-2.0 * math.log(threshold))


def sigmoid_cutoff(mu, tau: float, threshold: float):
    """Eq. 4: the sigmoid mask equals T_m at x_T = mu - (1/tau) ln(1/(1 - T_m) - 1)."""
    return mu - math.log(1.0 / (1.0 - threshold) - 1.0) / tau


def sigmoid_mu_from_cutoff(x_t, tau: float, threshold: float):
    """Inverse of `sigmoid_cutoff`: the offset mu whose cutoff is x_t."""
    return x_t + math.log(1.0 / (1.0 - threshold) - 1.0) / tau


def sigmoid_mu_bounds(tau: float) -> tuple[float, float]:
    """Appx. E.1 clamps of a sigmoid offset on [-1, 1]: (mu_min, mu_max) such that
    m(-1; mu_min) = 0.95 and m(1; mu_max) = 0.85."""
    # 1 - s(tau (x - mu)) = v  <=>  tau (x - mu) = ln((1 - v) / v)
    mu_min = -1.0 - math.log((1.0 - SIGMOID_LOW_VALUE) / SIGMOID_LOW_VALUE) / tau
    mu_max = 1.0 - math.log((1.0 - SIGMOID_HIGH_VALUE) / SIGMOID_HIGH_VALUE) / tau
    return mu_min, mu_max


def gaussian_sigma_bounds(n: int, threshold: float) -> tuple[float, float]:
    """Clamps of a centred Gaussian kernel mask on an axis of n taps: the cutoff is at least one
    grid step (>= 3 taps kept) and at most the end of the axis. A block at a reduced resolution
    r uses n = kernel_taps(r) for the lower clamp (`kernel_sigma_floor`): the grid its kernel
    must not collapse on is its own (Appx. E.1)."""
    c = math.sqrt(-2.0 * math.log(threshold))
    if n <= 1:  # a one-sample axis has one tap whatever sigma is: no floor below the maximum
        return 1.0 / c, 1.0 / c
    step = 2.0 / (n - 1)
    # a hair above one step, so the taps at +-step stay >= T_m in float32 too
    return min(step * (1.0 + SIGMA_MARGIN), 1.0) / c, 1.0 / c


def sigmoid_size(mu, tau: float, threshold: float, n: float, x0: float = 1.0):
    """Eq. 10: n (x_T + 1) / (x0 + 1), x0 the cutoff at initialisation, n the size it stands
    for; NOT clipped (see `clip_size`). x0 = 1: n (x_T + 1) / 2, the width/depth convention."""
    return n * (sigmoid_cutoff(mu, tau, threshold) + 1.0) / (x0 + 1.0)


def resolution_initial_cutoff(tau: float, threshold: float) -> float:
    """x_T^0 of a resolution mask: the cutoff of mu_max (Sec. 3: full resolution, the highest
    frequency weighted 0.85), beyond the end of the axis."""
    return sigmoid_cutoff(sigmoid_mu_bounds(tau)[1], tau, threshold)


def gaussian_size(sigma, threshold: float, n: int):
    """Eq. 9 with N / len_0 = n / 2: n * x_T, NOT clipped."""
    return n * gaussian_cutoff(sigma, threshold)


def kernel_sigma_floor(kept_bins: int, length: int, threshold: float) -> float:
    """Lower clamp of a kernel mask's sigma along an axis of `length` samples whose resolution
    mask keeps `kept_bins` P-bins (`grids.resolution_for_padded_bins`): the cutoff reaches at
    least one step of the block's own tap grid, so >= 3 taps survive at the resolution the
    block runs at and d loss / d sigma never vanishes (Appx. E.1: the minimum "depends on the
    resolution of the corresponding dimension")."""
    r = grids.resolution_for_padded_bins(kept_bins, length)
    return gaussian_sigma_bounds(grids.kernel_taps(r), threshold)[0]


def kernel_sigma_floors(length: int, threshold: float) -> np.ndarray:
    """`kernel_sigma_floor` for every kept P-bin count 0 .. L + 1 of an axis of `length`
    samples: a table a jitted clamp can index with a traced count."""
    return np.asarray(
        [kernel_sigma_floor(k, length, threshold) for k in range(grids.padded_bins(length) + 1)]
    )


def clip_size(size, n_max):
    """Forward value of the straight-through clip (Appx. E.1): min(size, n_max)."""
    return np.minimum(size, n_max)


def kept_prefix(mask_values: np.ndarray) -> int:
    """Entries a trimmed network keeps for a sigmoid mask: the non-zero prefix."""
    nz = np.flatnonzero(np.asarray(mask_values) > 0)
    return int(nz[-1]) + 1 if nz.size else 0


def sigmoid_mu_init_for_size(size: float, n: int, tau: float, threshold: float) -> float:
    """Offset mu that puts the sigmoid mask's cutoff at `size` of n entries (size < n), or at
    mu_max for size >= n (a full axis starts with its highest entry weighted 0.85, Sec. 3)."""
    mu_min, mu_max = sigmoid_mu_bounds(tau)
    if size >= n:
        return mu_max
    x_t = 2.0 * size / n - 1.0
    return float(min(max(sigmoid_mu_from_cutoff(x_t, tau, threshold), mu_min), mu_max))
