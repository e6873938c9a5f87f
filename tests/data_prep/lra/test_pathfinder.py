"""Pathfinder / Path-X: marker connectivity on pixels, text metadata layout, parser errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
from PIL import Image

from data_prep.errors import DataError
from data_prep.lra import pathfinder as pf
from data_prep.pipeline import prepare
from tests.data_prep.conftest import assert_no_artefact

EIGHT = np.ones((3, 3), bool)


@pytest.mark.parametrize(("name", "n"), [("pathfinder", 60), ("pathx", 8)])
def test_markers_on_one_stroke_iff_label_1(name, n):
    p = pf.PARAMS[name]
    rng = np.random.default_rng(11)
    for i in range(n):
        label = i % 2
        img, centres = pf.draw_sample_with_markers(rng, p, label)
        assert img.shape == (p.size, p.size) and img.dtype == np.uint8
        comp, n_comp = ndi.label(img > 0, structure=EIGHT)
        a, b = (comp[round(y), round(x)] for y, x in centres)
        assert a > 0 and b > 0, "markers must be drawn"
        assert (a == b) == (label == 1), (i, label)
        assert n_comp >= 2  # two target snakes at least
        assert np.hypot(*(centres[0] - centres[1])) >= p.seed_distance


def test_png_files_connectivity_and_metadata(generated):
    out, meta = generated("pathfinder")
    root = out / "raw" / "pathfinder32" / "curv_contour_length_14"
    entries = pf.read_metadata(root)
    assert len(entries) == sum(s["size"] for s in meta["splits"].values())
    line = (root / "metadata" / "0.npy").read_text().splitlines()[0].split()
    assert line[0] == "imgs/0" and line[1] == "sample_0.png" and len(line) == 11
    labels = np.array([lab for _, lab in entries])
    assert set(labels) <= {0, 1}
    for path, _ in entries:
        img = np.asarray(Image.open(path))
        assert img.shape == (32, 32) and img.dtype == np.uint8
        comp, _ = ndi.label(img > 0, structure=EIGHT)
        # distinct strokes never touch: every component's pixels are the stroke's own
        assert comp.max() >= 2
    x = np.load(out / "train" / "inputs.npy", mmap_mode="r")
    assert x.shape[1:] == (1, 1024) and 0.0 <= x.min() and x.max() <= 1.0


def test_pathx_raster_scan(generated):
    out, meta = generated("pathx")
    x = np.load(out / "test" / "inputs.npy")
    assert x.shape[1:] == (1, 16384) and meta["image_shape"] == [128, 128]


def _copy_raw(tmp_path):
    prepare("pathfinder", "generate", tmp_path, size=16, progress=False)
    return tmp_path / "raw" / "pathfinder32" / "curv_contour_length_14"


def test_empty_png_is_skipped_and_listed(tmp_path):
    root = _copy_raw(tmp_path)
    (root / "imgs" / "0" / "sample_1.png").write_bytes(b"")
    meta = prepare(
        "pathfinder", "download", tmp_path / "o", files=[str(tmp_path / "raw")], progress=False
    )
    assert meta["skipped_empty_images"] == ["imgs/0/sample_1.png"]
    assert sum(s["size"] for s in meta["splits"].values()) == 19


def test_wrong_image_shape(tmp_path):
    root = _copy_raw(tmp_path)
    Image.fromarray(np.zeros((31, 17), np.uint8)).save(root / "imgs" / "1" / "sample_0.png")
    out = tmp_path / "o"
    with pytest.raises(DataError, match=r"imgs/1/sample_0\.png: image shape \(31, 17\)"):
        prepare("pathfinder", "download", out, files=[str(tmp_path / "raw")], progress=False)
    assert_no_artefact(out)


def test_malformed_metadata_line(tmp_path):
    root = _copy_raw(tmp_path)
    (root / "metadata" / "2.npy").write_text("imgs/2 sample_0.png 0\n")
    out = tmp_path / "o"
    with pytest.raises(DataError, match=r"metadata/2\.npy, line 1: malformed"):
        prepare("pathfinder", "download", out, files=[str(tmp_path / "raw")], progress=False)
    assert_no_artefact(out)
