"""Pathfinder / Path-X split = S4's and CCNN's: torch.utils.data.random_split over the metadata
lines with torch.Generator().manual_seed(42)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from data_prep.artefacts import random_split_indices
from data_prep.lra import pathfinder as pf


def _reference(n: int) -> list[list[int]]:
    parts = torch.utils.data.random_split(
        range(n), list(pf.split_lengths(n)), generator=torch.Generator().manual_seed(42)
    )
    return [sorted(p.indices) for p in parts]


def test_indices_equal_torch_random_split():
    for n in (10, 97, 2003):
        ours = random_split_indices(pf.split_lengths(n), 42)
        assert [p.tolist() for p in ours] == _reference(n), n
    assert pf.split_lengths(200_000) == (160_000, 20_000, 20_000)
    assert pf.split_lengths(199_999) == (160_001, 19_999, 19_999)  # int(), as the reference


def test_artefact_splits_are_the_reference_indices(generated):
    out, meta = generated("pathfinder")
    root = out / "raw" / pf.RAW_DIR["pathfinder"] / pf.CONTOUR_DIR
    entries = pf.read_metadata(root)
    ref = _reference(len(entries))
    for split, idx in zip(("train", "val", "test"), ref, strict=True):
        y = np.load(out / split / "targets.npy")
        assert y.tolist() == [entries[i][1] for i in idx], split
    x = np.load(out / "val" / "inputs.npy")  # (N, 1, H*W)
    png = np.asarray(Image.open(entries[ref[1][0]][0]), np.float32).reshape(-1) / 255.0
    np.testing.assert_array_equal(x[0, 0], png)
    assert "random_split" in meta["split"]
