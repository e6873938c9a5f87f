"""Data-pipeline benchmark: preprocessing throughput for ListOps
(rows/s) and Pathfinder (images/s) on generated data, and batch iteration throughput from the
memory-mapped artefacts, compared with a CCNN_{4,140} CPU train step at batch 50 x 2048.

    python -m data_prep.bench --out results/bench/data.csv
    python -m data_prep.bench --darcy-rss /scratch --darcy-out results/bench/darcy_rss.csv

`--darcy-rss DIR` writes a full-size DarcyFlow file in DIR (1024 x 421 x 421, `coeff` and
`sol`, MAT v5 as published: 2.9 GB; `--darcy-compress` for v7's zlib elements), measures the
peak RSS of preparing DarcyFlow from it (used as smooth1 and smooth2: the four reads of the real
run) in a fresh process, mode "before" with scipy.io.loadmat as the public loaders read it
(keeping subsampled views of whole variables) and mode "after" with data_prep.matfile's
streaming reader, writes the CSV and deletes the file. Goal: after <= 2 GB.

Generators: Pathfinder-32 and Path-X images/s (with --workers processes; the
output does not depend on it) and DarcyFlow seconds per sample at 421 (solve_gwf.m procedure)
and at 85 (fast path), each with the time extrapolated to the sizes that matter (10k
Pathfinder-32, 1000 Path-X, 1100 DarcyFlow samples).

Goal: the iterator delivers ListOps batches of 50 x 2048 at least 20x faster than a train step
consumes them. The step time comes from `implementations.torch.build_model` when it exists,
otherwise from --step-seconds (default 0.48 s * 50 / 8: the public CCNN code's ~480 ms train
step at batch 8 on a CPU, scaled to batch 50).
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
import os
import platform
import resource
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from data_prep import registry
from data_prep.common import Context
from data_prep.iterator import BatchIterator
from data_prep.lra import listops, pathfinder

DEFAULT_STEP = 0.48 * 50 / 8


def _ctx(name: str, out: Path, size: int) -> Context:
    return Context(
        spec=registry.get(name), out_dir=out, source="generate", size=size, progress=False
    )


def _timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def torch_step_seconds(batch: int = 50, length: int = 2048, repeats: int = 2) -> float | None:
    """CCNN_{4,140} forward + backward on CPU, if the torch implementation provides it."""
    try:
        import torch

        from implementations.common.config import ModelConfig
        from implementations.torch import build_model
    except ImportError:
        return None
    try:
        cfg = ModelConfig(
            variant="ccnn",
            data_dim=1,
            input_shape=(length,),
            vocab_size=18,
            out_size=10,
            blocks=4,
            width=140,
        )
        model = build_model(cfg)
        x = torch.randint(0, 18, (batch, length))
        y = torch.randint(0, 10, (batch,))
        times = []
        for _ in range(repeats + 1):
            t = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            times.append(time.perf_counter() - t)
        return float(np.median(times[1:]))
    except Exception as e:
        print(f"bench: implementations.torch.build_model failed ({e}); using --step-seconds")
        return None


def run(
    out_csv: Path,
    listops_rows: int,
    pf_images: int,
    step_seconds: float,
    pathx_images: int = 20,
    darcy_samples: int = 2,
    workers: int = 1,
) -> list[dict]:
    rows: list[dict] = []

    def add(what, size, seconds, throughput, unit):
        rows.append(
            {
                "what": what,
                "size": size,
                "seconds": round(seconds, 6),
                "throughput": round(throughput, 2),
                "unit": unit,
            }
        )
        print(f"{what:40s} {size:>8} {seconds:9.3f} s {throughput:12.1f} {unit}")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ctx = _ctx("listops", tmp / "listops", listops_rows)
        _, t = _timed(listops.generate, ctx)
        n = sum(listops.split_sizes(listops_rows).values())
        add("listops generate", n, t, n / t, "rows/s")
        _, t = _timed(listops.preprocess, ctx, ctx.raw_dir)
        add("listops preprocess", n, t, n / t, "rows/s")

        ctx = _ctx("pathfinder", tmp / "pf", int(pf_images * 0.8))
        root = ctx.raw_dir / pathfinder.RAW_DIR["pathfinder"] / pathfinder.CONTOUR_DIR
        p32 = pathfinder.PARAMS["pathfinder"]
        _, t = _timed(pathfinder.generate_raw, root, p32, pf_images, 0, 1000, False, workers)
        add(f"pathfinder32 generate ({workers} workers)", pf_images, t, pf_images / t, "images/s")
        est = t / pf_images * 10000
        add("pathfinder32 generate 10k (extrapolated)", 10000, est, est / 60, "min")
        _, t = _timed(pathfinder.preprocess, ctx, ctx.raw_dir)
        add("pathfinder32 preprocess", pf_images, t, pf_images / t, "images/s")
        if pathx_images:
            root = tmp / "px" / "raw" / pathfinder.RAW_DIR["pathx"] / pathfinder.CONTOUR_DIR
            p128 = pathfinder.PARAMS["pathx"]
            _, t = _timed(
                pathfinder.generate_raw, root, p128, pathx_images, 0, 1000, False, workers
            )
            n = pathx_images
            add(f"pathx generate ({workers} workers)", n, t, n / t, "images/s")
            est = t / n * 1000
            add("pathx generate 1000 (extrapolated)", 1000, est, est / 60, "min")
        if darcy_samples:
            from data_prep import darcyflow

            rng = np.random.default_rng(0)
            for res, faithful in ((darcyflow.FAITHFUL_RES, True), (darcyflow.RES, False)):
                f = tmp / f"piececonst_r{res}_N{darcy_samples}_smooth1.mat"
                _, t = _timed(darcyflow.generate_file, f, darcy_samples, res, rng, False, faithful)
                n = darcy_samples
                add(f"darcyflow generate at {res}", n, t, t / n, "s/sample")
                est = t / n * 1100
                add(f"darcyflow 1100 samples at {res} (extrapolated)", 1100, est, est / 60, "min")

        it = BatchIterator(tmp / "listops", "train", 50, seed=0)
        n_batches, t0 = 0, time.perf_counter()
        for epoch in range(max(1, 400 // max(1, len(it)))):
            for _ in it.epoch(epoch):
                n_batches += 1
        t = time.perf_counter() - t0
        per_batch = t / n_batches
        add("listops iterate batch 50x2048 (mmap)", n_batches, t, n_batches / t, "batches/s")

        cifar_root = tmp / "c10"
        from data_prep.pipeline import prepare

        prepare("cifar10", "generate", cifar_root, size=1000, progress=False)
        it = BatchIterator(cifar_root, "train", 128)
        n_b, t0 = 0, time.perf_counter()
        for epoch in range(5):
            for _ in it.epoch(epoch):
                n_b += 1
        t = time.perf_counter() - t0
        add("cifar10 iterate batch 128 + augment", n_b, t, n_b / t, "batches/s")

    measured = torch_step_seconds()
    step = measured if measured is not None else step_seconds
    source = "measured torch CCNN_{4,140}" if measured is not None else "--step-seconds"
    add(f"train step 50x2048 ({source})", 1, step, 1 / step, "steps/s")
    ratio = step / per_batch
    add("ratio step / batch (goal >= 20)", 1, per_batch, ratio, "x")
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    with open(out_csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["what", "size", "seconds", "throughput", "unit"])
        w.writeheader()
        w.writerows(rows)
    return rows


DARCY_GOAL_GB = 2.0


def _peak_rss_child(mode: str, raw: str, out: str, queue) -> None:
    """Runs in a fresh (spawned) process: prepare DarcyFlow from `raw`, report peak RSS."""
    t = time.perf_counter()
    if mode == "before":  # the public loaders' v5 path: scipy.io.loadmat, a subsampled VIEW kept
        import scipy.io

        keep = []
        reads = ((1, "coeff", 1000), (1, "sol", 1000), (2, "coeff", 100), (2, "sol", 100))
        for smooth, name, n in reads:
            f = next(Path(raw).glob(f"*smooth{smooth}.mat"))
            arr = scipy.io.loadmat(f, variable_names=[name])[name]
            keep.append(np.asarray(arr[:n, ::5, ::5][:, :85, :85], dtype=np.float64))
    else:
        from data_prep import darcyflow

        ctx = Context(
            spec=registry.get("darcyflow"), out_dir=Path(out), source="download", progress=False
        )
        darcyflow.preprocess(ctx, Path(raw))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    queue.put((peak, time.perf_counter() - t))


def darcy_rss(
    workdir: Path, out_csv: Path, n: int = 1024, r: int = 421, compress: bool = False
) -> list[dict]:
    """Peak RSS of DarcyFlow preprocessing on a generated full-size file, before/after."""
    from data_prep import matfile
    from data_prep.artefacts import provenance
    from data_prep.download import check_disk

    started = time.time()
    raw = Path(tempfile.mkdtemp(prefix="darcy-rss-", dir=workdir))
    rows: list[dict] = []
    try:
        check_disk({raw: 2 * n * r * r * 8 + (1 << 30)}, "the full-size DarcyFlow file")
        f1 = raw / f"piececonst_r{r}_N{n}_smooth1.mat"
        rng = np.random.default_rng(0)
        t = time.perf_counter()
        matfile.write_mat5(
            f1,
            {
                "coeff": ((n, r, r), lambda j: np.where(rng.random((n, r)) < 0.5, 12.0, 3.0)),
                "sol": ((n, r, r), lambda j: rng.random((n, r)) * 0.01),
            },
            compress=compress,
        )
        write_s = time.perf_counter() - t
        (raw / f"piececonst_r{r}_N{n}_smooth2.mat").symlink_to(f1.name)
        size = f1.stat().st_size
        print(f"darcy-rss: wrote {f1} ({size / 1e9:.2f} GB) in {write_s:.1f} s")
        prov = provenance(None, started)
        for mode in ("before", "after"):
            mp = multiprocessing.get_context("spawn")
            q = mp.Queue()
            proc = mp.Process(target=_peak_rss_child, args=(mode, str(raw), str(raw / "out"), q))
            proc.start()
            peak, secs = q.get()
            proc.join()
            row = {
                "mode": mode,
                "reader": "scipy.io.loadmat, views kept" if mode == "before" else "matfile stream",
                "file": f"MAT v5 {'zlib' if compress else 'uncompressed'} {n}x{r}x{r} x2 vars",
                "file_gb": round(size / 1e9, 3),
                "peak_rss_gb": round(peak / 1e9, 3),
                "seconds": round(secs, 2),
                "goal_gb": DARCY_GOAL_GB,
                "git_sha": prov["git_sha"],
                "host": prov["host"],
                "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
                "versions": " ".join(f"{k}={v}" for k, v in prov["versions"].items()),
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
            }
            rows.append(row)
            print(f"darcy-rss {mode:6s}: peak RSS {row['peak_rss_gb']:.3f} GB in {secs:.1f} s")
    finally:
        shutil.rmtree(raw, ignore_errors=True)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_csv.with_name(f".{out_csv.name}.tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, out_csv)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m data_prep.bench", description=__doc__)
    p.add_argument("--out", default="results/bench/data.csv")
    p.add_argument("--listops-rows", type=int, default=1000)
    p.add_argument("--pathfinder-images", type=int, default=500)
    p.add_argument("--step-seconds", type=float, default=DEFAULT_STEP)
    p.add_argument("--pathx-images", type=int, default=20)
    p.add_argument("--darcy-samples", type=int, default=2)
    p.add_argument("--workers", type=int, default=1, help="generator processes")
    p.add_argument("--darcy-rss", metavar="DIR", help="measure DarcyFlow peak RSS (2.9 GB file)")
    p.add_argument("--darcy-out", default="results/bench/darcy_rss.csv")
    p.add_argument("--darcy-compress", action="store_true", help="zlib (MATLAB -v7) elements")
    p.add_argument("--darcy-n", type=int, default=1024, help="samples (1024 = full size)")
    a = p.parse_args(argv)
    if a.darcy_rss:
        rows = darcy_rss(
            Path(a.darcy_rss), Path(a.darcy_out), n=a.darcy_n, compress=a.darcy_compress
        )
        return 0 if rows[-1]["peak_rss_gb"] <= DARCY_GOAL_GB else 1
    run(
        Path(a.out),
        a.listops_rows,
        a.pathfinder_images,
        a.step_seconds,
        a.pathx_images,
        a.darcy_samples,
        a.workers,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
