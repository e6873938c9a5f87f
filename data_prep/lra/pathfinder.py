"""Pathfinder (32 px) and Path-X (128 px) (paper Appx. D.1): a seeded re-implementation of
Linsley et al.'s snake generator with LRA's settings, written in the real raw layout, and the
parser.

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

Generator: our own code for the algorithm of drewlinsley/pathfinder `snakes2.py` / `snakes.py`
(read, not copied), with the settings LRA documents in `lra_benchmarks/data/pathfinder.py`:
- a paddle is a segment of `paddle_length` px drawn (PIL line, width round(2 thickness)) on a
  2x patch and Lanczos-downsampled; its occupancy mask is the segment dilated by a disc of
  radius `margin` (also drawn at 2x, Lanczos-downsampled, values in [0, 1]);
- a snake grows paddle by paddle: the next pivot lies `paddle_length + 2 margin` beyond the
  previous one along the previous orientation; candidate heads are the integer points on a
  circle of radius `paddle_length + margin` around it, weighted by
  cos^2(min(dtheta * continuity, 90 deg)) x (1 - occupancy dilated by `margin`); the paddle is
  drawn from the head back towards the pivot, so consecutive paddles leave a gap of up to
  2 x margin (DASHED paths); a paddle is rejected when occupancy + its mask exceeds 1.8
  anywhere (3 tries), and the mask of a paddle joins the occupancy only once its successor is
  placed (so consecutive paddles may come close);
- two target snakes of `contour_length` paddles, grown alternately: the first seed uniformly in
  the central region (2 x seed_distance from every border, where its first paddle fits), the
  second `seed_distance` away in a uniform direction; any failure restarts both;
- distractors: `num_distractor_snakes` snakes of contour_length // 3 paddles, each seeded
  uniformly where its first paddle fits, 5 tries each, skipped if none succeeds;
- contrast: paddles x (paddle contrast x snake contrast) for targets, x snake contrast for
  distractors (32 px: 1.5 and 2; 128 px: 0.9 and 0.9), marker discs x 1 (drawn at 2x,
  Lanczos-downsampled); the image is the pixelwise maximum, rescaled to [0, 255] (the
  reference saved through scipy's bytescale);
- exactly two marker discs (radius `marker_radius`): label 1 marks both ends of one target
  snake, label 0 the first end of one and the last end of the other.
Quirks of the reference kept on purpose (they shape its distribution): the seed test's
structuring element is one pixel off-centre, and the last paddle of the first target snake
never enters the occupancy mask. Difference: numpy's Generator with one stream per image
instead of the global RNG, so a dataset is reproducible and can be generated in any order.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.ndimage as ndi
from PIL import Image, ImageDraw, UnidentifiedImageError
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
    """One resolution's settings (LRA's `pathfinder.py` docstrings; the wrapper's defaults else)."""

    size: int
    paddle_length: int
    thickness: float
    margins: tuple[int, ...]  # one drawn per image
    marker_radius: float
    seed_distance: int
    continuity: float
    target_contrast: float  # paddle contrast x snake contrast
    distractor_contrast: float  # snake contrast
    num_distractor_snakes: int
    contour_length: int = 14
    padding: int = 1
    aa: int = 2  # antialias scale: drawn at 2x, Lanczos-downsampled
    paddle_retrials: int = 2  # 3 tries per paddle
    distractor_retrials: int = 4  # 5 tries per distractor snake
    stop_with_availability: float = 0.01

    @property
    def distractor_length(self) -> int:
        return self.contour_length // 3


