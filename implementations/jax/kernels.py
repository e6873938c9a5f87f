"""The kernel network MLP_psi shared by every block (paper Sec. 2.2, Appx. E.1), in Flax.

Mirrors `implementations.torch.kernels` (the scale of the Fourier-feature matrix W, the
kernel normalisation and their justification are documented there; the constants and the
initialisation law live in `implementations.common.init`).

gamma(x) = [cos(2 pi w0 W x), sin(2 pi w0 W x)], W in R^{D x hidden}, then `kernel_layers`
Dense layers (GELU between them). The last layer emits one kernel value per (block, channel)
of the largest network: column b * N_max + c is channel c of block b.

W (`freqs`) is fixed in PyTorch (a buffer). Here it lives in its own variable collection,
"buffers", next to "params": the optimiser only ever sees "params", so W is never trained, and
the weight map (`common.weight_map`) maps torch's buffer `kernel_net.freqs` to
("buffers", "kernel_net", "freqs").

Initialisation: the common law (`common.init`), exactly as PyTorch's: He-normal hidden layers
with zero biases, the last layer N(0, 1/hidden) with zero bias (times sqrt(1 / taps) of the
full tap grid under kernel_scale `init`), W uniform per axis. Parity
checks copy weights; tests/implementations/common/test_init.py compares the distributions.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from implementations.common import init
from implementations.common.init import BAND, W0_MAX  # noqa: F401  (re-exported)
from implementations.jax.init import draw, initializer


class KernelNet(nn.Module):
    data_dim: int
    hidden: int
    layers: int
    n_rows: int  # PyTorch's constructor argument `rows`; the name `rows` is the method below
    w0: float
    full_taps: tuple[int, ...]
    param_dtype: Any = jnp.float32
    kernel_scale: str = "init"  # `ModelConfig.kernel_scale`: the last layer's gain at init

    def setup(self) -> None:
        rule = init.fourier_features(tuple(self.full_taps))

        def init_freqs():  # (D, hidden), U(+-BAND nyquist_d / W0_MAX) per axis d
            key = self.make_rng("params")
            return draw(key, rule, (self.data_dim, self.hidden), self.param_dtype)

        self.freqs = self.variable("buffers", "freqs", init_freqs)
        dims = [2 * self.hidden] + [self.hidden] * (self.layers - 1) + [self.n_rows]
        pairs = list(itertools.pairwise(dims))
        gain = init.kernel_init_gain(self.kernel_scale, math.prod(self.full_taps))
        dense = []
        for i, (a, b) in enumerate(pairs):
            last = i == len(pairs) - 1
            if last:
                rule = init.kernel_out_weight(self.hidden, gain)
            else:
                rule = init.kernel_hidden_weight(a)
            kernel_init = initializer(rule, transposed=True)
            bias_init = initializer(init.zeros())
            dense.append(
                nn.Dense(
                    b,
                    kernel_init=kernel_init,
                    bias_init=bias_init,
                    param_dtype=self.param_dtype,
                )
            )
        self.dense = dense  # attribute `dense` -> parameter names dense_0 ... dense_{layers-1}

    def features(self, coords: jax.Array) -> jax.Array:
        """Hidden features before the last layer. coords: (K, D) in [-1, 1]. Returns (K, hidden)."""
        freqs = self.freqs.value
        z = 2.0 * math.pi * self.w0 * (coords @ freqs)  # (K, hidden)
        h = jnp.concatenate([jnp.cos(z), jnp.sin(z)], axis=-1)  # (K, 2 hidden)
        for layer in self.dense[:-1]:
            h = jax.nn.gelu(layer(h), approximate=False)
        return h

    def all_rows(self, h: jax.Array) -> jax.Array:
        """Kernel values of every output row at the features h: (K, rows), channels last."""
        return self.dense[-1](h)

    def rows(self, h: jax.Array, start: int, stop: int) -> jax.Array:
        """Kernel values of output rows [start, stop): (stop - start, K), as PyTorch's `rows`."""
        last = self.dense[-1]
        kernel = last.variables["params"]["kernel"]  # (hidden, rows)
        bias = last.variables["params"]["bias"]
        return (h @ kernel[:, start:stop] + bias[start:stop]).T

    def __call__(self, coords: jax.Array) -> jax.Array:
        return self.all_rows(self.features(coords))
