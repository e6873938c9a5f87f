"""DNArch on a Continuous CNN in PyTorch (paper Sec. 2.4, Fig. 5, Fig. 8; Appx. E.1;
docs/design.md, "Network"). Layout: channels first, (B, C, L) or (B, C, H, W);
token ids (B, L), and (B, 2, L) for the retrieval dual encoder.

    Encoder   [Embedding] -> PWLinear -> BatchNorm -> x m_enc -> GELU            (width N_max)
    Block b   BatchNorm -> depthwise FlexConv (Fourier domain, resolution mask + crop)
              -> x m_in -> PWLinear -> x m_mid -> GELU -> Dropout -> PWLinear -> x m_out -> GELU
              -> upsample to the input resolution -> x m_depth[b] -> add into the first N_out
              channels of the stream (identity branch untouched)
    Decoder   global: GlobalAvgPool -> PWLinear; dense: PWLinear per position;
              retrieval: pool each document, MLP on [X1, X2, X1*X2, X1-X2]

Execution modes (docs/design.md, "Execution modes"):
    trim     computes only what the masks keep: channels, blocks, kernel taps and frequencies
             (a block whose resolution mask cuts frequencies runs at a lower resolution).
    virtual  static shapes: everything at the largest size, multiplied by the masks.
Both give the same output for kernel, width and depth masks (every mask is applied right after
the last operation that could make a masked entry non-zero). A block with a resolution mask
computes Eq. 7 in both (`fourier.masked_conv`): the kernel rendered on the block's full tap grid,
input and kernel transformed on P = 2 L points, the product spectrum masked; `trim` crops it and
transforms back at the reduced resolution r, whose samples are exactly the band-limited
full-resolution convolution at the coarse cell centres (i + 1/2) L / r - 1/2 (tested against
`common.reference` at block level). After the convolution the two modes differ by design: `trim`
runs the pointwise layers and non-linearities at r, `virtual` at L
(`grids.TRIM_RESOLUTION_BOUND`).

Bucketed trim (`build_model(cfg, bucketed=True)`, off by default): on a GPU a trimmed
step pays only once its kernels are captured (`torch.compile`, CUDA graphs:
`train.compiled_forward`), and a capture holds for one set of shapes. `plan(trim, bucketed=True)`
rounds the kept sizes up to a few fixed values (`common.buckets`): channels (encoder and
N_in, N_mid, N_out) to eighths of N_max in multiples of 8, kernel windows to odd eighths of the
full tap grid, blocks run to quarters of the depth, and a cropped block's kept P-bins to the
whole spectrum of its r-point grid. Each is the same function as exact trim, values and
gradients (tests/implementations/torch/test_buckets.py, float64): the masks are 0 beyond the
kept prefix, so the extra channels, taps, bins and blocks are multiplied by exact zeros.
NOT bucketed: the resolution r. The output samples of a cropped block sit at the positions
(i + 1/2) L / r - 1/2 and the pointwise layers and GELUs after the convolution run on those
samples: a larger r' would be the same band-limited convolution sampled more densely, but a
different network after it (closer to `virtual`, not equal to exact trim). r is kept exact; it
is already one of the few even 5-smooth lengths (`grids.resolution_for_padded_bins`), so it
adds few shapes.
Mixed precision (`precision="bf16"`): the pointwise linears' GEMMs in bfloat16, results cast
back to float32; FFTs, masks, BatchNorm and the kernel network stay float32.

BatchNorm always uses the statistics of the current batch (Appx. E.1): no running averages.
In `trim` mode the stream carries max(kept widths) channels instead of N_max: channels no layer
writes are zero and the decoder reads only the carried ones, which changes nothing.
Retrieval: both documents go through the encoder in one batch of 2B (BatchNorm statistics are
shared by the two documents).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from implementations.common import buckets as bk
from implementations.common import complexity as cx
from implementations.common import init
from implementations.common import masks as ref
from implementations.common.config import ModelConfig, check_input
from implementations.common.grids import (
    kernel_taps,
    padded_bins,
    padded_frequency_coordinates,
    resolution_for_padded_bins,
)
from implementations.torch.fourier import fft_conv, masked_conv, resample
from implementations.torch.init import fill_, linear
from implementations.torch.kernels import KernelNet
from implementations.torch.masks import GaussianMask, SigmoidMask, coordinates

BN_EPS = 1e-5


def _bshape(v: torch.Tensor, spatial_dims: int) -> torch.Tensor:
    """(C,) -> (1, C, 1, ...) to broadcast over (B, C, *S)."""
    return v.view(1, -1, *([1] * spatial_dims))


def pwlinear(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    compute_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Pointwise linear over the channel axis. x: (B, C_in, *S), weight: (C_out, C_in).
    `compute_dtype` (e.g. torch.bfloat16): the GEMM runs in it and the result comes back in
    x's dtype (mixed precision for the pointwise linears only; the FFTs stay in float32)."""
    b, c = x.shape[:2]
    o = weight.shape[0]
    out_dtype = x.dtype
    if compute_dtype is not None and compute_dtype != x.dtype:
        x, weight, bias = x.to(compute_dtype), weight.to(compute_dtype), bias.to(compute_dtype)
    flat = x.reshape(b, c, -1)  # (B, C_in, prod S)
    # one batched GEMM with the bias as its initial value: measured ~2x faster on a CPU
    # (forward + backward) than `weight @ flat + bias`
    y = torch.baddbmm(bias.view(1, o, 1).expand(b, o, flat.shape[2]), weight.expand(b, o, c), flat)
    return y.view(b, o, *x.shape[2:]).to(out_dtype)


