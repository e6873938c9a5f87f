"""JAX/Flax implementation of DNArch (`virtual` mode, static shapes). Public names mirror
`implementations.torch`; PyTorch's model methods are functions of (model, variables) here
(see `implementations.jax.model`)."""

from implementations.jax.model import (
    DNArch,
    architecture,
    build_model,
    clamp_masks,
    complexity,
    complexity_loss,
    complexity_ratio,
    init_variables,
    mask_sizes,
)

__all__ = [
    "DNArch",
    "architecture",
    "build_model",
    "clamp_masks",
    "complexity",
    "complexity_loss",
    "complexity_ratio",
    "init_variables",
    "mask_sizes",
]
