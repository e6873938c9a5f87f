"""DNArch on a Continuous CNN in JAX/Flax (paper Sec. 2.4, Sec. 4, Fig. 5, Fig. 8; Appx. E.1;
docs/design.md, "Network"). Mirrors `implementations.torch.model` in `virtual` mode.

Layout: channels LAST, (B, L, C) or (B, H, W, C); token ids (B, L), and (B, 2, L) for the
retrieval dual encoder. (PyTorch is channels first; the boundary is crossed only in
`common.weight_map` and `pipelines.parity`.)

    Encoder   [Embed] -> Dense -> BatchNorm -> x m_enc -> GELU                     (width N_max)
    Block b   BatchNorm -> [x resolution mask in the Fourier domain] -> depthwise FlexConv
              -> x m_in -> Dense -> x m_mid -> GELU -> Dropout -> Dense -> x m_out -> GELU
              -> x m_depth[b] -> add into the stream (identity branch untouched)
    Decoder   global: GlobalAvgPool -> Dense; dense: Dense per position;
              retrieval: pool each document, MLP on [X1, X2, X1*X2, X1-X2]

Static shapes only (`virtual` mode, Sec. 4: what XLA/TPU requires): every mask multiplies at
full size, a block with a resolution mask computes Eq. 7 without the crop (`fourier.masked_conv`:
the product spectrum on P = 2 L points times the mask, exactly PyTorch's), every block
that the depth mask keeps runs (times its depth-mask value) and every kernel is rendered on
the full tap grid. The forward pass, the loss and the train step therefore have one shape
whatever the mask parameters are, and a jitted step never recompiles when they change. Two
departures from computing everything, both run-time branches with static shapes on every side
(`nn.cond`, `nn.switch`) that change no output and no gradient: a block whose depth-mask
value is exactly 0 is skipped, and a block runs at the narrowest of a few static widths that
holds every channel its width masks keep (`DNArch.skip_cut_blocks`, `DNArch.width_buckets`,
`DNArch._run_block`). `architecture()` reports
what a trimmed network would keep; it reads concrete parameter values and is called eagerly.
`cfg.mode` is ignored here (JAX has no `trim` mode).

Flax flavour: Linen. The whole state is two plain pytrees, {"params": ..., "buffers": ...}:
exactly what `jax.jit`, `jax.grad`, optax and the explicit torch <-> JAX weight map
(`common.weight_map`) operate on, with parameter names fixed by the attribute names given in
`setup` (`encoder`, `kernel_net`, `blocks_{b}`, `depth_mask`, `head` ...). NNX's mutable
objects would mirror the PyTorch classes more literally but need a split/merge around every
jitted call and a graph traversal per step; nothing here needs mutable state (BatchNorm keeps
no running averages, Appx. E.1), so the functional flavour costs nothing and keeps the train
step a pure function whose compilations are easy to count.

Because Linen modules are stateless, the PyTorch model's methods are module-level functions
here taking `(model, variables)` (or `(model, params)`): `complexity`, `complexity_ratio`,
`complexity_loss`, `complexity_target`, `architecture`, `mask_sizes`, `clamp_masks`
(returns a new parameter tree instead of clamping in place), `param_groups` (returns the
weight-decay mask). `init_variables(model, key)` creates the variables.

BatchNorm uses the statistics of the current batch (biased variance, eps 1e-5), always.
Retrieval: both documents go through the encoder in one batch of 2B, as in PyTorch.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

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
from implementations.common.weight_map import jax_to_torch, torch_to_jax
from implementations.jax.fourier import fft_conv, masked_conv
from implementations.jax.init import dense, host_draw, initializer, placeholder_draws
from implementations.jax.kernels import KernelNet
from implementations.jax.masks import (
    GaussianMask,
    SigmoidMask,
    coordinates,
    kept_prefix,
    kept_window,
    sigmoid_mask,
)

BN_EPS = 1e-5


def gelu(x: jax.Array) -> jax.Array:
    """Exact (erf) GELU, PyTorch's F.gelu default."""
    return jax.nn.gelu(x, approximate=False)


def batch_norm(x: jax.Array, scale: jax.Array, bias: jax.Array) -> jax.Array:
    """BatchNorm over every axis but the last (channels), statistics of the current batch,
    biased variance (what F.batch_norm normalises with).

    Corrected two-pass statistics (Chan, Golub & LeVeque 1983): the float32 mean is off by
    ~u |mean|, so `x - mean` keeps a small offset; subtracting the mean of the centred values
    removes it. Mathematically a no-op (same function, same gradient), numerically it brings
    float32 to what PyTorch's CPU kernel reaches by accumulating its statistics in float64:
    a float32 resolution-mask gradient that cancels to 1e-7 went from 2.5e-4 to 3.8e-5
    relative error against float64 (PyTorch float32: 3.0e-5), pipelines.parity kr 1D global.
    """
    axes = tuple(range(x.ndim - 1))
    centred = x - jnp.mean(x, axis=axes)
    centred = centred - jnp.mean(centred, axis=axes)
    var = jnp.mean(centred * centred, axis=axes)
    return centred * jax.lax.rsqrt(var + BN_EPS) * scale + bias


