"""ListOps: generator facts, labels = direct evaluation, S4 tokenisation, malformed rows."""

from __future__ import annotations

import json
import random
import re

import numpy as np
import pytest

from data_prep.errors import DataError
from data_prep.lra import listops
from data_prep.pipeline import prepare
from tests.data_prep.conftest import assert_no_artefact


def evaluate_tokens(tokens: list[str]) -> int:
    """Independent stack evaluator of the prefix form after S4 tokenisation (']' -> 'X')."""
    stack: list = []
    for t in tokens:
        if t.startswith("["):
            stack.append(t)
        elif t == "X":
            args = []
            while not isinstance(stack[-1], str):
                args.append(stack.pop())
            op = stack.pop()
            v = {
                "[MIN": min,
                "[MAX": max,
                "[MED": lambda a: int(np.median(a)),
                "[SM": lambda a: sum(a) % 10,
            }[op](args)
            stack.append(v)
        else:
            stack.append(int(t))
    assert len(stack) == 1
    return stack[0]


def test_string_form_and_evaluation():
    tree = ("[MAX", [2, 9])
    assert listops.to_string(tree) == "( ( ( [MAX 2 ) 9 ) ] )"
    assert listops.tokenize(listops.to_string(tree)) == ["[MAX", "2", "9", "X"]
    assert listops.evaluate(("[MED", [1, 2, 4, 8])) == 3  # int(median 3.0)
    assert listops.evaluate(("[SM", [9, 8, ("[MIN", [7, 3])])) == 0


def test_generator_is_seeded_and_lengths_in_range():
    a = list(listops.generate_rows(15, seed=1))
    assert a == list(listops.generate_rows(15, seed=1))
    assert a != list(listops.generate_rows(15, seed=2))
    assert len({s for s, _ in a}) == 15  # deduplicated
    for s, _ in a:
        n = len(listops.tokenize(s))  # operator + ']' per node, one per digit
        assert 500 < n < 2000


def test_tree_recursion_limits():
    rng = random.Random(0)
    for _ in range(200):
        try:
            tree, length = listops.random_tree(rng, max_depth=3, budget=10**9)
        except listops._TooLong:  # pragma: no cover
            continue

        def depth(t):
            return 1 if isinstance(t, int) else 1 + max(depth(c) for c in t[1])

        assert depth(tree) <= 3
        assert length == len(listops.tokenize(listops.to_string(tree)))
        if not isinstance(tree, int):
            assert 2 <= len(tree[1]) <= 10


def test_labels_equal_direct_evaluation(generated):
    out, meta = generated("listops")
    vocab = json.loads((out / "vocab.json").read_text())["tokens"]
    assert len(vocab) == meta["vocab_size"] == 18  # 10 digits, 4 operators, X, 3 specials
    raw = out / "raw" / "listops-1000"
    for split, fname in listops.SPLIT_FILES.items():
        lines = (raw / fname).read_text().splitlines()[1:]
        x = np.load(out / split / "inputs.npy")
        y = np.load(out / split / "targets.npy")
        assert len(lines) == len(y) == meta["splits"][split]["size"]
        for line, row, label in zip(lines, x, y, strict=True):
            src, tgt = line.split("\t")
            assert evaluate_tokens(listops.tokenize(src)) == int(tgt) == label
            tokens = [vocab[i] for i in row if i > 2]
            assert evaluate_tokens(tokens) == label


def test_truncation_to_2047_plus_eos(tmp_path):
    d = tmp_path / "raw" / "listops-1000"
    d.mkdir(parents=True)
    long = "( " * 1 + "[SM " + " ".join(["1 )"] * 3000) + " ] )"
    for f in listops.SPLIT_FILES.values():
        (d / f).write_text(f"Source\tTarget\n{long}\t0\n( ( [MIN 3 ) 4 ) ] )\t3\n")
    from data_prep.common import Context
    from data_prep.registry import get

    ctx = Context(spec=get("listops"), out_dir=tmp_path, source="download", progress=False)
    listops.preprocess(ctx, tmp_path / "raw")
    x = np.load(tmp_path / "train" / "inputs.npy")
    lengths = np.load(tmp_path / "train" / "lengths.npy")
    assert x.shape == (2, 2048) and lengths.tolist() == [2048, 5]  # [MIN 3 4 X <eos>
    assert x[0, -1] == 2  # <eos> after 2047 tokens


def test_malformed_row_names_file_and_line(tmp_path):
    prepare("listops", "generate", tmp_path, size=4, progress=False)
    f = tmp_path / "raw" / "listops-1000" / "basic_val.tsv"
    lines = f.read_text().splitlines()
    lines[2] = lines[2].split("\t")[0] + "\tseven"
    f.write_text("\n".join(lines) + "\n")
    out = tmp_path / "again"
    with pytest.raises(DataError, match=r"basic_val\.tsv, line 3: malformed row"):
        prepare("listops", "download", out, files=[str(tmp_path / "raw")], progress=False)
    assert_no_artefact(out)


def test_generator_length_options_reach_the_data(tmp_path):
    """--option min_length/max_length (LRA's generator flags) bound every generated expression:
    token count (plus EOS) inside (min, max), recorded in meta.json's generator info."""
    meta = prepare(
        "listops",
        "generate",
        tmp_path,
        size=16,
        progress=False,
        options=["min_length=20", "max_length=60"],
    )
    assert meta["generator"]["min_length"] == 20 and meta["generator"]["max_length"] == 60
    assert meta["distribution"] == "faithful"
    assert "min_length=20, max_length=60" in meta["distribution_reason"]
    for split in ("train", "val", "test"):
        lengths = np.load(tmp_path / split / "lengths.npy")
        assert lengths.size == meta["splits"][split]["size"]
        assert 20 < lengths.min() and lengths.max() <= 60, (split, lengths.min(), lengths.max())
    # held-out splits: 1/8 of train each (>= 4), not LRA's 1/48
    assert meta["splits"]["val"]["size"] == meta["splits"]["test"]["size"] == 4
    assert listops.split_sizes(4000) == {"train": 4000, "val": 500, "test": 500}


@pytest.mark.parametrize(
    "options, needle",
    [
        (["max_len=60"], "unknown generator option 'max_len=60'; this generator accepts: "),
        (["max_length=sixty"], "max_length='sixty' is not a int"),
        (["min_length=60", "max_length=40"], "min_length=60, max_length=40"),
        (["max_length=5000"], "max_length=5000 exceeds the 2048-token layout"),
    ],
)
def test_bad_generator_options_fail_with_one_clear_error(tmp_path, options, needle):
    with pytest.raises(DataError, match=re.escape(needle)):
        prepare("listops", "generate", tmp_path / "out", size=8, progress=False, options=options)
    assert not (tmp_path / "out" / "meta.json").exists()


def test_options_need_the_generator(tmp_path):
    with pytest.raises(DataError, match="--option applies to --source generate only"):
        prepare("listops", "download", tmp_path, files=[str(tmp_path)], options=["max_length=60"])
