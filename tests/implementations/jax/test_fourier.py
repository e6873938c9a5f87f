"""Channels-last Fourier operations: fft_conv against a direct float64 convolution, and
crop/embed/resample against the PyTorch (channels-first) versions, on odd sizes."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from implementations.jax import fourier as jf
from implementations.torch import fourier as tf

jax.config.update("jax_enable_x64", True)


def direct_conv(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """y[n] = sum_j k[j] x[n - (j - c)], x zero outside; x (B, *S, C), k (*K, C)."""
    d = k.ndim - 1
    spatial, taps = x.shape[1 : 1 + d], k.shape[:d]
    y = np.zeros_like(x)
    for n in itertools.product(*[range(s) for s in spatial]):
        for j in itertools.product(*[range(t) for t in taps]):
            src = tuple(ni - (ji - (ti - 1) // 2) for ni, ji, ti in zip(n, j, taps))
            if all(0 <= s < m for s, m in zip(src, spatial)):
                y[(slice(None), *n)] += k[j] * x[(slice(None), *src)]
    return y


@pytest.mark.parametrize(("spatial", "taps"), [((13,), (5,)), ((13,), (27,)), ((7, 5), (3, 11))])
def test_fft_conv_is_centred_linear_convolution(spatial, taps):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, *spatial, 3))
    k = rng.standard_normal((*taps, 3))
    got = np.asarray(jf.fft_conv(jnp.asarray(x), jnp.asarray(k)))
    np.testing.assert_allclose(got, direct_conv(x, k), atol=1e-12)


def direct_conv_vjp(x: np.ndarray, k: np.ndarray, g: np.ndarray):
    """(dL/dx, dL/dk) of L = sum(g * direct_conv(x, k)), by the same double loop."""
    d = k.ndim - 1
    spatial, taps = x.shape[1 : 1 + d], k.shape[:d]
    gx, gk = np.zeros_like(x), np.zeros_like(k)
    for n in itertools.product(*[range(s) for s in spatial]):
        for j in itertools.product(*[range(t) for t in taps]):
            src = tuple(ni - (ji - (ti - 1) // 2) for ni, ji, ti in zip(n, j, taps))
            if all(0 <= s < m for s, m in zip(src, spatial)):
                gx[(slice(None), *src)] += k[j] * g[(slice(None), *n)]
                gk[j] += np.sum(g[(slice(None), *n)] * x[(slice(None), *src)], axis=0)
    return gx, gk


@pytest.mark.parametrize(("spatial", "taps"), [((13,), (5,)), ((13,), (27,)), ((7, 5), (3, 11))])
def test_fft_conv_gradient_is_the_loop_convolutions(spatial, taps):
    """dL/dx and dL/dkernel of fft_conv, eagerly and under jit, against the VJP of the loop
    convolution (float64, 1e-12)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, *spatial, 3))
    k = rng.standard_normal((*taps, 3))
    g = rng.standard_normal(x.shape)
    want_x, want_k = direct_conv_vjp(x, k, g)
    _, vjp = jax.vjp(jf.fft_conv, jnp.asarray(x), jnp.asarray(k))
    gf = jax.jit(jax.grad(lambda x, k: jnp.sum(jf.fft_conv(x, k) * g), argnums=(0, 1)))
    for gx, gk in (vjp(jnp.asarray(g)), gf(jnp.asarray(x), jnp.asarray(k))):
        np.testing.assert_allclose(np.asarray(gx), want_x, atol=1e-12)
        np.testing.assert_allclose(np.asarray(gk), want_k, atol=1e-12)


@pytest.mark.parametrize(("src", "dst"), [((9,), (33,)), ((33,), (15,)), ((5, 7), (9, 13))])
def test_resample_crop_embed_match_pytorch(src, dst):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, *src))  # torch layout (B, C, *S)
    want = tf.resample(torch.as_tensor(x), dst).numpy()
    got = np.asarray(jf.resample(jnp.asarray(np.moveaxis(x, 1, -1)), dst))
    np.testing.assert_allclose(np.moveaxis(got, -1, 1), want, atol=1e-13)
    kept = tuple(min((s + 1) // 2, (t + 1) // 2) for s, t in zip(src, dst))
    tc = tf.crop_spectrum(tf.spectrum(torch.as_tensor(x), len(src)), kept).numpy()
    jc = np.asarray(
        jf.crop_spectrum(jf.spectrum(jnp.asarray(np.moveaxis(x, 1, -1)), len(src)), kept)
    )
    np.testing.assert_allclose(np.moveaxis(jc, -1, 1), tc, atol=1e-14)
    te = tf.embed_spectrum(torch.as_tensor(tc), kept, dst).numpy()
    je = np.asarray(jf.embed_spectrum(jnp.asarray(jc), kept, dst))
    np.testing.assert_allclose(np.moveaxis(je, -1, 1), te, atol=1e-14)


def test_spectrum_round_trip():
    x = np.random.default_rng(2).standard_normal((2, 9, 7, 4))
    back = jf.from_spectrum(jf.spectrum(jnp.asarray(x), 2), (9, 7))
    np.testing.assert_allclose(np.asarray(back), x, atol=1e-13)