def clip01(v: jax.Array) -> jax.Array:
    """clip(v, 0, 1) with torch.clamp's gradient: 1 on the CLOSED interval [0, 1], 0 outside.
    jnp.clip (min/max) splits the gradient 0.5/0.5 at v == 0 or 1, and C_curr's depth term
    hits exactly v = 1 whenever size(m_depth) is straight-through clipped at max_blocks
    (clip01(N_max - (N_max - 1))), which halved the depth-mask gradient against PyTorch."""
    return jnp.where((v >= 0.0) & (v <= 1.0), v, jnp.clip(v, 0.0, 1.0))


def _dense(features: int, fan_in: int, dtype: Any, cfg: ModelConfig) -> nn.Dense:
    """A Dense layer drawn from the common law (`common.init.linear_weight/linear_bias`, the
    configuration's `linear_init`)."""
    return dense(features, fan_in, dtype, cfg.linear_init)


def _width_mask(cfg: ModelConfig, dtype: Any) -> SigmoidMask:
    return SigmoidMask(cfg.n_channels, cfg.tau_channel, cfg.threshold, cfg.width, dtype)


class Encoder(nn.Module):
    cfg: ModelConfig
    param_dtype: Any = jnp.float32

    def setup(self) -> None:
        cfg = self.cfg
        n = cfg.n_channels
        self.embedding = (
            nn.Embed(
                cfg.vocab_size,
                cfg.embedding_dim,
                embedding_init=initializer(init.embedding()),
                param_dtype=self.param_dtype,
            )
            if cfg.tokens
            else None
        )
        self.linear = _dense(n, cfg.input_features, self.param_dtype, cfg)
        self.norm_scale = self.param("norm_scale", nn.initializers.ones, (n,), self.param_dtype)
        self.norm_bias = self.param("norm_bias", nn.initializers.zeros, (n,), self.param_dtype)
        self.width_mask = _width_mask(cfg, self.param_dtype) if cfg.learns_width else None

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.embedding is not None:
            x = self.embedding(x)  # (B, L) -> (B, L, E): already channels last
        h = self.linear(x)  # (B, *S, N)
        h = batch_norm(h, self.norm_scale, self.norm_bias)
        if self.width_mask is not None:
            h = h * self.width_mask.values()
        return gelu(h)


