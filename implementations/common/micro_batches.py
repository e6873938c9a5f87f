"""Gradient accumulation over micro-batches, shared by both frameworks' training steps: the
check of the option and the caveat every message about it carries."""

from __future__ import annotations

import numpy as np

MICRO_BATCH_NOTE = (
    "BatchNorm normalises with the current batch's statistics in training (Appx. E.1), so "
    "with micro_batches > 1 every sample is normalised with its micro-batch's mean and "
    "variance, not the full batch's: the step equals the full batch's only when every "
    "micro-batch has the full batch's statistics (e.g. a batch of identical copies of one "
    "micro-batch); in general it is a different, smaller-batch-statistics step"
)


def check_micro_batches(batch_size: int, micro_batches: int) -> int:
    """The micro-batch size; a ValueError naming both numbers when `micro_batches` is not a
    positive integer dividing `batch_size` (equal parts keep the weighted sum of the parts'
    mean losses equal to the full batch's mean loss)."""
    if isinstance(micro_batches, bool) or not isinstance(micro_batches, (int, np.integer)):
        raise ValueError(f"micro_batches must be an integer >= 1, got {micro_batches!r}")
    if micro_batches < 1:
        raise ValueError(f"micro_batches must be an integer >= 1, got {micro_batches}")
    if batch_size % micro_batches:
        raise ValueError(
            f"batch size {batch_size} is not divisible by micro_batches={micro_batches}: "
            "gradient accumulation splits every batch into equal parts; choose a "
            f"micro_batches that divides {batch_size}. Note: {MICRO_BATCH_NOTE}"
        )
    return batch_size // micro_batches
