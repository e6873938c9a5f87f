"""Pixel-level reading of Pathfinder / Path-X images: what a model sees, used by the
tests and by the statistics table of data_prep/README.md.

    python -m data_prep.lra.pathfinder_check --n32 2000 --n128 200 --out stats.csv

- marker discs: a shape detector. Paddles are thin strokes; a disc is the only structure that
  survives a grey opening by a small footprint: at 32 px the minimum of the opening by a
  3 x 3 cross and 0.8 x (the 3 x 3 maximum of the opening by a 2 x 2 square), at 128 px the
  opening by a radius-2 disc; thresholds sit between the discs' lowest and the strokes'
  highest response over 1000 generated images (32 px: discs >= 146, strokes <= 117; 128 px:
  discs >= 244, strokes <= 44);
- which target snake a disc sits on: the snake whose own rendering (`draw(keep_targets=True)`,
  the same pixels before the maximum with the rest) has ink nearest to the disc's centroid;
- dashes: 8-connected components of a target snake's own ink (>= 64 of 255).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import scipy.ndimage as ndi

from data_prep.errors import DataError

EIGHT = np.ones((3, 3), bool)
CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)
DISC_THRESHOLD = {32: 132.0, 128: 128.0}
INK = 64.0  # of 255: a target snake's own stroke pixels (dash counting)


def marker_score(img: np.ndarray) -> np.ndarray:
    """(H, W) float: high on marker discs only (see the module docstring)."""
    x = np.asarray(img, np.float64)
    if x.shape == (32, 32):
        a = ndi.grey_opening(x, footprint=CROSS)
        b = ndi.maximum_filter(ndi.grey_opening(x, footprint=np.ones((2, 2), bool)), size=3)
        return np.minimum(a, 0.8 * b)
    if x.shape == (128, 128):
        y, z = np.ogrid[-2:3, -2:3]
        return ndi.grey_opening(x, footprint=y**2 + z**2 <= 4)
    raise DataError(f"marker detector: image shape {x.shape}; expected (32, 32) or (128, 128)")


def find_discs(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labels (H, W) int of the disc blobs, centroids (n, 2) as (y, x))."""
    mask = marker_score(img) >= DISC_THRESHOLD[img.shape[0]]
    lab, n = ndi.label(mask, structure=EIGHT)
    cents = np.asarray(ndi.center_of_mass(mask, lab, range(1, n + 1))).reshape(n, 2)
    return lab, cents


def disc_snakes(img: np.ndarray, targets: np.ndarray) -> list[int]:
    """For each detected disc, the target snake (0 or 1) whose own ink (>= INK) comes
    nearest to the disc's centroid (a marked end is the first pixel of its snake's paddle)."""
    _, cents = find_discs(img)
    dist = [ndi.distance_transform_edt(t < INK) for t in targets]  # (H, W) each
    out = []
    for y, x in np.rint(cents).astype(int):
        out.append(int(np.argmin([d[y, x] for d in dist])))
    return out


def dashes(target: np.ndarray) -> int:
    """8-connected components of one target snake's own ink."""
    return int(ndi.label(target >= INK, structure=EIGHT)[1])


def image_stats(img: np.ndarray) -> dict[str, float]:
    """Per-image statistics measured on pixels."""
    _, cents = find_discs(img)
    c = (img.shape[0] - 1) / 2
    dist = np.hypot(cents[:, 0] - c, cents[:, 1] - c) if len(cents) else np.array([np.nan])
    return {
        "discs": float(len(cents)),
        "nonzero": float((img > 0).mean()),
        "components": float(ndi.label(img > 0, structure=EIGHT)[1]),
        "marker_to_centre": float(dist.min()),
    }


def path_length(points: np.ndarray) -> float:
    """Length of a target snake: start, then head to head (the generator's geometry)."""
    return float(np.linalg.norm(np.diff(points, axis=0), axis=1).sum())


def summarise(samples) -> dict[str, float]:
    """Statistics of a list of `pathfinder.Sample` (the measures of data_prep/README.md's
    Pathfinder table)."""
    st = [image_stats(s.image) for s in samples]
    col = {k: np.array([d[k] for d in st]) for k in st[0]}
    lengths = [path_length(q) for s in samples for q in s.paths]
    return {
        "n": len(samples),
        "discs_exactly_2": float((col["discs"] == 2).mean()),
        "nonzero_mean": float(col["nonzero"].mean()),
        "path_length_median": float(np.median(lengths)),
        "components_median": float(np.median(col["components"])),
        "marker_to_centre_median": float(np.nanmedian(col["marker_to_centre"])),
        "distractors_mean": float(np.mean([s.n_distractors for s in samples])),
    }


def main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm

    from data_prep.lra import pathfinder as pf

    ap = argparse.ArgumentParser(prog="python -m data_prep.lra.pathfinder_check")
    ap.add_argument("--n32", type=int, default=1000)
    ap.add_argument("--n128", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="CSV file for the statistics")
    a = ap.parse_args(argv)
    rows = []
    for name, n in (("pathfinder", a.n32), ("pathx", a.n128)):
        p = pf.PARAMS[name]
        samples = []
        for k in tqdm(range(n), desc=name):
            rng = pf.image_rng(a.seed, k)
            samples.append(pf.draw(rng, p, int(rng.integers(2))))
        row = {"dataset": name, "size": p.size, **summarise(samples)}
        print(row)
        rows.append(row)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        with open(a.out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
