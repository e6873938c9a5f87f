"""pipelines.bench_frameworks end to end at tiny shapes: one row per (model, shape, mode), the
ratio column is step_ms over the faster PyTorch mode, provenance next to the CSV. Speed itself
is measured by running the script, never asserted in a test."""

from __future__ import annotations

import csv
import json

import pytest

from pipelines import bench_frameworks as bf


@pytest.mark.slow  # 30 s of JAX compiles; the fast tier runs bench_gpu's tiny benchmark
def test_tiny_run_writes_rows_ratios_and_provenance(tmp_path, monkeypatch):
    monkeypatch.setattr(bf, "SHAPES", {"1d": ((33,), 2, 1), "2d": ((9, 7), 2, 3)})
    real = bf.bench_config

    def tiny(model, shape, mode):
        return real(model, shape, mode).replace(
            width=4, max_width=8, blocks=2, max_blocks=4, kernel_hidden=8
        )

    monkeypatch.setattr(bf, "bench_config", tiny)
    out = tmp_path / "frameworks.csv"
    argv = ["--steps", "1", "--device", "cpu", "--shapes", "1d", "--out", str(out)]
    assert bf.main(argv) == 0
    rows = list(csv.DictReader(out.open()))
    modes: dict[tuple, list] = {}
    for r in rows:
        modes.setdefault((r["model"], r["shape"]), []).append((r["framework"], r["mode"]))
    assert set(modes) == {("ccnn", "33"), ("krwd", "33")}
    assert modes[("ccnn", "33")] == [("torch", "virtual"), ("torch", "trim"), ("jax", "virtual")]
    assert modes[("krwd", "33")][-1] == ("jax", "virtual-literal")
    for key in modes:
        group = [r for r in rows if (r["model"], r["shape"]) == key]
        fastest = min(float(r["step_ms"]) for r in group if r["framework"] == "torch")
        for r in group:
            ratio = float(r["step_ms"]) / fastest  # both rounded to 3 decimals in the CSV
            assert abs(float(r["ratio_to_fastest_torch"]) - ratio) <= 1e-3 * (1 + ratio)
            assert r["goal_met"] in (("",) if r["framework"] == "torch" else ("True", "False"))
    meta = json.loads((tmp_path / "frameworks.json").read_text())
    assert meta["git_sha"] and meta["torch_device"] == "cpu" and meta["steps"] == 1
    assert set(meta["configs"]) == {"ccnn-1d", "krwd-1d"}
