"""Cosmic: f435w GAL selection, centre crop, sky index, 90/10 split, wrong shapes."""

from __future__ import annotations

import numpy as np
import pytest

from data_prep import cosmic
from data_prep.errors import DataError
from data_prep.pipeline import prepare
from tests.data_prep.conftest import assert_no_artefact


def test_selection_crop_and_sky(generated):
    out, meta = generated("cosmic")
    raw = out / "raw"
    files, unknown = cosmic.list_files(raw / "npy_train")
    assert unknown == [] and all("/f435w/" in str(f) for f in files)
    assert all(f"{f.parent.parent.name}_{f.parent.name}" in cosmic.GAL_FIELDS for f in files)
    n_tr = int(len(files) * 0.9)
    assert meta["splits"]["train"]["size"] == n_tr
    assert meta["splits"]["val"]["size"] == len(files) - n_tr >= 2
    x = np.load(out / "val" / "inputs.npy")
    m = np.load(out / "val" / "targets.npy")
    sky = np.load(out / "val" / "sky.npy")
    first = np.load(files[n_tr])
    np.testing.assert_array_equal(x[0, 0], first[0, 64:192, 64:192])
    np.testing.assert_array_equal(m[0, 0], first[1, 64:192, 64:192])
    k = int(files[n_tr].name.split("_")[0])
    assert sky[0] == np.load(files[n_tr].parent / "sky.npy")[k - 1]
    assert set(np.unique(m)) <= {0.0, 1.0} and m.mean() > 0  # some cosmic rays


def test_sky_augmentation_train_only(generated):
    from data_prep.iterator import BatchIterator

    out, _ = generated("cosmic")
    raw_x = np.load(out / "train" / "inputs.npy")
    tr = BatchIterator(out, "train", 4, shuffle=False)
    b = next(iter(tr.epoch(0)))
    shift = (b["inputs"] - raw_x[:4]).reshape(4, -1)
    assert np.allclose(shift, shift[:, :1], atol=1e-3)  # one constant per image
    ratio = shift[:, 0] / b["sky"]
    assert ((ratio >= -0.9) & (ratio <= 3.0)).all()
    va = BatchIterator(out, "val", 4, shuffle=False, augment=True)
    assert not va.augment  # no random augmentation on evaluation splits


def test_val_test_sky_shift_as_nas_bench_360_but_fixed(generated):
    """NAS-Bench-360 shifts val/test images by sky * U(-0.9, 3) too: one fixed draw per
    example here, the same whatever the batch size, order or pass; augment=False: raw."""
    from data_prep.iterator import BatchIterator

    out, meta = generated("cosmic")
    assert meta["augmentation"]["eval"]["splits"] == ["val", "test"]
    for split in ("val", "test"):
        raw_x = np.load(out / split / "inputs.npy")
        sky = np.load(out / split / "sky.npy")
        a = np.concatenate([b["inputs"] for b in BatchIterator(out, split, 3).epoch(0)])
        b = np.concatenate([b["inputs"] for b in BatchIterator(out, split, 2).epoch(5)])
        np.testing.assert_array_equal(a, b)
        shift = (a - raw_x).reshape(len(a), -1)
        assert np.allclose(shift, shift[:, :1], atol=1e-3)  # one constant per image
        ratio = shift[:, 0] / sky
        assert ((ratio >= -0.9 - 1e-4) & (ratio <= 3.0 + 1e-4)).all() and ratio.std() > 0
        plain = next(iter(BatchIterator(out, split, 2, augment=False).epoch(0)))["inputs"]
        np.testing.assert_array_equal(plain, raw_x[:2])


def test_full_nas_bench_360_field_table():
    assert len(cosmic.GAL_FIELDS) == 27 and len(cosmic.OTHER_FIELDS) == 45
    assert not cosmic.GAL_FIELDS & cosmic.OTHER_FIELDS
    assert {"9442_3", "10775_ad", "13389_10", "9978_5e"} <= cosmic.OTHER_FIELDS


def test_wrong_array_shape(tmp_path):
    prepare("cosmic", "generate", tmp_path, size=3, progress=False)
    f = sorted((tmp_path / "raw" / "npy_test" / "f435w").rglob("2_crop0.npy"))[0]
    np.save(f, np.zeros((3, 100, 100), np.float32))
    out = tmp_path / "o"
    with pytest.raises(DataError, match=r"2_crop0\.npy: array shape \(3, 100, 100\)"):
        prepare("cosmic", "download", out, files=[str(tmp_path / "raw")], progress=False)
    assert_no_artefact(out)
