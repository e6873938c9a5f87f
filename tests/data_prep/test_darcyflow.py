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


def _series_at(x: np.ndarray, terms: int = 401) -> np.ndarray:
    """-Laplace(w) = 1 on the unit square, w = 0 on the boundary, at the points x (both axes)."""
    k = np.arange(1, terms + 1, 2, dtype=np.float64)
    sines = np.sin(np.pi * k[:, None] * x[None, :])  # (K, n)
    coef = 16.0 / (np.pi**4 * k[:, None] * k[None, :] * (k[:, None] ** 2 + k[None, :] ** 2))
    return sines.T @ coef @ sines


def _fno_error(s: int, a: float = 3.0) -> float:
    """solve_gwf's procedure on a constant coefficient vs the series at the cell centres."""
    u = dfl.solve_like_fno(np.full((s, s), a))
    w = _series_at((np.arange(s) + 0.5) / s) / a
    return float(np.abs(u - w).max() / np.abs(w).max())


def test_fno_procedure_matches_series_and_converges_at_second_order():
    e = [_fno_error(s) for s in (33, 65, 129)]
    assert e[-1] < 2e-4, e
    orders = [np.log2(e[0] / e[1]), np.log2(e[1] / e[2])]
    assert all(1.8 <= o <= 2.3 for o in orders), orders


def test_spline_resample_is_matlab_spline():
    """Not-a-knot cubic splines reproduce cubics exactly, also when extrapolating (the nodes 0
    and 1 lie half a cell outside the cell centres)."""
    s = 17
    c, nodes = (np.arange(s) + 0.5) / s, np.linspace(0.0, 1.0, s)
    f = lambda y, x: x**3 - 2 * x * y**2 + y
    got = dfl.spline_resample(f(c[:, None], c[None, :]), c, nodes)
    np.testing.assert_allclose(got, f(nodes[:, None], nodes[None, :]), atol=1e-12)


def test_faithful_generation_at_a_smaller_421_style_grid(tmp_path):
    """The 421 path end to end at r = 169 (= 84 * 2 + 1, subsampled with step 2 like 421 with
    step 5): the solution is solve_gwf's, and it differs from a direct 85-grid solve."""
    rng = np.random.default_rng(0)
    f = tmp_path / "piececonst_r169_N2_smooth1.mat"
    dfl.generate_file(f, 2, 169, rng, progress=False, faithful=True)
    with h5py.File(f, "r") as h:
        coeff = np.transpose(h["coeff"][()], (2, 1, 0))
        sol = np.transpose(h["sol"][()], (2, 1, 0))
    assert set(np.unique(coeff)) == {3.0, 12.0}
    np.testing.assert_allclose(sol[0], dfl.solve_like_fno(coeff[0]), rtol=1e-10, atol=1e-14)
    sub = dfl.read_variable(f, "sol", 10)  # (2, 85, 85)
    direct = dfl.solve_darcy(coeff[0, ::2, ::2])
    rel = np.linalg.norm(direct - sub[0]) / np.linalg.norm(sub[0])
    assert 1e-3 < rel < 5e-2, rel  # the fast path is an approximation, not the same data


def test_meta_says_fast_or_faithful(generated):
    _, meta = generated("darcyflow")
    assert meta["distribution"] == "approximate" and "85" in meta["generator"]["solver"]
    assert meta["generator"]["resolution"] == 85


@pytest.mark.slow
def test_faithful_421_generation(tmp_path):
    meta = prepare("darcyflow", "generate", tmp_path, size=2, progress=False)
    assert meta["distribution"] == "faithful" and meta["generator"]["resolution"] == 421
    assert sorted(p.name for p in (tmp_path / "raw").glob("*.mat")) == [
        "piececonst_r421_N2_smooth1.mat",
        "piececonst_r421_N4_smooth2.mat",
    ]


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
    prepare("darcyflow", "generate", tmp_path, size=4, progress=False, fast=True)
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