class ResidualBlock(nn.Module):
    cfg: ModelConfig
    index: int
    param_dtype: Any = jnp.float32

    def setup(self) -> None:
        cfg = self.cfg
        n = cfg.n_channels
        dt = self.param_dtype
        self.norm_scale = self.param("norm_scale", nn.initializers.ones, (n,), dt)
        self.norm_bias = self.param("norm_bias", nn.initializers.zeros, (n,), dt)
        self.conv_bias = self.param("conv_bias", nn.initializers.zeros, (n,), dt)
        self.linear1 = _dense(n, n, dt, cfg)
        self.linear2 = _dense(n, n, dt, cfg)
        self.dropout = nn.Dropout(cfg.dropout)
        self.kernel_mask = (
            GaussianMask(self.full_taps, cfg.threshold, cfg.sigma_init, dt)
            if cfg.learns_kernel
            else None
        )
        bins = self.bins
        self.res_mask = (
            SigmoidMask(bins, cfg.tau_resolution, cfg.threshold, tuple(b + 1 for b in bins), dt)
            if cfg.learns_resolution
            else None
        )
        self.in_mask = _width_mask(cfg, dt) if cfg.learns_width else None
        self.mid_mask = _width_mask(cfg, dt) if cfg.learns_width else None
        self.out_mask = _width_mask(cfg, dt) if cfg.learns_width else None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.cfg.input_shape)

    @property
    def full_taps(self) -> tuple[int, ...]:
        return tuple(kernel_taps(s) for s in self.input_shape)

    @property
    def bins(self) -> tuple[int, ...]:
        """P-bins (P = 2 L) per axis: the frequencies the resolution mask multiplies."""
        return tuple(padded_bins(s) for s in self.input_shape)

    def res_values(self, axis: int) -> jax.Array:
        """The resolution mask at the P-grid's non-negative frequencies of `axis` (L + 1)."""
        coords = padded_frequency_coordinates(self.input_shape[axis])
        return self.res_mask.values_at(coords, axis)

    # ---- what a trimmed version of this block keeps (eager, concrete parameters) -----------
    def widths(self, trim: bool) -> tuple[int, int, int]:
        n = self.cfg.n_channels
        if not trim or self.in_mask is None:
            return n, n, n
        return self.in_mask.kept(), self.mid_mask.kept(), self.out_mask.kept()

    def kept_bins(self, trim: bool) -> tuple[int, ...]:
        if not trim or self.res_mask is None:
            return self.bins
        return tuple(kept_prefix(self.res_values(a)) for a in range(self.cfg.data_dim))

    def resolution(self, trim: bool) -> tuple[int, ...]:
        kept = self.kept_bins(trim)
        return tuple(resolution_for_padded_bins(k, s) for k, s in zip(kept, self.input_shape))

    def kernel_size_at(self, resolution: tuple[int, ...], dtype: Any) -> list[int]:
        """Taps of the kernel on the block's own grid (kernel_taps(r) per axis) where the mask
        keeps it (Tables 4, 5). Eager only."""
        return [len(x) for x, _ in self.kernel_grid(resolution, trim=True, dtype=dtype)]

    def kernel_grid(self, resolution: tuple[int, ...], trim: bool, dtype: Any):
        """Per axis: (coordinates of the taps of the grid at `resolution`, mask values there or
        None). `trim=True` only eagerly (architecture reporting)."""
        out = []
        for a, r in enumerate(resolution):
            x = coordinates(kernel_taps(r), dtype)
            if self.kernel_mask is None:
                out.append((x, None))
                continue
            m = self.kernel_mask.values(x, a)
            if trim:
                start, stop = kept_window(m)
                x, m = x[start:stop], m[start:stop]
            out.append((x, m))
        return out

    # ---- forward (virtual) -------------------------------------------------------------------
    def kernel(self, rows: jax.Array) -> jax.Array:
        """The block's depthwise kernel on the full tap grid from its kernel-net outputs.
        rows: (prod K, n) for the first n channels, taps in 'ij' order. Returns (*K, n),
        channels last."""
        grid = self.kernel_grid(self.input_shape, trim=False, dtype=rows.dtype)
        k = rows.reshape(*self.full_taps, rows.shape[-1])  # (prod K, n) -> (*K, n)
        d = self.cfg.data_dim
        for a, (_, m) in enumerate(grid):
            if m is not None:
                shape = [1] * (d + 1)
                shape[a] = -1
                k = k * m.reshape(shape)
        # the full tap grid's normalisation under kernel_scale `forward`, as in PyTorch
        # (`implementations.torch.kernels`); under `init` the kernel network's weights carry it
        gain = init.kernel_forward_gain(self.cfg.kernel_scale, math.prod(self.full_taps))
        return k if gain == 1.0 else k * gain

    def conv_path(self, h: jax.Array, rows: jax.Array) -> jax.Array:
        """The block's convolution (without its bias) at full resolution: Eq. 7 uncropped
        (`fourier.masked_conv`) with a resolution mask, the linear convolution without."""
        kernel = self.kernel(rows)
        if self.res_mask is None:
            return fft_conv(h, kernel)
        return masked_conv(h, kernel, [self.res_values(a) for a in range(self.cfg.data_dim)])

    def kept_width(self) -> jax.Array | None:
        """The widest of the block's kept channel counts (in, mid, out) as a traced integer:
        the width masks are non-increasing, so each keeps a prefix of its channels. None when
        the block learns no width."""
        if self.in_mask is None:
            return None
        masks = (self.in_mask, self.mid_mask, self.out_mask)
        return jnp.max(jnp.stack([jnp.count_nonzero(m.values()) for m in masks]))

    def __call__(
        self,
        x: jax.Array,
        rows: jax.Array,
        depth_value: jax.Array | None,
        train: bool = False,
        width: int | None = None,
    ) -> jax.Array:
        """x: (B, *S, N); rows: this block's kernel-net outputs (prod K, N).

        `width` (static): compute only the first `width` channels of the block, which is
        exact when every width mask keeps at most `width` channels (`kept_width`): the
        dropped channels are multiplied by exactly 0 in the full computation, enter nothing
        else (BatchNorm, the convolution and the masks act per channel; the dropped rows and
        columns of the PWLinears meet zeros) and get exactly-zero gradients. The stream's
        other channels pass through unchanged. None: all N channels (the initialisation
        path, and blocks without width masks). With dropout > 0 the narrower path draws its
        own dropout masks (same distribution, different bits)."""
        n = self.cfg.n_channels
        w = n if width is None else width
        xs = x if w == n else x[..., :w]
        if w == n:
            scale, bias, conv_bias = self.norm_scale, self.norm_bias, self.conv_bias
        else:
            scale, bias, conv_bias = self.norm_scale[:w], self.norm_bias[:w], self.conv_bias[:w]
        h = batch_norm(xs, scale, bias)  # (B, *S, w)
        # Sec. 2.4.2, Eq. 7 without the crop (virtual)
        h = self.conv_path(h, rows if w == n else rows[:, :w]) + conv_bias
        if self.in_mask is not None:
            h = h * self.in_mask.values()[:w]
        h = self._linear(self.linear1, h, w)
        if self.mid_mask is not None:
            h = h * self.mid_mask.values()[:w]
        h = self.dropout(gelu(h), deterministic=not train)
        h = self._linear(self.linear2, h, w)
        if self.out_mask is not None:
            h = h * self.out_mask.values()[:w]
        h = gelu(h)
        if depth_value is not None:
            h = h * depth_value
        if w == n:
            return x + h
        return jnp.concatenate([x[..., :w] + h, x[..., w:]], axis=-1)

    def _linear(self, layer: nn.Dense, h: jax.Array, w: int) -> jax.Array:
        """`layer` (N -> N) on the first w channels: its kernel's top-left w x w block."""
        if w == self.cfg.n_channels:
            return layer(h)
        p = layer.variables["params"]
        return h @ p["kernel"][:w, :w] + p["bias"][:w]

    def complexity_terms(self):
        """(res, n_in, n_mid, n_out) as differentiable sizes (`complexity.block_sizes`)."""
        return cx.block_sizes(self, self.cfg.width)


