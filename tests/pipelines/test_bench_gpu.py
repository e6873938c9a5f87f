"""pipelines.bench_gpu at tiny shapes (CI's fast tier): one row per (dataset, variant, mode),
Table 6 epochs and the registry's train size in the cost columns, consistent arithmetic,
provenance next to the CSV. Speed itself is measured by running the script, never asserted."""

from __future__ import annotations

import csv
import json

from pipelines import bench_gpu as bg
from pipelines.table6 import TABLE6


def test_tiny_run_writes_costs_and_provenance(tmp_path):
    out = tmp_path / "gpu.csv"
    common = ["--tiny", "--steps", "1", "--warmup", "0", "--device", "cpu"]
    argv = [*common, "--datasets", "listops", "darcyflow", "--variants", "krwd"]
    modes = ["torch-trim", "torch-virtual", "torch-trim-bucketed"]
    assert bg.main([*argv, "--modes", *modes, "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [(r["dataset"], r["variant"], r["mode"]) for r in rows] == [
        (d, "krwd", m) for d in ("listops", "darcyflow") for m in modes
    ]
    for r in rows:
        batch, steps = int(r["batch"]), int(r["steps_per_epoch"])
        assert batch == bg.TINY_BATCH and int(r["epochs"]) == TABLE6[r["dataset"]]["epochs"]
        assert steps == int(r["train_size"]) // batch
        sps = float(r["steps_per_s"])
        assert abs(sps - 1000.0 / float(r["step_ms"])) <= 1e-3 * sps
        hours = int(r["epochs"]) * steps / sps / 3600
        assert abs(float(r["job_gpu_hours"]) - hours) <= 1e-3 * hours
        assert 0.0 < float(r["fft_fraction"]) < 1.0
    assert {r["input_shape"] for r in rows} == {"33", "9x7"}
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["git_sha"] and meta["options"]["tiny"] and "tiny" in meta["profile"]

    jax_out = tmp_path / "jax.csv"
    jargv = [*common, "--datasets", "listops", "--variants", "ccnn", "--modes", "jax"]
    assert bg.main([*jargv, "--out", str(jax_out)]) == 0
    (r,) = list(csv.DictReader(jax_out.open()))
    assert r["mode"] == "jax" and r["fft_fraction"] == "" and float(r["steps_per_s"]) > 0


def test_full_cases_follow_the_paper_profile():
    cases = bg.cases(["pathx", "cosmic", "retrieval"], ["krwd"])
    assert [(c.cfg.input_shape, c.batch) for c in cases] == [
        ((16384,), 32),
        ((128, 128), 8),
        ((4000,), 50),
    ]
    assert all(c.cfg.max_width == 280 and c.cfg.width == 140 for c in cases)
