"""Data-pipeline benchmark (issue 4, deliverable 4): preprocessing throughput for ListOps
(rows/s) and Pathfinder (images/s) on generated data, and batch iteration throughput from the
memory-mapped artefacts, compared with a CCNN_{4,140} CPU train step at batch 50 x 2048.

    python -m data_prep.bench --out results/bench/data.csv

Generators (issue 11): Pathfinder-32 and Path-X images/s (with --workers processes; the
output does not depend on it) and DarcyFlow seconds per sample at 421 (solve_gwf.m procedure)
and at 85 (fast path), each with the time extrapolated to the sizes that matter (10k
Pathfinder-32, 1000 Path-X, 1100 DarcyFlow samples).

Goal: the iterator delivers ListOps batches of 50 x 2048 at least 20x faster than a train step
consumes them. The step time comes from `implementations.torch.build_model` when it exists,
otherwise from --step-seconds (default 0.48 s * 50 / 8: the reference CCNN step of
spec/performance.md, batch 8, scaled to batch 50).
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m data_prep.bench", description=__doc__)
    p.add_argument("--out", default="results/bench/data.csv")
    p.add_argument("--listops-rows", type=int, default=1000)
    p.add_argument("--pathfinder-images", type=int, default=500)
    p.add_argument("--step-seconds", type=float, default=DEFAULT_STEP)
    p.add_argument("--pathx-images", type=int, default=20)
    p.add_argument("--darcy-samples", type=int, default=2)
    p.add_argument("--workers", type=int, default=1, help="generator processes")
    a = p.parse_args(argv)
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
