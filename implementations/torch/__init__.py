"""PyTorch implementation of DNArch. Public names mirror `implementations.jax`."""

from implementations.torch.model import DNArch, build_model

__all__ = ["DNArch", "build_model"]
