"""Block-level Eq. 7 cases shared by tests/implementations/{torch,jax}/test_eq7.py."""

import math

from implementations.common.config import KERNEL_SCALES  # noqa: F401  (both are tested)
from implementations.common.init import kernel_taps_count

W0 = (5500.0, 21500.0, 30000.0)  # Table 6's smallest, a middle and the largest w0
# (input shape, resolution-mask mu per axis, kernel sigma per axis)
STATES = [
    ((101,), (2.0,), (0.3,)),  # mu beyond the clamp: full resolution, no crop
    ((101,), (0.4,), (0.25,)),  # mild crop
    ((97,), (-0.6,), (0.5,)),  # strong crop, odd length
    ((64,), (0.0,), (0.02,)),  # even length, a narrow kernel
    ((17, 12), (0.3, -0.2), (0.4, 0.3)),  # rectangular 2D crop, different per axis
    ((15, 15), (-0.5, 0.6), (0.2, 0.6)),
    # one axis cut, the other's mask non-zero up to the P-grid's Nyquist bin (k = L + 1, r = L):
    # mu 1.0 reaches it inside the clamp on an even axis, an odd axis needs mu beyond the clamp
    ((17, 12), (0.3, 1.0), (0.4, 0.3)),  # the last (rfft) axis uncut
    ((12, 15), (1.0, -0.2), (0.3, 0.5)),  # the full-FFT axis uncut
    ((15, 13), (2.0, 0.4), (0.2, 0.6)),  # odd sizes, the full-FFT axis uncut
    ((13, 9), (-0.5, 2.0), (0.5, 0.25)),  # odd sizes, the last axis uncut, a strong crop
]


def scale_for_reference(cfg) -> float:
    """What the kernel network's values are multiplied by before `common.reference`, which
    renders psi with the `forward` normalisation 1 / sqrt(taps): 1 under `forward`, sqrt(taps)
    under `init` (whose last-layer weights already carry 1 / sqrt(taps))."""
    return math.sqrt(kernel_taps_count(cfg.input_shape)) if cfg.kernel_scale == "init" else 1.0
