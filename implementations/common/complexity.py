"""Computational complexity of a (masked) CCNN, paper Sec. 2.5 and Appx. C, in one place.

The formulas take sizes as plain numbers OR framework tensors (PyTorch, JAX, NumPy): they only
use +, *, and the `log2` / `clip01` callables the caller passes, so the same code gives the
differentiable C_curr in either framework and the float C_target.

Counted per layer, with mask sizes in place of lengths and widths (docs/design.md, "Complexity"):
    PWLinear                      L * N_in * N_out
    pointwise ops (BatchNorm, GELU, Dropout, each mask product)   L * N
    Fourier convolution           N * L * log2(L)   (every channel; for 2D, L = H * W)
A residual block at resolution r (r = r_y * r_x in 2D) with widths (n_in, n_mid, n_out):
    BatchNorm + m_in              2 r n_in
    depthwise Fourier conv        n_in r log2 r
    PWLinear n_in -> n_mid        r n_in n_mid
    m_mid, GELU, Dropout          3 r n_mid
    PWLinear n_mid -> n_out       r n_mid n_out
    m_out, GELU                   2 r n_out
As in Appx. C every layer of the block is counted at size(m_res) (the resampling FFTs, the
depth-mask product and the addition into the stream are not counted). The same formula is used
for every variant (mask products included), so the base network's cost C_target and a krwd
network at initialisation (sizes equal to the base network's) give C_curr / C_target = 1.
Encoder: PWLinear C_in -> N, then BatchNorm, m_enc, GELU: L C_in N + 3 L N (token embedding is
a lookup: 0). Decoder: global GlobalAvgPool + PWLinear: L N + N out; dense PWLinear: L N out.
Retrieval: two documents through encoder and blocks, each pooled (2 L N), then the two-layer
MLP on [X1, X2, X1*X2, X1-X2]: 4N h + 4N + h out.

Depth (Sec. 2.5, "Effect of the depth mask"): C is that of a network with size(m_depth) blocks,
made continuous as sum_b clip01(size(m_depth) - b) * C_b (blocks b = 0, 1, ... in order): the
first floor(s) blocks count fully, the next one by the fractional part. Its gradient with
respect to the depth mask is the cost of the block at the boundary.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

Number = Any  # float or a framework scalar tensor


def pwlinear(length: Number, n_in: Number, n_out: Number) -> Number:
    return length * n_in * n_out


def pointwise(length: Number, n: Number) -> Number:
    return length * n


def fourier_conv(length: Number, n: Number, log2: Callable) -> Number:
    return n * length * log2(length)


def block_cost(res: Number, n_in: Number, n_mid: Number, n_out: Number, log2: Callable) -> Number:
    """One residual block at resolution `res` (samples; H*W in 2D)."""
    return (
        2 * pointwise(res, n_in)
        + fourier_conv(res, n_in, log2)
        + pwlinear(res, n_in, n_mid)
        + 3 * pointwise(res, n_mid)
        + pwlinear(res, n_mid, n_out)
        + 2 * pointwise(res, n_out)
    )


def block_sizes(block: Any, width: int) -> tuple:
    """(res, n_in, n_mid, n_out) of a residual block for `block_cost`: the masks' differentiable
    sizes, floats where nothing is learned (every input sample; the base `width`). `block` is
    either framework's block: `res_mask` and `in_mask`, `mid_mask`, `out_mask` (None where not
    learned), each with its framework's `size`, and the block's `input_shape`."""
    if block.res_mask is not None:
        res = 1.0
        for a, s in enumerate(block.input_shape):
            res = res * block.res_mask.size(a, total=s)
    else:
        res = float(math.prod(block.input_shape))
    if block.in_mask is not None:
        return res, block.in_mask.size(), block.mid_mask.size(), block.out_mask.size()
    n = float(width)
    return res, n, n, n


def encoder_cost(length: Number, n_features: int, n_enc: Number, tokens: bool) -> Number:
    del tokens  # the embedding is a lookup and costs nothing; kept for readability at call sites
    return pwlinear(length, n_features, n_enc) + 3 * pointwise(length, n_enc)


def decoder_cost(length: Number, n: Number, out: int, task: str, hidden: int) -> Number:
    if task == "global":
        return pointwise(length, n) + n * out
    if task == "dense":
        return pwlinear(length, n, out)
    if task == "retrieval":  # pool both documents, then the MLP on [X1, X2, X1*X2, X1-X2]
        return 2 * pointwise(length, n) + 4 * n * hidden + 4 * n + hidden * out
    raise ValueError(f"decoder_cost: unknown task {task!r}; valid: global, dense, retrieval")


@dataclass(frozen=True)
class NetworkShape:
    """What the complexity of a network depends on beyond its mask sizes."""

    length: int  # samples of the full-resolution input (H * W in 2D)
    n_features: int  # channels entering the encoder PWLinear
    out_size: int
    task: str
    tokens: bool
    head_hidden: int


def network_cost(
    shape: NetworkShape,
    n_enc: Number,
    blocks: Sequence[tuple[Number, Number, Number, Number]],
    depth_size: Number,
    log2: Callable,
    clip01: Callable,
) -> Number:
    """C of a network: `blocks` is one (res, n_in, n_mid, n_out) per instantiated block, in
    order; `depth_size` the (continuous) number of blocks that count (see module docstring)."""
    total = encoder_cost(shape.length, shape.n_features, n_enc, shape.tokens)
    for b, (res, n_in, n_mid, n_out) in enumerate(blocks):
        total = total + clip01(depth_size - b) * block_cost(res, n_in, n_mid, n_out, log2)
    return _with_documents_and_decoder(shape, n_enc, total)


def _with_documents_and_decoder(shape: NetworkShape, n_enc: Number, body: Number) -> Number:
    """`body` (encoder + blocks of one document) times the documents, plus the decoder."""
    docs = 2 if shape.task == "retrieval" else 1  # retrieval: both go through encoder, blocks
    return docs * body + decoder_cost(
        shape.length, n_enc, shape.out_size, shape.task, shape.head_hidden
    )


def network_cost_stacked(
    shape: NetworkShape,
    n_enc: Number,
    sizes: tuple[Any, Any, Any, Any],
    depth_size: Number,
    log2: Callable,
    clip01: Callable,
    index: Any,
    total: Callable,
) -> Number:
    """`network_cost` with the blocks' sizes stacked: `sizes` = (res, n_in, n_mid, n_out), each
    an array with one entry per instantiated block in order, `index` the array [0, 1, ...] and
    `total` the array sum. The same formula written once over the block axis, so a compiled
    train step holds a few vector operations instead of a chain of scalar ones per block
    (XLA copies such chains into every fusion that reads them). Equals
    `network_cost` up to the order of the float additions over blocks."""
    res, n_in, n_mid, n_out = sizes
    blocks = total(clip01(depth_size - index) * block_cost(res, n_in, n_mid, n_out, log2))
    encoder = encoder_cost(shape.length, shape.n_features, n_enc, shape.tokens)
    return _with_documents_and_decoder(shape, n_enc, encoder + blocks)


def _clip01(v: float) -> float:
    return min(max(v, 0.0), 1.0)


def base_cost(shape: NetworkShape, blocks: int, width: int) -> float:
    """C_target: the base CCNN_{blocks,width} at full resolution (Sec. 2.5)."""
    per_block = [(shape.length, width, width, width)] * blocks
    return float(network_cost(shape, width, per_block, blocks, math.log2, _clip01))


def network_shape(cfg) -> NetworkShape:
    """The `NetworkShape` of a `ModelConfig`."""
    return NetworkShape(
        length=math.prod(cfg.input_shape),
        n_features=cfg.input_features,
        out_size=cfg.out_size,
        task=cfg.task,
        tokens=cfg.tokens,
        head_hidden=cfg.head_hidden,
    )


def target_complexity(cfg) -> float:
    """C_target for a config: the base CCNN_{B,N} of that dataset at full resolution."""
    return base_cost(network_shape(cfg), cfg.blocks, cfg.width)
