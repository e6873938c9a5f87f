"""Typed, validated model configuration shared by the PyTorch and JAX implementations.

One `ModelConfig` describes a DNArch model (paper Sec. 2.4, 3; docs/design.md):
which architecture components are learned (the variant), the data it sees and the
hyperparameters of its masks (Table 6). Invalid values fail at construction with a message
that lists the valid choices; nothing is resolved lazily.

Variants (docs/design.md, "Names"):
    ccnn   CCNN_{B,N} with global kernels, no masks at all
    k      learned kernel sizes (Gaussian masks, Sec. 2.4.1)
    kr     kernel sizes + resolution (Fourier-domain sigmoid masks, Sec. 2.4.2)
    krwd   kernel sizes, resolution, width and depth (Sec. 2.4.3-2.4.4) + complexity loss
           (Sec. 2.5). Instantiates CCNN_{max_blocks,max_width} and starts as CCNN_{B,N}.

Training choices the paper leaves open (docs/design.md, "Initialisation and training"); the
defaults follow the group's public CCNN code, the alternatives keep the suite's earlier choices:
    kernel_scale  init     the kernel network's last layer is drawn sqrt(1 / taps) smaller, once
                           (Chang et al. 2020, as the CCNN code's `chang_initialize`); the
                           forward pass applies no factor
                  forward  the rendered kernel is multiplied by 1 / sqrt(taps) in every forward
                           pass (the same values at initialisation; under Adam the kernel
                           values then move sqrt(taps) times slower)
    linear_init   ccnn     pointwise layers and decoder: kaiming-normal weights
                           (std sqrt(2 / fan_in)), zero biases
                  uniform  U(+-1 / sqrt(fan_in)) weights and biases (PyTorch's nn.Linear default)
`implementations.common.init` writes both laws down.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

VARIANTS = ("ccnn", "k", "kr", "krwd")
TASKS = ("global", "dense", "retrieval")
MODES = ("trim", "virtual")
DATA_DIMS = (1, 2)
KERNEL_SCALES = ("init", "forward")
LINEAR_INITS = ("ccnn", "uniform")

Variant = Literal["ccnn", "k", "kr", "krwd"]
Task = Literal["global", "dense", "retrieval"]
Mode = Literal["trim", "virtual"]
KernelScale = Literal["init", "forward"]
LinearInit = Literal["ccnn", "uniform"]


class ConfigError(ValueError):
    """A configuration value is invalid; the message says which key, what and why."""


def _choice(key: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError(f"ModelConfig.{key}={value!r} is invalid; valid choices: {list(choices)}")


def _positive(key: str, value: Any, *, integer: bool = True, allow_zero: bool = False) -> None:
    kind = int if integer else (int, float)
    ok = isinstance(value, kind) and not isinstance(value, bool)
    ok = ok and (value >= 0 if allow_zero else value > 0) and math.isfinite(value)
    if not ok:
        what = "integer" if integer else "number"
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(
            f"ModelConfig.{key}={value!r} is invalid; expected a finite {what} {bound}"
        )


@dataclass(frozen=True)
class ModelConfig:
    """Everything `build_model(cfg)` needs. Frozen: derive a changed copy with `replace()`.

    Inputs are either continuous (`in_channels` set; layout (B, C, *input_shape) in PyTorch,
    (B, *input_shape, C) in JAX) or token ids (`vocab_size` set; layout (B, *input_shape), or
    (B, 2, L) for the retrieval dual encoder). Exactly one of the two must be given.
    """

    variant: Variant
    data_dim: int
    input_shape: tuple[int, ...]
    out_size: int
    task: Task = "global"
    in_channels: int | None = None
    vocab_size: int | None = None
    embed_dim: int | None = None  # token embedding width; None -> `width` (S4 embeds to d_model)
    blocks: int = 4  # B of the base CCNN_{B,N}
    width: int = 140  # N of the base CCNN_{B,N}
    max_blocks: int = 8  # depth of the instantiated network for variant krwd (Sec. 4)
    max_width: int = 280  # width of the instantiated network for variant krwd
    dropout: float = 0.0
    w0: float = 1000.0  # frequency prior of the kernel network (Table 6, "omega_0")
    threshold: float = 0.1  # T_m of Eqs. 1, 2
    tau_resolution: float = 50.0
    tau_channel: float = 25.0
    tau_depth: float = 8.0
    sigma_init: float = 0.0325  # initial Gaussian kernel-mask sigma (Sec. 3)
    kernel_hidden: int = 128  # MLP_psi hidden units (Appx. E.1)
    kernel_layers: int = 4  # MLP_psi linear layers (Appx. E.1)
    retrieval_hidden: int | None = None  # hidden units of the retrieval MLP; None -> `width`
    mode: Mode = "trim"
    kernel_scale: KernelScale = "init"  # where the kernel normalisation 1 / sqrt(taps) acts
    linear_init: LinearInit = "ccnn"  # law of the pointwise layers and the decoder
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        _choice("variant", self.variant, VARIANTS)
        _choice("task", self.task, TASKS)
        _choice("mode", self.mode, MODES)
        _choice("kernel_scale", self.kernel_scale, KERNEL_SCALES)
        _choice("linear_init", self.linear_init, LINEAR_INITS)
        _choice("data_dim", self.data_dim, DATA_DIMS)
        shape = self.input_shape
        if isinstance(shape, list):
            object.__setattr__(self, "input_shape", tuple(shape))
            shape = self.input_shape
        if not isinstance(shape, tuple) or len(shape) != self.data_dim:
            raise ConfigError(
                f"ModelConfig.input_shape={shape!r} is invalid; expected a tuple of "
                f"{self.data_dim} spatial sizes for data_dim={self.data_dim}"
            )
        for n in shape:
            if not isinstance(n, int) or isinstance(n, bool) or n < 3:
                raise ConfigError(
                    f"ModelConfig.input_shape={shape!r} is invalid; every spatial size must be an "
                    "integer >= 3 (the smallest kernel has 3 taps and cannot be larger than the "
                    "input)"
                )
        if (self.in_channels is None) == (self.vocab_size is None):
            raise ConfigError(
                "ModelConfig: give exactly one of in_channels (continuous inputs) and vocab_size "
                f"(token ids); got in_channels={self.in_channels!r}, vocab_size={self.vocab_size!r}"
            )
        if self.in_channels is not None:
            _positive("in_channels", self.in_channels)
        if self.vocab_size is not None:
            _positive("vocab_size", self.vocab_size)
            if self.data_dim != 1:
                raise ConfigError(
                    "ModelConfig.vocab_size is only valid with data_dim=1 (token ids)"
                )
        if self.task == "retrieval" and self.vocab_size is None:
            raise ConfigError("ModelConfig.task='retrieval' needs token inputs (vocab_size)")
        for key in ("out_size", "blocks", "width", "max_blocks", "max_width"):
            _positive(key, getattr(self, key))
        for key in ("kernel_hidden", "kernel_layers"):
            _positive(key, getattr(self, key))
        if self.kernel_layers < 2:
            raise ConfigError("ModelConfig.kernel_layers must be >= 2 (input and output layers)")
        if self.embed_dim is not None:
            _positive("embed_dim", self.embed_dim)
        if self.retrieval_hidden is not None:
            _positive("retrieval_hidden", self.retrieval_hidden)
        if self.width > self.max_width:
            raise ConfigError(
                f"ModelConfig.width={self.width} is above max_width={self.max_width}; "
                "the base width must fit in the instantiated network"
            )
        if self.blocks > self.max_blocks:
            raise ConfigError(
                f"ModelConfig.blocks={self.blocks} is above max_blocks={self.max_blocks}; "
                "the base depth must fit in the instantiated network"
            )
        if self.learns_width and (self.max_width < 2 or self.max_blocks < 2):
            raise ConfigError("ModelConfig: variant krwd needs max_width >= 2 and max_blocks >= 2")
        if not (isinstance(self.dropout, (int, float)) and 0.0 <= self.dropout < 1.0):
            raise ConfigError(
                f"ModelConfig.dropout={self.dropout!r} is invalid; expected 0 <= p < 1"
            )
        if not (isinstance(self.threshold, (int, float)) and 0.0 < self.threshold < 0.5):
            raise ConfigError(
                f"ModelConfig.threshold={self.threshold!r} is invalid; expected 0 < T_m < 0.5"
            )
        for key in ("w0", "tau_resolution", "tau_channel", "tau_depth", "sigma_init"):
            _positive(key, getattr(self, key), integer=False)
        if self.sigma_init >= 1.0:
            raise ConfigError(f"ModelConfig.sigma_init={self.sigma_init} must be < 1")

    # ---- derived properties: which components exist --------------------------------------
    @property
    def learns_kernel(self) -> bool:
        return self.variant in ("k", "kr", "krwd")

    @property
    def learns_resolution(self) -> bool:
        return self.variant in ("kr", "krwd")

    @property
    def learns_width(self) -> bool:
        return self.variant == "krwd"

    @property
    def learns_depth(self) -> bool:
        return self.variant == "krwd"

    @property
    def uses_complexity_loss(self) -> bool:
        return self.variant == "krwd"

    @property
    def n_blocks(self) -> int:
        """Blocks instantiated (depth of the largest network)."""
        return self.max_blocks if self.learns_depth else self.blocks

    @property
    def n_channels(self) -> int:
        """Channels instantiated (width of the largest network)."""
        return self.max_width if self.learns_width else self.width

    @property
    def tokens(self) -> bool:
        return self.vocab_size is not None

    @property
    def embedding_dim(self) -> int:
        return self.embed_dim if self.embed_dim is not None else self.width

    @property
    def head_hidden(self) -> int:
        return self.retrieval_hidden if self.retrieval_hidden is not None else self.width

    @property
    def input_features(self) -> int:
        """Channels entering the encoder's PWLinear."""
        return self.embedding_dim if self.tokens else int(self.in_channels)

    def init_choices(self) -> dict[str, str]:
        """The training choices that fix how the parameters were initialised and what the
        kernel normalisation does: a checkpoint trained under one cannot go on under another."""
        return {"kernel_scale": self.kernel_scale, "linear_init": self.linear_init}

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("extra")
        d["input_shape"] = list(self.input_shape)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"ModelConfig: unknown keys {unknown}; valid keys: {sorted(names)}")
        d = dict(d)
        if "input_shape" in d:
            d["input_shape"] = tuple(d["input_shape"])
        return cls(**d)