def batch_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """BatchNorm with the statistics of the current batch, always."""
    return F.batch_norm(x, None, None, weight, bias, training=True, eps=BN_EPS)


@dataclass(frozen=True)
class BlockPlan:
    """What a block computes: widths (N_in, N_mid, N_out), kept frequency indices of the
    P = 2 L grid and the resolution per axis, and the kept window of the FULL kernel tap grid
    per axis (None: the whole grid)."""

    widths: tuple[int, int, int]
    kept_bins: tuple[int, ...]
    resolution: tuple[int, ...]
    windows: tuple[tuple[int, int], ...] | None


class Encoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        n = cfg.n_channels
        self.embedding = None
        if cfg.tokens:
            self.embedding = nn.Embedding(cfg.vocab_size, cfg.embedding_dim)
            fill_(self.embedding.weight, init.embedding())
        self.linear = linear(cfg.input_features, n, cfg.linear_init)
        self.norm_weight = nn.Parameter(torch.ones(n))
        self.norm_bias = nn.Parameter(torch.zeros(n))
        self.width_mask = (
            SigmoidMask(n, cfg.tau_channel, cfg.threshold, cfg.width) if cfg.learns_width else None
        )
        self.matmul_dtype: torch.dtype | None = None  # set by DNArch (`precision`)

    def forward(self, x: torch.Tensor, k: int, data_dim: int) -> torch.Tensor:
        """k: output channels computed (the encoder width mask's kept count in trim mode)."""
        if self.embedding is not None:
            x = self.embedding(x).transpose(1, 2)  # (B, L) -> (B, L, E) -> (B, E, L)
        w, b = self.linear.weight[:k], self.linear.bias[:k]
        h = pwlinear(x, w, b, self.matmul_dtype)  # (B, k, *S)
        h = batch_norm(h, self.norm_weight[:k], self.norm_bias[:k])
        if self.width_mask is not None:
            h = h * _bshape(self.width_mask.values()[:k], data_dim)
        return F.gelu(h)


