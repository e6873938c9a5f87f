"""PyTorch draws of the one initialisation law (`implementations.common.init`).

Every module of the PyTorch DNArch creates its parameters through `fill_` with the law
`common.init` gives for it (the same functions the JAX modules use through
`implementations.jax.init.initializer`), drawing from PyTorch's global generator
(`torch.manual_seed`). Mask parameters are not drawn: each mask computes its initial value from
the configuration.
"""

from __future__ import annotations

import torch
from torch import nn

from implementations.common import init as law


def draw(rule: law.Law, shape: tuple[int, ...], dtype=None, device=None) -> torch.Tensor:
    """A tensor of `shape` (PyTorch layout) drawn from `rule`."""
    out = torch.empty(shape, dtype=dtype, device=device)
    fill_(out, rule)
    return out


@torch.no_grad()
def fill_(tensor: torch.Tensor, rule: law.Law) -> None:
    """Draw `tensor` in place from `rule` (a `common.init.Law`)."""
    if rule.kind == "mask":
        raise ValueError("init.fill_: mask parameters are set by their mask module, not drawn")
    if rule.kind == "constant":
        tensor.fill_(float(rule.scale))
    elif rule.kind == "normal":
        tensor.normal_(0.0, float(rule.scale))
    else:  # uniform, one bound for all entries or one per row
        bound = torch.as_tensor(rule.row_scale(), dtype=tensor.dtype, device=tensor.device)
        u = torch.rand(tensor.shape, dtype=tensor.dtype, device=tensor.device)
        tensor.copy_((2.0 * u - 1.0) * bound)


def linear(n_in: int, n_out: int, linear_init: str) -> nn.Linear:
    """nn.Linear with weight and bias drawn from `common.init.linear_weight/linear_bias`
    (`linear_init`: a `ModelConfig.linear_init` choice)."""
    layer = nn.Linear(n_in, n_out)
    fill_(layer.weight, law.linear_weight(n_in, linear_init))
    fill_(layer.bias, law.linear_bias(n_in, linear_init))
    return layer
