"""LRA Retrieval = AAN citation pairs (paper Appx. D.1).

Raw layout (real and substitute): `<root>/tsv_data/new_aan_pairs.{train,eval,test}.tsv`, no
header, 5 tab-separated columns `label, id1, id2, text1, text2`. Characters; vocabulary from
both training texts; each document truncated to 3999 + `<eos>` and padded with 0 to 4000.

Artefact layout (documented choice): `inputs` (N, 2, 4000) int32 - document 1 then document 2
of each pair, encoded separately - `lengths` (N, 2), `targets` (N,) in {0, 1}.

Offline: AAN cannot be generated; `generate` writes a FORMAT SUBSTITUTE in the same TSV layout
whose label is learnable: label 1 pairs are two documents of the same topic (shared word pool),
label 0 pairs come from different topics.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from data_prep.artefacts import ArtefactWriter, hash_raw_files
from data_prep.common import (
    Context,
    Vocab,
    commit_tokens,
    encode_padded,
    fetch_lra,
    pbar_disable,
)
from data_prep.errors import DataError

MAX_LEN = 4000
DIR_NAME = "tsv_data"
SPLIT_FILES = {
    "train": "new_aan_pairs.train.tsv",
    "val": "new_aan_pairs.eval.tsv",
    "test": "new_aan_pairs.test.tsv",
}

# ------------------------------------------------------------------- substitute generator


def _topics(rng: random.Random, n_topics: int = 8, words: int = 30) -> list[list[str]]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return [
        ["".join(rng.choice(letters) for _ in range(rng.randint(3, 9))) for _ in range(words)]
        for _ in range(n_topics)
    ]


def _document(rng: random.Random, pool: list[str]) -> str:
    return " ".join(rng.choice(pool) for _ in range(rng.randint(30, 120))) + " ."


def generate(ctx: Context) -> dict[str, Any]:
    rng = random.Random(ctx.seed)
    topics = _topics(rng)
    n = ctx.n_train()
    sizes = {"train": n, "val": max(8, n // 8), "test": max(8, n // 8)}
    d = ctx.raw_dir / DIR_NAME
    d.mkdir(parents=True, exist_ok=True)
    for split, count in sizes.items():
        with open(d / SPLIT_FILES[split], "w", encoding="utf-8") as f:
            for i in range(count):
                label = i % 2
                t1 = rng.randrange(len(topics))
                t2 = t1 if label else (t1 + rng.randrange(1, len(topics))) % len(topics)
                ids = (f"P{rng.randint(0, 99):02d}-{rng.randint(1000, 9999)}" for _ in range(2))
                row = [f"{label}.0", *ids, _document(rng, topics[t1]), _document(rng, topics[t2])]
                f.write("\t".join(row) + "\n")
    info = {"seed": ctx.seed, "sizes": sizes, "rule": "label 1 iff both documents share a topic"}
    ctx.generator_info = info
    return info


# ----------------------------------------------------------------------------- preprocessing


def read_tsv(path: Path) -> tuple[list[list[str]], list[list[str]], np.ndarray]:
    if not path.is_file():
        raise DataError(f"{path} not found: expected the AAN split file {path.name}")
    docs1, docs2, labels = [], [], []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            fields = line.rstrip("\n").split("\t")
            try:
                if len(fields) != 5:
                    raise ValueError(f"{len(fields)} columns")
                label = float(fields[0])
                if label not in (0.0, 1.0):
                    raise ValueError(f"label {fields[0]!r}")
            except ValueError as e:
                raise DataError(
                    f"{path}, line {lineno}: malformed row ({e}): {line[:80]!r}; expected 5 "
                    "tab-separated columns 'label id1 id2 text1 text2' with label 0 or 1. "
                    "Re-download or regenerate the file."
                ) from None
            labels.append(int(label))
            docs1.append(list(fields[3]))
            docs2.append(list(fields[4]))
    if not labels:
        raise DataError(f"{path} is empty: expected AAN pairs")
    return docs1, docs2, np.asarray(labels, dtype=np.int32)


def fetch(ctx: Context) -> Path:
    return fetch_lra(ctx, DIR_NAME).parent


def preprocess(ctx: Context, raw_root: Path) -> dict[str, Any]:
    d = raw_root / DIR_NAME
    data = {s: read_tsv(d / n) for s, n in SPLIT_FILES.items()}
    vocab = Vocab.build(data["train"][0] + data["train"][1], min_freq=1)
    with ArtefactWriter(ctx.out_dir) as w:
        for split in tqdm(SPLIT_FILES, desc="retrieval", disable=pbar_disable(ctx)):
            docs1, docs2, labels = data[split]
            x1, l1 = encode_padded(vocab, docs1, MAX_LEN)  # (N, 4000)
            x2, l2 = encode_padded(vocab, docs2, MAX_LEN)  # (N, 4000)
            w.save(split, "inputs", np.stack([x1, x2], axis=1))  # (N, 2, 4000)
            w.save(split, "lengths", np.stack([l1, l2], axis=1))  # (N, 2)
            w.save(split, "targets", labels)
        return commit_tokens(
            ctx,
            w,
            vocab,
            MAX_LEN,
            inputs_layout="(N, 2, L): document 1, document 2 (encoded separately)",
            raw_checksums=hash_raw_files([d / n for n in SPLIT_FILES.values()], raw_root),
            preprocessing="S4: characters, each document truncated 3999 + <eos>, vocab from "
            "both training texts, pad 0",
        )
