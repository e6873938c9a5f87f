"""DarcyFlow, NAS-Bench-360 protocol (paper Appx. D.3).

Raw files: `piececonst_r421_N1024_smooth1.mat` (train) and `..._smooth2.mat` (test),
variables `coeff` and `sol`. The published files are MAT v5/v7 (what scipy.io.loadmat reads):
streamed by data_prep.matfile, which keeps only the subsampled values (peak memory ~ the result,
not the 1.45 GB variable); MAT v7.3 = HDF5 is read with h5py (MATLAB is column-major, so the
axes come out reversed: an (N, r, r) MATLAB array is an (r, r, N) HDF5 dataset). Sources: the
registry's mirrors (PINO bucket, old NAS-Bench-360 bucket), --file/--url with the files or an
archive holding them (the FNO authors' Darcy_421.zip).

Preprocessing: subsample `[:, ::k, ::k][:, :85, :85]` with k = (r - 1) // 84 (k = 5 for the
published r = 421; k = 1 for our generator's r = 85: any r = 84 k + 1 works), train =
smooth1[0:1000], val = train[900:1000] (the NAS-Bench-360 search-phase validation: search on
train[:900]), test = smooth2[0:100]. Pointwise Gaussian normaliser over the training samples
(per-pixel mean and unbiased std, as torch.std; (x - mean) / (std + 1e-5)) on coeff and sol;
input = [normalised coeff, x, y] with linspace(0, 1, 85) grids from np.meshgrid's 'xy' order (x
varies along W, y along H: NAS-Bench-360 / FNO) -> (N, 3, 85, 85);
target = normalised sol (N, 1, 85, 85). The normaliser is stored in normaliser/*.npy: decode
with y * (y_std + 1e-5) + y_mean; the metric is the mean relative L2 error on that scale.

Generator (FNO's recipe, `data_generation/darcy/{GRF.m,demo.m,solve_gwf.m}`): Gaussian random
field with c(k1, k2) = tau^(alpha-1) (pi^2 (k1^2 + k2^2) + tau^2)^(-alpha/2), alpha = 2,
tau = 3, L = s c xi, L[0, 0] = 0, U = idctn(L, 'ortho'); a = 12 where U >= 0 else 3; solve
-div(a grad u) = 1 on [0, 1]^2, u = 0 on the boundary, with 5-point finite differences whose
face coefficients are the means of the neighbouring nodes.
- faithful (default): s = 421 as the released files. As `solve_gwf.m`, the coefficient is taken
  to live at the cell centres (i + 1/2) / s, spline-interpolated (tensor-product not-a-knot
  cubic, extrapolating at the edges: MATLAB interp2 'spline') onto the solver nodes
  i / (s - 1), the system is solved there, and the solution is spline-interpolated back to the
  cell centres. Files hold `coeff` (3 / 12) and `sol` at 421; preprocessing subsamples them
  exactly like the download. Sparse LU at 421: ~1.6 s per sample on one core (1100 samples:
  ~30 min; the spline can make the matrix indefinite, see `solve_darcy`).
- fast (`--fast`, smoke runs): solve directly at 85 x 85 (no splines): 0.86-0.89 % (rel. L2)
  off the 421 target on the same field, 3-4x the paper's errors: not for comparing numbers.
12 / 3, not demo.m's 12 / 4: the FNO paper (Sec. 5.2: psi maps the positive reals to 12 and
the negative to 3) and the released `coeff` arrays (values 3 and 12 only) agree; demo.m is
a plotting demo, not the script that wrote the files.
smooth2 (test) = same field law, another seed (its exact law is not documented).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import scipy.fft
import scipy.interpolate
import scipy.sparse
import scipy.sparse.linalg
from tqdm import tqdm

from data_prep import matfile
from data_prep.artefacts import ArtefactWriter, provenance, sha256_file
from data_prep.common import Context, pbar_disable, resolve_source
from data_prep.errors import DataError

RES = 85
FAITHFUL_RES = 421  # the released files' resolution
EPS = 1e-5
N_TRAIN, N_TEST, VAL_FROM = 1000, 100, 900
_NAME = re.compile(r"^piececonst_r(\d+)_N(\d+)_smooth([12])\.mat$")

# ------------------------------------------------------------------------- generator + solver


def gaussian_random_field(
    rng: np.random.Generator, s: int, alpha: float = 2.0, tau: float = 3.0
) -> np.ndarray:
    """(s, s) field: spectrally coloured white noise through an orthonormal inverse DCT-II."""
    xi = rng.standard_normal((s, s))
    k = np.arange(s)
    k1, k2 = np.meshgrid(k, k, indexing="ij")  # (s, s) each
    coef = tau ** (alpha - 1) * (np.pi**2 * (k1**2 + k2**2) + tau**2) ** (-alpha / 2)
    spectrum = s * coef * xi
    spectrum[0, 0] = 0.0
    return scipy.fft.idctn(spectrum, norm="ortho")


def piecewise_coefficient(u: np.ndarray) -> np.ndarray:
    return np.where(u >= 0, 12.0, 3.0)


def darcy_matrix(a: np.ndarray) -> scipy.sparse.csr_matrix:
    """(m^2, m^2) 5-point matrix of -div(a grad .) on the interior nodes, m = s - 2.

    `a`: (s, s) nodal coefficient on the uniform grid x_i = i / (s - 1); the face coefficient
    is the mean of the two nodes it joins; Dirichlet nodes are eliminated (u = 0)."""
    s = a.shape[0]
    if a.shape != (s, s) or s < 3:
        raise ValueError(f"coefficient shape {a.shape}: expected (s, s) with s >= 3")
    h = 1.0 / (s - 1)
    m = s - 2  # interior nodes per side
    ae = 0.5 * (a[1:-1, 1:-1] + a[1:-1, 2:])  # (m, m): face to the next node along axis 1
    aw = 0.5 * (a[1:-1, 1:-1] + a[1:-1, :-2])
    an = 0.5 * (a[1:-1, 1:-1] + a[2:, 1:-1])  # along axis 0
    as_ = 0.5 * (a[1:-1, 1:-1] + a[:-2, 1:-1])
    idx = np.arange(m * m).reshape(m, m)
    rows = [idx.ravel()]
    cols = [idx.ravel()]
    vals = [(ae + aw + an + as_).ravel()]
    for coef, di, dj in ((ae, 0, 1), (aw, 0, -1), (an, 1, 0), (as_, -1, 0)):
        i0, i1 = max(0, -di), m - max(0, di)  # interior neighbours only (boundary u = 0)
        j0, j1 = max(0, -dj), m - max(0, dj)
        rows.append(idx[i0:i1, j0:j1].ravel())
        cols.append(idx[i0 + di : i1 + di, j0 + dj : j1 + dj].ravel())
        vals.append(-coef[i0:i1, j0:j1].ravel())
    return scipy.sparse.csr_matrix(
        (np.concatenate(vals) / h**2, (np.concatenate(rows), np.concatenate(cols))),
        shape=(m * m, m * m),
    )


def solve_darcy(a: np.ndarray, f: float = 1.0) -> np.ndarray:
    """Solve -div(a grad u) = f on [0, 1]^2, u = 0 on the boundary (`darcy_matrix`), with a
    sparse LU (SuperLU, minimum-degree ordering of A^T + A: the matrix is symmetric). A direct
    solver because solve_gwf's spline makes the nodal coefficient dip below 0 near sharp
    features and at the extrapolated edges (down to about -10 at 421), so the matrix can be
    indefinite and conjugate gradients is not safe. ~1.4 s at 421 on one core.
    Returns (s, s) u, zero on the boundary."""
    s = a.shape[0]
    mat = darcy_matrix(a).tocsc()
    m = s - 2
    rhs = np.full(m * m, f, dtype=np.float64)
    u = np.zeros((s, s))
    u[1:-1, 1:-1] = scipy.sparse.linalg.spsolve(mat, rhs, permc_spec="MMD_AT_PLUS_A").reshape(m, m)
    return u


def spline_resample(x: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(len(dst), len(dst)) tensor-product not-a-knot cubic spline of (n, n) samples `x` on the
    grid `src` (both axes), evaluated on `dst`, extrapolating: MATLAB interp2(..., 'spline')."""
    along0 = scipy.interpolate.make_interp_spline(src, x, k=3, axis=0)(dst)  # (d, n)
    return scipy.interpolate.make_interp_spline(src, along0, k=3, axis=1)(dst)  # (d, d)


