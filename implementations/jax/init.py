"""JAX draws of the one initialisation law (`implementations.common.init`).

Every module of the Flax DNArch creates its parameters through `initializer(law)` with the law
`common.init` gives for it (the same functions the PyTorch modules use through
`implementations.torch.init.fill_`), each from its own key. Mask parameters are not drawn: each
mask computes its initial value from the configuration.

`model.init_variables` draws the random tensors on the host instead (`host_draw`: NumPy,
seeded by the key's bits and the tensor's PyTorch name, the same law): inside
`placeholder_draws()` the Flax initialisers of random laws return zeros, so the jitted Flax
init only lays out the tree and computes masks and constants, and XLA compiles no random-number
program (it would hold ~140 threefry fusions, ~2 s of compilation per model on a CPU).
"""

from __future__ import annotations

import contextlib
import contextvars
import zlib
from collections.abc import Callable, Iterator

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

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
    if _PLACEHOLDERS.get():
        return jnp.zeros(shape, dtype)  # filled by the caller of placeholder_draws()
    if rule.kind == "normal":
        return rule.scale * jax.random.normal(key, shape, dtype)
    bound = rule.row_scale()
    if transposed:
        bound = bound.T
    u = jax.random.uniform(key, shape, dtype)
    return (2.0 * u - 1.0) * jnp.asarray(bound, dtype)


_PLACEHOLDERS: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "dnarch_placeholder_draws", default=False
)


@contextlib.contextmanager
def placeholder_draws() -> Iterator[None]:
    """Within: `draw` returns zeros for the random laws (uniform, normal) instead of drawing;
    constants are still set. For `model.init_variables`, which fills those tensors with
    `host_draw` afterwards."""
    token = _PLACEHOLDERS.set(True)
    try:
        yield
    finally:
        _PLACEHOLDERS.reset(token)


def host_draw(
    rule: law.Law, shape: tuple[int, ...], seed: np.ndarray, name: str, dtype
) -> np.ndarray:
    """A NumPy array of `shape` (PyTorch layout: a per-row bound is per first axis) drawn from
    `rule`, by a generator seeded with the words of `seed` (a JAX key's data) and the CRC-32 of
    the tensor's PyTorch name `name`: independent streams per tensor, the same numbers on
    every machine. Drawn in float64, then cast to `dtype`."""
    if rule.kind not in ("uniform", "normal"):
        raise ValueError(f"host_draw: {name} has law {rule.kind!r}; only random laws are drawn")
    words = [int(w) for w in np.asarray(seed, dtype=np.uint32).ravel()]
    rng = np.random.default_rng([*words, zlib.crc32(name.encode())])
    if rule.kind == "normal":
        x = float(rule.scale) * rng.standard_normal(shape)
    else:
        x = (2.0 * rng.random(shape) - 1.0) * rule.row_scale()
    return np.asarray(x, dtype=np.dtype(dtype))


def initializer(rule: law.Law, transposed: bool = False) -> Callable:
    """A Flax initialiser (key, shape, dtype) drawing from `rule`."""

    def init(key, shape, dtype=jnp.float32):
        return draw(key, rule, tuple(shape), dtype, transposed)

    return init


def dense(n_out: int, n_in: int, dtype, linear_init: str) -> nn.Dense:
    """nn.Dense (kernel (in, out)) drawn like PyTorch's `init.linear` (`linear_init`: a
    `ModelConfig.linear_init` choice)."""
    return nn.Dense(
        n_out,
        kernel_init=initializer(law.linear_weight(n_in, linear_init), transposed=True),
        bias_init=initializer(law.linear_bias(n_in, linear_init)),
        param_dtype=dtype,
    )