class ResidualBlock(nn.Module):
    def __init__(self, cfg: ModelConfig, index: int):
        super().__init__()
        n = cfg.n_channels
        self.index = index
        self.data_dim = cfg.data_dim
        self.input_shape = tuple(cfg.input_shape)
        self.full_taps = tuple(kernel_taps(s) for s in self.input_shape)
        # kernel normalisation in the forward pass: 1 / sqrt(taps) under kernel_scale
        # `forward`, 1 under `init` (the kernel network's weights carry it; `common.init`)
        self.kernel_gain = init.kernel_forward_gain(cfg.kernel_scale, math.prod(self.full_taps))
        self.threshold = cfg.threshold
        self.norm_weight = nn.Parameter(torch.ones(n))
        self.norm_bias = nn.Parameter(torch.zeros(n))
        self.conv_bias = nn.Parameter(torch.zeros(n))
        self.linear1 = linear(n, n, cfg.linear_init)
        self.linear2 = linear(n, n, cfg.linear_init)
        self.dropout = nn.Dropout(cfg.dropout)
        self.kernel_mask = (
            GaussianMask(self.full_taps, cfg.threshold, cfg.sigma_init)
            if cfg.learns_kernel
            else None
        )
        bins = tuple(padded_bins(s) for s in self.input_shape)
        # the mask's coordinates at the P-grid's frequencies (grids.padded_frequency_coordinates)
        self.res_coords = tuple(padded_frequency_coordinates(s) for s in self.input_shape)
        self.res_mask = (
            SigmoidMask(
                tuple(len(c) for c in self.res_coords),
                cfg.tau_resolution,
                cfg.threshold,
                tuple(b + 1 for b in bins),
            )
            if cfg.learns_resolution
            else None
        )
        width_mask = lambda: SigmoidMask(n, cfg.tau_channel, cfg.threshold, cfg.width)
        self.in_mask = width_mask() if cfg.learns_width else None
        self.mid_mask = width_mask() if cfg.learns_width else None
        self.out_mask = width_mask() if cfg.learns_width else None
        self.matmul_dtype: torch.dtype | None = None  # set by DNArch (`precision`)

    # ---- what this block keeps -------------------------------------------------------------
    def res_values(self, axis: int) -> torch.Tensor:
        """The resolution mask at the P-grid's non-negative frequencies of `axis` (L + 1)."""
        return self.res_mask.values_at(self.res_coords[axis], axis)

    def plan_vectors(self) -> list[torch.Tensor]:
        """The mask values whose non-zero counts fix the block's widths, kept frequencies and
        kernel windows (the kernel mask on the full tap grid)."""
        vecs = []
        if self.in_mask is not None:
            vecs += [self.in_mask.values(), self.mid_mask.values(), self.out_mask.values()]
        if self.res_mask is not None:
            vecs += [self.res_values(a) for a in range(self.data_dim)]
        if self.kernel_mask is not None:
            like = self.kernel_mask.sigma
            vecs += [
                self.kernel_mask.values(coordinates(k, like), a)
                for a, k in enumerate(self.full_taps)
            ]
        return vecs

    def make_plan(self, counts: list[int] | None) -> BlockPlan:
        """What the block computes, from the counts of `plan_vectors()` (None: everything)."""
        n = self.linear1.in_features
        bins = tuple(padded_bins(s) for s in self.input_shape)
        if counts is None:
            return BlockPlan((n, n, n), bins, self.input_shape, None)
        counts = list(counts)
        widths = (n, n, n)
        d = self.data_dim
        if self.in_mask is not None:
            widths, counts = tuple(counts[:3]), counts[3:]
        if self.res_mask is not None:
            bins, counts = tuple(counts[:d]), counts[d:]
        resolution = tuple(resolution_for_padded_bins(k, s) for k, s in zip(bins, self.input_shape))
        windows = None
        if self.kernel_mask is not None:  # centred, symmetric mask on an odd grid
            windows = tuple(
                ((k - c) // 2, (k - c) // 2 + c)
                for k, c in zip(self.full_taps, (max(c, 1) for c in counts[:d]))
            )
        return BlockPlan(widths, bins, resolution, windows)

    def bucket_plan(self, plan: BlockPlan) -> BlockPlan:
        """`plan` with every kept size rounded up to its bucket (`common.buckets`): widths to
        eighths of N_max (multiples of 8), kernel windows to odd eighths of the full tap grid,
        kept P-bins to the whole spectrum of the block's r-point grid. The resolution stays
        exact (module docstring): the bucketed block computes the same function."""
        n = self.linear1.in_features
        widths = tuple(bk.width_bucket(w, n) for w in plan.widths)
        bins = tuple(
            bk.bins_bucket(k, r, s)
            for k, r, s in zip(plan.kept_bins, plan.resolution, self.input_shape)
        )
        windows = plan.windows
        if windows is not None:
            windows = []
            for (start, stop), full in zip(plan.windows, self.full_taps):
                c = bk.taps_bucket(stop - start, full)
                windows.append(((full - c) // 2, (full - c) // 2 + c))
            windows = tuple(windows)
        return BlockPlan(widths, bins, plan.resolution, windows)

    def kernel_floors(self, kept_bins: tuple[int, ...] | None) -> tuple[float, ...]:
        """Lower clamps of the kernel mask's sigma per axis at the block's current resolution
        (`common.masks.kernel_sigma_floor`); full resolution without a resolution mask."""
        if kept_bins is None:
            kept_bins = tuple(padded_bins(s) for s in self.input_shape)
        return tuple(
            ref.kernel_sigma_floor(k, s, self.threshold)
            for k, s in zip(kept_bins, self.input_shape)
        )

    def kernel_size_at(self, resolution: tuple[int, ...], like: torch.Tensor) -> list[int]:
        """Taps of the kernel on the block's own grid (kernel_taps(r) per axis) where the mask
        keeps it: the kernel size Tables 4, 5 report at the block's resolution."""
        if self.kernel_mask is None:
            return [kernel_taps(r) for r in resolution]
        return [
            int(torch.count_nonzero(self.kernel_mask.values(coordinates(kernel_taps(r), like), a)))
            for a, r in enumerate(resolution)
        ]

    def kernel_grid(self, plan: BlockPlan, like: torch.Tensor):
        """Per axis: (coordinates of the taps computed on the full tap grid, mask values there
        or None)."""
        out = []
        for a, k in enumerate(self.full_taps):
            x = coordinates(k, like)
            if self.kernel_mask is None:
                out.append((x, None))
                continue
            m = self.kernel_mask.values(x, a)
            if plan.windows is not None:
                start, stop = plan.windows[a]
                x, m = x[start:stop], m[start:stop]
            out.append((x, m))
        return out

    def kernel(
        self,
        kernel_net: KernelNet,
        n_channels: int,
        plan: BlockPlan,
        hidden_cache: dict | None,
    ) -> torch.Tensor:
        """The block's depthwise kernel on its full tap grid (the kept window in trim):
        (k_in, *K)."""
        k_in = plan.widths[0]
        grid = self.kernel_grid(plan, kernel_net.freqs)
        axes = [x for x, _ in grid]
        taps = tuple(len(x) for x in axes)
        # a centred window of the full grid: its coordinates follow from the two sizes
        key = (self.full_taps, taps)
        if hidden_cache is not None and key in hidden_cache:
            h = hidden_cache[key]
        else:
            mesh = torch.meshgrid(*axes, indexing="ij")
            coords = torch.stack([m.reshape(-1) for m in mesh], dim=-1)  # (prod K, D)
            h = kernel_net.features(coords)  # (prod K, hidden)
            if hidden_cache is not None:
                hidden_cache[key] = h
        start = self.index * n_channels
        k = kernel_net.rows(h, start, start + k_in).reshape(k_in, *taps)  # (k_in, *K)
        for a, (_, m) in enumerate(grid):
            if m is not None:
                shape = [1] * (self.data_dim + 1)
                shape[a + 1] = -1
                k = k * m.view(shape)
        return k if self.kernel_gain == 1.0 else k * self.kernel_gain

    def conv_path(
        self,
        h: torch.Tensor,
        kernel_net: KernelNet,
        plan: BlockPlan,
        hidden_cache: dict | None = None,
    ) -> torch.Tensor:
        """The block's convolution (without its bias): (B, k_in, *L) -> (B, k_in, *r). With a
        resolution mask, Eq. 7 (`fourier.masked_conv`); without, the linear convolution."""
        kernel = self.kernel(kernel_net, self.linear1.in_features, plan, hidden_cache)
        if self.res_mask is None:
            return fft_conv(h, kernel)
        masks = [self.res_values(a) for a in range(self.data_dim)]
        return masked_conv(h, kernel, masks, plan.kept_bins, plan.resolution)

    def forward(
        self,
        x: torch.Tensor,
        kernel_net: KernelNet,
        depth_value: torch.Tensor | None,
        plan: BlockPlan,
        hidden_cache: dict | None = None,
    ) -> torch.Tensor:
        d = self.data_dim
        k_in, k_mid, k_out = plan.widths
        h = batch_norm(x[:, :k_in], self.norm_weight[:k_in], self.norm_bias[:k_in])
        # Sec. 2.4.2, Eq. 7: convolve, low-pass and (trim) crop in one go
        h = self.conv_path(h, kernel_net, plan, hidden_cache) + _bshape(self.conv_bias[:k_in], d)
        if self.in_mask is not None:
            h = h * _bshape(self.in_mask.values()[:k_in], d)
        h = pwlinear(
            h, self.linear1.weight[:k_mid, :k_in], self.linear1.bias[:k_mid], self.matmul_dtype
        )
        if self.mid_mask is not None:
            h = h * _bshape(self.mid_mask.values()[:k_mid], d)
        h = self.dropout(F.gelu(h))
        h = pwlinear(
            h, self.linear2.weight[:k_out, :k_mid], self.linear2.bias[:k_out], self.matmul_dtype
        )
        if self.out_mask is not None:
            h = h * _bshape(self.out_mask.values()[:k_out], d)
        h = F.gelu(h)
        h = resample(h, self.input_shape)  # back to the block's input resolution
        if depth_value is not None:
            h = h * depth_value
        if k_out == x.shape[1]:
            return x + h
        return torch.cat([x[:, :k_out] + h, x[:, k_out:]], dim=1)

    def complexity_terms(self, cfg: ModelConfig):
        """(res, n_in, n_mid, n_out) as differentiable sizes (`complexity.block_sizes`)."""
        return cx.block_sizes(self, cfg.width)


PRECISIONS = {"float32": None, "bf16": torch.bfloat16}


class DNArch(nn.Module):
    """A DNArch model. Build it with `build_model(cfg)`; `bucketed` and `precision`: see
    `build_model`."""

    def __init__(self, cfg: ModelConfig, bucketed: bool = False, precision: str = "float32"):
        super().__init__()
        if precision not in PRECISIONS:
            raise ValueError(f"DNArch: unknown precision {precision!r}; valid: {list(PRECISIONS)}")
        self.cfg = cfg
        self.mode = cfg.mode
        self.bucketed = bool(bucketed)
        self.precision = precision
        n = cfg.n_channels
        full_taps = tuple(kernel_taps(s) for s in cfg.input_shape)
        self.encoder = Encoder(cfg)
        self.kernel_net = KernelNet(
            cfg.data_dim,
            cfg.kernel_hidden,
            cfg.kernel_layers,
            cfg.n_blocks * n,
            cfg.w0,
            full_taps,
            kernel_scale=cfg.kernel_scale,
        )
        self.blocks = nn.ModuleList(ResidualBlock(cfg, b) for b in range(cfg.n_blocks))
        self.depth_mask = (
            SigmoidMask(cfg.n_blocks, cfg.tau_depth, cfg.threshold, cfg.blocks)
            if cfg.learns_depth
            else None
        )
        if cfg.task == "retrieval":
            self.head = nn.Sequential(
                linear(4 * n, cfg.head_hidden, cfg.linear_init),
                nn.GELU(),
                linear(cfg.head_hidden, cfg.out_size, cfg.linear_init),
            )
        else:
            self.head = linear(n, cfg.out_size, cfg.linear_init)
        self._target = cx.target_complexity(cfg)
        for m in [self.encoder, *self.blocks]:
            m.matmul_dtype = PRECISIONS[precision]

    # ---- input checks ------------------------------------------------------------------
    def _check_input(self, x: torch.Tensor) -> None:
        cfg = self.cfg
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"DNArch expects a torch.Tensor, got {type(x).__name__}")
        floating = x.dtype.is_floating_point
        check_input(
            cfg,
            tuple(x.shape),
            x.dtype,
            integer=not (floating or x.dtype.is_complex or x.dtype == torch.bool),
            floating=floating,
            channels_last=False,
            id_range=lambda: (int(x.min()), int(x.max())),
        )

    # ---- forward -------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        trim = self.mode == "trim"
        return self.forward_planned(x, *self.plan(trim, bucketed=trim and self.bucketed))

    def forward_planned(
        self, x: torch.Tensor, k_enc: int, n_run: int, plans: list[BlockPlan]
    ) -> torch.Tensor:
        """The forward pass for a plan (`plan()`), without the input checks. Its tensor shapes
        depend on x's shape and the plan's integers only, so a compiled version (`torch.compile`
        or a CUDA graph) holds for every mask state with the same (bucketed) plan."""
        cfg = self.cfg
        trim = self.mode == "trim"
        batch = x.shape[0]
        if cfg.task == "retrieval":
            x = torch.cat([x[:, 0], x[:, 1]], dim=0)  # (2B, L): documents 1 then 2
        h = self.encoder(x, k_enc, cfg.data_dim)  # (B', k_enc, *S)
        depth = self.depth_mask.values() if self.depth_mask is not None else None
        width = h.shape[1]
        if trim:
            for p in plans[:n_run]:
                width = max(width, *p.widths)
            if width > h.shape[1]:
                h = F.pad(h, (0, 0) * cfg.data_dim + (0, width - h.shape[1]))
        # the kernel network's hidden features per tap grid, shared by the blocks that use
        # the same grid (every block in virtual mode; in trim those whose kernel windows have
        # the same size): one evaluation of the hidden layers per grid and forward, not one
        # per block
        cache: dict = {}
        for block, p in zip(self.blocks[:n_run], plans):
            dv = depth[block.index] if depth is not None else None
            h = block(h, self.kernel_net, dv, p, cache)
        return self._decode(h, batch)

    def plan(self, trim: bool, bucketed: bool = False) -> tuple[int, int, list[BlockPlan]]:
        """(encoder width, blocks run, one BlockPlan per block run) for a forward pass.

        In trim mode the kept counts (widths, depth, frequencies, kernel windows) come from the
        mask values with one host synchronisation in all, not one per mask: on a GPU each
        `.item()` waits for the queue to drain. `bucketed`: every kept count rounded up to its
        bucket (`common.buckets`, `bucket_plan`); the same function, fewer distinct shapes."""
        n = self.cfg.n_channels
        if not trim:
            return n, len(self.blocks), [b.make_plan(None) for b in self.blocks]
        head = []
        if self.encoder.width_mask is not None:
            head.append(self.encoder.width_mask.values())
        if self.depth_mask is not None:
            head.append(self.depth_mask.values())
        per_block = [b.plan_vectors() for b in self.blocks]
        vecs = head + [v for vs in per_block for v in vs]
        counts = _count_nonzero(vecs)
        k_enc = counts.pop(0) if self.encoder.width_mask is not None else n
        n_run = counts.pop(0) if self.depth_mask is not None else len(self.blocks)
        if bucketed:
            k_enc = bk.width_bucket(k_enc, n)
            n_run = bk.blocks_bucket(n_run, len(self.blocks))
        plans = []
        for block, vs in zip(self.blocks[:n_run], per_block):
            p = block.make_plan(counts[: len(vs)])
            plans.append(block.bucket_plan(p) if bucketed else p)
            counts = counts[len(vs) :]
        return k_enc, n_run, plans

    def _decode(self, h: torch.Tensor, batch: int) -> torch.Tensor:
        cfg = self.cfg
        n = cfg.n_channels
        w = h.shape[1]
        if cfg.task == "dense":
            return pwlinear(h, self.head.weight[:, :w], self.head.bias)  # (B, out, *S)
        pooled = h.mean(dim=tuple(range(2, h.ndim)))  # (B', w)
        if w < n:
            pooled = F.pad(pooled, (0, n - w))
        if cfg.task == "global":
            return self.head(pooled)
        x1, x2 = pooled[:batch], pooled[batch:]
        return self.head(torch.cat([x1, x2, x1 * x2, x1 - x2], dim=-1))

    # ---- architecture and complexity -----------------------------------------------------
    def complexity(self) -> torch.Tensor:
        """C_curr (Sec. 2.5, Appx. C) as a differentiable scalar tensor."""
        cfg = self.cfg
        shape = cx.network_shape(cfg)
        n_enc = self.encoder.width_mask.size() if self.encoder.width_mask is not None else None
        n_enc = float(cfg.width) if n_enc is None else n_enc
        terms = [block.complexity_terms(cfg) for block in self.blocks]
        depth = self.depth_mask.size() if self.depth_mask is not None else float(cfg.blocks)
        c = cx.network_cost(
            shape,
            n_enc,
            terms,
            depth,
            log2=lambda v: torch.log2(v) if torch.is_tensor(v) else math.log2(v),
            clip01=lambda v: torch.clamp(v, 0.0, 1.0) if torch.is_tensor(v) else min(max(v, 0), 1),
        )
        ref = self.kernel_net.freqs
        return c if torch.is_tensor(c) else torch.tensor(c, dtype=ref.dtype, device=ref.device)

    def complexity_target(self) -> float:
        return self._target

    def complexity_ratio(self) -> float:
        return float(self.complexity().detach()) / self._target

    def complexity_loss(self) -> torch.Tensor:
        """lambda-free L_comp = (C_curr / C_target - 1)^2 (Eq. 11); 0 for variants without it."""
        if not self.cfg.uses_complexity_loss:
            return self.kernel_net.freqs.new_zeros(())
        return (self.complexity() / self._target - 1.0) ** 2

    def realised_complexity(self) -> float:
        """The complexity of what `trim` computes: the Appx. C formula of `complexity()` at the
        kept (integer) sizes instead of the continuous Eq. 9/10 sizes: encoder width, blocks
        run, each block's resolution (samples) and kept widths."""
        with torch.no_grad():
            k_enc, n_run, plans = self.plan(trim=True)
        terms = [(math.prod(p.resolution), *p.widths) for p in plans[:n_run]]
        return float(
            cx.network_cost(
                cx.network_shape(self.cfg),
                k_enc,
                terms,
                n_run,
                log2=math.log2,
                clip01=lambda v: min(max(v, 0), 1),
            )
        )

    @torch.no_grad()
    def clamp_masks(self) -> None:
        """Appx. E.1: reset mask parameters into their admissible ranges (after every step).
        Sigmoid masks first; then each kernel mask, whose lower clamp follows its block's
        resolution as the (clamped) resolution mask currently sets it (`kernel_floors`)."""
        for module in self.modules():
            if isinstance(module, SigmoidMask):
                module.clamp_()
        blocks = [b for b in self.blocks if b.kernel_mask is not None]
        res = [b for b in blocks if b.res_mask is not None]
        vecs = [b.res_values(a) for b in res for a in range(b.data_dim)]
        counts = _count_nonzero(vecs)
        kept = {}
        for b in res:
            kept[b.index], counts = tuple(counts[: b.data_dim]), counts[b.data_dim :]
        for b in blocks:
            b.kernel_mask.clamp_(b.kernel_floors(kept.get(b.index)))

    @torch.no_grad()
    def architecture(self) -> list[dict]:
        """One row per surviving block (Tables 4, 5): kernel size (taps per axis), resolution
        (samples per axis) and [N_in, N_mid, N_out]; `len()` of the list is the depth."""
        _, n_run, plans = self.plan(trim=True)
        rows = []
        like = self.kernel_net.freqs
        for block, p in zip(self.blocks[:n_run], plans):
            rows.append(
                {
                    "block": block.index,
                    "kernel_size": block.kernel_size_at(p.resolution, like),
                    "resolution": list(p.resolution),
                    "width": list(p.widths),
                }
            )
        return rows

    @torch.no_grad()
    def mask_sizes(self) -> dict[str, float]:
        """Every mask's continuous size (Eqs. 9, 10), for logging."""
        out: dict[str, float] = {}
        if self.encoder.width_mask is not None:
            out["encoder.width"] = float(self.encoder.width_mask.size())
        if self.depth_mask is not None:
            out["depth"] = float(self.depth_mask.size())
        for block in self.blocks:
            p = f"blocks.{block.index}"
            if block.kernel_mask is not None:
                for a in range(block.data_dim):
                    out[f"{p}.kernel.{a}"] = float(block.kernel_mask.size(a))
            if block.res_mask is not None:
                for a, s in enumerate(block.input_shape):
                    out[f"{p}.resolution.{a}"] = float(block.res_mask.size(a, total=s))
            if block.in_mask is not None:
                out[f"{p}.width.in"] = float(block.in_mask.size())
                out[f"{p}.width.mid"] = float(block.mid_mask.size())
                out[f"{p}.width.out"] = float(block.out_mask.size())
        return out

    def mask_parameters(self) -> list[nn.Parameter]:
        return [
            p
            for m in self.modules()
            if isinstance(m, (SigmoidMask, GaussianMask))
            for p in m.parameters(recurse=False)
        ]

    def param_groups(self, weight_decay: float) -> list[dict]:
        """AdamW groups (Appx. E.2): no weight decay on masks, BatchNorm parameters, biases."""
        decay = [self.kernel_net.layers[i].weight for i in range(len(self.kernel_net.layers))]
        decay += [self.encoder.linear.weight]
        if self.encoder.embedding is not None:
            decay.append(self.encoder.embedding.weight)
        for block in self.blocks:
            decay += [block.linear1.weight, block.linear2.weight]
        decay += [m.weight for m in self.head.modules() if isinstance(m, nn.Linear)]
        ids = {id(p) for p in decay}
        rest = [p for p in self.parameters() if id(p) not in ids]
        return [
            {"params": decay, "weight_decay": weight_decay},
            {"params": rest, "weight_decay": 0.0},
        ]


def _count_nonzero(vectors: list[torch.Tensor]) -> list[int]:
    """Non-zero entries of each vector, fetched to the host in one transfer."""
    if not vectors:
        return []
    return torch.stack([torch.count_nonzero(v.detach()) for v in vectors]).tolist()


def build_model(cfg: ModelConfig, bucketed: bool = False, precision: str = "float32") -> DNArch:
    """Build a DNArch model for `cfg` (all four variants, 1D and 2D, every head).

    `bucketed` (trim mode only; off by default): the kept sizes are rounded up to buckets
    (`common.buckets`) so that a compiled or graph-captured step (`train.compiled_forward`)
    is reused while the masks move; same outputs and gradients as exact trim.
    `precision`: "float32", or "bf16" for the pointwise linears' GEMMs (results back in float32;
    FFTs, masks and BatchNorm stay float32). TF32 is a process-wide switch
    (`torch.backends.cuda.matmul.allow_tf32`), left to the caller."""
    if not isinstance(cfg, ModelConfig):
        raise TypeError(f"build_model expects a ModelConfig, got {type(cfg).__name__}")
    return DNArch(cfg, bucketed=bucketed, precision=precision)


@torch.no_grad()
def randomize_masks(model: DNArch, generator: torch.Generator, resolution: bool = True) -> None:
    """Draw every mask parameter uniformly within its clamps (tests, parity, benchmarks).
    With `resolution=False` resolution masks keep their value (full resolution at init)."""
    res = {id(b.res_mask) for b in model.blocks if b.res_mask is not None}
    for m in model.modules():
        if isinstance(m, SigmoidMask) and (resolution or id(m) not in res):
            u = torch.rand(m.mu.shape, generator=generator, dtype=torch.float64)
            m.mu.copy_(m.mu_min + u * (m.mu_max - m.mu_min))
        elif isinstance(m, GaussianMask):
            for a in range(len(m.taps_full)):
                u = float(torch.rand((), generator=generator, dtype=torch.float64))
                m.sigma[a] = m.sigma_min[a] + u * (m.sigma_max[a] - m.sigma_min[a])


@torch.no_grad()
def set_sigmoid_masks(model: DNArch, t: float, resolution: bool = True) -> None:
    """Put every sigmoid mask's offset at mu_min + t (mu_max - mu_min), t in [0, 1]."""
    res = {id(b.res_mask) for b in model.blocks if b.res_mask is not None}
    for m in model.modules():
        if isinstance(m, SigmoidMask) and (resolution or id(m) not in res):
            m.mu.fill_(m.mu_min + t * (m.mu_max - m.mu_min))
