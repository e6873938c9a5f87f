"""ListOps (paper Appx. D.1): LRA's generator (seeded) and S4's
preprocessing.

Raw layout (real and generated): `<root>/listops-1000/basic_{train,val,test}.tsv`, header
`Source\tTarget`. Preprocessing: `]` -> `X`, drop `(` and `)`, split on whitespace, truncate to
2047 tokens, append `<eos>`, vocabulary from train (`<pad>`=0, `<unk>`=1, `<eos>`=2: 18 tokens
on the real data), pad with 0 to 2048.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from data_prep.artefacts import ArtefactWriter, hash_raw_files
from data_prep.common import Context, Vocab, commit_tokens, encode_padded, fetch_lra
from data_prep.errors import DataError

MAX_LEN = 2048
OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
SPLIT_FILES = {"train": "basic_train.tsv", "val": "basic_val.tsv", "test": "basic_test.tsv"}
DIR_NAME = "listops-1000"

# ------------------------------------------------------------------------------ generator

Tree = int | tuple[str, list["Tree"]]


class _TooLong(Exception):
    pass


def random_tree(
    rng: random.Random,
    depth: int = 1,
    max_depth: int = 10,
    max_args: int = 10,
    budget: int = 2000,
) -> tuple[Tree, int]:
    """LRA's recursive tree: (tree, length). Gives up (_TooLong) once the length reaches
    `budget` - those trees would be rejected anyway, so the accepted ones are distributed as
    in plain rejection sampling."""
    r = rng.random() if depth < max_depth else 1.0
    if r > 0.25:
        return rng.randint(0, 9), 1
    op = rng.choice(OPERATORS)
    n_args = rng.randint(2, max_args)  # inclusive
    children, length = [], 2
    for _ in range(n_args):
        child, n = random_tree(rng, depth + 1, max_depth, max_args, budget - length)
        children.append(child)
        length += n
        if length >= budget:
            raise _TooLong
    return (op, children), length


def to_string(tree: Tree) -> str:
    """`( ( ( [MAX 2 ) 9 ) ] )` for [MAX 2 9]: k+1 opening brackets, each child closed by `)`,
    then `] )`."""
    if isinstance(tree, int):
        return str(tree)
    op, children = tree
    parts = ["( " * (len(children) + 1) + op]
    parts += [f"{to_string(c)} )" for c in children]
    parts.append("] )")
    return " ".join(parts)


def evaluate(tree: Tree) -> int:
    if isinstance(tree, int):
        return tree
    op, children = tree
    vals = [evaluate(c) for c in children]
    if op == "[MIN":
        return min(vals)
    if op == "[MAX":
        return max(vals)
    if op == "[MED":
        return int(np.median(vals))
    if op == "[SM":
        return sum(vals) % 10
    raise ValueError(op)


LRA_LENGTHS = (500, 2000)  # LRA's generator flags min_length, max_length (the released data)


def generate_rows(
    n: int, seed: int, min_length: int = LRA_LENGTHS[0], max_length: int = LRA_LENGTHS[1]
) -> Iterator[tuple[str, int]]:
    """Yield `n` distinct (expression, value) with min_length < length < max_length."""
    rng = random.Random(seed)
    seen: set[str] = set()
    while len(seen) < n:
        try:
            tree, length = random_tree(rng, budget=max_length)
        except _TooLong:
            continue
        if not min_length < length < max_length:
            continue
        s = to_string(tree)
        if s in seen:
            continue
        seen.add(s)
        yield s, evaluate(tree)


# `--option` sets LRA's length flags (LRA_LENGTHS by default), e.g. shorter whole expressions
# for a CPU-scale study instead of truncated long ones.
GENERATE_OPTIONS = {"min_length": int, "max_length": int}


def split_sizes(n_train: int) -> dict[str, int]:
    """Real data: 96k/2k/2k (1/48). Generated: val = test = max(4, n_train // 8), so that a
    held-out accuracy can be measured (LRA's 1/48 leaves 83 sequences at 4000, a ~5-point SE)."""
    small = max(4, n_train // 8)
    return {"train": n_train, "val": small, "test": small}


def generate(ctx: Context) -> dict[str, Any]:
    min_length = ctx.options.get("min_length", LRA_LENGTHS[0])
    max_length = ctx.options.get("max_length", LRA_LENGTHS[1])
    if not 5 <= min_length < max_length - 1:
        raise DataError(
            f"listops: generator lengths need 5 <= min_length < max_length - 1 (tokens), got "
            f"min_length={min_length}, max_length={max_length}"
        )
    if max_length > MAX_LEN + 1:
        raise DataError(
            f"listops: max_length={max_length} exceeds the {MAX_LEN}-token layout of the "
            f"preprocessed arrays; use at most {MAX_LEN + 1} (lengths are < max_length)"
        )
    sizes = split_sizes(ctx.n_train())
    d = ctx.raw_dir / DIR_NAME
    d.mkdir(parents=True, exist_ok=True)
    rows = generate_rows(sum(sizes.values()), ctx.seed, min_length, max_length)
    for split, n in sizes.items():  # train, val, test in order (as LRA)
        with open(d / SPLIT_FILES[split], "w") as f:
            f.write("Source\tTarget\n")
            for _ in range(n):
                s, v = next(rows)
                f.write(f"{s}\t{v}\n")
    info = {
        "seed": ctx.seed,
        "sizes": sizes,
        "min_length": min_length,
        "max_length": max_length,
        "algorithm": "LRA listops tree(depth=1, max_depth=10, max_args=10), seeded",
    }
    ctx.generator_info = info
    if (min_length, max_length) != LRA_LENGTHS:  # the registry's audit is of LRA's lengths
        ctx.distribution = (
            "faithful",
            f"LRA listops.py tree law at min_length={min_length}, max_length={max_length} "
            "(LRA's flags; the released data: 500, 2000); lengths differ from the real data",
        )
    return info


# ---------------------------------------------------------------------------- preprocessing


def tokenize(source: str) -> list[str]:
    return source.replace("]", "X").replace("(", "").replace(")", "").split()


def read_tsv(path: Path) -> tuple[list[list[str]], np.ndarray]:
    if not path.is_file():
        raise DataError(f"{path} not found: expected the ListOps split file {path.name}")
    seqs, labels = [], []
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        if header != ["Source", "Target"]:
            raise DataError(f"{path}, line 1: expected header 'Source\\tTarget', got {header}")
        for lineno, line in enumerate(f, start=2):
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 2 or not fields[1].strip().isdigit() or int(fields[1]) > 9:
                raise DataError(
                    f"{path}, line {lineno}: malformed row {line[:80]!r}; expected "
                    "'<expression>\\t<label 0-9>'. Re-download or regenerate the file."
                )
            seqs.append(tokenize(fields[0]))
            labels.append(int(fields[1]))
    return seqs, np.asarray(labels, dtype=np.int32)


def fetch(ctx: Context) -> Path:
    return fetch_lra(ctx, DIR_NAME).parent


def preprocess(ctx: Context, raw_root: Path) -> dict[str, Any]:
    d = raw_root / DIR_NAME
    data = {
        split: read_tsv(d / name)
        for split, name in tqdm(
            SPLIT_FILES.items(), desc="listops", disable=None if ctx.progress else True
        )
    }
    vocab = Vocab.build(data["train"][0], min_freq=1)
    with ArtefactWriter(ctx.out_dir) as w:
        for split, (seqs, labels) in data.items():
            x, lengths = encode_padded(vocab, seqs, MAX_LEN)  # (N, 2048) int32
            w.save(split, "inputs", x)
            w.save(split, "targets", labels)
            w.save(split, "lengths", lengths)
        return commit_tokens(
            ctx,
            w,
            vocab,
            MAX_LEN,
            raw_checksums=hash_raw_files([d / n for n in SPLIT_FILES.values()], raw_root),
            preprocessing="S4: ']'->'X', drop '(' ')', whitespace split, truncate 2047 + <eos>, "
            "vocab from train, pad 0",
        )
