"""IMDB: aclImdb layout, S4 character vocabulary, val = test alias, HF/TFDS loaders (mocked)."""

from __future__ import annotations

import json

import numpy as np

from data_prep.iterator import BatchIterator
from data_prep.lra import text
from data_prep.pipeline import prepare


def test_layout_vocab_and_alias(generated):
    out, meta = generated("text")
    assert (out / "raw" / "aclImdb" / "train" / "pos").is_dir()
    assert meta["substitute"] is True and "SUBSTITUTE" in meta["substitute_note"]
    vocab = json.loads((out / "vocab.json").read_text())
    assert vocab["min_freq"] == 15 and vocab["tokens"][:3] == ["<pad>", "<unk>", "<eos>"]
    assert all(len(t) == 1 for t in vocab["tokens"][3:])  # characters
    assert meta["split_aliases"] == {"val": "test"}
    it = BatchIterator(out, "val", 4)
    assert it.split == "test" and not it.shuffle
    y = np.load(out / "train" / "targets.npy")
    assert set(np.unique(y)) == {0, 1}


def _fake_reviews(n):
    return {
        "text": [("good " if i % 2 else "bad ") * 30 + "!" for i in range(n)],
        "label": [i % 2 for i in range(n)],
    }


def test_hf_loader_path(tmp_path, monkeypatch):
    calls = []

    def fake(dataset_id):
        calls.append(dataset_id)
        return {"train": _fake_reviews(10), "test": _fake_reviews(6)}

    monkeypatch.setattr(text, "hf_load", fake)
    meta = prepare("text", "download", tmp_path, progress=False)
    assert calls == ["stanfordnlp/imdb"]
    assert meta["source_detail"]["loader"] == "hf:stanfordnlp/imdb"
    assert meta["substitute"] is False
    assert meta["splits"]["train"]["size"] == 10
    assert len(meta["raw_checksums"]["content_sha256"]) == 64


def test_falls_back_to_tfds_then_raw(tmp_path, monkeypatch):
    def broken(*a, **k):
        raise ConnectionError("no network")

    def fake_tfds(name, split):
        d = _fake_reviews(8)
        return {"text": np.array([t.encode() for t in d["text"]]), "label": np.array(d["label"])}

    monkeypatch.setattr(text, "hf_load", broken)
    monkeypatch.setattr(text, "tfds_load", fake_tfds)
    meta = prepare("text", "download", tmp_path / "a", progress=False)
    assert meta["source_detail"]["loader"] == "tfds:imdb_reviews"
    monkeypatch.setattr(text, "tfds_load", broken)
    src = tmp_path / "src"
    from data_prep.common import Context
    from data_prep.registry import get

    text.generate(Context(spec=get("text"), out_dir=src, source="generate", size=4))
    monkeypatch.setattr(text, "resolve_source", lambda ctx, s, allow_dir=False: src / "raw")
    meta = prepare("text", "download", tmp_path / "b", progress=False)
    assert "loader" not in meta["source_detail"] and "aclImdb/train/pos/0_" in str(
        meta["raw_checksums"]
    )
