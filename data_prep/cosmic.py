"""Cosmic (deepCR ACS/WFC data), NAS-Bench-360 protocol (paper Appx. D.3).

Raw layout (real and simulated): `npy_{train,test}/<filter>/<propid>/<visit>/<N>_*.npy`, each
(3, 256, 256) = [image, cosmic-ray mask, ignore mask], and one `sky.npy` per visit directory
(1-D sky levels; file prefix N indexes sky[N - 1]). The archives `deepCR.ACS-WFC.{train,test}.tar`
are no longer hosted: pass them (or the extracted directory) with --file.

Preprocessing (NAS-Bench-360): filter f435w, fields of type GAL (table below, keyed
`<propid>_<visit>`), centre crop [64:192, 64:192] -> 128 x 128; first 90 % of the training files
-> train, last 10 % -> val; all test files -> test. Files are taken in sorted order
(NAS-Bench-360 used os.listdir order, which depends on the file system). Arrays per split:
inputs (N, 1, 128, 128) image, targets (N, 1, 128, 128) CR mask in {0, 1}, ignore
(N, 1, 128, 128) in {0, 1}, sky (N,) the exposure's sky level. The sky augmentation
image + sky * U(-0.9, 3) is applied per batch by data_prep.iterator: on train a new draw per
sample and epoch; on val and test too, as NAS-Bench-360 does, but with one fixed draw per
example (deterministic evaluation; NAS-Bench-360 redraws each pass). All 72 fields of
NAS-Bench-360's field table are known (27 GAL used, 45 others skipped). Loss: BCE
on logits * (1 - ignore) against mask * (1 - ignore); report 1 - AUROC on probabilities.

Offline: real HST exposures cannot be regenerated; `generate` SIMULATES exposures in the same
layout: sky background, stars (Gaussian PSF) and galaxies (elliptical exponential profiles),
Poisson noise (Gaussian approximation) + read noise, cosmic-ray tracks and single hits (mask =
pixels they touch), ignore = bad columns and saturated pixels. Labels come from the injection,
so the mask is exact by construction.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from data_prep import download as dl
from data_prep.artefacts import ArtefactWriter, hash_raw_files, provenance
from data_prep.common import Context, find_dir, pbar_disable, resolve_source
from data_prep.errors import DataError

FILTER = "f435w"
CROP = slice(64, 192)
SIZE = 256
SKY_AUG = (-0.9, 3.0)
# Fields of type GAL in the deepCR ACS/WFC data, as listed by deepCR / NAS-Bench-360.
GAL_FIELDS = frozenset({
    "10760_2", "10760_4", "13737_2", "13737_3", "9490_a3", "12513_2", "12513_3", "10182_pb",
    "10182_pd", "10584_13", "10342_3", "14343_1", "13057_1", "10260_7", "10260_5", "10407_3",
    "13364_95", "10190_28", "10190_13", "9490_a2", "13691_11", "12058_12", "12058_16",
    "12058_1", "12058_6", "14704_1", "13804_6",
})  # fmt: skip
# The 45 non-GAL fields of NAS-Bench-360's field table (autodeeplab/cosmic_dataset.py and its
# copies: 27 GAL, 25 EX = extragalactic, 20 GC = globular cluster): any other field is reported
# in meta.json as unknown (NAS-Bench-360 itself fails on it with a KeyError).
OTHER_FIELDS = frozenset({
    "10005_10", "10092_1", "10120_3", "10146_3", "10146_4", "10349_30", "10524_7", "10536_13",
    "10595_2", "10595_7", "10631_1", "10631_3", "10631_4", "10775_29", "10775_52", "10775_ab",
    "10775_ad", "11340_11", "11586_5", "12103_a3", "12438_1", "12602_1", "12602_2", "13375_4",
    "13375_7", "13389_10", "13498_b1", "13671_35", "13718_6", "14164_1", "14164_9", "15100_2",
    "15647_13", "9405_4b", "9405_6d", "9425_2", "9425_4", "9442_1", "9442_3", "9442_5",
    "9450_14", "9450_16", "9583_99", "9694_6", "9978_5e",
})  # fmt: skip
EVAL_AUG_SEED = 0

# --------------------------------------------------------------------------------- simulator


def simulate_exposure(rng: np.random.Generator, sky: float, galaxy_field: bool = True):
    """(3, 256, 256) float32 [image (sky subtracted), CR mask, ignore mask]."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)  # (256, 256) each
    signal = np.zeros((SIZE, SIZE), np.float32)
    for _ in range(rng.integers(5, 20)):  # stars: Gaussian PSF
        cy, cx = rng.uniform(0, SIZE, 2)
        sig = rng.uniform(0.9, 1.6)
        flux = rng.lognormal(7.5, 1.2)
        signal += (
            flux / (2 * np.pi * sig**2) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sig**2))
        )
    for k in range(rng.integers(2, 6) + (1 if galaxy_field else 0)):
        cy, cx = rng.uniform(32, SIZE - 32, 2)
        scale = rng.uniform(12, 40) if (k == 0 and galaxy_field) else rng.uniform(2, 8)
        q, phi = rng.uniform(0.3, 1.0), rng.uniform(0, np.pi)
        dy, dx = yy - cy, xx - cx
        u = dx * np.cos(phi) + dy * np.sin(phi)
        v = (-dx * np.sin(phi) + dy * np.cos(phi)) / q
        signal += rng.uniform(20, 200) * np.exp(-np.hypot(u, v) / scale)
    read_noise = 5.0
    image = signal + rng.normal(0.0, 1.0, (SIZE, SIZE)) * np.sqrt(signal + sky + read_noise**2)
    cr = np.zeros((SIZE, SIZE), np.float32)
    for _ in range(rng.poisson(25)):  # tracks
        y0, x0 = rng.uniform(0, SIZE, 2)
        ang, length = rng.uniform(0, np.pi), rng.exponential(6.0) + 1.0
        n = int(length * 3) + 2
        t = np.linspace(0.0, length, n)
        ys = np.clip(np.rint(y0 + t * np.sin(ang)), 0, SIZE - 1).astype(int)
        xs = np.clip(np.rint(x0 + t * np.cos(ang)), 0, SIZE - 1).astype(int)
        cr[ys, xs] += rng.uniform(150, 3000)
    for _ in range(rng.poisson(40)):  # single-pixel hits and small blobs
        y, x = rng.integers(0, SIZE - 1, 2)
        cr[y : y + rng.integers(1, 3), x : x + rng.integers(1, 3)] += rng.uniform(100, 2000)
    image += cr
    mask = (cr > 0).astype(np.float32)
    ignore = np.zeros((SIZE, SIZE), np.float32)
    if rng.random() < 0.5:  # a bad column
        ignore[:, rng.integers(0, SIZE)] = 1.0
    saturated = image + sky > 60000.0
    ignore[saturated] = 1.0
    return np.stack([image.astype(np.float32), mask, ignore])  # (3, 256, 256)