class DNArch(nn.Module):
    """A DNArch model. Build it with `build_model(cfg)`, create variables with
    `init_variables(model, key)`, run it with `model.apply(variables, x, train=...)`
    (`rngs={"dropout": key}` when training with dropout > 0).

    Run-time savings that change no output and no gradient (`_run_block`, tested against
    the literal computation):
    `skip_cut_blocks`: skip the blocks whose depth-mask value is 0; False runs every block
    times its depth value.
    `width_buckets`: fractions of N at which a block may run; each block runs at the
    narrowest one that holds all the channels its width masks keep. (1.0,) computes every
    channel. Every bucket is compiled into the one train-step program, so each adds to the
    compile time. `skip_cut_blocks=False, width_buckets=(1.0,)` is the paper's literal
    virtual mode."""

    cfg: ModelConfig
    param_dtype: Any = jnp.float32
    skip_cut_blocks: bool = True
    width_buckets: tuple[float, ...] = (0.5, 1.0)

    def setup(self) -> None:
        cfg = self.cfg
        n = cfg.n_channels
        dt = self.param_dtype
        self.encoder = Encoder(cfg, dt)
        self.kernel_net = KernelNet(
            cfg.data_dim,
            cfg.kernel_hidden,
            cfg.kernel_layers,
            cfg.n_blocks * n,
            cfg.w0,
            tuple(kernel_taps(s) for s in cfg.input_shape),
            dt,
            kernel_scale=cfg.kernel_scale,
        )
        self.blocks = [ResidualBlock(cfg, b, dt) for b in range(cfg.n_blocks)]  # blocks_{b}
        self.depth_mask = (
            SigmoidMask(cfg.n_blocks, cfg.tau_depth, cfg.threshold, cfg.blocks, dt)
            if cfg.learns_depth
            else None
        )
        if cfg.task == "retrieval":
            self.head_hidden = _dense(cfg.head_hidden, 4 * n, dt, cfg)
            self.head_out = _dense(cfg.out_size, cfg.head_hidden, dt, cfg)
        else:
            self.head = _dense(cfg.out_size, n, dt, cfg)

    # ---- input checks (static: shapes and dtypes are known while tracing) -------------------
    def _check_input(self, x: jax.Array) -> None:
        def id_range() -> tuple[int, int]:
            ids = np.asarray(x)  # numpy: jnp ops would be staged out inside a jit
            return int(ids.min()), int(ids.max())

        check_input(
            self.cfg,
            tuple(x.shape),
            x.dtype,
            integer=bool(jnp.issubdtype(x.dtype, jnp.integer)),
            floating=bool(jnp.issubdtype(x.dtype, jnp.floating)),
            channels_last=True,
            # values are checked only when not traced
            id_range=None if isinstance(x, jax.core.Tracer) else id_range,
        )

    # ---- forward -------------------------------------------------------------------------
    def kernel_rows(self) -> jax.Array:
        """Every block's kernel-net outputs on the full tap grid: (prod K, n_blocks * N).
        Computed once per forward (PyTorch's virtual mode caches the hidden features the same
        way); block b reads columns [b N, (b + 1) N)."""
        dtype = self.kernel_net.freqs.value.dtype
        axes = [coordinates(kernel_taps(s), dtype) for s in self.cfg.input_shape]
        mesh = jnp.meshgrid(*axes, indexing="ij")
        coords = jnp.stack([m.reshape(-1) for m in mesh], axis=-1)  # (prod K, D)
        return self.kernel_net.all_rows(self.kernel_net.features(coords))

    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        self._check_input(x)
        cfg = self.cfg
        n = cfg.n_channels
        batch = x.shape[0]
        if cfg.task == "retrieval":
            x = jnp.concatenate([x[:, 0], x[:, 1]], axis=0)  # (2B, L): documents 1 then 2
        h = self.encoder(x)  # (B', *S, N)
        depth = self.depth_mask.values() if self.depth_mask is not None else None
        rows = self.kernel_rows()  # (prod K, n_blocks * N)
        for b in range(cfg.n_blocks):
            dv = depth[b] if depth is not None else None
            h = self._run_block(b, h, rows[:, b * n : (b + 1) * n], dv, train)
        return self._decode(h, batch)

    def bucket_widths(self) -> tuple[int, ...]:
        """The static channel counts a block may run at (`width_buckets` of N, ascending, N
        last); (N,) for models that learn no width."""
        n = self.cfg.n_channels
        if not self.cfg.learns_width:
            return (n,)
        return tuple(sorted({min(n, max(1, math.ceil(f * n))) for f in self.width_buckets} | {n}))

    def _run_block(self, b: int, h, rows, dv, train: bool):
        """Block b, at run time: skipped when its depth-mask value is exactly 0, else run at
        the narrowest bucket width that holds every channel its width masks keep.

        Both are run-time branches with static shapes on every side (`nn.cond`, `nn.switch`):
        the train step compiles once (each bucket width is part of that one program) and
        never recompiles as the masks move, but it does not pay for blocks the depth mask has
        cut or for channels the width masks have cut beyond the bucket (at krwd's
        initialisation: half the blocks, half the channels). Neither changes an output or a
        gradient: a block whose depth value is 0 adds exactly 0 and gets exactly-zero
        gradients (its parameters reach the loss only through `h * 0`; the thresholded mask
        value has a zero derivative there); for the width, see `ResidualBlock.__call__`.
        Differences from computing everything appear only where that would produce inf/NaN
        (0 * inf), and in the dropout bits. Initialisation runs every block at full width so
        that all parameters are created."""
        if self.is_initializing():
            return self.blocks[b](h, rows, dv, train)
        widths = self.bucket_widths()

        def at(width: int):
            def body(mdl, h, rows, dv):
                return mdl.blocks[b](h, rows, dv, train, width=width)

            # Under reverse-mode AD a conditional outputs the residuals of every branch, the
            # untaken ones as zeros: for N/2 and N that is ~2 GB of zero-filled buffers per
            # krwd 1D step. Rematerialising the block inside the branch keeps only its inputs,
            # at the price of one extra block forward in the backward pass: cheaper than
            # writing those buffers. With a single width (no switch) there are none to avoid.
            return nn.checkpoint(body) if len(widths) > 1 else body

        def run(mdl, h, rows, dv):
            if len(widths) == 1:
                return at(widths[0])(mdl, h, rows, dv)
            index = jnp.searchsorted(jnp.asarray(widths), mdl.blocks[b].kept_width())
            return nn.switch(index, [at(w) for w in widths], mdl, h, rows, dv)

        if dv is None or not self.skip_cut_blocks:
            return run(self, h, rows, dv)
        return nn.cond(dv > 0, run, lambda mdl, h, rows, dv: h, self, h, rows, dv)

    def _decode(self, h: jax.Array, batch: int) -> jax.Array:
        cfg = self.cfg
        if cfg.task == "dense":
            return self.head(h)  # (B, *S, out)
        pooled = jnp.mean(h, axis=tuple(range(1, h.ndim - 1)))  # (B', N)
        if cfg.task == "global":
            return self.head(pooled)
        x1, x2 = pooled[:batch], pooled[batch:]
        z = jnp.concatenate([x1, x2, x1 * x2, x1 - x2], axis=-1)  # (B, 4N)
        return self.head_out(gelu(self.head_hidden(z)))

    # ---- masks, complexity, architecture (called through `apply(method=...)`) ---------------
    def complexity(self) -> jax.Array:
        """C_curr (Sec. 2.5, Appx. C) as a differentiable scalar."""
        cfg = self.cfg
        shape = cx.network_shape(cfg)
        mask = self.encoder.width_mask
        n_enc = mask.size() if mask is not None else float(cfg.width)
        dtype = self.kernel_net.freqs.value.dtype
        terms = [block.complexity_terms() for block in self.blocks]
        # stacked over blocks: a few vector ops in the compiled step instead of scalar chains
        # per block that XLA copies into every fusion reading them
        sizes = tuple(jnp.stack([jnp.asarray(t[i], dtype) for t in terms]) for i in range(4))
        depth = self.depth_mask.size() if self.depth_mask is not None else float(cfg.blocks)
        c = cx.network_cost_stacked(
            shape,
            n_enc,
            sizes,
            depth,
            log2=jnp.log2,
            clip01=clip01,
            index=jnp.arange(len(terms), dtype=dtype),
            total=jnp.sum,
        )
        return jnp.asarray(c, dtype=dtype)

    def mask_values(self) -> dict[str, jax.Array]:
        """Every mask's values on its full axis (kernel masks: on the full-resolution tap
        grid), keyed like `mask_sizes`."""
        out: dict[str, jax.Array] = {}
        if self.encoder.width_mask is not None:
            out["encoder.width"] = self.encoder.width_mask.values()
        if self.depth_mask is not None:
            out["depth"] = self.depth_mask.values()
        dtype = self.kernel_net.freqs.value.dtype
        for block in self.blocks:
            p = f"blocks.{block.index}"
            if block.kernel_mask is not None:
                for a, (_, m) in enumerate(block.kernel_grid(block.input_shape, False, dtype)):
                    out[f"{p}.kernel.{a}"] = m
            if block.res_mask is not None:
                for a in range(block.cfg.data_dim):
                    out[f"{p}.resolution.{a}"] = block.res_values(a)
            if block.in_mask is not None:
                out[f"{p}.width.in"] = block.in_mask.values()
                out[f"{p}.width.mid"] = block.mid_mask.values()
                out[f"{p}.width.out"] = block.out_mask.values()
        return out

    def mask_size_values(self) -> dict[str, jax.Array]:
        """Every mask's continuous size (Eqs. 9, 10) as arrays; see `mask_sizes`."""
        out: dict[str, jax.Array] = {}
        if self.encoder.width_mask is not None:
            out["encoder.width"] = self.encoder.width_mask.size()
        if self.depth_mask is not None:
            out["depth"] = self.depth_mask.size()
        for block in self.blocks:
            p = f"blocks.{block.index}"
            if block.kernel_mask is not None:
                for a in range(block.cfg.data_dim):
                    out[f"{p}.kernel.{a}"] = block.kernel_mask.size(a)
            if block.res_mask is not None:
                for a, s in enumerate(block.input_shape):
                    out[f"{p}.resolution.{a}"] = block.res_mask.size(a, total=s)
            if block.in_mask is not None:
                out[f"{p}.width.in"] = block.in_mask.size()
                out[f"{p}.width.mid"] = block.mid_mask.size()
                out[f"{p}.width.out"] = block.out_mask.size()
        return out

    def architecture_rows(self) -> list[dict]:
        """See the module-level `architecture`. Eager only (reads concrete values)."""
        n_run = self.depth_mask.kept() if self.depth_mask is not None else len(self.blocks)
        dtype = self.kernel_net.freqs.value.dtype
        rows = []
        for block in self.blocks[:n_run]:
            resolution = block.resolution(trim=True)
            rows.append(
                {
                    "block": block.index,
                    "kernel_size": block.kernel_size_at(resolution, dtype),
                    "resolution": list(resolution),
                    "width": list(block.widths(trim=True)),
                }
            )
        return rows


