"""Differentiable masks in PyTorch (paper Sec. 2.1, Eqs. 1-4, 9-10; Appx. E.1).

The float64 NumPy reference of the same formulas is `implementations.common.masks`; tests
compare both. Conventions (coordinates on [-1, 1], sizes, clamps) are documented there.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from implementations.common import masks as ref


def gaussian_mask(x: torch.Tensor, sigma: torch.Tensor, threshold: float) -> torch.Tensor:
    """Eq. 1 with mu = 0; zero where the value is below the threshold."""
    m = torch.exp(-0.5 * (x / sigma) ** 2)
    return torch.where(m >= threshold, m, torch.zeros_like(m))


def sigmoid_mask(x: torch.Tensor, mu: torch.Tensor, tau: float, threshold: float) -> torch.Tensor:
    """Eq. 2; zero where the value is below the threshold. 1 - sigmoid(z) = sigmoid(-z)."""
    m = torch.sigmoid(-tau * (x - mu))
    return torch.where(m >= threshold, m, torch.zeros_like(m))


def gaussian_cutoff(sigma: torch.Tensor, threshold: float) -> torch.Tensor:
    """Eq. 3 with mu = 0."""
    return sigma * math.sqrt(-2.0 * math.log(threshold))


def sigmoid_cutoff(mu: torch.Tensor, tau: float, threshold: float) -> torch.Tensor:
    """Eq. 4."""
    return mu - math.log(1.0 / (1.0 - threshold) - 1.0) / tau


def straight_through_clip(size: torch.Tensor, n_max: float) -> torch.Tensor:
    """Forward min(size, n_max); backward the gradient of the unclipped size (Appx. E.1)."""
    return size - (size - torch.clamp(size, max=n_max)).detach()


def coordinates(n: int, like: torch.Tensor) -> torch.Tensor:
    """x_i = -1 + 2 i / (n - 1) in the dtype/device of `like`, computed as (2i - (n-1)) / (n-1)
    so that the grid is exactly symmetric about 0 in floating point."""
    if n == 1:
        return torch.zeros(1, dtype=like.dtype, device=like.device)
    i = torch.arange(n, dtype=like.dtype, device=like.device)
    return (2.0 * i - (n - 1)) / (n - 1)


def kept_prefix(values: torch.Tensor) -> int:
    """Length of the non-zero prefix of a non-increasing mask (0 if all are zero)."""
    return int(torch.count_nonzero(values.detach()).item())


def kept_window(values: torch.Tensor) -> tuple[int, int]:
    """[start, stop) of the non-zero window of a centred, symmetric mask on an odd grid."""
    n = values.shape[0]
    k = int(torch.count_nonzero(values.detach()).item())
    k = max(k, 1)
    start = (n - k) // 2
    return start, start + k


class SigmoidMask(nn.Module):
    """A sigmoid mask along one axis of `n` entries (channels, blocks or frequency indices).

    `mu` has shape `shape` (e.g. (D,) for one resolution mask per spatial axis; () otherwise).
    """

    def __init__(self, n: int | tuple[int, ...], tau: float, threshold: float, init_size):
        super().__init__()
        ns = (n,) if isinstance(n, int) else tuple(n)
        sizes = (init_size,) * len(ns) if not isinstance(init_size, (tuple, list)) else init_size
        self.ns = ns
        self.scalar = isinstance(n, int)
        self.tau = float(tau)
        self.threshold = float(threshold)
        self.mu_min, self.mu_max = ref.sigmoid_mu_bounds(self.tau)
        mu0 = [ref.sigmoid_mu_init_for_size(s, k, tau, threshold) for s, k in zip(sizes, ns)]
        # Eq. 10 normalises by the initial cutoff x_T^0 and the size N_0 it stands for
        self.x0 = tuple(float(ref.sigmoid_cutoff(m, tau, threshold)) for m in mu0)
        self.n0 = tuple(float(min(s, k)) for s, k in zip(sizes, ns))
        mu = torch.tensor(mu0[0] if self.scalar else mu0, dtype=torch.get_default_dtype())
        self.mu = nn.Parameter(mu)

    def _mu(self, axis: int) -> torch.Tensor:
        return self.mu if self.scalar else self.mu[axis]

    def values(self, axis: int = 0) -> torch.Tensor:
        """Mask values on all n entries of `axis`: shape (n,)."""
        x = coordinates(self.ns[axis], self.mu)
        return sigmoid_mask(x, self._mu(axis), self.tau, self.threshold)

    def values_at(self, x, axis: int = 0) -> torch.Tensor:
        """Mask values at arbitrary coordinates x (a NumPy array or tensor) of `axis`."""
        x = torch.as_tensor(x, dtype=self.mu.dtype, device=self.mu.device)
        return sigmoid_mask(x, self._mu(axis), self.tau, self.threshold)

    def size(self, axis: int = 0, total: int | None = None) -> torch.Tensor:
        """Differentiable size (Eq. 10): N_0 (x_T - x_min) / (x_T^0 - x_min), straight-through
        clipped to the axis length (`common.masks`).

        `total` expresses the size in other units than entries of the mask axis: a resolution
        mask lives on frequency indices but its size counts L samples (initialised over the
        whole axis: N_0 = L)."""
        n = self.ns[axis] if total is None else total
        n0 = self.n0[axis] * (n / self.ns[axis])  # N_0 in the units of `total`
        cut = sigmoid_cutoff(self._mu(axis), self.tau, self.threshold)
        s = n0 * (cut + 1.0) / (self.x0[axis] + 1.0)
        return straight_through_clip(s, float(n))

    def kept(self, axis: int = 0) -> int:
        """Entries a trimmed network computes: the non-zero prefix of `values(axis)`."""
        return kept_prefix(self.values(axis))

    @torch.no_grad()
    def clamp_(self) -> None:
        self.mu.clamp_(self.mu_min, self.mu_max)


class GaussianMask(nn.Module):
    """Centred Gaussian kernel mask with one sigma per spatial axis (Sec. 2.4.1).

    `taps_full` are the taps of the largest kernel grid per axis (full resolution); the clamps
    keep >= 3 taps on that grid and the cutoff inside [-1, 1]
    (`common.masks.gaussian_sigma_bounds`).
    """

    def __init__(self, taps_full: tuple[int, ...], threshold: float, sigma_init: float):
        super().__init__()
        self.taps_full = tuple(taps_full)
        self.threshold = float(threshold)
        bounds = [ref.gaussian_sigma_bounds(k, threshold) for k in taps_full]
        self.sigma_min = tuple(b[0] for b in bounds)
        self.sigma_max = tuple(b[1] for b in bounds)
        init = [min(max(sigma_init, lo), hi) for lo, hi in bounds]
        self.sigma = nn.Parameter(torch.tensor(init, dtype=torch.get_default_dtype()))

    def values(self, x: torch.Tensor, axis: int) -> torch.Tensor:
        return gaussian_mask(x, self.sigma[axis], self.threshold)

    def size(self, axis: int) -> torch.Tensor:
        """Differentiable size (Eq. 9) in taps of the full grid, straight-through clipped."""
        n = self.taps_full[axis]
        s = n * gaussian_cutoff(self.sigma[axis], self.threshold)
        return straight_through_clip(s, float(n))

    @torch.no_grad()
    def clamp_(self, floors: tuple[float, ...] | None = None) -> None:
        """Clamp sigma into [floor, sigma_max] per axis; `floors` (default `sigma_min`, the
        full-resolution floor) follow the block's current resolution
        (`common.masks.kernel_sigma_floor`)."""
        floors = self.sigma_min if floors is None else floors
        lo = torch.tensor(floors, dtype=self.sigma.dtype, device=self.sigma.device)
        hi = torch.tensor(self.sigma_max, dtype=self.sigma.dtype, device=self.sigma.device)
        self.sigma.copy_(torch.maximum(torch.minimum(self.sigma, hi), lo))