def check_input(
    cfg: ModelConfig,
    shape: tuple[int, ...],
    dtype: Any,
    *,
    integer: bool,
    floating: bool,
    channels_last: bool,
    id_range: Callable[[], tuple[int, int]] | None = None,
) -> None:
    """One clear error for an input the model cannot take, the same in both frameworks.

    The caller reads its framework's tensor: `shape`, `dtype` (for the message), whether the
    dtype is an `integer` or a `floating` one, its layout (`channels_last`: JAX) and, for token
    ids, `id_range` giving (min, max) of the values (None where they are not known, as under a
    JAX trace)."""
    got = tuple(shape)
    if cfg.tokens:
        lead = "(B, 2, L)" if cfg.task == "retrieval" else "(B, L)"
        want = (2, *cfg.input_shape) if cfg.task == "retrieval" else tuple(cfg.input_shape)
        if not integer:
            raise TypeError(
                f"DNArch expects integer token ids {lead} with L={cfg.input_shape[0]}, "
                f"got dtype {dtype}"
            )
        if len(got) != len(want) + 1 or got[1:] != want:
            raise ValueError(
                f"DNArch expects token ids of shape {lead} = (B, {', '.join(map(str, want))}), "
                f"got {got}"
            )
        if id_range is not None:
            lo, hi = id_range()
            if lo < 0 or hi >= cfg.vocab_size:
                raise ValueError(
                    f"DNArch: token ids must lie in [0, {cfg.vocab_size - 1}] "
                    f"(vocab_size={cfg.vocab_size}), got values in [{lo}, {hi}]"
                )
        return
    spatial = "L" if cfg.data_dim == 1 else "H, W"
    if channels_last:
        want = (*cfg.input_shape, cfg.in_channels)
        layout, what = f"(B, {spatial}, C)", "channels-last input"
    else:
        want = (cfg.in_channels, *cfg.input_shape)
        layout, what = f"(B, C, {spatial})", "input of shape"
    if not floating:
        raise TypeError(f"DNArch expects a floating-point input {layout}, got dtype {dtype}")
    if len(got) != len(want) + 1 or got[1:] != want:
        raise ValueError(
            f"DNArch expects {what} {layout} = (B, {', '.join(map(str, want))}), got {got}"
        )


