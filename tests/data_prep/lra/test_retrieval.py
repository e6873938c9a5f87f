"""AAN retrieval: (N, 2, 4000) layout, both-text vocabulary, malformed rows."""

from __future__ import annotations

import numpy as np
import pytest

from data_prep.errors import DataError
from data_prep.pipeline import prepare
from tests.data_prep.conftest import assert_no_artefact


def test_pairs_encoded_separately(generated):
    out, _meta = generated("retrieval")
    x = np.load(out / "train" / "inputs.npy")
    lengths = np.load(out / "train" / "lengths.npy")
    assert x.shape[1:] == (2, 4000) and lengths.shape == (len(x), 2)
    raw = (out / "raw" / "tsv_data" / "new_aan_pairs.train.tsv").read_text().splitlines()
    for ls, line in zip(lengths, raw, strict=True):
        f = line.split("\t")
        assert ls.tolist() == [len(f[3]) + 1, len(f[4]) + 1]  # characters + <eos>


def test_malformed_row(tmp_path):
    prepare("retrieval", "generate", tmp_path, size=4, progress=False)
    f = tmp_path / "raw" / "tsv_data" / "new_aan_pairs.test.tsv"
    lines = f.read_text().splitlines()
    lines[1] = "\t".join(lines[1].split("\t")[:4])  # a column lost
    f.write_text("\n".join(lines) + "\n")
    out = tmp_path / "re"
    with pytest.raises(DataError, match=r"new_aan_pairs\.test\.tsv, line 2: malformed row"):
        prepare("retrieval", "download", out, files=[str(tmp_path / "raw")], progress=False)
    assert_no_artefact(out)