def generate(ctx: Context) -> dict[str, Any]:
    rng = np.random.default_rng(ctx.seed)
    n_train = ctx.n_train() + max(2, math.ceil(ctx.n_train() / 9))  # 90/10, val >= 2
    n_test = max(4, math.ceil(ctx.n_train() / 10))
    gal = sorted(GAL_FIELDS)
    plan = {
        # split -> [(filter, field, n exposures)]: GAL fields hold the counted files; a non-GAL
        # field and another filter are written too, to exercise the selection.
        "train": [
            (FILTER, gal[0], n_train - n_train // 2),
            (FILTER, gal[1], n_train // 2),
            (FILTER, "10595_7", 2),
            ("f606w", gal[0], 2),
        ],
        "test": [(FILTER, gal[2], n_test), (FILTER, "9442_1", 1)],
    }
    total = sum(n for v in plan.values() for *_, n in v)
    bar = tqdm(total=total, desc="simulate cosmic", disable=pbar_disable(ctx))
    for split, dirs in plan.items():
        for filt, field, n in dirs:
            prop, visit = field.split("_", 1)
            d = ctx.raw_dir / f"npy_{split}" / filt / prop / visit
            d.mkdir(parents=True, exist_ok=True)
            skies = rng.uniform(20.0, 150.0, size=max(n, 1)).astype(np.float32)
            np.save(d / "sky.npy", skies)
            for i in range(n):
                arr = simulate_exposure(rng, float(skies[i]), galaxy_field=field in GAL_FIELDS)
                np.save(d / f"{i + 1}_crop0.npy", arr)
                bar.update()
    bar.close()
    info = {
        "seed": ctx.seed,
        "plan": {k: [list(x) for x in v] for k, v in plan.items()},
        "simulator": "sky + stars + exponential galaxies + noise + CR tracks/hits",
    }
    ctx.generator_info = info
    return info


# ------------------------------------------------------------------------------------ parsing


def list_files(base: Path) -> tuple[list[Path], list[str]]:
    """Sorted f435w GAL exposure files under npy_<split>; also the unknown field keys met."""
    files, unknown = [], []
    fdir = base / FILTER
    if not fdir.is_dir():
        raise DataError(f"{fdir} not found: expected npy_<split>/{FILTER}/<propid>/<visit>/")
    for prop in sorted(p for p in fdir.iterdir() if p.is_dir()):
        for visit in sorted(v for v in prop.iterdir() if v.is_dir()):
            key = f"{prop.name}_{visit.name}"
            if key not in GAL_FIELDS:
                if key not in OTHER_FIELDS:
                    unknown.append(key)
                continue
            names = [f for f in visit.glob("*.npy") if f.name != "sky.npy"]
            files += sorted(names, key=lambda f: (_prefix(f), f.name))
    return files, unknown


def _prefix(f: Path) -> int:
    head = f.name.split("_")[0]
    if not head.isdigit():
        raise DataError(f"{f}: expected a file name '<N>_...npy' (N indexes sky.npy)")
    return int(head)


def load_exposure(f: Path) -> tuple[np.ndarray, float]:
    """((3, 128, 128) cropped [image, mask, ignore], sky level)."""
    try:
        arr = np.load(f, mmap_mode="r")
    except Exception as e:
        raise DataError(f"{f}: unreadable .npy ({e})") from e
    if arr.ndim != 3 or arr.shape[0] not in (2, 3) or min(arr.shape[1:]) < CROP.stop:
        raise DataError(
            f"{f}: array shape {arr.shape}; expected (3, 256, 256) = [image, CR mask, ignore]"
        )
    crop = np.zeros((3, 128, 128), np.float32)
    crop[: arr.shape[0]] = arr[:, CROP, CROP]  # (3, 128, 128); no ignore plane -> zeros
    sky_path = f.parent / "sky.npy"
    sky = 0.0
    if sky_path.is_file():
        skies = np.load(sky_path)
        idx = _prefix(f)
        if not 1 <= idx <= len(skies):
            raise DataError(f"{f}: prefix {idx} outside {sky_path} (length {len(skies)})")
        sky = float(skies[idx - 1])
    return crop, sky


def fetch(ctx: Context) -> Path:
    root = ctx.raw_dir
    for src, split in zip(ctx.spec.sources, ("train", "test"), strict=True):
        p = resolve_source(ctx, src, allow_dir=True)
        if p.is_dir():
            root = find_dir(p, f"npy_{split}").parent
            continue
        if not (ctx.raw_dir / f"npy_{split}").is_dir():
            dl.extract_tar(p, ctx.raw_dir, members_with=[f"npy_{split}/"], progress=ctx.progress)
        root = ctx.raw_dir
    return root


def preprocess(ctx: Context, raw: Path) -> dict[str, Any]:
    bases = {s: find_dir(raw, f"npy_{s}") for s in ("train", "test")}
    train_files, unk1 = list_files(bases["train"])
    test_files, unk2 = list_files(bases["test"])
    if not train_files or not test_files:
        raise DataError(
            f"no {FILTER} GAL exposures under {raw} (train {len(train_files)}, "
            f"test {len(test_files)})"
        )
    n_tr = int(len(train_files) * 0.9)
    parts = {"train": train_files[:n_tr], "val": train_files[n_tr:], "test": test_files}
    with ArtefactWriter(ctx.out_dir) as w:
        for split, files in parts.items():
            n = len(files)
            arrs = {
                k: w.open(split, k, (n, 1, 128, 128), np.float32)
                for k in ("inputs", "targets", "ignore")
            }  # (N, 1, 128, 128) each
            sky = np.zeros(n, np.float32)
            for i, f in enumerate(tqdm(files, desc=f"cosmic {split}", disable=pbar_disable(ctx))):
                crop, sky[i] = load_exposure(f)
                arrs["inputs"][i, 0], arrs["targets"][i, 0], arrs["ignore"][i, 0] = crop
            for a in arrs.values():
                a.flush()
            del arrs
            w.save(split, "sky", sky)
        meta = ctx.meta_base()
        meta.update(
            normalisation=None,
            arrays={
                "inputs": "image (sky subtracted), crop [64:192, 64:192]",
                "targets": "cosmic-ray mask in {0, 1}",
                "ignore": "1 = exclude from loss and metric (bad pixels, saturation)",
                "sky": "sky level of the exposure (sky.npy[N - 1])",
            },
            augmentation={
                "split": "train",
                "sky": list(SKY_AUG),
                "rule": "inputs + sky * U(-0.9, 3), per sample and epoch",
                # NAS-Bench-360 builds its validation and test sets with the same sky
                # augmentation (PairedDatasetImagePath(..., aug_sky[0], aug_sky[1]) for every
                # split); we follow it, with ONE fixed draw per example so that evaluation is
                # deterministic (NAS-Bench-360 redraws at every pass).
                "eval": {
                    "splits": ["val", "test"],
                    "seed": EVAL_AUG_SEED,
                    "rule": "inputs + sky * f, f ~ U(-0.9, 3) drawn once per example from "
                    "numpy default_rng([seed, crc32(split)])",
                },
            },
            loss="BCE-with-logits on logits * (1 - ignore) vs targets * (1 - ignore)",
            metric="1 - AUROC on probabilities (NAS-Bench-360 thresholded logits at 0.5)",
            selection={"filter": FILTER, "field_type": "GAL", "unknown_fields": unk1 + unk2},
            raw_checksums=hash_raw_files(train_files + test_files, raw),
            provenance=provenance(ctx.seed, ctx.started),
        )
        return w.commit(meta)