TINY_SIZES = dict(width=4, max_width=8, blocks=2, max_blocks=4, kernel_hidden=8)


def tiny_config(
    variant: Variant = "krwd",
    input_shape: tuple[int, ...] = (33,),
    *,
    task: Task = "global",
    **changes: Any,
) -> ModelConfig:
    """A small `ModelConfig` for tests, self-checks, demos and benchmark smoke runs.

    CCNN_{2,4} (instantiated up to CCNN_{4,8} for variant krwd) with an 8-unit kernel network,
    so a forward pass takes milliseconds on a CPU. `data_dim` follows from `input_shape`. The
    inputs are token ids (vocab_size 11, out_size 2) for task 'retrieval' or when `changes`
    gives a vocab_size, else 2 continuous channels (out_size 3). Every other ModelConfig field
    may be set through `changes`, which override the defaults above.
    """
    shape = tuple(input_shape)
    tokens = task == "retrieval" or "vocab_size" in changes
    inputs = dict(vocab_size=11, out_size=2) if tokens else dict(in_channels=2, out_size=3)
    fields: dict[str, Any] = dict(
        variant=variant, data_dim=len(shape), input_shape=shape, task=task, **TINY_SIZES, **inputs
    )
    fields.update(changes)
    return ModelConfig(**fields)