# ---- the public functional API (PyTorch's model methods) -----------------------------------
Variables = dict


# Below this many channels (N_max) `build_model` leaves out the run-time branches by default:
# a half-width bucket saves only a few channels, while the branches multiply the XLA compile
# time (at the smoke profile's N_max = 16 the first step compiles for minutes with them and
# seconds without, and the steps themselves are slower). At the paper's N_max = 280 they pay
# (docs/benchmarks.md, "Frameworks": krwd steps 3.5-4x faster than the literal virtual step).
BRANCH_MIN_CHANNELS = 64


def build_model(
    cfg: ModelConfig,
    param_dtype: Any = jnp.float32,
    skip_cut_blocks: bool | None = None,
    width_buckets: tuple[float, ...] | None = None,
) -> DNArch:
    """Build a DNArch model for `cfg` (all four variants, 1D and 2D, every head). The model
    always runs `virtual`; `cfg.mode` is ignored (module docstring). `skip_cut_blocks`,
    `width_buckets`: see `DNArch`; None (default): `True` and `(0.5, 1.0)` when the network
    has at least `BRANCH_MIN_CHANNELS` channels, else `False` and `(1.0,)` (the literal virtual
    step: no branches to compile). Outputs and gradients are the same either way."""
    if not isinstance(cfg, ModelConfig):
        raise TypeError(f"build_model expects a ModelConfig, got {type(cfg).__name__}")
    branches = cfg.n_channels >= BRANCH_MIN_CHANNELS
    if skip_cut_blocks is None:
        skip_cut_blocks = branches
    if width_buckets is None:
        width_buckets = (0.5, 1.0) if branches else (1.0,)
    buckets = tuple(float(f) for f in width_buckets)
    if not buckets or not all(0.0 < f <= 1.0 for f in buckets):
        raise ValueError(
            f"build_model: width_buckets must be fractions of the width in (0, 1], got "
            f"{width_buckets!r}; (1.0,) computes every channel"
        )
    return DNArch(cfg, param_dtype, skip_cut_blocks, buckets)


