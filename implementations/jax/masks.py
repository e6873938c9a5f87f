"""Differentiable masks in JAX/Flax (paper Sec. 2.1, Eqs. 1-4, 9-10; Appx. E.1).

Mirrors `implementations.torch.masks` name for name. The float64 NumPy reference of the same
formulas is `implementations.common.masks`, where the conventions (coordinates on [-1, 1],
sizes, clamps) are documented.

Differences from the PyTorch file, all forced by Flax's functional style:
- `coordinates(n, dtype)` takes a dtype instead of a tensor to copy it from.
- `kept_prefix` / `kept_window` count non-zero entries of CONCRETE arrays: they are called
  eagerly (outside `jax.jit`) by `model.architecture`, never inside the traced train step.
- `SigmoidMask` / `GaussianMask` are Linen modules holding the parameter; instead of an
  in-place `clamp_()` they expose `bounds()` (the (low, high) of their parameter), which
  `model.clamp_masks` applies to the parameter tree (inside or outside jit).
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from implementations.common import masks as ref


def gaussian_mask(x: jax.Array, sigma: jax.Array, threshold: float) -> jax.Array:
    """Eq. 1 with mu = 0; zero where the value is below the threshold."""
    m = jnp.exp(-0.5 * (x / sigma) ** 2)
    return jnp.where(m >= threshold, m, jnp.zeros_like(m))


def sigmoid_mask(x: jax.Array, mu: jax.Array, tau: float, threshold: float) -> jax.Array:
    """Eq. 2; zero where the value is below the threshold. 1 - sigmoid(z) = sigmoid(-z)."""
    m = jax.nn.sigmoid(-tau * (x - mu))
    return jnp.where(m >= threshold, m, jnp.zeros_like(m))


def gaussian_cutoff(sigma: jax.Array, threshold: float) -> jax.Array:
    """Eq. 3 with mu = 0."""
    return sigma * math.sqrt(-2.0 * math.log(threshold))


def sigmoid_cutoff(mu: jax.Array, tau: float, threshold: float) -> jax.Array:
    """Eq. 4."""
    return mu - math.log(1.0 / (1.0 - threshold) - 1.0) / tau


def straight_through_clip(size: jax.Array, n_max: float) -> jax.Array:
    """Forward min(size, n_max); backward the gradient of the unclipped size (Appx. E.1)."""
    return size - jax.lax.stop_gradient(size - jnp.minimum(size, n_max))


def coordinates(n: int, dtype: Any) -> jax.Array:
    """x_i = -1 + 2 i / (n - 1) in `dtype`, computed as (2i - (n-1)) / (n-1) so that the grid is
    exactly symmetric about 0 in floating point (same arithmetic as the PyTorch version).

    Computed in NumPy in `dtype` (the grid is static): XLA may rewrite a division by a
    constant into a multiplication by its reciprocal, which is not bit-identical."""
    np_dtype = np.dtype(dtype)
    if n == 1:
        return jnp.zeros(1, dtype=dtype)
    i = np.arange(n, dtype=np_dtype)
    return jnp.asarray((np_dtype.type(2.0) * i - np_dtype.type(n - 1)) / np_dtype.type(n - 1))


def kept_prefix(values: jax.Array) -> int:
    """Length of the non-zero prefix of a non-increasing mask (0 if all are zero). Eager only."""
    return int(np.count_nonzero(np.asarray(values)))


def kept_window(values: jax.Array) -> tuple[int, int]:
    """[start, stop) of the non-zero window of a centred, symmetric mask on an odd grid.
    Eager only."""
    n = values.shape[0]
    k = max(int(np.count_nonzero(np.asarray(values))), 1)
    start = (n - k) // 2
    return start, start + k


class SigmoidMask(nn.Module):
    """A sigmoid mask along one axis of `n` entries (channels, blocks or frequency indices).

    Parameter `mu` has shape () when `n` is an int, else (len(n),) (one mask per spatial axis).
    """

    n: int | tuple[int, ...]
    tau: float
    threshold: float
    init_size: Any  # a number, or one per axis
    param_dtype: Any = jnp.float32

    @property
    def ns(self) -> tuple[int, ...]:
        return (self.n,) if isinstance(self.n, int) else tuple(self.n)

    @property
    def scalar(self) -> bool:
        return isinstance(self.n, int)

    def bounds(self) -> tuple[float, float]:
        """(mu_min, mu_max) of Appx. E.1."""
        return ref.sigmoid_mu_bounds(float(self.tau))

    def setup(self) -> None:
        ns = self.ns
        sizes = (
            self.init_size
            if isinstance(self.init_size, (tuple, list))
            else (self.init_size,) * len(ns)
        )
        mu0 = [
            ref.sigmoid_mu_init_for_size(s, k, self.tau, self.threshold) for s, k in zip(sizes, ns)
        ]
        # Eq. 10 normalises by the initial cutoff x_T^0 and the size N_0 it stands for
        self.x0 = tuple(float(ref.sigmoid_cutoff(m, self.tau, self.threshold)) for m in mu0)
        self.n0 = tuple(float(min(s, k)) for s, k in zip(sizes, ns))
        value = mu0[0] if self.scalar else mu0
        self.mu = self.param("mu", lambda _: jnp.asarray(value, dtype=self.param_dtype))

    def _mu(self, axis: int) -> jax.Array:
        return self.mu if self.scalar else self.mu[axis]

    def values(self, axis: int = 0) -> jax.Array:
        """Mask values on all n entries of `axis`: shape (n,)."""
        x = coordinates(self.ns[axis], self.mu.dtype)
        return sigmoid_mask(x, self._mu(axis), self.tau, self.threshold)

    def values_at(self, x: Any, axis: int = 0) -> jax.Array:
        """Mask values at arbitrary (static) coordinates x of `axis`."""
        x = jnp.asarray(np.asarray(x, dtype=np.dtype(self.mu.dtype)))
        return sigmoid_mask(x, self._mu(axis), self.tau, self.threshold)

    def size(self, axis: int = 0, total: int | None = None) -> jax.Array:
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
        """Entries a trimmed network computes: the non-zero prefix of `values(axis)`. Eager."""
        return kept_prefix(self.values(axis))

    def __call__(self, axis: int = 0) -> jax.Array:
        return self.values(axis)


class GaussianMask(nn.Module):
    """Centred Gaussian kernel mask with one sigma per spatial axis (Sec. 2.4.1).

    `taps_full` are the taps of the largest kernel grid per axis (full resolution); the clamps
    keep >= 3 taps on that grid and the cutoff inside [-1, 1]
    (`common.masks.gaussian_sigma_bounds`).
    """

    taps_full: tuple[int, ...]
    threshold: float
    sigma_init: float
    param_dtype: Any = jnp.float32

    def bounds(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(sigma_min per axis, sigma_max per axis)."""
        b = [ref.gaussian_sigma_bounds(k, self.threshold) for k in self.taps_full]
        return tuple(lo for lo, _ in b), tuple(hi for _, hi in b)

    def setup(self) -> None:
        lo, hi = self.bounds()
        init = [min(max(self.sigma_init, a), b) for a, b in zip(lo, hi)]
        self.sigma = self.param("sigma", lambda _: jnp.asarray(init, dtype=self.param_dtype))

    def values(self, x: jax.Array, axis: int) -> jax.Array:
        return gaussian_mask(x, self.sigma[axis], self.threshold)

    def size(self, axis: int) -> jax.Array:
        """Differentiable size (Eq. 9) in taps of the full grid, straight-through clipped."""
        n = self.taps_full[axis]
        s = n * gaussian_cutoff(self.sigma[axis], self.threshold)
        return straight_through_clip(s, float(n))

    def __call__(self, x: jax.Array, axis: int) -> jax.Array:
        return self.values(x, axis)