PARAMS = {
    # 32 px: paddle contrast 0.75 x snake contrast 2 for targets; distractors x 2; 20 // 4 = 5
    "pathfinder": SnakeParams(32, 2, 0.5, (1,), 1.5, 7, 1.0, 1.5, 2.0, 20 // 4),
    # 128 px: snake contrast 0.9, paddle contrast 1 (default); 35 // 4 = 8 (Python 2 division)
    "pathx": SnakeParams(128, 5, 1.5, (2, 3), 3.0, 20, 1.8, 0.9, 0.9, 35 // 4),
}
RAW_DIR = {"pathfinder": "pathfinder32", "pathx": "pathfinder128"}
MAX_SCENE_TRIES = 100_000

# ------------------------------------------------------------------------------ rendering


def _disc(radius: float) -> np.ndarray:
    """(2r+1, 2r+1) bool: x^2 + y^2 <= r^2 on the integer grid (r = int(radius))."""
    r = int(radius)
    y, x = np.ogrid[-r : r + 1, -r : r + 1]
    return x**2 + y**2 <= radius**2


def _step(pt, theta: float, dist: float) -> tuple[int, int]:
    """Move (y, x) by `dist` along `theta` and round UP (the reference's coordinate rule)."""
    return (math.ceil(pt[0] + dist * math.sin(theta)), math.ceil(pt[1] + dist * math.cos(theta)))


def _flip(theta: float) -> float:
    return theta + math.pi if theta < 0 else theta - math.pi


class _Paddles:
    """Rendered paddles of one (params, margin), cached by orientation (heads are integer
    points, so only finitely many orientations occur). Patches are (2R+1)^2 centred on the
    paddle's start point, R = length + ceil(thickness) + margin."""

    def __init__(self, p: SnakeParams, margin: int) -> None:
        if p.thickness * p.aa != round(p.thickness * p.aa):
            raise ValueError(f"thickness {p.thickness} x antialias {p.aa} must be an integer")
        self.L, self.m, self.aa = p.paddle_length, margin, p.aa
        self.R = p.paddle_length + math.ceil(p.thickness) + margin
        self.width = round(p.thickness * p.aa)
        self.big_disc = _disc(margin * p.aa)
        self.cache: dict[float, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        # Candidate heads of the next paddle: integer points (rounded down) on the circle of
        # radius L + m around the (integer) pivot, one sample per pixel of arc, deduplicated
        # and in sorted order; their orientation; the margin-disc offsets around each.
        r = self.L + self.m
        ang = np.deg2rad(np.arange(0.0, 360.0, 360.0 / (2 * r * np.pi)))
        circle = np.floor(np.stack([r * np.sin(ang), r * np.cos(ang)], axis=1)).astype(int)
        self.offs = np.unique(circle, axis=0)  # (n, 2)
        self.orient = np.arctan2(self.offs[:, 0], self.offs[:, 1])  # (n,)
        small = np.argwhere(_disc(margin)) - margin  # (k, 2)
        self.gy = self.offs[:, 0:1] + small[None, :, 0]  # (n, k)
        self.gx = self.offs[:, 1:2] + small[None, :, 1]
        self.reach = r + margin  # how far a candidate test reads from the pivot
        self.weights: dict[tuple[float, int], tuple] = {}
        self.first_seed: dict[tuple[float, int], np.ndarray] = {}

    def candidates(self, theta: float, continuity: float, width: int):
        """Candidates with a non-zero turning weight after orientation `theta`: (indices (n',),
        weights (n',) = cos^2(min(|dtheta| * continuity, 90 deg)), flat offsets (n', k) of
        their margin discs in an array of row length `width`). Zero-weight candidates can
        never be drawn, so leaving them out changes nothing."""
        key = (round(theta, 9), width)
        hit = self.weights.get(key)
        if hit is None:
            d = np.abs(self.orient - theta)
            d = np.minimum(np.minimum(d, 2 * np.pi - d) * continuity, np.pi / 2)
            w = np.maximum(np.cos(d), 0) ** 2
            idx = np.flatnonzero(w > 0)
            hit = self.weights[key] = (idx, w[idx], self.gy[idx] * width + self.gx[idx])
        return hit

    def get(self, theta: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(line (2R+1, 2R+1) float32 in [0, 1], mask (2R+1, 2R+1) float32, seed offsets (k, 2)):
        the seed offsets are where the mask is full, relative to the start point, shifted by
        one pixel like the reference's structuring element."""
        key = round(theta, 9)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        R, aa = self.R, self.aa
        n_big, n = 2 * R * aa + 1, 2 * R + 1  # the reference's patch sizes (ratio ~aa)
        c = R * aa
        head = _step((c, c), theta, self.L * aa)
        blown = Image.new("L", (n_big, n_big), 0)
        ImageDraw.Draw(blown).line([(c, c), (head[1], head[0])], fill=255, width=self.width)
        line = np.asarray(blown.resize((n, n), Image.Resampling.LANCZOS), np.float32) / 255
        grown = ndi.binary_dilation(np.asarray(blown) > 0, structure=self.big_disc)
        grown_im = Image.fromarray(grown.astype(np.uint8) * 255, mode="L")
        mask = np.asarray(grown_im.resize((n, n), Image.Resampling.LANCZOS), np.float32) / 255
        lim = self.L + self.m  # the reference's structuring element is (2(L+m)+1)^2
        off = np.argwhere(mask >= 1.0) - R + 1
        off = off[(np.abs(off) <= lim).all(axis=1)]
        out = (line, mask, off)
        self.cache[key] = out
        return out


def _clip(cy: int, cx: int, r: int, s: int) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """Slices of the canvas and of a (2r+1)^2 patch centred on (cy, cx), clipped to the canvas."""
    y0, x0 = cy - r, cx - r
    ys, xs = max(y0, 0), max(x0, 0)
    ye, xe = min(cy + r + 1, s), min(cx + r + 1, s)
    return (slice(ys, ye), slice(xs, xe)), (slice(ys - y0, ye - y0), slice(xs - x0, xe - x0))


@dataclass
class Sample:
    """One generated image and what the generator knows about it (tests read the pixels)."""

    image: np.ndarray  # (size, size) uint8
    label: int
    markers: np.ndarray  # (2, 2) marked ends (y, x)
    paths: list[np.ndarray]  # per target snake: (contour_length + 1, 2) start, then each head
    n_distractors: int  # distractor snakes placed
    margin: int
    targets: np.ndarray | None = None  # (2, size, size) float32: each target snake drawn alone


class _Scene:
    """Image (float, contrast-scaled) and occupancy mask of one attempt. The mask lives inside
    a frame of ones (`maskp`), so candidate tests near the border need no bounds checks: a
    point outside the image reads 1 (weight 0, i.e. excluded), and a point within `margin` of
    the border already reads the border's 1."""

    def __init__(self, p: SnakeParams, pad: _Paddles, rng: np.random.Generator) -> None:
        # the pivot of a paddle lies at most margin + 1 px outside the image (it is `margin`
        # beyond an in-image head), so candidate tests read at most f - 1 px outside
        s, f = p.size, pad.reach + pad.m + 2
        self.p, self.pad, self.rng, self.s, self.f = p, pad, rng, s, f
        self.image = np.zeros((s, s), np.float32)
        self.maskp = np.ones((s + 2 * f, s + 2 * f), np.float32)
        self.mask = self.maskp[f : f + s, f : f + s]  # (s, s) view
        b = p.padding
        self.mask[b:-b, b:-b] = 0
        self.fresh = True  # nothing drawn yet (the first target seed's free set is cached)
        self.layers: np.ndarray | None = None  # (2, s, s) per target snake, when kept
        self.layer = -1  # which layer draw() also paints (-1: none)

    def inside(self, pt) -> bool:
        return 0 <= pt[0] < self.s and 0 <= pt[1] < self.s

    def draw(self, pt, theta: float, contrast: float) -> np.ndarray:
        """Draw a paddle starting at integer `pt`; returns its mask patch (not yet occupied)."""
        line, mask, _ = self.pad.get(theta)
        dst, src = _clip(pt[0], pt[1], self.pad.R, self.s)
        np.maximum(self.image[dst], contrast * line[src], out=self.image[dst])
        if self.layers is not None and self.layer >= 0:
            view = self.layers[self.layer][dst]
            np.maximum(view, contrast * line[src], out=view)
        self.fresh = False
        return mask

    def occupy(self, pending: tuple[np.ndarray, tuple[int, int]] | None) -> None:
        if pending is not None:
            mask, pt = pending
            dst, src = _clip(pt[0], pt[1], self.pad.R, self.s)
            np.maximum(self.mask[dst], mask[src], out=self.mask[dst])

    def free_starts(self, theta: float, border: int) -> np.ndarray:
        """(n, 2) integer points where a paddle along `theta` would start clear of occupancy
        > 0.3 and of a `border`-pixel frame (the reference's dilation of the mask)."""
        key = (round(theta, 9), border)
        if self.fresh and key in self.pad.first_seed:
            return self.pad.first_seed[key]
        s, off = self.s, self.pad.get(theta)[2]
        busy = self.mask > 0.3
        busy[:border], busy[-border:], busy[:, :border], busy[:, -border:] = 1, 1, 1, 1
        q = int(np.abs(off).max()) if len(off) else 0
        big = np.zeros((s + 2 * q, s + 2 * q), bool)
        big[q : q + s, q : q + s] = busy
        bad = np.zeros((s, s), bool)
        for dy, dx in off:  # bad(x) = any busy(x + o)
            bad |= big[q + dy : q + dy + s, q + dx : q + dx + s]
        free = np.argwhere(~bad)
        if self.fresh:
            self.pad.first_seed[key] = free
        return free

    def seed(self, contrast: float, border: int, check_availability: bool):
        """First paddle of a distractor / the first target snake. Returns (start, pivot, theta,
        mask patch) or None."""
        p, pad, rng = self.p, self.pad, self.rng
        if check_availability and (self.mask <= 0.3).mean() < p.stop_with_availability:
            return None
        for _ in range(p.paddle_retrials + 1):
            theta = math.radians(int(rng.integers(-180, 180)))
            free = self.free_starts(theta, border)
            if len(free) == 0:
                return None
            start = tuple(int(v) for v in free[rng.integers(len(free))])
            head = _step(start, theta, pad.L)
            pivot = _step(head, theta + math.pi, pad.L + pad.m)
            if self.inside(head) and self.inside(pivot):
                return start, pivot, theta, self.draw(start, theta, contrast)
        return None

    def extend(self, pivot, theta: float, pending, contrast: float):
        """Next paddle of a snake whose last paddle has pivot `pivot` and orientation `theta`.
        Returns (new pivot, new theta, head, mask patch) or None (dead end)."""
        p, pad, s, f = self.p, self.pad, self.s, self.f
        centre = _step(pivot, theta, pad.L + 2 * pad.m)
        width = self.maskp.shape[1]
        idx, w, flat = pad.candidates(theta, p.continuity, width)
        base = (centre[0] + f) * width + centre[1] + f
        occ = self.maskp.ravel().take(flat + base).max(axis=1)  # (n',) dilated occupancy
        pmf = (1 - occ) * w
        total = float(pmf.sum())
        if total < 1e-4:
            return None
        cmf = np.cumsum(pmf) / total
        for _ in range(p.paddle_retrials + 1):
            j = int(np.searchsorted(cmf, self.rng.random(), side="right"))
            k = int(idx[min(j, len(idx) - 1)])
            head = (centre[0] + int(pad.offs[k, 0]), centre[1] + int(pad.offs[k, 1]))
            back = _flip(float(pad.orient[k]))
            mask = pad.get(back)[1]
            dst, src = _clip(head[0], head[1], pad.R, s)
            if (self.mask[dst] + mask[src]).max() < 1.8:
                self.draw(head, back, contrast)
                self.occupy(pending)
                return centre, float(pad.orient[k]), head, mask
        return None

    def snake(self, n: int, contrast: float) -> bool:
        """A distractor of n paddles; on failure the scene is left unchanged."""
        saved = self.image.copy(), self.mask.copy()
        first = self.seed(contrast, border=1, check_availability=True)
        if first is None:
            return False
        start, pivot, theta, mask = first
        pending = (mask, start)
        for _ in range(n - 1):
            nxt = self.extend(pivot, theta, pending, contrast)
            if nxt is None:
                self.image, self.mask = saved
                return False
            pivot, theta, head, mask = nxt
            pending = (mask, head)
        self.occupy(pending)
        return True

    def two_snakes(self) -> list[np.ndarray] | None:
        """The two target snakes (points: start then each head), or None (restart)."""
        p, pad, rng = self.p, self.pad, self.rng
        c = p.target_contrast
        self.layer = 0
        first = self.seed(c, border=2 * p.seed_distance, check_availability=False)
        if first is None:
            return None
        start1, pivot1, theta1, mask1 = first
        for _ in range(p.paddle_retrials + 1):
            theta2 = math.radians(int(rng.integers(-180, 180)))
            phi = math.radians(int(rng.integers(0, 360)))
            start2 = (
                round(start1[0] + p.seed_distance * math.sin(phi)),
                round(start1[1] + p.seed_distance * math.cos(phi)),
            )
            head2 = _step(start2, theta2, pad.L)
            pivot2 = _step(head2, theta2 + math.pi, pad.L + pad.m)
            if self.inside(head2) and self.inside(pivot2):
                break
        else:
            return None
        self.layer = 1
        mask2 = self.draw(start2, theta2, c)
        state = [[pivot1, theta1, (mask1, start1)], [pivot2, theta2, (mask2, start2)]]
        points = [[start1, _step(start1, theta1, pad.L)], [start2, head2]]
        for _ in range(p.contour_length - 1):
            for i in (0, 1):
                self.layer = i
                nxt = self.extend(state[i][0], state[i][1], state[i][2], c)
                if nxt is None:
                    return None
                pivot, theta, head, mask = nxt
                state[i] = [pivot, theta, (mask, head)]
                points[i].append(head)
        self.occupy(state[1][2])  # as the reference: the second snake's last paddle only
        self.layer = -1
        return [np.asarray(q, np.float64) for q in points]

    def marker(self, pt, radius: float) -> None:
        """A disc drawn at 2x around integer `pt` and Lanczos-downsampled, max-combined x 1."""
        aa, s = self.p.aa, self.s
        r = math.ceil(radius) + 4  # the Lanczos support (3 px) fits inside the patch
        dst, _ = _clip(pt[0], pt[1], r, s)
        y0, y1, x0, x1 = dst[0].start, dst[0].stop, dst[1].start, dst[1].stop
        yy = np.arange(aa * y0, aa * y1)[:, None] - aa * pt[0]
        xx = np.arange(aa * x0, aa * x1)[None, :] - aa * pt[1]
        blown = Image.fromarray(((yy**2 + xx**2 <= (radius * aa) ** 2) * 255).astype(np.uint8))
        disc = blown.resize((x1 - x0, y1 - y0), Image.Resampling.LANCZOS)
        np.maximum(self.image[dst], np.asarray(disc, np.float32) / 255, out=self.image[dst])


_PADDLE_CACHE: dict[tuple[SnakeParams, int], _Paddles] = {}


def draw(
    rng: np.random.Generator, p: SnakeParams, label: int, keep_targets: bool = False
) -> Sample:
    """One image of the given label, the reference's procedure end to end. `keep_targets`
    also returns each target snake rendered alone (for pixel tests; same random draws)."""
    margin = p.margins[int(rng.integers(len(p.margins)))] if len(p.margins) > 1 else p.margins[0]
    pad = _PADDLE_CACHE.setdefault((p, margin), _Paddles(p, margin))
    for _ in range(MAX_SCENE_TRIES):
        sc = _Scene(p, pad, rng)
        if keep_targets:
            sc.layers = np.zeros((2, p.size, p.size), np.float32)
        paths = sc.two_snakes()
        if paths is not None:
            break
    else:
        raise RuntimeError(f"no two target snakes fit a {p.size} px image in {MAX_SCENE_TRIES}")
    placed = 0
    for _ in range(p.num_distractor_snakes):
        for _ in range(p.distractor_retrials + 1):
            if sc.snake(p.distractor_length, p.distractor_contrast):
                placed += 1
                break
    first = int(rng.integers(2))
    last = first if label == 1 else 1 - first
    marks = np.stack([paths[first][0], paths[last][-1]])  # (2, 2)
    for pt in marks:
        sc.marker((int(pt[0]), int(pt[1])), p.marker_radius)
    img = sc.image
    lo, hi = float(img.min()), float(img.max())
    scaled = (img - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(img)
    out = (scaled.clip(0, 255) + 0.5).astype(np.uint8)  # bytescale, as the reference saved
    targets = None if sc.layers is None else sc.layers * np.float32(255.0 / (hi - lo))
    return Sample(out, int(label), marks, paths, placed, margin, targets)


def draw_sample(rng: np.random.Generator, p: SnakeParams, label: int) -> np.ndarray:
    """One (size, size) uint8 image with the given label."""
    return draw(rng, p, label).image


def draw_sample_with_markers(
    rng: np.random.Generator, p: SnakeParams, label: int
) -> tuple[np.ndarray, np.ndarray]:
    """(image (size, size) uint8, marked ends (2, 2) as (y, x) in pixels)."""
    s = draw(rng, p, label)
    return s.image, s.markers


def image_rng(seed: int, k: int) -> np.random.Generator:
    """The generator of image k: one stream per image, so any subset can be regenerated."""
    return np.random.default_rng([seed, k])


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _render(job: tuple[SnakeParams, int, int]) -> tuple[bytes, int, int, int]:
    """Image k of a dataset: (PNG bytes, label, margin, distractors placed)."""
    p, seed, k = job
    rng = image_rng(seed, k)
    label = int(rng.integers(2))
    s = draw(rng, p, label)
    buf = io.BytesIO()
    Image.fromarray(s.image, mode="L").save(buf, format="PNG")
    return buf.getvalue(), label, s.margin, s.n_distractors


def generate_raw(
    root: Path,
    p: SnakeParams,
    n_images: int,
    seed: int,
    per_batch: int,
    progress: bool = True,
    workers: int = 1,
) -> dict[str, Any]:
    """Write `root/{imgs,metadata}` for `n_images` images, `per_batch` per batch directory.
    Image k uses `image_rng(seed, k)` (its label is that stream's first draw), so the output
    is the same for any number of `workers` (processes). A batch's metadata file is written
    (atomically) after its images: its presence marks the batch complete."""
    (root / "metadata").mkdir(parents=True, exist_ok=True)
    jobs = [(p, seed, k) for k in range(n_images)]
    pool = None
    if workers > 1 and n_images > 1:
        import multiprocessing

        pool = multiprocessing.get_context("fork").Pool(workers)
        results = pool.imap(_render, jobs, chunksize=8)
    else:
        results = map(_render, jobs)
    bar = tqdm(total=n_images, desc=f"generate {p.size}px", disable=None if progress else True)
    placed = labels_1 = 0
    lines: list[str] = []
    try:
        for k, (png, label, margin, n_d) in enumerate(results):
            b, i = divmod(k, per_batch)
            d = root / "imgs" / str(b)
            d.mkdir(parents=True, exist_ok=True)
            _write_atomic(d / f"sample_{i}.png", png)
            lines.append(
                f"imgs/{b} sample_{i}.png {k} {label} {p.continuity} {p.contour_length} "
                f"{p.distractor_length} {p.paddle_length} {p.thickness} {margin} 1\n"
            )
            placed += n_d
            labels_1 += label
            bar.update(1)
            if i == per_batch - 1 or k == n_images - 1:
                _write_atomic(root / "metadata" / f"{b}.npy", "".join(lines).encode())
                lines = []
    finally:
        if pool is not None:
            pool.terminate()
        bar.close()
    return {
        "seed": seed,
        "n_images": n_images,
        "per_batch": per_batch,
        "label_1_share": round(labels_1 / max(n_images, 1), 4),
        "distractors_placed_mean": round(placed / max(n_images, 1), 3),
        "algorithm": "Linsley et al. snakes2 (re-implemented), LRA settings",
        "params": asdict(p),
    }


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