def example_input(cfg: ModelConfig, batch: int = 2, dtype: Any = jnp.float32) -> jax.Array:
    """A zero input of the model's (channels-last) input shape."""
    if cfg.tokens:
        lead = (2,) if cfg.task == "retrieval" else ()
        return jnp.zeros((batch, *lead, *cfg.input_shape), jnp.int32)
    return jnp.zeros((batch, *cfg.input_shape, cfg.in_channels), dtype)


def init_variables(model: DNArch, key: jax.Array) -> Variables:
    """{"params": ..., "buffers": {"kernel_net": {"freqs": ...}}} for `model`.

    Every random tensor is drawn on the host from its law (`common.init.law_for`, through the
    weight map's PyTorch names) by `jax.init.host_draw`, seeded by `key`'s bits and the
    tensor's name; masks and constants come from the Flax modules (a jitted init whose draws
    are placeholders). Same law as a Flax draw, but no random-number program to compile. Under
    a trace (`jax.jit`, `jax.eval_shape`) the key has no value to seed the host with: the Flax
    modules draw with `jax.random` instead (the same law, other numbers).
    Call it outside `jax.jit` (it compiles what it needs itself)."""
    x = example_input(model.cfg, 2, model.param_dtype)
    if isinstance(key, jax.core.Tracer):
        traced = model.init({"params": key}, x)
        return {"params": traced["params"], "buffers": traced["buffers"]}
    with placeholder_draws():
        layout = jax.jit(lambda: model.init({"params": jax.random.PRNGKey(0)}, x))()
    state = jax_to_torch(jax.tree_util.tree_map(np.asarray, dict(layout)), model.cfg)
    seed = np.asarray(jax.random.key_data(key))
    for name, old in state.items():
        rule = init.law_for(name, model.cfg)
        if rule.kind in ("uniform", "normal"):
            state[name] = host_draw(rule, old.shape, seed, name, old.dtype)
    return jax.tree_util.tree_map(jnp.asarray, torch_to_jax(state, model.cfg))


