"""Appx. C complexity formulas against a hand computation."""

import math

import pytest

from implementations.common import complexity as cx
from implementations.common.config import ModelConfig


def test_ccnn_4_140_at_2048_by_hand():
    # ListOps-like: tokens (embedding 140 -> PWLinear 140 -> 140), 10 classes, L = 2048.
    cfg = ModelConfig(variant="ccnn", data_dim=1, input_shape=(2048,), vocab_size=18, out_size=10)
    L, N = 2048, 140
    encoder = L * N * N + 3 * L * N  # PWLinear + BatchNorm, mask, GELU
    block = (
        2 * L * N  # BatchNorm, m_in
        + N * L * 11  # Fourier conv, log2(2048) = 11
        + L * N * N  # PWLinear in -> mid
        + 3 * L * N  # m_mid, GELU, Dropout
        + L * N * N  # PWLinear mid -> out
        + 2 * L * N  # m_out, GELU
    )
    decoder = L * N + N * 10
    hand = encoder + 4 * block + decoder
    # 41,000,960 + 4 x 85,442,560 + 288,120 (worked out on paper)
    assert hand == 383_059_320
    assert cx.target_complexity(cfg) == pytest.approx(hand, rel=1e-15)


def test_2d_uses_h_times_w():
    cfg = ModelConfig(variant="ccnn", data_dim=2, input_shape=(32, 32), in_channels=3, out_size=10)
    L, N = 1024, 140
    block = 2 * L * N + N * L * 10 + 2 * L * N * N + 5 * L * N
    hand = L * 3 * N + 3 * L * N + 4 * block + L * N + N * 10
    assert cx.target_complexity(cfg) == pytest.approx(hand, rel=1e-15)


def test_depth_counts_fractional_blocks():
    shape = cx.NetworkShape(
        length=64, n_features=1, out_size=2, task="global", tokens=False, head_hidden=8
    )
    blocks = [(64.0, 8.0, 8.0, 8.0)] * 4
    one = cx.block_cost(64.0, 8.0, 8.0, 8.0, math.log2)
    clip = lambda v: min(max(v, 0.0), 1.0)
    c2 = cx.network_cost(shape, 8.0, blocks, 2.0, math.log2, clip)
    c25 = cx.network_cost(shape, 8.0, blocks, 2.5, math.log2, clip)
    assert c25 - c2 == pytest.approx(0.5 * one, rel=1e-12)


def test_retrieval_counts_both_documents():
    kw = dict(
        variant="ccnn",
        data_dim=1,
        input_shape=(64,),
        vocab_size=10,
        out_size=2,
        width=8,
        retrieval_hidden=16,
    )
    one = cx.target_complexity(ModelConfig(task="global", **kw))
    two = cx.target_complexity(ModelConfig(task="retrieval", **kw))
    L, N, H = 64, 8, 16
    # twice encoder + blocks + pooling, then the MLP instead of the global head's PWLinear
    assert two == pytest.approx(2 * (one - N * 2) + 4 * N * H + 4 * N + H * 2, rel=1e-15)
    assert L  # keep the symbols of the hand formula visible


@pytest.mark.parametrize("task", ["global", "dense", "retrieval"])
@pytest.mark.parametrize("depth", [0.4, 2.0, 2.7, 4.0])
def test_stacked_cost_equals_the_per_block_sum(task, depth):
    """network_cost_stacked (the JAX train step's form) = network_cost, float64, odd sizes,
    fractional depth, every head; tolerance 1e-14 relative (only the order of additions)."""
    import numpy as np

    rng = np.random.default_rng(7)
    shape = cx.NetworkShape(
        length=173, n_features=3, out_size=5, task=task, tokens=False, head_hidden=11
    )
    res, n_in, n_mid, n_out = rng.uniform(1.0, 173.0, (4, 4))
    blocks = list(zip(res, n_in, n_mid, n_out))
    clip = lambda v: np.clip(v, 0.0, 1.0)
    want = cx.network_cost(shape, 6.3, blocks, depth, np.log2, clip)
    got = cx.network_cost_stacked(
        shape, 6.3, (res, n_in, n_mid, n_out), depth, np.log2, clip, np.arange(4.0), np.sum
    )
    assert got == pytest.approx(want, rel=1e-14)
    # by hand for one block: the depth weight multiplies the block's cost
    one = cx.network_cost_stacked(
        shape, 6.3, tuple(a[:1] for a in (res, n_in, n_mid, n_out)), 0.5, np.log2, clip,
        np.arange(1.0), np.sum,
    )  # fmt: skip
    docs = 2 if task == "retrieval" else 1
    enc = cx.encoder_cost(173, 3, 6.3, False)
    dec = cx.decoder_cost(173, 6.3, 5, task, 11)
    b0 = cx.block_cost(res[0], n_in[0], n_mid[0], n_out[0], math.log2)
    assert one == pytest.approx(docs * (enc + 0.5 * b0) + dec, rel=1e-14)