def solve_like_fno(coeff: np.ndarray) -> np.ndarray:
    """FNO's `solve_gwf.m` on an (s, s) cell-centred coefficient: spline onto the nodes,
    5-point solve (f = 1), spline the solution back to the cell centres. Returns (s, s)."""
    s = coeff.shape[0]
    centres = (np.arange(s) + 0.5) / s
    nodes = np.linspace(0.0, 1.0, s)
    u = solve_darcy(spline_resample(coeff, centres, nodes))
    return spline_resample(u, nodes, centres)


def poisson_series(s: int, terms: int = 401) -> np.ndarray:
    """(s, s) series solution of -Laplace(w) = 1 on the unit square, w = 0 on the boundary:
    w = sum over odd m, n of 16 / (pi^4 m n (m^2 + n^2)) sin(m pi x) sin(n pi y)."""
    x = np.linspace(0.0, 1.0, s)
    k = np.arange(1, terms + 1, 2, dtype=np.float64)  # odd
    sines = np.sin(np.pi * k[:, None] * x[None, :])  # (K, s)
    coef = 16.0 / (np.pi**4 * k[:, None] * k[None, :] * (k[:, None] ** 2 + k[None, :] ** 2))
    return sines.T @ coef @ sines  # (s, K) (K, K) (K, s)