def complexity(model: DNArch, variables: Variables) -> jax.Array:
    """C_curr, differentiable with respect to variables["params"]."""
    return model.apply(variables, method=DNArch.complexity)


def complexity_target(model: DNArch) -> float:
    return cx.target_complexity(model.cfg)


def complexity_ratio(model: DNArch, variables: Variables) -> float:
    return float(complexity(model, variables)) / complexity_target(model)


def complexity_loss(model: DNArch, variables: Variables) -> jax.Array:
    """lambda-free L_comp = (C_curr / C_target - 1)^2 (Eq. 11); 0 for variants without it."""
    if not model.cfg.uses_complexity_loss:
        return jnp.zeros((), variables["buffers"]["kernel_net"]["freqs"].dtype)
    return (complexity(model, variables) / complexity_target(model) - 1.0) ** 2


def mask_values(model: DNArch, variables: Variables) -> dict[str, jax.Array]:
    return model.apply(variables, method=DNArch.mask_values)


def mask_sizes(model: DNArch, variables: Variables) -> dict[str, float]:
    """Every mask's continuous size (Eqs. 9, 10), for logging. Same keys as PyTorch's."""
    sizes = model.apply(variables, method=DNArch.mask_size_values)
    return {k: float(v) for k, v in sizes.items()}


def architecture(model: DNArch, variables: Variables) -> list[dict]:
    """One row per surviving block (Tables 4, 5): kernel size (taps per axis), resolution
    (samples per axis) and [N_in, N_mid, N_out], exactly as PyTorch's `architecture()` (what a
    trimmed network keeps); `len()` of the list is the depth. Eager: never call under jit."""
    return model.apply(variables, method=DNArch.architecture_rows)


