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

The laws (fan_in: input features of the layer; two of them depend on a `ModelConfig` choice):
    pointwise layers and decoder (encoder PWLinear, the blocks' two PWLinears, the head;
    the retrieval head's two layers), `linear_init`:
        ccnn      weight N(0, 2 / fan_in) (kaiming-normal: fan_in mode, gain sqrt(2)), bias 0
                  (the CCNN code draws its channel mixers, its blocks' pointwise linear and its
                  output layer so; it has no retrieval head, whose two layers are decoder
                  layers here and get the same law)
        uniform   weight and bias U(+-1 / sqrt(fan_in)) (PyTorch's nn.Linear default)
    token embedding                                            N(0, 1)  (nn.Embedding default;
        the CCNN code has none: it feeds token ids as one real-valued channel)
    kernel network hidden layers                               N(0, 2 / fan_in), bias 0
        (He: the activations keep unit scale through the GELUs)
    kernel network last layer, bias 0, `kernel_scale`:
        init      N(0, 1 / (hidden taps))
        forward   N(0, 1 / hidden)
        The kernel values must start at about 1 / sqrt(taps) so that a global convolution is
        variance preserving at initialisation. `forward` draws unit-variance kernel values
        and the blocks multiply every rendered kernel by 1 / sqrt(taps) in every forward pass;
        `init` moves that factor into the weights once (Chang et al. 2020, the CCNN code's
        `chang_initialize`: the last layer's weights times sqrt(1 / taps), taps = the kernel's
        tap count at its first forward pass) and the forward pass applies none. A N(0, s^2)
        draw times c is a N(0, (c s)^2) draw, so the law states the product: re-drawing or
        loading a checkpoint can never apply the factor twice. Both give the same kernel at
        initialisation (the same draws, rounding apart); under Adam, whose steps are about lr
        whatever the gradient's scale, `forward`'s kernel values move sqrt(taps) times slower.
        taps (`kernel_taps_count`): the product over axes of kernel_taps(L_d) of the input's
        L_d. The one kernel network emits every block's rows through the same last layer, and
        every block renders its kernel on the same full tap grid at initialisation (the input's:
        resolution masks start at full resolution; a cropped block later keeps that grid and
        Eq. 7's P_r / P scaling), so one factor serves every row. It is the full grid's count
        also for masked kernels (the Gaussian mask multiplies the values, not the grid): the
        CCNN code's FlexConvs crop their grid to the mask's support before that first pass
        and count the cropped window, which would start masked kernels larger than
        `forward`'s; the full grid keeps both choices' initial kernels equal.
    Fourier features W (fixed, a buffer)                       U(+-BAND nyquist_d / W0_MAX)
        per input axis d (`implementations.torch.kernels` explains the scale)
    BatchNorm scale 1, BatchNorm shift 0, depthwise-convolution bias 0
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from implementations.common.config import KERNEL_SCALES, LINEAR_INITS
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


def linear_weight(fan_in: int, linear_init: str) -> Law:
    """A pointwise layer's or the decoder's weight (`linear_init`: ccnn | uniform)."""
    if linear_init == "ccnn":
        return Law("normal", math.sqrt(2.0 / fan_in))
    if linear_init == "uniform":
        return Law("uniform", 1.0 / math.sqrt(fan_in))
    raise ValueError(f"linear_init={linear_init!r}; valid: {list(LINEAR_INITS)}")


def linear_bias(fan_in: int, linear_init: str) -> Law:
    """A pointwise layer's or the decoder's bias (`linear_init`: ccnn | uniform)."""
    if linear_init == "ccnn":
        return zeros()
    if linear_init == "uniform":
        return Law("uniform", 1.0 / math.sqrt(fan_in))
    raise ValueError(f"linear_init={linear_init!r}; valid: {list(LINEAR_INITS)}")


def embedding() -> Law:
    return Law("normal", 1.0)


def kernel_hidden_weight(fan_in: int) -> Law:
    return Law("normal", math.sqrt(2.0 / fan_in))


def kernel_taps_count(input_shape: tuple[int, ...]) -> int:
    """taps of the kernel normalisation: prod_d kernel_taps(L_d), the full tap grid every block
    renders its kernel on at initialisation."""
    return math.prod(kernel_taps(s) for s in input_shape)


def kernel_init_gain(kernel_scale: str, taps: int) -> float:
    """The factor the kernel network's last-layer weights carry from initialisation on:
    sqrt(1 / taps) for `init`, 1 for `forward`."""
    if kernel_scale == "init":
        return math.sqrt(1.0 / taps)
    if kernel_scale == "forward":
        return 1.0
    raise ValueError(f"kernel_scale={kernel_scale!r}; valid: {list(KERNEL_SCALES)}")


def kernel_forward_gain(kernel_scale: str, taps: int) -> float:
    """The factor a block multiplies its rendered kernel by in every forward pass: 1 / sqrt(taps)
    for `forward`, 1 for `init` (whose weights carry it: `kernel_init_gain`)."""
    if kernel_scale == "forward":
        return 1.0 / math.sqrt(taps)
    if kernel_scale == "init":
        return 1.0
    raise ValueError(f"kernel_scale={kernel_scale!r}; valid: {list(KERNEL_SCALES)}")


def kernel_out_weight(hidden: int, gain: float = 1.0) -> Law:
    """The kernel network's last-layer weight: unit-variance kernel values, times `gain`
    (`kernel_init_gain`)."""
    return Law("normal", gain / math.sqrt(hidden))


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
            taps = kernel_taps_count(cfg.input_shape)
            return kernel_out_weight(cfg.kernel_hidden, kernel_init_gain(cfg.kernel_scale, taps))
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
        law = linear_weight if what == "weight" else linear_bias
        return law(f, cfg.linear_init)
    raise KeyError(f"init.law_for: no law for parameter {torch_name!r}")
