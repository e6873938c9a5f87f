"""CIFAR-10 / CIFAR-100 (paper Appx. D.2); also the raw
reader of LRA Image (data_prep.lra.image).

Sources, in order: HF `uoft-cs/cifar10[0]`, TFDS `cifar10[0]`, the raw python archive (layout
`cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}` and
`cifar-100-python/{train,test,meta}`: pickled dicts with bytes keys, `data` (N, 3072) uint8 as
R, G, B planes of 32 x 32 in row-major order). 45k/5k split of train with seed 42 (numpy's
generator: the indices differ from S4's torch `random_split`, the proportions do not) + the 10k
test set. Per-channel normalisation; the artefact stores normalised float32 (N, 3, 32, 32).
Augmentation (random crop 32 with 4-pixel padding + horizontal flip, train only) happens in
data_prep.iterator; the padding value is black in raw pixel space, i.e. -mean/std normalised.

Offline: CIFAR cannot be generated; `generate` writes a FORMAT SUBSTITUTE in the pickled-batch
layout: each class has a seeded smooth colour prototype, samples are prototype + noise.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from data_prep import download as dl
from data_prep.artefacts import ArtefactWriter, hash_raw_files, provenance, split_indices
from data_prep.common import (
    Context,
    content_sha256,
    hf_load,
    loader_id,
    loader_order,
    resolve_source,
    tfds_load,
)
from data_prep.errors import DataError

SPLIT_SEED = 42
NORMALISATION = {
    "cifar10": {"mean": (0.4914, 0.4822, 0.4465), "std": (0.247, 0.243, 0.261)},
    "cifar100": {"mean": (0.5071, 0.4867, 0.4408), "std": (0.2675, 0.2565, 0.2761)},
}
LAYOUT = {
    "cifar10": {
        "dir": "cifar-10-batches-py",
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
        "meta": "batches.meta",
        "label_key": b"labels",
        "classes": 10,
    },
    "cifar100": {
        "dir": "cifar-100-python",
        "train": ["train"],
        "test": ["test"],
        "meta": "meta",
        "label_key": b"fine_labels",
        "classes": 100,
    },
}

Raw = dict[str, tuple[np.ndarray, np.ndarray]]  # split -> ((N, 3, 32, 32) uint8, (N,) int)

# ------------------------------------------------------------------- substitute generator


def _prototypes(n_classes: int, seed: int) -> np.ndarray:
    """(K, 3, 32, 32) smooth patterns in [-1, 1]: a few random plane waves per channel."""
    rng = np.random.default_rng([seed, 7])
    yy, xx = np.mgrid[0:32, 0:32] / 32.0  # (32, 32)
    protos = np.zeros((n_classes, 3, 32, 32))
    for k in range(n_classes):
        for c in range(3):
            for _ in range(2):
                fy, fx = rng.uniform(-3, 3, size=2)
                phase = rng.uniform(0, 2 * np.pi)
                protos[k, c] += np.sin(2 * np.pi * (fy * yy + fx * xx) + phase) / 2
    return protos


def synth_images(labels: np.ndarray, n_classes: int, seed: int, rng: np.random.Generator):
    protos = _prototypes(n_classes, seed)
    noise = rng.normal(0, 25, size=(len(labels), 3, 32, 32))
    x = 128 + 90 * protos[labels] + noise  # (N, 3, 32, 32)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _write_batch(path: Path, x: np.ndarray, labels: np.ndarray, label_key: bytes, extra: dict):
    d = {
        b"batch_label": path.name.encode(),
        label_key: [int(v) for v in labels],
        b"data": x.reshape(len(x), 3072),  # (N, 3, 32, 32) -> (N, 3072): R, G, B planes
        b"filenames": [f"synthetic_{i:06d}.png".encode() for i in range(len(x))],
        **extra,
    }
    with open(path, "wb") as f:
        pickle.dump(d, f, protocol=2)


def generate_raw(raw_dir: Path, name: str, n_train_total: int, n_test: int, seed: int) -> dict:
    lay = LAYOUT[name]
    rng = np.random.default_rng(seed)
    d = raw_dir / lay["dir"]
    d.mkdir(parents=True, exist_ok=True)
    k = lay["classes"]
    files = {"train": lay["train"], "test": lay["test"]}
    totals = {"train": n_train_total, "test": n_test}
    for split, names in files.items():
        labels = rng.integers(0, k, size=totals[split])
        x = synth_images(labels, k, seed, rng)
        for fname, idx in zip(
            names, np.array_split(np.arange(len(labels)), len(names)), strict=True
        ):
            extra = {b"coarse_labels": [int(v) // 5 for v in labels[idx]]} if k == 100 else {}
            _write_batch(d / fname, x[idx], labels[idx], lay["label_key"], extra)
    meta = (
        {b"label_names": [f"class_{i}".encode() for i in range(k)], b"num_vis": 3072}
        if k == 10
        else {
            b"fine_label_names": [f"fine_{i}".encode() for i in range(k)],
            b"coarse_label_names": [f"coarse_{i}".encode() for i in range(20)],
        }
    )
    with open(d / lay["meta"], "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return {
        "seed": seed,
        "train_total": n_train_total,
        "test": n_test,
        "rule": "class = seeded smooth colour prototype + Gaussian noise (sd 25)",
    }


def generate(ctx: Context) -> dict[str, Any]:
    name = ctx.spec.name if ctx.spec.name in LAYOUT else "cifar10"
    n_train = ctx.n_train()
    total = n_train + max(2, -(-n_train // 9))  # 45k/5k proportions, val >= 2
    info = generate_raw(ctx.raw_dir, name, total, max(10, total // 5), ctx.seed)
    ctx.generator_info = info
    return info


# --------------------------------------------------------------------------------- readers


def _unpickle(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"{path} not found: expected a pickled CIFAR batch")
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="bytes")
    except Exception as e:
        raise DataError(f"{path}: not a readable pickled CIFAR batch ({e}); re-download") from e


def read_batches(root: Path, name: str) -> tuple[Raw, list[Path]]:
    lay = LAYOUT[name]
    base = root / lay["dir"] if (root / lay["dir"]).is_dir() else root
    out: Raw = {}
    used: list[Path] = []
    for split in ("train", "test"):
        xs, ys = [], []
        for fname in lay[split]:
            p = base / fname
            d = _unpickle(p)
            for key in (b"data", lay["label_key"]):
                if key not in d:
                    raise DataError(f"{p}: key {key!r} missing; expected a {name} batch")
            x = np.asarray(d[b"data"], dtype=np.uint8)
            y = np.asarray(d[lay["label_key"]], dtype=np.int32)
            if x.ndim != 2 or x.shape[1] != 3072 or len(y) != len(x):
                raise DataError(
                    f"{p}: data shape {x.shape} with {len(y)} labels; expected (N, 3072) uint8 "
                    "and N labels"
                )
            if y.size and (y.min() < 0 or y.max() >= lay["classes"]):
                raise DataError(f"{p}: labels outside [0, {lay['classes']})")
            xs.append(x.reshape(-1, 3, 32, 32))  # (N, 3072) -> (N, 3, 32, 32)
            ys.append(y)
            used.append(p)
        out[split] = (np.concatenate(xs), np.concatenate(ys))
    return out, used


def _from_hf(ctx: Context, name: str) -> Raw:
    ds = hf_load(loader_id(ctx.spec, "hf"))
    label = "label" if name == "cifar10" else "fine_label"
    out = {}
    for split in ("train", "test"):
        imgs = np.stack([np.asarray(im.convert("RGB")) for im in ds[split]["img"]])  # (N,32,32,3)
        out[split] = (imgs.transpose(0, 3, 1, 2), np.asarray(ds[split][label], np.int32))
    return out


def _from_tfds(ctx: Context) -> Raw:
    out = {}
    for split in ("train", "test"):
        d = tfds_load(loader_id(ctx.spec, "tfds"), split)
        out[split] = (
            np.asarray(d["image"]).transpose(0, 3, 1, 2),  # (N,32,32,3) -> (N,3,32,32)
            np.asarray(d["label"], np.int32),
        )
    return out


def fetch_raw(ctx: Context, name: str) -> Path | Raw:
    """Raw root with the pickled batches, or in-memory arrays from an ecosystem loader."""
    errors = []
    for kind in loader_order(ctx):
        if kind == "raw":
            archive = resolve_source(ctx, ctx.spec.sources[0], allow_dir=True)
            if archive.is_dir():
                return archive
            if not (ctx.raw_dir / LAYOUT[name]["dir"]).is_dir():
                dl.extract_tar(
                    archive,
                    ctx.raw_dir,
                    members_with=[LAYOUT[name]["dir"] + "/"],
                    progress=ctx.progress,
                )
            return ctx.raw_dir
        try:
            raw = _from_hf(ctx, name) if kind == "hf" else _from_tfds(ctx)
        except Exception as e:
            errors.append(f"{kind}: {type(e).__name__}: {e}")
            continue
        ctx.source_detail["loader"] = f"{kind}:{loader_id(ctx.spec, kind)}"
        ctx.source_detail["content_sha256"] = content_sha256(*raw["train"], *raw["test"])
        return raw
    raise DataError(f"{name}: every source failed: " + "; ".join(errors))


def load_raw(ctx: Context, raw: Path | Raw, name: str) -> tuple[Raw, dict[str, Any]]:
    if isinstance(raw, Path):
        data, used = read_batches(raw, name)
        return data, hash_raw_files(used, raw)
    return raw, {"content_sha256": ctx.source_detail.get("content_sha256")}


def train_val_split(n: int) -> tuple[np.ndarray, np.ndarray]:
    """45k/5k of 50k (seed 42); proportionally (10 % validation) on smaller data."""
    tr, va = split_indices(n, (0.9, 0.1), SPLIT_SEED)
    return tr, va


def three_splits(data: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{'train', 'test'} raw (images, labels) -> train / val (split of train) / test."""
    x_train, y_train = data["train"]
    tr, va = train_val_split(len(x_train))
    return {
        "train": (x_train[tr], y_train[tr]),
        "val": (x_train[va], y_train[va]),
        "test": data["test"],
    }