def mask_bounds(cfg: ModelConfig) -> list[tuple[tuple[str, ...], Any, Any]]:
    """(path in params, low, high) of every mask parameter (Appx. E.1 clamps), explicit."""
    taps = tuple(kernel_taps(s) for s in cfg.input_shape)
    width = ref.sigmoid_mu_bounds(cfg.tau_channel)
    out: list[tuple[tuple[str, ...], Any, Any]] = []
    if cfg.learns_width:
        out.append((("encoder", "width_mask", "mu"), *width))
    for b in range(cfg.n_blocks):
        p = f"blocks_{b}"
        if cfg.learns_kernel:
            bounds = [ref.gaussian_sigma_bounds(k, cfg.threshold) for k in taps]
            lo = np.asarray([x for x, _ in bounds])
            hi = np.asarray([x for _, x in bounds])
            out.append(((p, "kernel_mask", "sigma"), lo, hi))
        if cfg.learns_resolution:
            out.append(((p, "res_mask", "mu"), *ref.sigmoid_mu_bounds(cfg.tau_resolution)))
        if cfg.learns_width:
            for name in ("in_mask", "mid_mask", "out_mask"):
                out.append(((p, name, "mu"), *width))
    if cfg.learns_depth:
        out.append((("depth_mask", "mu"), *ref.sigmoid_mu_bounds(cfg.tau_depth)))
    return out


def leaf_at(tree: Any, path: tuple[str, ...]) -> Any:
    """The leaf of the nested dict `tree` at `path` (a path of `mask_bounds`)."""
    for key in path:
        tree = tree[key]
    return tree


def _replace_leaf(tree: dict, path: tuple[str, ...], value: Any) -> dict:
    """A copy of the nested dict `tree` with the leaf at `path` replaced (no mutation)."""
    if len(path) == 1:
        return {**tree, path[0]: value}
    return {**tree, path[0]: _replace_leaf(tree[path[0]], path[1:], value)}


def clamp_masks(model: DNArch, params: dict) -> dict:
    """Appx. E.1: mask parameters clipped into their admissible ranges (after every step).
    Pure: returns a new tree; usable inside `jax.jit`. As PyTorch's `clamp_masks`: the static
    ranges first (`mask_bounds`), then each kernel mask's sigma raised to the floor of its
    block's current resolution, read off the clamped resolution mask (`kernel_sigma_floors`)."""
    cfg = model.cfg
    for path, lo, hi in mask_bounds(cfg):
        leaf = leaf_at(params, path)
        lo_a = jnp.asarray(lo, leaf.dtype)
        hi_a = jnp.asarray(hi, leaf.dtype)
        params = _replace_leaf(params, path, jnp.maximum(jnp.minimum(leaf, hi_a), lo_a))
    if not (cfg.learns_kernel and cfg.learns_resolution):
        return params
    tables = [ref.kernel_sigma_floors(s, cfg.threshold) for s in cfg.input_shape]
    coords = [padded_frequency_coordinates(s) for s in cfg.input_shape]
    for b in range(cfg.n_blocks):
        mu = params[f"blocks_{b}"]["res_mask"]["mu"]
        sigma = params[f"blocks_{b}"]["kernel_mask"]["sigma"]
        floors = []
        for a in range(cfg.data_dim):
            x = jnp.asarray(coords[a].astype(np.dtype(mu.dtype)))
            kept = jnp.count_nonzero(sigmoid_mask(x, mu[a], cfg.tau_resolution, cfg.threshold))
            floors.append(jnp.asarray(tables[a], sigma.dtype)[kept])
        sigma = jnp.maximum(sigma, jnp.stack(floors))
        params = _replace_leaf(params, (f"blocks_{b}", "kernel_mask", "sigma"), sigma)
    return params


def realised_complexity(model: DNArch, variables: Variables) -> float:
    """The complexity of what a trimmed network computes (PyTorch's `realised_complexity`):
    Appx. C at the kept integer sizes. Eager only."""
    cfg = model.cfg
    rows = architecture(model, variables)
    n_enc = cfg.width
    if cfg.learns_width:
        values = mask_values(model, variables)["encoder.width"]
        n_enc = kept_prefix(values)
    terms = [(math.prod(r["resolution"]), *r["width"]) for r in rows]
    return float(
        cx.network_cost(
            cx.network_shape(cfg),
            n_enc,
            terms,
            len(rows),
            log2=math.log2,
            clip01=lambda v: min(max(v, 0), 1),
        )
    )


def param_groups(model: DNArch, params: dict) -> dict:
    """AdamW weight-decay mask (Appx. E.2), a tree of bools like `params`: True for Dense
    kernels and Embed tables (PyTorch: Linear weights and the Embedding table), False for masks,
    BatchNorm parameters, biases and the depthwise conv bias. Flax names those two leaf kinds
    `kernel` and `embedding`, and no other leaf is called so (checked by a test against the
    PyTorch groups through the weight map)."""
    del model

    def decide(path, _leaf) -> bool:
        name = path[-1].key
        return name in ("kernel", "embedding")

    return jax.tree_util.tree_map_with_path(decide, params)
