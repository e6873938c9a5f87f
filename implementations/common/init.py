"""The initialisation law of every DNArch parameter, written once for both frameworks
(docs/design.md, "Initialisation and training").

Each parameter's distribution is a `Law`: iid uniform on [-bound, bound], iid normal with a
standard deviation, or a constant; the Fourier-feature matrix of the kernel network has one
uniform bound per row (input dimension). The PyTorch and the JAX/Flax modules draw their
parameters through `implementations.{torch,jax}.init`, which turn a `Law` into that
framework's draw: the same law, each framework's own random numbers (JAX: NumPy draws on
the host, seeded by the JAX key and the tensor's name; `implementations.jax.init`). Mask
parameters are not random: each mask computes its initial value from the configuration
(Sec. 3: kernel masks sigma = 0.0325, resolution masks at full resolution, width/depth masks
at the base network's size); `law_for` reports them as `mask`.

The laws (fan_in: input features of the layer):
    Linear/Dense weights and biases (encoder, blocks, heads)   U(+-1 / sqrt(fan_in))
        (PyTorch's nn.Linear default, kept because the CCNN reference code uses it)
    token embedding                                            N(0, 1)  (nn.Embedding default)
    kernel network hidden layers                               N(0, 2 / fan_in), bias 0
        (He: the activations keep unit scale through the GELUs)
    kernel network last layer                                  N(0, 1 / hidden), bias 0
        (kernel values of about unit variance; `kernels` then scales a global kernel by
        1 / sqrt(taps) so the convolution is variance preserving at initialisation)
    Fourier features W (fixed, a buffer)                       U(+-BAND nyquist_d / W0_MAX)
        per input axis d (`implementations.torch.kernels` explains the scale)
    BatchNorm scale 1, BatchNorm shift 0, depthwise-convolution bias 0
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from implementations.common.grids import kernel_taps

# Largest w0 the paper explores (Appx. E.2) and the share of the largest tap grid's Nyquist
# frequency the Fourier features may reach at that w0 (implementations.torch.kernels).
W0_MAX = 30000.0
BAND = 0.5

KINDS = ("uniform", "normal", "constant", "mask")


@dataclass(frozen=True)
class Law:
    """kind: uniform (scale = bound, a number or one per row), normal (scale = std),
    constant (scale = the value) or mask (set by the mask module from the configuration)."""

    kind: str
    scale: float | tuple[float, ...] = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Law.kind={self.kind!r}; valid: {list(KINDS)}")

    def row_scale(self) -> np.ndarray:
        """The scale as an array that broadcasts over a (rows, cols) tensor."""
        s = np.asarray(self.scale, dtype=np.float64)
        return s[:, None] if s.ndim == 1 else s

    def moments(self) -> tuple[float, float]:
        """(mean, standard deviation) of one entry (uniform per-row laws: pooled over rows)."""
        if self.kind == "uniform":
            bounds = np.asarray(self.scale, dtype=np.float64).reshape(-1)
            return 0.0, float(np.sqrt(np.mean(bounds**2) / 3.0))
        if self.kind == "normal":
            return 0.0, float(self.scale)
        if self.kind == "constant":
            return float(self.scale), 0.0
        raise ValueError("a mask parameter has no distribution")


def linear_weight(fan_in: int) -> Law:
    return Law("uniform", 1.0 / math.sqrt(fan_in))


def linear_bias(fan_in: int) -> Law:
    return Law("uniform", 1.0 / math.sqrt(fan_in))


def embedding() -> Law:
    return Law("normal", 1.0)


def kernel_hidden_weight(fan_in: int) -> Law:
    return Law("normal", math.sqrt(2.0 / fan_in))


def kernel_out_weight(hidden: int) -> Law:
    return Law("normal", 1.0 / math.sqrt(hidden))


def zeros() -> Law:
    return Law("constant", 0.0)


def ones() -> Law:
    return Law("constant", 1.0)


def fourier_features(full_taps: tuple[int, ...]) -> Law:
    """W in R^{D x hidden}: row d uniform on +-BAND nyquist_d / W0_MAX, nyquist_d = (K_d - 1)
    / 4 cycles per unit on the largest tap grid of axis d (K_d taps on [-1, 1])."""
    return Law("uniform", tuple(BAND * (k - 1) / 4.0 / W0_MAX for k in full_taps))


def law_for(torch_name: str, cfg) -> Law:
    """The law of the parameter with PyTorch state-dict name `torch_name` in a model built from
    `cfg` (`common.weight_map` names every tensor; a test checks the table covers them all)."""
    n = cfg.n_channels
    last = cfg.kernel_layers - 1
    if torch_name.endswith(".mu") or torch_name.endswith(".sigma"):
        return Law("mask")
    if torch_name == "encoder.embedding.weight":
        return embedding()
    if torch_name in ("encoder.norm_weight",) or torch_name.endswith(".norm_weight"):
        return ones()
    if torch_name.endswith(".norm_bias") or torch_name.endswith(".conv_bias"):
        return zeros()
    if torch_name == "kernel_net.freqs":
        return fourier_features(tuple(kernel_taps(s) for s in cfg.input_shape))
    m = re.fullmatch(r"kernel_net\.layers\.(\d+)\.(weight|bias)", torch_name)
    if m:
        i, what = int(m.group(1)), m.group(2)
        if what == "bias":
            return zeros()
        if i == last:
            return kernel_out_weight(cfg.kernel_hidden)
        return kernel_hidden_weight(2 * cfg.kernel_hidden if i == 0 else cfg.kernel_hidden)
    fan_in = {
        "encoder.linear": cfg.input_features,
        "head": 4 * n if cfg.task == "retrieval" else n,
        "head.0": 4 * n,
        "head.2": cfg.head_hidden,
    }
    m = re.fullmatch(r"(.+)\.(weight|bias)", torch_name)
    if m:
        prefix, what = m.groups()
        if re.fullmatch(r"blocks\.\d+\.linear[12]", prefix):
            f = n
        elif prefix in fan_in:
            f = fan_in[prefix]
        else:
            raise KeyError(f"init.law_for: no law for parameter {torch_name!r}")
        return linear_weight(f) if what == "weight" else linear_bias(f)
    raise KeyError(f"init.law_for: no law for parameter {torch_name!r}")
