"""Learning-rate schedule shared by both frameworks (Appx. E.2): linear warm-up, then cosine
annealing to zero. Precomputed as a float64 table so both frameworks use identical values:
PyTorch indexes it from a LambdaLR, JAX/optax from a schedule function (`table[count]`).

Step s (0-based, the s-th optimiser update) uses
    lr_s = base * (s + 1) / warmup                                   for s < warmup
    lr_s = base * (1 + cos(pi * (s - warmup) / (total - warmup))) / 2   otherwise
"""

from __future__ import annotations

import numpy as np


def lr_table(base_lr: float, warmup_steps: int, total_steps: int) -> np.ndarray:
    if total_steps < 1 or warmup_steps < 0 or base_lr < 0:
        raise ValueError(
            f"lr_table: need total_steps >= 1, warmup_steps >= 0, base_lr >= 0; got "
            f"{total_steps}, {warmup_steps}, {base_lr}"
        )
    s = np.arange(total_steps + 1, dtype=np.float64)  # one spare entry: a step past the end
    warm = base_lr * (s + 1.0) / max(warmup_steps, 1)
    span = max(total_steps - warmup_steps, 1)
    progress = np.clip((s - warmup_steps) / span, 0.0, 1.0)
    cosine = base_lr * 0.5 * (1.0 + np.cos(np.pi * progress))
    return np.where(s < warmup_steps, warm, cosine)