def fetch(ctx: Context) -> Path | Raw:
    return fetch_raw(ctx, ctx.spec.name)


def preprocess(ctx: Context, raw: Path | Raw) -> dict[str, Any]:
    name = ctx.spec.name
    data, checksums = load_raw(ctx, raw, name)
    mean = np.asarray(NORMALISATION[name]["mean"], np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(NORMALISATION[name]["std"], np.float32).reshape(1, 3, 1, 1)
    parts = three_splits(data)
    with ArtefactWriter(ctx.out_dir) as w:
        for split, (x, y) in parts.items():
            w.save(split, "inputs", ((x.astype(np.float32) / 255.0 - mean) / std))  # (N,3,32,32)
            w.save(split, "targets", y.astype(np.int32))
        meta = ctx.meta_base()
        pad = (-mean / std).reshape(3).tolist()
        meta.update(
            normalisation={
                "mean": NORMALISATION[name]["mean"],
                "std": NORMALISATION[name]["std"],
                "applied": "x / 255, then (x - mean) / std per channel",
            },
            augmentation={
                "split": "train",
                "crop": 32,
                "padding": 4,
                "pad_value": pad,
                "hflip": True,
                "note": "pad value = black pixel after normalisation",
            },
            split_seed=SPLIT_SEED,
            raw_checksums=checksums,
            provenance=provenance(ctx.seed, ctx.started),
        )
        return w.commit(meta)
