"""A small learnable problem for smoke training: tell a low-frequency sinusoid from a
high-frequency one under noise (1D: frequency 2 vs 5 cycles; 2D: horizontal vs vertical
stripes). A CNN must mix positions (a convolution) and pool to solve it; chance is 50 %.
"""

from __future__ import annotations

import numpy as np


def toy_problem(data_dim: int, shape: tuple[int, ...], n: int, seed: int, noise: float = 0.3):
    """Returns (x, y): x float32 (n, 1, *shape) channels-first, y int64 (n,) in {0, 1}."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    phase = rng.uniform(0, 2 * np.pi, size=n)
    if data_dim == 1:
        (length,) = shape
        t = np.arange(length) / length
        freq = np.where(y == 1, 5.0, 2.0)
        x = np.sin(2 * np.pi * freq[:, None] * t[None] + phase[:, None])  # (n, L)
    elif data_dim == 2:
        h, w = shape
        yy, xx = np.meshgrid(np.arange(h) / h, np.arange(w) / w, indexing="ij")
        coord = np.where(y[:, None, None] == 1, xx[None], yy[None])  # stripes along x or y
        x = np.sin(2 * np.pi * 3.0 * coord + phase[:, None, None])  # (n, H, W)
    else:
        raise ValueError(f"toy_problem: data_dim must be 1 or 2, got {data_dim}")
    x = x + noise * rng.normal(size=x.shape)
    return x[:, None].astype(np.float32), y.astype(np.int64)
