"""CIFAR-10/100 and LRA Image: pickled layout, 90/10 split, normalisation, grayscale = PIL,
augmentation vs a slow reference, HF loader (mocked)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from PIL import Image

from data_prep import cifar
from data_prep.iterator import BatchIterator, random_crop_flip
from data_prep.lra import image
from data_prep.pipeline import prepare


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_pickled_layout_and_normalisation(name, generated):
    out, meta = generated(name)
    lay = cifar.LAYOUT[name]
    with open(out / "raw" / lay["dir"] / lay["train"][0], "rb") as f:
        d = pickle.load(f, encoding="bytes")
    assert d[b"data"].dtype == np.uint8 and d[b"data"].shape[1] == 3072
    data, _ = cifar.read_batches(out / "raw", name)
    n = len(data["train"][0])
    assert meta["splits"]["val"]["size"] == round(0.1 * n)
    assert meta["splits"]["train"]["size"] + meta["splits"]["val"]["size"] == n
    _tr, va = cifar.train_val_split(n)
    x = np.load(out / "val" / "inputs.npy")
    mean = np.array(cifar.NORMALISATION[name]["mean"]).reshape(3, 1, 1)
    std = np.array(cifar.NORMALISATION[name]["std"]).reshape(3, 1, 1)
    np.testing.assert_allclose(
        x[0], (data["train"][0][va[0]] / 255 - mean) / std, rtol=1e-5, atol=1e-5
    )
    assert meta["augmentation"]["split"] == "train"


def test_grayscale_is_pil():
    rgb = np.random.default_rng(0).integers(0, 256, size=(5, 3, 7, 9), dtype=np.uint8)
    ours = image.to_grayscale(rgb)
    for i in range(5):
        pil = np.asarray(Image.fromarray(rgb[i].transpose(1, 2, 0), "RGB").convert("L"))
        np.testing.assert_array_equal(ours[i], pil)


def test_image_normalised_sequence(generated):
    out, _meta = generated("image")
    x = np.load(out / "train" / "inputs.npy")
    assert x.shape[1:] == (1, 1024)
    assert np.isclose(x.min(), (0 - image.MEAN) / image.STD, atol=0.05) or x.min() > -2.1


def _crop_flip_reference(x, oy, ox, flip, pad, value):
    out = np.empty_like(x)
    for i in range(len(x)):
        p = np.stack([np.pad(x[i, c], pad, constant_values=value[c]) for c in range(x.shape[1])])
        w = p[:, oy[i] : oy[i] + x.shape[2], ox[i] : ox[i] + x.shape[3]]
        out[i] = w[:, :, ::-1] if flip[i] else w
    return out


def test_crop_flip_matches_reference():
    x = np.random.default_rng(1).normal(size=(6, 3, 31, 17)).astype(np.float32)
    value = np.array([-1.0, -2.0, -3.0], np.float32)
    got = random_crop_flip(x, np.random.default_rng(5), 4, value)
    rng = np.random.default_rng(5)
    oy, ox = rng.integers(0, 9, size=6), rng.integers(0, 9, size=6)
    flip = rng.random(6) < 0.5
    np.testing.assert_array_equal(got, _crop_flip_reference(x, oy, ox, flip, 4, value))


def test_augmentation_on_train_only(generated):
    out, _ = generated("cifar10")
    val = BatchIterator(out, "val", 8, augment=True)
    assert not val.augment  # never on validation (a known bug elsewhere)
    x_val = np.load(out / "val" / "inputs.npy")
    np.testing.assert_array_equal(next(iter(val.epoch(0)))["inputs"], x_val[:8])
    tr = BatchIterator(out, "train", 8, shuffle=False)
    assert tr.augment
    b = next(iter(tr.epoch(0)))["inputs"]
    assert b.shape == (8, 3, 32, 32) and not np.array_equal(
        b, np.load(out / "train/inputs.npy")[:8]
    )


def test_hf_loader(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)

    def split(n):
        return {
            "img": [
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(n)
            ],
            "label": [i % 10 for i in range(n)],
        }

    monkeypatch.setattr(cifar, "hf_load", lambda dataset_id: {"train": split(20), "test": split(5)})
    meta = prepare("cifar10", "download", tmp_path, progress=False)
    assert meta["source_detail"]["loader"] == "hf:uoft-cs/cifar10"
    assert meta["splits"]["train"]["size"] == 18 and meta["splits"]["test"]["size"] == 5
