"""Framework-neutral batch iterator over the memory-mapped artefacts.

Yields dicts of numpy arrays (channels-first, as stored); each framework converts at its own
boundary (torch.from_numpy / jnp.asarray, and the channels-last transpose for JAX there).

- Shuffling: permutation from numpy's generator seeded with (seed, epoch), so resuming at
  epoch e gives exactly the order an uninterrupted run had.
- drop_last: drop the final incomplete batch.
- Augmentation, train split: CIFAR random crop 32 with 4-pixel padding (the padding value is
  meta["augmentation"]["pad_value"]: black in raw pixel space) + horizontal flip, as one
  vectorised gather; Cosmic sky augmentation inputs + sky * U(-0.9, 3).
- Evaluation splits are never randomly augmented. The one exception is declared by the
  artefact itself: Cosmic's meta["augmentation"]["eval"] (NAS-Bench-360 shifts validation and
  test images by the sky too) gives each val/test example ONE fixed shift, drawn from its own
  seed, so evaluation stays deterministic and independent of batch size and order
  (`augment=False` turns it off).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from data_prep.artefacts import load_meta, resolve_split


class BatchIterator:
    def __init__(
        self,
        root: Path | str,
        split: str,
        batch_size: int,
        *,
        shuffle: bool | None = None,
        drop_last: bool = False,
        augment: bool | None = None,
        seed: int = 0,
        arrays: tuple[str, ...] | None = None,
    ) -> None:
        self.root = Path(root)
        self.meta: dict[str, Any] = load_meta(self.root)
        self.split = resolve_split(self.meta, split)
        is_train = self.split == "train"
        self.batch_size = int(batch_size)
        assert self.batch_size > 0, "batch_size must be positive"
        self.shuffle = is_train if shuffle is None else shuffle
        self.drop_last = drop_last
        self.seed = seed
        aug_cfg = self.meta.get("augmentation") or {}
        # Augmentation is for the training split only, whatever the caller asks.
        self.augment = bool(aug_cfg) and is_train and (True if augment is None else augment)
        self.aug_cfg = aug_cfg
        info = self.meta["splits"][self.split]["arrays"]
        names = arrays or tuple(info)
        self.data = {n: np.load(self.root / info[n]["file"], mmap_mode="r") for n in names}
        if self.augment and "sky" in aug_cfg and "sky" not in self.data:
            self.data["sky"] = np.load(self.root / info["sky"]["file"], mmap_mode="r")
        self.n = int(self.meta["splits"][self.split]["size"])
        self.eval_shift: np.ndarray | None = None  # (N,) fixed per-example input shift
        eval_cfg = aug_cfg.get("eval") or {}
        if not is_train and augment is not False and self.split in eval_cfg.get("splits", ()):
            lo, hi = aug_cfg["sky"]
            rng = np.random.default_rng([int(eval_cfg["seed"]), zlib.crc32(self.split.encode())])
            sky = np.load(self.root / info["sky"]["file"])
            self.eval_shift = (sky * rng.uniform(lo, hi, size=self.n)).astype(np.float32)

    def __len__(self) -> int:
        full, rest = divmod(self.n, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.n)
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)

    def epoch(self, epoch: int = 0) -> Iterator[dict[str, np.ndarray]]:
        order = self.order(epoch)
        rng = np.random.default_rng([self.seed, epoch, 1])
        for b in range(len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            # Sorted reads are faster on a memory map; put the batch back in shuffled order.
            srt = np.argsort(idx, kind="stable")
            inv = np.empty_like(srt)
            inv[srt] = np.arange(len(srt))
            batch = {k: v[idx[srt]][inv] for k, v in self.data.items()}
            if self.eval_shift is not None and "inputs" in batch:
                batch["inputs"] = batch["inputs"] + self.eval_shift[idx][:, None, None, None]
            if self.augment:
                batch = self._augment(batch, rng)
            yield batch

    __call__ = epoch

    def _augment(self, batch: dict[str, np.ndarray], rng: np.random.Generator):
        cfg = self.aug_cfg
        x = batch["inputs"]
        if "crop" in cfg:
            batch["inputs"] = random_crop_flip(
                x, rng, cfg["padding"], np.asarray(cfg["pad_value"], np.float32), cfg["hflip"]
            )
        if "sky" in cfg:
            lo, hi = cfg["sky"]
            factor = rng.uniform(lo, hi, size=len(x))
            shift = (batch["sky"] * factor).astype(np.float32)
            batch["inputs"] = x + shift[:, None, None, None]  # (B, 1, H, W)
        return batch


def random_crop_flip(
    x: np.ndarray, rng: np.random.Generator, pad: int, pad_value: np.ndarray, hflip: bool = True
) -> np.ndarray:
    """(B, C, H, W) -> (B, C, H, W): pad by `pad` with the per-channel `pad_value`, take a random
    H x W window, flip horizontally with probability 1/2. One gather, no Python loop."""
    b, c, h, w = x.shape
    padded = np.empty((b, c, h + 2 * pad, w + 2 * pad), x.dtype)  # (B, C, H+2p, W+2p)
    padded[...] = pad_value.reshape(1, c, 1, 1)
    padded[:, :, pad : pad + h, pad : pad + w] = x
    oy = rng.integers(0, 2 * pad + 1, size=b)
    ox = rng.integers(0, 2 * pad + 1, size=b)
    flip = rng.random(b) < 0.5 if hflip else np.zeros(b, bool)
    rows = oy[:, None] + np.arange(h)[None, :]  # (B, H)
    cols_fwd = np.arange(w)[None, :]
    cols = ox[:, None] + np.where(flip[:, None], w - 1 - cols_fwd, cols_fwd)  # (B, W)
    bi = np.arange(b)[:, None, None, None]
    ci = np.arange(c)[None, :, None, None]
    return padded[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]  # (B, C, H, W)