def write_mat73(path: Path, variables: dict[str, np.ndarray]) -> None:
    """MATLAB v7.3 file: HDF5 with a 512-byte MATLAB header; arrays stored column-major, i.e.
    with their axes reversed (what h5py shows when reading a real MATLAB file)."""
    with h5py.File(path, "w", userblock_size=512) as f:
        for name, arr in variables.items():
            ds = f.create_dataset(name, data=np.ascontiguousarray(np.asarray(arr).T))
            ds.attrs["MATLAB_class"] = np.bytes_("double")
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created by: dnarch-repro data_prep HDF5 schema"
    header = text.ljust(116, b" ")[:116] + b"\0" * 8 + (0x0200).to_bytes(2, "little") + b"IM"
    with open(path, "r+b") as f:
        f.write(header.ljust(512, b"\0"))


def generate_file(
    path: Path, n: int, s: int, rng: np.random.Generator, progress: bool, faithful: bool
) -> None:
    coeff = np.zeros((n, s, s))
    sol = np.zeros((n, s, s))
    for i in tqdm(range(n), desc=path.name, disable=None if progress else True):
        coeff[i] = piecewise_coefficient(gaussian_random_field(rng, s))
        sol[i] = solve_like_fno(coeff[i]) if faithful else solve_darcy(coeff[i])
    tmp = path.with_name(f".{path.name}.tmp")
    write_mat73(tmp, {"coeff": coeff, "sol": sol})
    tmp.replace(path)


def generate(ctx: Context) -> dict[str, Any]:
    faithful = not ctx.fast
    resolution = FAITHFUL_RES if faithful else RES
    n1 = ctx.n_train()
    n2 = max(4, math.ceil(n1 / 10))
    ctx.raw_dir.mkdir(parents=True, exist_ok=True)
    for smooth, n in ((1, n1), (2, n2)):
        rng = np.random.default_rng([ctx.seed, smooth])
        path = ctx.raw_dir / f"piececonst_r{resolution}_N{n}_smooth{smooth}.mat"
        generate_file(path, n, resolution, rng, ctx.progress, faithful)
    info = {
        "seed": ctx.seed,
        "resolution": resolution,
        "solver": (
            "solve_gwf.m procedure at 421 (splines to the nodes and back), then subsampled"
            if faithful
            else "fast path: 5-point solve directly at 85 x 85, no splines"
        ),
        "smooth1": n1,
        "smooth2": n2,
        "grf": {"alpha": 2.0, "tau": 3.0},
        "coefficient": "12 where U >= 0 else 3",
    }
    ctx.generator_info = info
    ctx.distribution = (
        ("faithful", "FNO's recipe solved at 421 with solve_gwf.m's splines, subsampled to 85")
        if faithful
        else ("approximate", "fast path: solved at 85 directly, 0.9 % rel. L2 off the 421 data")
    )
    return info


