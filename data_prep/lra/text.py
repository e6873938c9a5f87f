"""LRA Text = IMDB at character level (paper Appx. D.1).

Sources, in order: HF `stanfordnlp/imdb`, TFDS `imdb_reviews`, the raw `aclImdb_v1.tar.gz`
(layout `aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt`). S4's preprocessing: characters,
truncate to 4095 + `<eos>`, vocabulary from train with min_freq 15, pad with 0 to 4096.
25k train / 25k test; validation = test (LRA, S4, CCNN) via the split alias val -> test.

Offline: IMDB cannot be generated; `generate` writes a FORMAT SUBSTITUTE in the aclImdb layout
whose label rule is learnable (positive reviews use positive words, negative ones negative).
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from data_prep import download as dl
from data_prep.artefacts import ArtefactWriter, hash_raw_files
from data_prep.common import (
    Context,
    Vocab,
    commit_tokens,
    content_sha256,
    encode_padded,
    hf_load,
    loader_id,
    loader_order,
    pbar_disable,
    resolve_source,
    tfds_load,
)
from data_prep.errors import DataError

MAX_LEN = 4096
MIN_FREQ = 15
SPLITS = ("train", "test")
_NAME = re.compile(r"^(\d+)_(\d+)\.txt$")

Examples = dict[str, tuple[list[str], np.ndarray]]  # split -> (texts, labels)

# ------------------------------------------------------------------- substitute generator

_POS = ("great", "wonderful", "excellent", "loved", "brilliant", "superb", "moving", "best")
_NEG = ("awful", "boring", "terrible", "hated", "dull", "worst", "weak", "waste")
_FILL = (
    "the",
    "film",
    "movie",
    "plot",
    "actor",
    "scene",
    "story",
    "was",
    "and",
    "a",
    "it",
    "this",
    "of",
    "with",
    "director",
    "ending",
    "music",
    "but",
    "very",
    "quite",
    "so",
)


def _review(rng: random.Random, positive: bool) -> str:
    words = []
    for _ in range(rng.randint(40, 160)):
        if rng.random() < 0.15:
            words.append(rng.choice(_POS if positive else _NEG))
        else:
            words.append(rng.choice(_FILL))
    text = " ".join(words)
    return text[0].upper() + text[1:] + ". <br /><br />" + ("Recommended!" if positive else "No.")


def generate(ctx: Context) -> dict[str, Any]:
    rng = random.Random(ctx.seed)
    sizes = {"train": ctx.n_train(), "test": max(8, ctx.n_train() // 2)}
    root = ctx.raw_dir / "aclImdb"
    for split, n in sizes.items():
        for i in range(n):
            positive = i % 2 == 0
            d = root / split / ("pos" if positive else "neg")
            d.mkdir(parents=True, exist_ok=True)
            rating = rng.randint(7, 10) if positive else rng.randint(1, 4)
            (d / f"{i // 2}_{rating}.txt").write_text(_review(rng, positive), encoding="utf-8")
    info = {"seed": ctx.seed, "sizes": sizes, "rule": "label 1 iff positive words (p=0.15)"}
    ctx.generator_info = info
    return info


# --------------------------------------------------------------------------------- readers


def read_aclimdb(root: Path) -> tuple[Examples, list[Path]]:
    """Read `root/aclImdb/{train,test}/{pos,neg}/*.txt` (sorted by id: deterministic)."""
    base = root / "aclImdb" if (root / "aclImdb").is_dir() else root
    out: Examples = {}
    files: list[Path] = []
    for split in SPLITS:
        texts, labels = [], []
        for label, sub in ((0, "neg"), (1, "pos")):
            d = base / split / sub
            if not d.is_dir():
                raise DataError(f"{d} not found: expected the aclImdb layout {split}/{sub}/*.txt")
            entries = []
            for p in d.iterdir():
                m = _NAME.match(p.name)
                if m is None:
                    continue
                entries.append((int(m.group(1)), p))
            for _, p in sorted(entries):
                texts.append(p.read_text(encoding="utf-8"))
                labels.append(label)
                files.append(p)
        if not texts:
            raise DataError(f"{base / split}: no reviews found")
        out[split] = (texts, np.asarray(labels, dtype=np.int32))
    return out, files


def _from_hf(ctx: Context) -> Examples:
    ds = hf_load(loader_id(ctx.spec, "hf"))
    return {s: (list(ds[s]["text"]), np.asarray(ds[s]["label"], np.int32)) for s in SPLITS}


def _from_tfds(ctx: Context) -> Examples:
    out = {}
    for s in SPLITS:
        d = tfds_load(loader_id(ctx.spec, "tfds"), s)
        texts = [t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in d["text"]]
        out[s] = (texts, np.asarray(d["label"], np.int32))
    return out


def fetch(ctx: Context) -> Path | Examples:
    errors = []
    for kind in loader_order(ctx):
        try:
            if kind == "hf":
                ex = _from_hf(ctx)
            elif kind == "tfds":
                ex = _from_tfds(ctx)
            else:
                archive = resolve_source(ctx, ctx.spec.sources[0], allow_dir=True)
                if archive.is_dir():
                    return archive
                dest = ctx.raw_dir
                if not (dest / "aclImdb" / "train").is_dir():
                    dl.extract_tar(
                        archive,
                        dest,
                        members_with=["aclImdb/train/", "aclImdb/test/"],
                        progress=ctx.progress,
                    )
                return dest
        except DataError:
            if kind == "raw":
                raise
            continue
        except Exception as e:
            errors.append(f"{kind}: {type(e).__name__}: {e}")
            continue
        ctx.source_detail["loader"] = f"{kind}:{loader_id(ctx.spec, kind)}"
        ctx.source_detail["content_sha256"] = content_sha256(*(ex[s][0] for s in SPLITS))
        return ex
    raise DataError("IMDB: every source failed: " + "; ".join(errors))


# ----------------------------------------------------------------------------- preprocessing


def preprocess(ctx: Context, raw: Path | Examples) -> dict[str, Any]:
    if isinstance(raw, Path):
        examples, files = read_aclimdb(raw)
        checksums = hash_raw_files(files, raw)
    else:
        examples, checksums = raw, {"content_sha256": ctx.source_detail.get("content_sha256")}
    chars = {s: [list(t) for t in texts] for s, (texts, _) in examples.items()}
    vocab = Vocab.build(chars["train"], min_freq=MIN_FREQ)
    with ArtefactWriter(ctx.out_dir) as w:
        for split in tqdm(SPLITS, desc="text", disable=pbar_disable(ctx)):
            x, lengths = encode_padded(vocab, chars[split], MAX_LEN)  # (N, 4096) int32
            w.save(split, "inputs", x)
            w.save(split, "targets", examples[split][1])
            w.save(split, "lengths", lengths)
        return commit_tokens(
            ctx,
            w,
            vocab,
            MAX_LEN,
            raw_checksums=checksums,
            preprocessing="S4: characters, truncate 4095 + <eos>, vocab from train min_freq 15",
        )
