"""What the training CLI does to a batch between the framework-neutral iterator and a model.

1. Resizing (smoke profile only; the paper profile trains at full size). The config's
   `input_shape` + `resize` per dataset (pipelines/config/schema.yaml):
     crop    the leading window of every spatial axis (token sequences: truncation)
     stride  every k-th sample, k = (full - 1) // (target - 1) per axis (the samples span the
             axis: DarcyFlow 85 -> 22 is [::4]), then the leading `target`
     pool    average pooling by an integer factor per axis; 1D pixel sequences (LRA Image,
             Pathfinder, Path-X: meta "image_shape") are pooled as their 2D image and
             flattened again
   Dense targets and ignore masks get the same crop/stride (pooling them is refused).
2. The layout: the iterator yields channels-first NumPy arrays, (B, C, L) / (B, C, H, W),
   as PyTorch wants them; the JAX Backend (`implementations.jax.train`) moves them to
   channels last for the Flax models and their dense outputs back to (B, out, *S) before any
   metric is computed. Token ids (B, L) / (B, 2, L) and labels (B,) cross unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SPATIAL_ARRAYS = ("inputs", "targets", "ignore")


@dataclass(frozen=True)
class Resizer:
    full_shape: tuple[int, ...]  # the model's view of the full input, e.g. (1024,) or (85, 85)
    target_shape: tuple[int, ...]
    mode: str  # crop | stride | pool
    image_shape: tuple[int, ...] | None = None  # 2D image behind a 1D pixel sequence

    @classmethod
    def from_settings(cls, meta: dict, hyper: dict) -> Resizer | None:
        full = tuple(meta["input_shape"])
        target = hyper.get("input_shape")
        if target is None or tuple(target) == full:
            return None
        target = tuple(int(t) for t in target)
        mode = hyper.get("resize", "crop")
        image = tuple(meta["image_shape"]) if meta.get("image_shape") else None
        if len(target) != len(full):
            raise ValueError(
                f"input_shape {list(target)} has {len(target)} axes, the data {list(full)} has "
                f"{len(full)}"
            )
        if any(t > f for t, f in zip(target, full)):
            raise ValueError(f"input_shape {list(target)} is larger than the data {list(full)}")
        r = cls(full, target, mode, image)
        r._check()
        return r

    def _check(self) -> None:
        if self.mode == "pool":
            src, dst = self._pool_shapes()
            if any(s % d for s, d in zip(src, dst)):
                raise ValueError(
                    f"resize=pool needs integer factors: {list(src)} -> {list(dst)} is not"
                )
        elif self.mode not in ("crop", "stride"):
            raise ValueError(f"resize={self.mode!r} is invalid; valid: crop, stride, pool")

    def _pool_shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        if len(self.full_shape) == 1 and self.image_shape is not None:
            h, w = self.image_shape
            side = math.isqrt(self.target_shape[0])
            if side * side != self.target_shape[0] or h != w:
                raise ValueError(
                    f"resize=pool of a {h}x{w} pixel sequence needs a square target length, "
                    f"got {self.target_shape[0]}"
                )
            return (h, w), (side, side)
        return self.full_shape, self.target_shape

    def _index(self, axis_full: int, axis_target: int) -> slice:
        if self.mode == "crop":
            return slice(0, axis_target)
        step = max(1, (axis_full - 1) // max(axis_target - 1, 1))
        return slice(0, step * axis_target, step)

    def apply(self, batch: dict[str, np.ndarray], tokens: bool) -> dict[str, np.ndarray]:
        out = dict(batch)
        nd = len(self.full_shape)
        for name in SPATIAL_ARRAYS:
            if name not in batch:
                continue
            a = batch[name]
            if name == "inputs" and tokens:  # (B, L) or (B, 2, L): truncate the last axis
                out[name] = np.ascontiguousarray(a[..., : self.target_shape[0]])
                continue
            if name != "inputs" and a.ndim < 2 + nd:  # labels (B,): nothing spatial
                continue
            if self.mode == "pool":
                if name != "inputs":
                    raise ValueError(
                        "resize=pool is for inputs only; use crop/stride for dense tasks"
                    )
                out[name] = self._pool(a)
                continue
            idx = tuple(self._index(f, t) for f, t in zip(self.full_shape, self.target_shape))
            out[name] = np.ascontiguousarray(a[(Ellipsis, *idx)])
        return out

    def apply_field(self, field: np.ndarray) -> np.ndarray:
        """A per-pixel field without batch/channel axes (e.g. the DarcyFlow normaliser)."""
        return self.apply({"targets": field[None, None]}, tokens=False)["targets"][0, 0]

    def _pool(self, x: np.ndarray) -> np.ndarray:
        src, dst = self._pool_shapes()
        b, c = x.shape[:2]
        img = x.reshape(b, c, *src)  # (B, C, H, W) or (B, C, L)
        if len(src) == 2:
            fy, fx = src[0] // dst[0], src[1] // dst[1]
            img = img.reshape(b, c, dst[0], fy, dst[1], fx).mean(axis=(3, 5))  # (B, C, h, w)
        else:
            f = src[0] // dst[0]
            img = img.reshape(b, c, dst[0], f).mean(axis=3)  # (B, C, l)
        return np.ascontiguousarray(img.reshape(b, c, *self.target_shape).astype(x.dtype))