# ------------------------------------------------------------------------------- parsing


def find_file(raw: Path, smooth: int) -> Path:
    hits = sorted(
        p for p in raw.glob(f"piececonst_r*_N*_smooth{smooth}.mat") if _NAME.match(p.name)
    )
    if len(hits) != 1:
        raise DataError(
            f"expected exactly one piececonst_r<r>_N<n>_smooth{smooth}.mat in {raw}, found "
            f"{[p.name for p in hits]}; pass the file with --file"
        )
    return hits[0]


def read_variable(path: Path, name: str, n_max: int) -> np.ndarray:
    """(n, 85, 85) float64, subsampled, from a v7.3 (HDF5) or v5/v7 .mat; never holds more than
    one slab of the full variable (data_prep.matfile), whatever the format."""
    if not path.is_file():
        raise DataError(f"{path} not found")
    if h5py.is_hdf5(path):
        with h5py.File(path, "r") as f:
            if name not in f:
                raise DataError(
                    f"{path}: variable '{name}' missing (found {sorted(f.keys())}); expected "
                    "'coeff' and 'sol' as in the published DarcyFlow files"
                )
            d = f[name]
            if d.ndim != 3 or d.shape[0] != d.shape[1]:
                raise DataError(
                    f"{path}: '{name}' has HDF5 shape {d.shape}; expected (r, r, N) (MATLAB "
                    "(N, r, r) with reversed axes)"
                )
            r = d.shape[0]
            k = _step(path, name, r)
            n = min(n_max, d.shape[2])
            sub = d[: RES * k : k, : RES * k : k, :n]  # (85, 85, n) in (j, i, sample) order
            return np.ascontiguousarray(np.transpose(sub, (2, 1, 0)), dtype=np.float64)
    try:  # MAT v5/v7 (what the published files are): streamed, peak memory ~ the result
        return matfile.read_subsampled(path, name, n_max, lambda r: _step(path, name, r), RES)
    except matfile.MatFormatError as e:
        reason = str(e)
    try:  # anything the streaming reader does not handle: scipy, then copy (no view)
        import scipy.io

        mat = scipy.io.loadmat(path, variable_names=[name])
    except Exception as e:
        raise DataError(
            f"{path}: neither HDF5 (v7.3) nor a readable v5 .mat ({reason}; scipy: {e}); "
            "expected the published piececonst_r421_N1024_smooth*.mat"
        ) from e
    if name not in mat:
        raise DataError(f"{path}: variable '{name}' missing; expected 'coeff' and 'sol'")
    arr = mat.pop(name)
    if arr.ndim != 3 or arr.shape[1] != arr.shape[2]:
        raise DataError(f"{path}: '{name}' has shape {arr.shape}; expected (N, r, r)")
    k = _step(path, name, arr.shape[1])
    # A copy, not a view: a view would keep the whole (N, r, r) variable alive (1.45 GB).
    return np.array(arr[:n_max, ::k, ::k][:, :RES, :RES], dtype=np.float64, copy=True)


def _step(path: Path, name: str, r: int) -> int:
    if r < RES or (r - 1) % (RES - 1):
        raise DataError(
            f"{path}: '{name}' has resolution {r}; expected r = 84 k + 1 (421 published, "
            "85 generated) so that [::k][:85] gives the 85 x 85 grid"
        )
    return (r - 1) // (RES - 1)


def fetch(ctx: Context) -> Path:
    paths = [resolve_source(ctx, src) for src in ctx.spec.sources]
    ctx.source_detail["files"] = [str(p) for p in paths]
    return paths[0].parent if paths[0].parent == paths[1].parent else _link_dir(ctx, paths)


