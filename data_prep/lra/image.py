"""LRA Image = grayscale CIFAR-10 as a sequence of 1024 pixels (paper Appx. D.1).

Raw sources and readers are CIFAR-10's (data_prep.cifar). Grayscale follows S4 (torchvision's
`Grayscale` = PIL's "L" conversion: L = (19595 R + 38470 G + 7471 B + 2^15) >> 16, an integer),
not TF's float `rgb_to_grayscale` - a known source of small differences. Then x / 255,
normalised with mean 122.6/255 and std 61.0/255, raster scan -> (N, 1, 1024) float32.
45k/5k split of train (seed 42) + 10k test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from data_prep import cifar
from data_prep.artefacts import ArtefactWriter, provenance
from data_prep.common import Context

MEAN, STD = 122.6 / 255.0, 61.0 / 255.0


def to_grayscale(x: np.ndarray) -> np.ndarray:
    """(N, 3, H, W) uint8 RGB -> (N, H, W) uint8, bit-identical to PIL's convert('L')."""
    r, g, b = (x[:, c].astype(np.uint32) for c in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)


def generate(ctx: Context) -> dict[str, Any]:
    total = ctx.n_train() + max(2, -(-ctx.n_train() // 9))  # 45k/5k proportions, val >= 2
    info = cifar.generate_raw(ctx.raw_dir, "cifar10", total, max(10, total // 5), ctx.seed)
    ctx.generator_info = info
    return info


def fetch(ctx: Context) -> Path | cifar.Raw:
    return cifar.fetch_raw(ctx, "cifar10")


def preprocess(ctx: Context, raw: Path | cifar.Raw) -> dict[str, Any]:
    data, checksums = cifar.load_raw(ctx, raw, "cifar10")
    parts = cifar.three_splits(data)
    with ArtefactWriter(ctx.out_dir) as w:
        for split, (x, y) in parts.items():
            gray = to_grayscale(x).reshape(len(x), 1, -1)  # (N, 32, 32) -> (N, 1, 1024)
            w.save(split, "inputs", ((gray.astype(np.float32) / 255.0 - MEAN) / STD))
            w.save(split, "targets", y.astype(np.int32))
        meta = ctx.meta_base()
        meta.update(
            normalisation={
                "mean": MEAN,
                "std": STD,
                "applied": "PIL grayscale, x / 255, (x - mean) / std",
            },
            image_shape=[32, 32],
            split_seed=cifar.SPLIT_SEED,
            raw_checksums=checksums,
            provenance=provenance(ctx.seed, ctx.started),
        )
        return w.commit(meta)
