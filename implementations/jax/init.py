"""JAX draws of the one initialisation law (`implementations.common.init`).

Every module of the Flax DNArch creates its parameters through `initializer(law)` with the law
`common.init` gives for it (the same functions the PyTorch modules use through
`implementations.torch.init.fill_`), each from its own key. Mask parameters are not drawn: each
mask computes its initial value from the configuration.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from implementations.common import init as law


def draw(
    key: jax.Array, rule: law.Law, shape: tuple[int, ...], dtype=jnp.float32, transposed=False
) -> jax.Array:
    """An array of `shape` drawn from `rule`. `transposed`: the array is the transpose of the
    PyTorch tensor the law is written for (a Dense kernel), so a per-row bound is per column."""
    if rule.kind == "mask":
        raise ValueError("init.draw: mask parameters are set by their mask module, not drawn")
    if rule.kind == "constant":
        return jnp.full(shape, rule.scale, dtype)
    if rule.kind == "normal":
        return rule.scale * jax.random.normal(key, shape, dtype)
    bound = rule.row_scale()
    if transposed:
        bound = bound.T
    u = jax.random.uniform(key, shape, dtype)
    return (2.0 * u - 1.0) * jnp.asarray(bound, dtype)


def initializer(rule: law.Law, transposed: bool = False) -> Callable:
    """A Flax initialiser (key, shape, dtype) drawing from `rule`."""

    def init(key, shape, dtype=jnp.float32):
        return draw(key, rule, tuple(shape), dtype, transposed)

    return init


def dense(n_out: int, n_in: int, dtype) -> nn.Dense:
    """nn.Dense (kernel (in, out)) drawn like PyTorch's `init.linear`."""
    return nn.Dense(
        n_out,
        kernel_init=initializer(law.linear_weight(n_in), transposed=True),
        bias_init=initializer(law.linear_bias(n_in)),
        param_dtype=dtype,
    )
