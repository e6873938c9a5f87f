"""The kernel network MLP_psi shared by every block (paper Sec. 2.2, Appx. E.1).

gamma(x) = [cos(2 pi w0 W x), sin(2 pi w0 W x)] with W in R^{D x hidden}, followed by
`kernel_layers` linear layers (hidden units, GELU between them). The last layer emits one
kernel value per (block, channel) of the largest network: row b * N_max + c is channel c of
block b, and a block evaluates only its own (kept) rows on its own tap grid.

Scale of W (the paper does not give it; docs/design.md, "Network": no aliasing at
initialisation):
W is fixed (a buffer, not trained), W[d, j] ~ U(-1, 1) * BAND * nyquist_d / W0_MAX, where
nyquist_d = (K_d - 1) / 4 cycles per unit is the Nyquist frequency of the largest tap grid of
axis d (K_d taps on [-1, 1]) and W0_MAX = 30000 the largest w0 the paper explores (Appx. E.2).
So every Fourier feature has frequency w0 |W| <= BAND (w0 / W0_MAX) nyquist_d: w0 keeps its role
as a prior on the kernels' frequency content (Table 6's values order the datasets), and no
feature is aliased on the largest grid. BAND = 0.5 leaves an octave for the harmonics that the
GELUs create; tests/implementations/torch/test_kernels.py measures the spectral energy of the
rendered kernels above the grid's Nyquist frequency at initialisation.

Kernel normalisation (`common.init`, "kernel network last layer"): a block's kernel is always
rendered on its full tap grid (kernel_taps(L_d) taps per axis of L_d input samples, whatever
resolution the block crops to) and starts at values of about 1 / sqrt(taps), taps = prod_d
kernel_taps(L_d), which makes a global convolution variance preserving at initialisation.
`kernel_scale` says where that factor acts: `init` (default, the CCNN code's practice) draws
the last layer's weights sqrt(1 / taps) smaller once and renders kernels unscaled; `forward`
draws unit-variance kernel values and the block multiplies every rendered kernel by
1 / sqrt(taps) (`ResidualBlock.kernel`). A cropped block needs no further factor: Eq. 7 crops
the product spectrum and transforms it back scaled by P_r / P (`fourier.masked_conv`), so its
r samples are the full-resolution convolution's values.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from implementations.common import init
from implementations.common.init import BAND, W0_MAX  # noqa: F401  (re-exported)
from implementations.torch.init import draw, fill_


class KernelNet(nn.Module):
    def __init__(
        self,
        data_dim: int,
        hidden: int,
        layers: int,
        rows: int,
        w0: float,
        full_taps: tuple[int, ...],
        kernel_scale: str = "init",
    ):
        super().__init__()
        self.data_dim = data_dim
        self.w0 = float(w0)
        # W, fixed: U(+-BAND nyquist_d / W0_MAX) per axis d (`common.init.fourier_features`)
        self.register_buffer(
            "freqs", draw(init.fourier_features(tuple(full_taps)), (data_dim, hidden))
        )
        dims = [2 * hidden] + [hidden] * (layers - 1) + [rows]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(dims))
        # the initialisation law (`common.init`): He-normal hidden layers keep the activations
        # at unit scale through the GELUs; the last layer (fan-in scaled) then emits kernel
        # values of about unit variance, times sqrt(1 / taps) of the full tap grid under
        # kernel_scale `init`; zero biases
        for layer in self.layers[:-1]:
            fill_(layer.weight, init.kernel_hidden_weight(layer.in_features))
            fill_(layer.bias, init.zeros())
        gain = init.kernel_init_gain(kernel_scale, math.prod(full_taps))
        fill_(self.layers[-1].weight, init.kernel_out_weight(hidden, gain))
        fill_(self.layers[-1].bias, init.zeros())

    def features(self, coords: torch.Tensor) -> torch.Tensor:
        """Hidden features before the last layer. coords: (K, D) in [-1, 1]. Returns (K, hidden)."""
        z = 2.0 * math.pi * self.w0 * (coords @ self.freqs)  # (K, hidden)
        h = torch.cat([torch.cos(z), torch.sin(z)], dim=-1)  # (K, 2 hidden)
        for layer in self.layers[:-1]:
            h = F.gelu(layer(h))
        return h

    def rows(self, h: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Kernel values of output rows [start, stop) at the features h. Returns (stop-start, K)."""
        last = self.layers[-1]
        return (h @ last.weight[start:stop].T + last.bias[start:stop]).T
