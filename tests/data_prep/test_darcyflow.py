"""DarcyFlow: solver accuracy and order, MATLAB v7.3 layout, NAS-Bench-360 preprocessing."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from data_prep import darcyflow as dfl
from data_prep.errors import DataError
from data_prep.pipeline import prepare
from tests.data_prep.conftest import assert_no_artefact


def _rel_error(n: int, a: float = 3.0) -> float:
    s = n + 1
    u = dfl.solve_darcy(np.full((s, s), a))
    w = dfl.poisson_series(s) / a  # -a Laplace(u) = 1  =>  u = w / a
    return float(np.abs(u - w).max() / np.abs(w).max())


def test_constant_coefficient_matches_series():
    assert _rel_error(64) < 1e-2


def test_second_order_convergence():
    e = [_rel_error(n) for n in (32, 64, 128)]
    orders = [np.log2(e[0] / e[1]), np.log2(e[1] / e[2])]
    assert all(1.8 <= o <= 2.2 for o in orders), orders


def test_variable_coefficient_is_conservative():
    """Flux balance: sum of h^2 * f over the interior = boundary flux (discrete divergence)."""
    rng = np.random.default_rng(0)
    a = dfl.piecewise_coefficient(dfl.gaussian_random_field(rng, 33))
    assert set(np.unique(a)) <= {3.0, 12.0}
    u = dfl.solve_darcy(a)
    assert (u[0] == 0).all() and (u[:, -1] == 0).all() and u.min() >= 0  # maximum principle


def test_mat_layout(generated):
    out, meta = generated("darcyflow")
    files = sorted((out / "raw").glob("piececonst_r85_N*_smooth*.mat"))
    assert [f.name[-11:] for f in files] == ["smooth1.mat", "smooth2.mat"]
    with open(files[0], "rb") as f:
        assert f.read(10) == b"MATLAB 7.3"
    with h5py.File(files[0], "r") as f:
        assert set(f) == {"coeff", "sol"}
        assert f["coeff"].shape == (85, 85, 10)  # MATLAB (N, r, r), reversed
        assert f["sol"].attrs["MATLAB_class"] == b"double"
    x = np.load(out / "train" / "inputs.npy")
    assert x.shape == (10, 3, 85, 85)
    # NAS-Bench-360 / FNO grid order: np.meshgrid 'xy', channel 1 = x along W, 2 = y along H
    gx, gy = np.meshgrid(np.linspace(0, 1, 85), np.linspace(0, 1, 85))
    np.testing.assert_allclose(x[3, 1], gx, atol=1e-7)
    np.testing.assert_allclose(x[3, 2], gy, atol=1e-7)
    np.testing.assert_allclose(x[0, 1, 7, :], np.linspace(0, 1, 85), atol=1e-7)
    # normaliser: normalised training coefficients have per-pixel mean 0
    np.testing.assert_allclose(x[:, 0].mean(axis=0), 0.0, atol=1e-4)
    y = np.load(out / "train" / "targets.npy")
    ym, ys = (np.load(out / "normaliser" / f"y_{k}.npy") for k in ("mean", "std"))
    decoded = y[:, 0] * (ys + dfl.EPS) + ym
    with h5py.File(files[0], "r") as f:
        sol = np.transpose(f["sol"][()], (2, 1, 0))
    np.testing.assert_allclose(decoded, sol, rtol=1e-5, atol=1e-7)
    assert meta["splits"]["val"]["size"] == 2


def test_subsampling_of_421_style_resolution(tmp_path):
    """r = 169 = 84*2 + 1 is subsampled with step 2 to 85 x 85, exactly like 421 with step 5."""
    rng = np.random.default_rng(0)
    coeff = rng.uniform(size=(3, 169, 169))
    dfl.write_mat73(tmp_path / "piececonst_r169_N3_smooth1.mat", {"coeff": coeff, "sol": coeff})
    got = dfl.read_variable(tmp_path / "piececonst_r169_N3_smooth1.mat", "coeff", 1000)
    np.testing.assert_array_equal(got, coeff[:, ::2, ::2][:, :85, :85])
    dfl.write_mat73(tmp_path / "bad.mat", {"coeff": rng.uniform(size=(2, 100, 100))})
    with pytest.raises(DataError, match=r"bad\.mat: 'coeff' has resolution 100"):
        dfl.read_variable(tmp_path / "bad.mat", "coeff", 10)


def test_missing_variable(tmp_path):
    prepare("darcyflow", "generate", tmp_path, size=4, progress=False)
    f = next((tmp_path / "raw").glob("*smooth2.mat"))
    with h5py.File(f, "a") as h:
        del h["sol"]
    out = tmp_path / "o"
    with (
        pytest.warns(UserWarning),
        pytest.raises(DataError, match=r"smooth2\.mat: variable .sol. missing"),
    ):
        prepare(
            "darcyflow",
            "download",
            out,
            progress=False,
            files=[str(p) for p in (tmp_path / "raw").glob("*.mat")],
        )
    assert_no_artefact(out)


@pytest.mark.parametrize("compress", [False, True])
def test_mat_v5_streamed_like_scipy(tmp_path, compress):
    """The published files are MAT v5/v7 (scipy.io.loadmat): the streaming reader returns
    exactly scipy's [:n, ::k, ::k][:, :85, :85], skipping other variables (Kcoeff), for
    uncompressed and zlib-compressed files written by scipy itself."""
    import scipy.io

    from data_prep import matfile

    rng = np.random.default_rng(1)
    coeff = np.where(rng.normal(size=(5, 169, 169)) > 0, 12.0, 3.0)
    sol = rng.normal(size=(5, 169, 169))
    f = tmp_path / "piececonst_r169_N5_smooth1.mat"
    scipy.io.savemat(f, {"Kcoeff": sol[:2], "coeff": coeff, "sol": sol}, do_compression=compress)
    ref = scipy.io.loadmat(f)
    for name in ("coeff", "sol"):
        got = dfl.read_variable(f, name, 4)
        assert got.dtype == np.float64 and got.flags.owndata
        np.testing.assert_array_equal(got, ref[name][:4, ::2, ::2][:, :85, :85])
    assert matfile.list_variables(f)["sol"] == (5, 169, 169)
    with pytest.raises(DataError, match=r"variable 'Kcoef' missing \(found \['Kcoeff'"):
        dfl.read_variable(f, "Kcoef", 4)
    # our own writer (used by the peak-memory benchmark) round-trips through scipy
    g = tmp_path / "w.mat"
    matfile.write_mat5(g, {"sol": sol}, compress=compress)
    np.testing.assert_array_equal(scipy.io.loadmat(g)["sol"], sol)
    g.write_bytes(g.read_bytes()[:-3000])  # truncated: one clear error
    with pytest.raises(DataError, match=r"w\.mat: neither HDF5 .* nor a readable v5"):
        dfl.read_variable(g, "sol", 4)
