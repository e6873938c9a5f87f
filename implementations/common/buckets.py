"""Buckets for the kept sizes of a trimmed network, so that `trim` pays on a GPU.

A trimmed step's tensor shapes follow the kept sizes (channels, blocks, kernel taps, frequency
bins), which move with the masks during training. On a GPU a step is cheap only once its
kernels are captured (CUDA graphs, `torch.compile`), and a capture holds for one set of shapes.
Rounding every kept size UP to one of a few fixed values (a ladder per quantity) makes the
number of distinct shapes small, so each bucket's step is captured once and replayed while the
masks move inside the bucket.

Rounding up changes nothing: every mask is applied right after the last operation that could
make a masked entry non-zero, and its values are exactly 0 beyond the kept prefix, so the
extra channels, taps and blocks computed are multiplied by exact zeros (values and gradients;
tests/implementations/torch/test_buckets.py, float64).

Ladders (`ladder`): `steps` equal fractions of the largest size, each rounded up to a multiple
of `align` (channels: 8, the granularity of tensor-core GEMMs) or to an odd count (kernel taps:
a centred window of the odd full tap grid), capped at the largest size. The largest size is
always a rung, so a bucket never exceeds what the full network computes.

Not bucketed: the resolution r of a block with a resolution mask. Its output samples sit at
(i + 1/2) L / r, and the pointwise layers and GELUs after the convolution run on those r
samples; another r is another function (model docstring). r is already one of the few fast
FFT lengths (`grids.resolution_for_padded_bins`), and the kept frequency bins are rounded up
to r itself (the spectrum of the r-point grid holds r bins; the mask is 0 on the extra ones),
so the shapes of a block with a resolution mask depend on r only.
"""

from __future__ import annotations

import functools
import math

WIDTH_STEPS, WIDTH_ALIGN = 8, 8  # channels: eighths of N_max, multiples of 8
TAP_STEPS = 8  # kernel taps: eighths of the full tap grid, odd
BLOCK_STEPS = 4  # blocks: quarters of the largest depth


@functools.lru_cache(maxsize=1024)
def ladder(n_max: int, steps: int, align: int = 1, odd: bool = False) -> tuple[int, ...]:
    """The sizes a kept count of at most `n_max` is rounded up to, ascending; ends at n_max."""
    if n_max < 1 or steps < 1 or align < 1:
        raise ValueError(f"ladder: need n_max, steps, align >= 1, got {n_max}, {steps}, {align}")
    if odd and n_max % 2 == 0:
        raise ValueError(f"ladder: odd rungs need an odd n_max, got {n_max}")
    rungs = set()
    for j in range(1, steps + 1):
        v = math.ceil(n_max * j / steps)
        v = align * math.ceil(v / align)
        if odd:
            v |= 1
        rungs.add(min(v, n_max))
    return tuple(sorted(rungs))


def bucket(n: int, n_max: int, steps: int, align: int = 1, odd: bool = False) -> int:
    """The smallest rung of `ladder(n_max, ...)` that is >= n (n itself when n >= n_max)."""
    if n >= n_max:
        return n
    for v in ladder(n_max, steps, align, odd):
        if v >= n:
            return v
    return n_max  # unreachable: n_max is the last rung


def width_bucket(n: int, n_max: int) -> int:
    """Channels: eighths of N_max, rounded up to a multiple of 8."""
    return bucket(n, n_max, WIDTH_STEPS, WIDTH_ALIGN)


def taps_bucket(n: int, n_max: int) -> int:
    """Kernel taps on the full (odd) tap grid: eighths of it, odd."""
    return bucket(n, n_max, TAP_STEPS, odd=True)


def blocks_bucket(n: int, n_max: int) -> int:
    """Blocks run: quarters of the largest depth."""
    return bucket(n, n_max, BLOCK_STEPS)


def bins_bucket(kept_bins: int, resolution: int, length: int) -> int:
    """Kept P-bins of a block's resolution mask: the whole spectrum of its r-point grid (r
    bins, or all L + 1 P-bins when the axis is not cropped). The resolution r is exact."""
    if resolution >= length:
        return length + 1
    if kept_bins > resolution:
        raise ValueError(f"bins_bucket: {kept_bins} kept bins do not fit r = {resolution}")
    return resolution
