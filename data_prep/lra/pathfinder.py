"""Pathfinder (32 px) and Path-X (128 px) (paper Appx. D.1; spec/data.md "Pathfinder and
Path-X"): a seeded snake generator in the real raw layout and the parser.

Raw layout (real and generated), under `pathfinder{32,128}/curv_contour_length_14/`:
`imgs/<batch>/sample_<i>.png` (8-bit grayscale) and `metadata/<batch>.npy` - TEXT despite the
suffix, one line per image: `imgs/<batch> sample_<i>.png <nimg> <label> <continuity>
<contour_len> <distractor_len> <paddle_len> <thickness> <margin> <n_contrasts>`; label = field 3.

Preprocessing: all images in metadata order, split 80/10/10 exactly as S4 and CCNN do
(torch.utils.data.random_split with torch.Generator().manual_seed(42): identical indices; an
empty image is dropped from its split afterwards), pixels / 255 in
[0, 1] (the spec; the paper's text says [-1, 1]: a consumer wanting that applies 2x - 1), raster
scan -> (N, 1, H*W) float32. Zero-byte PNGs (the real pathfinder32 has one) are skipped and
listed in meta.json; any other unreadable or wrongly sized image is an error. Images are
opened one at a time (Path-X "too many open files") and staged through a memory-mapped file.

Generator (our own implementation of the idea of Linsley et al.'s snakes):
- a snake is a chain of `contour_length` paddles (line segments of `paddle_length` px) drawn
  END TO END (no gaps, unlike the original's dashes) so connectivity is checkable on pixels;
  each next paddle turns by delta in {0, +-15, +-30, +-45, +-60} degrees with probability
  proportional to exp(-continuity * |delta| / 22.5 deg): larger continuity = straighter;
- paddles are rendered anti-aliased at 2x resolution (distance-to-segment ramp) and
  downscaled by 2x2 averaging;
- a paddle may not touch any other stroke: its non-zero footprint at the final resolution must
  avoid the 3x3-dilated footprint of every other stroke, so distinct strokes are never
  8-adjacent and every stroke is one 8-connected component;
- two target snakes (contour_length paddles), then distractors (contour_length // 3 paddles,
  20 // distractor_length of them at 32 px, 20 at 128 px; skipped if they do not fit);
- label ~ Bernoulli(0.5): circle markers (radius `marker_radius`) at both ends of snake A
  (label 1) or at one end of A and one of B (label 0); marked ends are at least
  `seed_distance` apart; discs at all target-snake ends are reserved so no stroke touches them.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from data_prep.artefacts import (
    ArtefactWriter,
    hash_raw_files,
    provenance,
    random_split_indices,
)
from data_prep.common import Context, fetch_lra, pbar_disable
from data_prep.errors import DataError

SPLIT_SEED = 42
CONTOUR_DIR = "curv_contour_length_14"


@dataclass(frozen=True)
class SnakeParams:
    size: int
    paddle_length: float
    thickness: float
    margin: int
    marker_radius: float
    seed_distance: float
    continuity: float
    contour_length: int = 14
    n_distractors: int | None = None

    @property
    def distractor_length(self) -> int:
        return self.contour_length // 3

    @property
    def distractors(self) -> int:
        if self.n_distractors is not None:
            return self.n_distractors
        return 20 // self.distractor_length


PARAMS = {
    "pathfinder": SnakeParams(32, 2.0, 0.5, 1, 1.5, 7.0, 1.0),
    "pathx": SnakeParams(128, 5.0, 1.5, 3, 3.0, 20.0, 1.8, n_distractors=20),
}
RAW_DIR = {"pathfinder": "pathfinder32", "pathx": "pathfinder128"}

_TURNS = np.deg2rad(np.arange(-60, 61, 15))  # (9,)

# ------------------------------------------------------------------------------ rendering


class _Canvas:
    """2x supersampled intensity canvas + final-resolution footprints of the strokes."""

    def __init__(self, size: int) -> None:
        self.s = size
        self.hi = np.zeros((2 * size, 2 * size), np.float32)  # 2x canvas
        self.blocked = np.zeros((size, size), bool)  # dilated footprints of finished strokes

    def segment(self, p0: np.ndarray, p1: np.ndarray, half_width: float):
        """Patch of an anti-aliased segment p0 -> p1 (final-res (y, x) coordinates); full
        intensity within `half_width` 2x-pixels of it, a linear ramp to 0 over one more.
        Returns (y0, x0, hi_patch (2h, 2w), footprint (h, w) bool)."""
        half = half_width + 1.0  # 2x pixels
        reach = half / 2 + 1
        y0 = max(0, math.floor(min(p0[0], p1[0]) - reach))
        y1 = min(self.s, math.ceil(max(p0[0], p1[0]) + reach))
        x0 = max(0, math.floor(min(p0[1], p1[1]) - reach))
        x1 = min(self.s, math.ceil(max(p0[1], p1[1]) + reach))
        ys = (np.arange(2 * y0, 2 * y1) + 0.5)[:, None]  # 2x pixel centres, 2x units
        xs = (np.arange(2 * x0, 2 * x1) + 0.5)[None, :]
        a, b = 2 * np.asarray(p0), 2 * np.asarray(p1)
        d = b - a
        dd = float(d @ d) or 1e-12
        t = np.clip(((ys - a[0]) * d[0] + (xs - a[1]) * d[1]) / dd, 0.0, 1.0)
        dist = np.hypot(ys - (a[0] + t * d[0]), xs - (a[1] + t * d[1]))  # (2h, 2w)
        hi = np.clip(half_width + 1.0 - dist, 0.0, 1.0).astype(np.float32)
        h, w = y1 - y0, x1 - x0
        low = hi.reshape(h, 2, w, 2).mean(axis=(1, 3))  # (2h, 2w) -> (h, w)
        return y0, x0, hi, low > 0

    def disc(self, c: np.ndarray, radius: float):
        return self.segment(c, c, 2 * radius - 0.5)  # full within radius - 1/4 final px

    def free(self, patch, own: np.ndarray | None = None) -> bool:
        y0, x0, _, fp = patch
        h, w = fp.shape
        if (fp & self.blocked[y0 : y0 + h, x0 : x0 + w]).any():
            return False
        return own is None or not (fp & own[y0 : y0 + h, x0 : x0 + w]).any()

    def commit(self, patches: list) -> None:
        """Draw patches and block their 3x3-dilated footprint for later strokes."""
        fp_all = np.zeros((self.s, self.s), bool)
        for y0, x0, hi, fp in patches:
            h, w = fp.shape
            view = self.hi[2 * y0 : 2 * (y0 + h), 2 * x0 : 2 * (x0 + w)]
            np.maximum(view, hi, out=view)
            fp_all[y0 : y0 + h, x0 : x0 + w] |= fp
        dil = fp_all.copy()
        dil[1:] |= fp_all[:-1]
        dil[:-1] |= fp_all[1:]
        dil2 = dil.copy()
        dil2[:, 1:] |= dil[:, :-1]
        dil2[:, :-1] |= dil[:, 1:]
        self.blocked |= dil2

    def image(self) -> np.ndarray:
        s = self.s
        low = self.hi.reshape(s, 2, s, 2).mean(axis=(1, 3))  # (2s, 2s) -> (s, s)
        return np.rint(np.clip(low, 0, 1) * 255).astype(np.uint8)


def _snake(
    rng: np.random.Generator, cv: _Canvas, p: SnakeParams, n_paddles: int, tries: int = 30
) -> tuple[list, np.ndarray] | None:
    """Place one snake avoiding existing strokes; returns (patches, points (n+1, 2)) or None."""
    lo, hi = p.margin, p.size - 1 - p.margin
    probs = np.exp(-p.continuity * np.abs(_TURNS) / np.deg2rad(22.5))
    probs /= probs.sum()
    for _ in range(tries):
        pt = rng.uniform(lo, hi, size=2)
        if cv.blocked[int(pt[0]), int(pt[1])]:
            continue
        theta = rng.uniform(0, 2 * np.pi)
        points, patches = [pt], []
        own = np.zeros((p.size, p.size), bool)  # footprint of paddles <= i-3 (self-avoidance)
        for i in range(n_paddles):
            for turn in rng.choice(_TURNS, size=6, p=probs):
                th = theta + turn
                nxt = pt + p.paddle_length * np.array([np.sin(th), np.cos(th)])
                if not (lo <= nxt[0] <= hi and lo <= nxt[1] <= hi):
                    continue
                patch = cv.segment(pt, nxt, p.thickness)
                if cv.free(patch, own):
                    break
            else:
                break
            theta, pt = th, nxt
            points.append(pt)
            patches.append(patch)
            if i >= 2:
                y0, x0, _, fp = patches[i - 2]
                own[y0 : y0 + fp.shape[0], x0 : x0 + fp.shape[1]] |= fp
        if len(patches) == n_paddles:
            return patches, np.asarray(points)
    return None


def draw_sample(rng: np.random.Generator, p: SnakeParams, label: int) -> np.ndarray:
    """One (size, size) uint8 image with the given label."""
    return draw_sample_with_markers(rng, p, label)[0]


def draw_sample_with_markers(
    rng: np.random.Generator, p: SnakeParams, label: int
) -> tuple[np.ndarray, np.ndarray]:
    """(image (size, size) uint8, marker centres (2, 2) as (y, x) in pixels)."""
    for _ in range(200):
        cv = _Canvas(p.size)
        a = _snake(rng, cv, p, p.contour_length)
        if a is None:
            continue
        a_patches, a_pts = a
        a_ends = [cv.disc(a_pts[0], p.marker_radius), cv.disc(a_pts[-1], p.marker_radius)]
        if label == 1 and np.hypot(*(a_pts[0] - a_pts[-1])) < p.seed_distance:
            continue
        cv.commit(a_patches + a_ends)
        b = None
        for _ in range(10):
            b = _snake(rng, cv, p, p.contour_length)
            if b is None:
                break
            b_ends = [cv.disc(b[1][0], p.marker_radius), cv.disc(b[1][-1], p.marker_radius)]
            far = np.hypot(*(a_pts[0] - b[1][0])) >= p.seed_distance
            if all(cv.free(e) for e in b_ends) and (label == 1 or far):
                break
            b = None
        if b is None:
            continue
        cv.commit(b[0] + b_ends)
        for _ in range(p.distractors):
            d = _snake(rng, cv, p, p.distractor_length, tries=5)
            if d is not None:
                cv.commit(d[0])
        # Markers: drawn (their discs were reserved in `blocked` already).
        marks = [a_ends[0], a_ends[1]] if label == 1 else [a_ends[0], b_ends[0]]
        centres = np.stack([a_pts[0], a_pts[-1] if label == 1 else b[1][0]])
        for y0, x0, hi, fp in marks:
            h, w = fp.shape
            view = cv.hi[2 * y0 : 2 * (y0 + h), 2 * x0 : 2 * (x0 + w)]
            np.maximum(view, hi, out=view)
        return cv.image(), centres
    raise RuntimeError(f"could not place the snakes on a {p.size} px canvas in 200 tries")


def generate_raw(
    root: Path, p: SnakeParams, n_images: int, seed: int, per_batch: int, progress: bool = True
) -> dict[str, Any]:
    """Write `root/{imgs,metadata}` for `n_images` images, `per_batch` per batch directory."""
    rng = np.random.default_rng(seed)
    (root / "metadata").mkdir(parents=True, exist_ok=True)
    labels = rng.integers(0, 2, size=n_images)
    n_batches = math.ceil(n_images / per_batch)
    bar = tqdm(total=n_images, desc=f"generate {p.size}px", disable=None if progress else True)
    for b in range(n_batches):
        d = root / "imgs" / str(b)
        d.mkdir(parents=True, exist_ok=True)
        lines = []
        for i in range(per_batch):
            k = b * per_batch + i
            if k >= n_images:
                break
            img = draw_sample(rng, p, int(labels[k]))
            Image.fromarray(img, mode="L").save(d / f"sample_{i}.png")
            lines.append(
                f"imgs/{b} sample_{i}.png {k} {labels[k]} {p.continuity} {p.contour_length} "
                f"{p.distractor_length} {p.paddle_length} {p.thickness} {p.margin} 1\n"
            )
            bar.update(1)
        (root / "metadata" / f"{b}.npy").write_text("".join(lines))
    bar.close()
    return {"seed": seed, "n_images": n_images, "per_batch": per_batch, "params": asdict(p)}


def generate(ctx: Context) -> dict[str, Any]:
    name = ctx.spec.name
    # 80/10/10 of the pool; at least 20 images so val and test hold 2 each (train >= --size)
    n_total = max(math.ceil(ctx.n_train() / 0.8), 20)
    root = ctx.raw_dir / RAW_DIR[name] / CONTOUR_DIR
    info = generate_raw(
        root, PARAMS[name], n_total, ctx.seed, max(1, math.ceil(n_total / 4)), ctx.progress
    )
    ctx.generator_info = info
    return info


# ----------------------------------------------------------------------------- preprocessing


def read_metadata(root: Path) -> list[tuple[Path, int]]:
    """(image path, label) for every metadata line, batches in numeric order."""
    mdir = root / "metadata"
    if not mdir.is_dir():
        raise DataError(f"{mdir} not found: expected the Pathfinder layout metadata/<batch>.npy")
    files = sorted(mdir.glob("*.npy"), key=lambda q: (len(q.stem), q.stem))
    if not files:
        raise DataError(f"{mdir} holds no <batch>.npy metadata files")
    out = []
    for f in files:
        for lineno, line in enumerate(f.read_text().splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 4 or fields[3] not in ("0", "1"):
                raise DataError(
                    f"{f}, line {lineno}: malformed metadata line {line[:80]!r}; expected "
                    "'imgs/<batch> sample_<i>.png <nimg> <label 0|1> ...' (text, space separated)"
                )
            out.append((root / fields[0] / fields[1], int(fields[3])))
    return out


def load_png(path: Path, size: int) -> np.ndarray | None:
    """(size*size,) uint8, or None for a zero-byte file (a known defect of the real data)."""
    try:
        if path.stat().st_size == 0:
            return None
        with Image.open(path) as im:
            arr = np.asarray(im.convert("L") if im.mode != "L" else im)
    except FileNotFoundError:
        raise DataError(f"{path} listed in the metadata but missing") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise DataError(f"{path}: unreadable PNG ({e}); re-extract the archive") from e
    if arr.shape != (size, size):
        raise DataError(f"{path}: image shape {arr.shape}, expected ({size}, {size})")
    return arr.reshape(-1)  # (H, W) -> (H*W,) raster scan


def split_lengths(n: int) -> tuple[int, int, int]:
    """(train, val, test) sizes as S4 and CCNN compute them: val = test = int(0.1 n)."""
    val = test = int(0.1 * n)
    return n - val - test, val, test


def fetch(ctx: Context) -> Path:
    sub = f"{RAW_DIR[ctx.spec.name]}/{CONTOUR_DIR}"
    return fetch_lra(ctx, sub).parent.parent


def preprocess(ctx: Context, raw_root: Path) -> dict[str, Any]:
    name = ctx.spec.name
    p = PARAMS[name]
    root = raw_root / RAW_DIR[name] / CONTOUR_DIR
    if not root.is_dir():
        from data_prep.common import find_dir

        root = find_dir(raw_root, f"{RAW_DIR[name]}/{CONTOUR_DIR}")
    entries = read_metadata(root)
    L = p.size * p.size
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    fd, staging_name = tempfile.mkstemp(prefix=".staging-", suffix=".npy", dir=ctx.out_dir)
    os.close(fd)
    staging = Path(staging_name)
    try:
        pix = np.lib.format.open_memmap(staging, mode="w+", dtype=np.uint8, shape=(len(entries), L))
        labels = np.zeros(len(entries), np.int32)
        keep = np.ones(len(entries), bool)
        skipped = []
        for k, (path, label) in enumerate(
            tqdm(entries, desc=f"{name} png", disable=pbar_disable(ctx), mininterval=1.0)
        ):
            arr = load_png(path, p.size)
            if arr is None:
                keep[k] = False
                skipped.append(str(path.relative_to(root)))
                continue
            pix[k] = arr
            labels[k] = label
        parts = random_split_indices(split_lengths(len(entries)), SPLIT_SEED)
        with ArtefactWriter(ctx.out_dir) as w:
            for split, part in zip(("train", "val", "test"), parts, strict=True):
                idx = part[keep[part]]  # the reference's indices, minus empty images
                x = w.open(split, "inputs", (len(idx), 1, L), np.float32)  # (N, 1, H*W)
                for s in range(0, len(idx), 4096):
                    x[s : s + 4096, 0] = pix[idx[s : s + 4096]].astype(np.float32) / 255.0
                x.flush()
                del x
                w.save(split, "targets", labels[idx])
            meta = ctx.meta_base()
            meta.update(
                image_shape=[p.size, p.size],
                normalisation={
                    "applied": "x / 255 -> [0, 1]",
                    "note": "paper Appx. D.1 says [-1, 1]: use 2x - 1 for that",
                },
                skipped_empty_images=skipped,
                split_seed=SPLIT_SEED,
                split=(
                    "S4/CCNN: torch.utils.data.random_split over all metadata lines (batches "
                    "in numeric order) with lengths (N - 2 int(0.1 N), int(0.1 N), int(0.1 N)) "
                    "and torch.Generator().manual_seed(42); empty images dropped afterwards; "
                    "indices sorted within each split"
                ),
                raw_checksums=hash_raw_files(
                    [q for q, _ in entries if q.exists()] + sorted(root.glob("metadata/*.npy")),
                    raw_root,
                ),
                provenance=provenance(ctx.seed, ctx.started),
            )
            del pix
            return w.commit(meta)
    finally:
        staging.unlink(missing_ok=True)
