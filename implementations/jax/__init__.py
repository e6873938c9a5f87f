"""JAX/Flax implementation of DNArch. Public names mirror `implementations.torch`."""

from implementations.jax.model import DNArch, build_model

__all__ = ["DNArch", "build_model"]
