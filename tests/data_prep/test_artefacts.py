"""Atomic artefacts and the registry's artefact paths."""

from __future__ import annotations

import numpy as np
import pytest

from data_prep import registry
from data_prep.artefacts import ArtefactWriter, load_meta, split_indices
from data_prep.errors import DataError
from tests.data_prep.conftest import assert_no_artefact


def test_error_inside_writer_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), ArtefactWriter(tmp_path) as w:
        w.save("train", "inputs", np.zeros((3, 4), np.float32))
        raise RuntimeError("boom")
    assert_no_artefact(tmp_path)
    with pytest.raises(DataError, match=r"meta\.json not found"):
        load_meta(tmp_path)


def test_replaces_old_artefacts_and_checks_sizes(tmp_path):
    for n in (3, 5):
        with ArtefactWriter(tmp_path) as w:
            w.save("train", "inputs", np.zeros((n, 2), np.int32))
            w.save("train", "targets", np.zeros(n, np.int32))
            w.commit({"dataset": "x"})
    assert load_meta(tmp_path)["splits"]["train"]["size"] == 5
    with pytest.raises(DataError, match="disagree"), ArtefactWriter(tmp_path / "b") as w:
        w.save("train", "inputs", np.zeros((3, 2)))
        w.save("train", "targets", np.zeros(4))
        w.commit({})


def test_split_indices_proportions():
    parts = split_indices(200, (0.8, 0.1, 0.1), 42)
    assert [len(p) for p in parts] == [160, 20, 20]
    assert sorted(np.concatenate(parts).tolist()) == list(range(200))


def test_registry_facts():
    s = registry.get("listops")
    assert s.vocab_size == 18 and s.full_sizes == {"train": 96000, "val": 2000, "test": 2000}
    assert registry.get("pathx").input_shape == (16384,)
    for name, spec in registry.DATASETS.items():  # every raw file has a download source
        assert all(s.urls for s in spec.sources), name
    for key in ("cifar-10-python.tar.gz", "cifar-100-python.tar.gz", "aclImdb_v1.tar.gz"):
        src = next(s for d in registry.DATASETS.values() for s in d.sources if s.key == key)
        assert len(src.published["sha256"]) == 64 and src.published["size"] > 8e7, key
    with pytest.raises(DataError, match="valid: listops"):
        registry.get("mnist")
    paths = registry.artefact_paths("retrieval", "/d")
    assert str(paths[0]) == "/d/meta.json" and "/d/vocab.json" in map(str, paths)