def _link_dir(ctx: Context, paths: list[Path]) -> Path:
    d = ctx.raw_dir / "darcy_links"
    d.mkdir(parents=True, exist_ok=True)
    for p in paths:
        link = d / p.name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(p.resolve())
    return d


def normaliser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel mean and unbiased std over samples (axis 0)."""
    return x.mean(axis=0), x.std(axis=0, ddof=1) if len(x) > 1 else np.zeros(x.shape[1:])


def preprocess(ctx: Context, raw: Path) -> dict[str, Any]:
    f1, f2 = find_file(raw, 1), find_file(raw, 2)
    bar = tqdm(total=4, desc="darcyflow", disable=pbar_disable(ctx))
    coeff1 = read_variable(f1, "coeff", N_TRAIN)
    bar.update()
    sol1 = read_variable(f1, "sol", N_TRAIN)
    bar.update()
    coeff2 = read_variable(f2, "coeff", N_TEST)
    bar.update()
    sol2 = read_variable(f2, "sol", N_TEST)
    bar.close()
    if coeff1.shape != sol1.shape or coeff2.shape != sol2.shape:
        raise DataError(f"{f1.name}/{f2.name}: 'coeff' and 'sol' differ in shape")
    n = len(coeff1)
    v0 = min(round(n * VAL_FROM / N_TRAIN), n - 2)  # 900 of 1000; >= 2 on tiny data
    x_mean, x_std = normaliser(coeff1)
    y_mean, y_std = normaliser(sol1)
    grid = np.linspace(0.0, 1.0, RES)
    # NAS-Bench-360 / FNO order: np.meshgrid's default 'xy' indexing, channels [x, y] with x
    # varying along W (the last axis) and y along H.
    gx, gy = np.meshgrid(grid, grid)  # (85, 85) each: gx[i, j] = grid[j], gy[i, j] = grid[i]

    def inputs(c: np.ndarray) -> np.ndarray:
        xn = (c - x_mean) / (x_std + EPS)  # (N, 85, 85)
        g = np.broadcast_to(np.stack([gx, gy]), (len(c), 2, RES, RES))
        return np.concatenate([xn[:, None], g], axis=1).astype(np.float32)  # (N, 3, 85, 85)

    def targets(u: np.ndarray) -> np.ndarray:
        return ((u - y_mean) / (y_std + EPS))[:, None].astype(np.float32)  # (N, 1, 85, 85)

    parts = {"train": (coeff1, sol1), "val": (coeff1[v0:], sol1[v0:]), "test": (coeff2, sol2)}
    with ArtefactWriter(ctx.out_dir) as w:
        for split, (c, u) in parts.items():
            w.save(split, "inputs", inputs(c))
            w.save(split, "targets", targets(u))
        for nm, arr in (("x_mean", x_mean), ("x_std", x_std), ("y_mean", y_mean), ("y_std", y_std)):
            w.save_extra(f"normaliser/{nm}.npy", arr.astype(np.float32))
        meta = ctx.meta_base()
        meta.update(
            normalisation={
                "kind": "pointwise Gaussian over training samples (unbiased std)",
                "eps": EPS,
                "files": {k: f"normaliser/{k}.npy" for k in ("x_mean", "x_std", "y_mean", "y_std")},
                "decode_targets": "y * (y_std + eps) + y_mean",
            },
            input_channels=["coeff (normalised)", "grid along W (x)", "grid along H (y)"],
            grid_order="NAS-Bench-360/FNO: np.meshgrid(x, y) ('xy'), channels [x, y]",
            val_overlaps_train={"val": f"train[{v0}:{n}]", "search_train": f"train[:{v0}]"},
            metric="mean over samples of ||y_hat - y||_2 / ||y||_2 on the decoded scale",
            raw_checksums={f.name: sha256_file(f.resolve()) for f in (f1, f2)},
            provenance=provenance(ctx.seed, ctx.started),
        )
        return w.commit(meta)
