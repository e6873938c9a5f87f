"""pipelines.rehearse at tiny shapes: one row per job with finite numbers and provenance, the
linear extrapolation when the full batch is predicted not to fit, failures reported in their
row (in the child and from the parent's subprocess), the markdown memory table, and krwd's
masks opened to the full CCNN_{8,280} in both frameworks. Memory and speed themselves are
measured by running the module, never asserted."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from implementations.common.grids import kernel_taps
from pipelines import rehearse as rh
from pipelines.bench_gpu import cases


def read(path):
    return list(csv.DictReader(path.open()))


def test_tiny_grid_one_row_per_job_with_provenance(tmp_path):
    out = tmp_path / "r.csv"
    argv = ["--tiny", "--in-process", "--datasets", "listops", "cifar10"]
    argv += ["--variants", "ccnn", "krwd", "--modes", "torch-trim", "jax", "--out", str(out)]
    assert rh.main(argv) == 0
    rows = read(out)
    want = [
        (d, v, m, mode)
        for d in ("listops", "cifar10")
        for v, m in (("ccnn", "initial"), ("krwd", "initial"), ("krwd", "opened"))
        for mode in ("torch-trim", "jax")
    ]
    assert [(r["dataset"], r["variant"], r["masks"], r["mode"]) for r in rows] == want
    for r in rows:
        assert r["status"] == "ok" and r["memory_source"] == "measured", r
        assert r["memory_kind"] == "host" and int(r["batch"]) == 2
        for key in ("peak_gb", "host_peak_gb", "step_s", "first_step_s", "eval_s"):
            assert math.isfinite(float(r[key])) and float(r[key]) > 0, (key, r)
        assert r["arch"] == ("4x8" if r["masks"] == "opened" else "2x4"), r
        assert (r["compile_s"] != "") == (r["mode"] == "jax"), r  # compiled ahead, JAX only
    assert {r["input_shape"] for r in rows} == {"33", "9x7"}
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["git_sha"] and meta["versions"]["torch"] and meta["options"]["tiny"]
    assert meta["modes"] == ["torch-trim", "jax"] and "tiny" in meta["profile"]

    # --resume keeps the rows and runs only the missing jobs
    more = [*argv[:-2], "--variants", "ccnn", "k", "--modes", "torch-trim", "--resume"]
    assert rh.main([*more, "--out", str(out)]) == 0
    rows2 = read(out)
    assert rows2[: len(rows)] == rows
    assert [(r["dataset"], r["variant"]) for r in rows2[len(rows) :]] == [
        ("listops", "k"),
        ("cifar10", "k"),
    ]
    assert len(json.loads(out.with_suffix(".json").read_text())["earlier_runs"]) == 1

    assert [(r["dataset"], r["variant"]) for r in rh.sort_rows(rows2)][:4] == [
        ("listops", "ccnn"),
        ("listops", "ccnn"),
        ("listops", "k"),
        ("listops", "krwd"),
    ]
    table = rh.markdown_table(rows2)
    assert "proxy for GPU memory" in table
    body = [ln for ln in table.splitlines() if ln.startswith("| ") and "dataset" not in ln]
    assert len(body) == len(rows2)
    assert "| listops | krwd (opened) / jax | 2 |" in table and "host RSS, measured" in table


def fake_measure(calls, peak_per_sample=0.5, fail=()):
    """A stand-in for `measure`: peak 1 + 0.5 b GiB and step 0.1 b s, failing at `fail`."""

    def measure(job, batch, opts):
        calls.append(batch)
        if batch in fail:
            return {"status": "error", "error": "MemoryError: out of memory", "host_peak_gb": 1.0}
        return {
            "status": "ok",
            "first_step_s": 1.0,
            "step_s": 0.1 * batch,
            "eval_s": 0.01 * batch,
            "device_peak": None,
            "device": "fake",
            "arch": "2x4",
            "host_peak_gb": 1.0 + peak_per_sample * batch,
        }

    return measure


def test_full_batch_predicted_not_to_fit_is_extrapolated(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(rh, "measure", fake_measure(calls))
    out = tmp_path / "r.csv"
    argv = ["--tiny", "--datasets", "listops", "--variants", "ccnn", "--modes", "torch-trim"]
    argv += ["--batch", "6", "--out", str(out)]
    # predicted 1 + 0.5 * 6 = 4 GiB; x 1.15 = 4.6 > 4.5: not run
    assert rh.main([*argv, "--mem-limit-gb", "4.5"]) == 0
    assert calls == [1, 2]
    (r,) = read(out)
    assert r["status"] == "ok" and r["memory_source"] == "extrapolated from b=1,2"
    assert float(r["peak_gb"]) == pytest.approx(4.0) and r["predicted_gb"] == "4.000"
    assert float(r["step_s"]) == pytest.approx(0.6) and "not run" in r["note"]
    assert r["first_step_s"] == ""  # one-off costs: not extrapolated
    assert r["probe_gb"] == "b=1:1.500;b=2:2.000" and r["host_peak_gb"] == "4.000"
    assert "host RSS, extrapolated from b=1,2" in rh.markdown_table([r])

    # enough room: the full batch runs and is measured
    calls.clear()
    assert rh.main([*argv, "--mem-limit-gb", "5"]) == 0
    assert calls == [1, 2, 6]
    (r,) = read(out)
    assert r["memory_source"] == "measured" and float(r["peak_gb"]) == pytest.approx(4.0)

    # the full batch fails although predicted to fit: extrapolated, and the error is kept
    calls.clear()
    monkeypatch.setattr(rh, "measure", fake_measure(calls, fail=(6,)))
    assert rh.main([*argv, "--mem-limit-gb", "5"]) == 0
    (r,) = read(out)
    assert r["status"] == "full-batch-failed" and r["memory_source"].startswith("extrapolated")
    assert "MemoryError" in r["error"] and float(r["peak_gb"]) == pytest.approx(4.0)

    # a probe that fails is retried at half the probe batches (Table 6's 50: 6, 12 -> 3, 6)
    calls.clear()
    monkeypatch.setattr(rh, "measure", fake_measure(calls, fail=(12,)))
    argv[argv.index("6")] = "50"
    assert rh.main([*argv, "--mem-limit-gb", "5"]) == 0
    assert calls == [6, 12, 3, 6]
    (r,) = read(out)
    assert r["memory_source"] == "extrapolated from b=3,6" and "b=12: MemoryError" in r["note"]
    assert float(r["peak_gb"]) == pytest.approx(26.0)


def test_extrapolation_never_predicts_less_than_the_larger_probe():
    fast = {"step_s": 2.0, "eval_s": 1.0, "first_step_s": 9.0, "host_peak_gb": 3.0}
    slow = {"step_s": 1.5, "eval_s": 1.2, "first_step_s": 1.0, "host_peak_gb": 2.9}
    common = {"status": "ok", "device_peak": None, "device": "fake", "arch": "2x4"}
    out = rh._extrapolated([(1, {**common, **fast}), (2, {**common, **slow})], 8)
    assert out["step_s"] == "1.5" and out["peak_gb"] == "2.900"  # the falling line: held
    assert float(out["eval_s"]) == pytest.approx(2.4) and out["first_step_s"] == ""


def test_job_failing_at_batch_one_is_reported_not_skipped(tmp_path, monkeypatch):
    def oom(*args, **kwargs):
        raise MemoryError("cannot allocate")

    monkeypatch.setattr(rh, "torch_job", oom)
    spec = dict(dataset="listops", variant="ccnn", masks="initial", mode="torch-trim")
    r = rh.run_job({**spec, "batch": 1, "steps": 1, "tiny": True, "device": "cpu"})
    assert r == {"status": "error", "error": "MemoryError: cannot allocate"}

    out = tmp_path / "r.csv"
    argv = ["--tiny", "--in-process", "--datasets", "listops", "--variants", "ccnn", "krwd"]
    assert rh.main([*argv, "--modes", "torch-trim", "--batch", "4", "--out", str(out)]) == 0
    rows = read(out)
    assert [(r["variant"], r["masks"]) for r in rows] == [
        ("ccnn", "initial"),
        ("krwd", "initial"),
        ("krwd", "opened"),
    ]
    for r in rows:
        assert r["status"] == "failed" and r["error"] == "b=1: MemoryError: cannot allocate"
        assert r["peak_gb"] == "" and r["batch"] == "4"
    assert "failed: b=1: MemoryError" in rh.markdown_table(rows)


def test_default_probes_are_fractions_of_the_full_batch():
    assert [rh.probe_batches(b) for b in (50, 32, 8, 2)] == [(6, 12), (4, 8), (1, 2), (1, 2)]


def test_subprocess_measurement_and_its_watchdog():
    job = rh.Job("listops", "ccnn", "initial", "torch-trim")
    r = rh.measure(job, 2, rh.Options(steps=1, tiny=True))
    assert r["status"] == "ok" and r["device_peak"] is None and r["arch"] == "2x4"
    assert 0.05 < r["run_peak_gb"] <= r["host_peak_gb"] < 8 and r["step_s"] > 0
    # a child above the kill limit is stopped and reported, not lost
    r = rh.measure(job, 2, rh.Options(steps=1, tiny=True, kill_gb=0.01))
    assert r["status"] == "error" and "kill limit" in r["error"]


@pytest.mark.parametrize("dataset, shape", [("listops", (33,)), ("cifar10", (9, 7))])
def test_opened_masks_give_the_full_network_in_both_frameworks(dataset, shape):
    import jax

    from implementations.jax import model as jm
    from implementations.torch import build_model

    (case,) = cases([dataset], ["krwd"])
    cfg = case.cfg.replace(input_shape=shape, kernel_hidden=16)  # paper widths, small input
    full_taps = [kernel_taps(s) for s in shape]

    def check(rows):
        assert len(rows) == 8 == cfg.max_blocks
        for row in rows:
            assert row["width"] == [280, 280, 280] and row["resolution"] == list(shape)
            # sigma_max puts the cutoff on the end taps, where float32 lands a hair under T_m
            assert all(f - 2 <= k <= f for k, f in zip(row["kernel_size"], full_taps)), row

    model = build_model(cfg)
    assert rh.arch_summary(model.architecture()) == "4x140"
    rh.open_masks_torch(model)
    check(model.architecture())
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.clamp_masks()  # already at the clamps: nothing moves
    assert all((p == before[n]).all() for n, p in model.named_parameters())

    jmodel = jm.build_model(cfg)
    v = jm.init_variables(jmodel, jax.random.key(0))
    assert rh.arch_summary(jm.architecture(jmodel, v)) == "4x140"
    params = rh.open_masks_jax(jmodel, v["params"])
    check(jm.architecture(jmodel, {"params": params, "buffers": v["buffers"]}))
    clamped = jm.clamp_masks(jmodel, params)
    same = jax.tree_util.tree_map(lambda a, b: bool((a == b).all()), params, clamped)
    assert all(jax.tree_util.tree_leaves(same))


def test_slurm_host_memory_rule_by_hand():
    rows = [
        {"dataset": d, "variant": "ccnn", "masks": "initial", "host_peak_gb": "2.0"}
        for d in rh.DATASETS
    ]
    rows += [
        # 1.25 x 14.255 = 17.82 -> 18 GiB
        {"dataset": "pathx", "variant": "ccnn", "masks": "initial", "host_peak_gb": "14.255"},
        # opened krwd is the device's worst case: not counted for the host
        {"dataset": "pathx", "variant": "krwd", "masks": "opened", "host_peak_gb": "53.4"},
        # 1.25 x 7.857 = 9.82 -> 10 GiB
        {"dataset": "text", "variant": "krwd", "masks": "initial", "host_peak_gb": "7.857"},
        {"dataset": "text", "variant": "k", "masks": "initial", "host_peak_gb": ""},  # failed
    ]
    mem = rh.host_mem_mb(rows)
    assert mem["pathx"] == 18 * 1024 and mem["text"] == 10 * 1024
    # 1.25 x 2.0 = 2.5 GiB -> the 8 GiB floor
    assert all(mem[d] == 8 * 1024 for d in rh.DATASETS if d not in ("pathx", "text"))


def test_slurm_host_memory_names_the_unmeasured_dataset():
    rows = [
        {"dataset": d, "variant": "ccnn", "masks": "initial", "host_peak_gb": "2.0"}
        for d in rh.DATASETS
        if d != "cosmic"
    ]
    with pytest.raises(ValueError, match=r"cosmic.*--resume --datasets cosmic"):
        rh.host_mem_mb(rows)


def test_paper_profile_host_memory_is_the_committed_rehearsal_s(capsys):
    """paper.yaml's per-dataset mem_mb is what docs/rehearse_cpu.csv implies: a new rehearsal
    that changes a peak changes the request, or this fails."""
    from pipelines.settings import load_profile

    root = Path(__file__).resolve().parents[2]
    paper = load_profile("paper")
    derived = rh.host_mem_mb(rh.read_rows(root / "docs" / "rehearse_cpu.csv"))
    assert {d: h["mem_mb"] for d, h in paper["hyper"].items()} == derived
    assert rh.main(["--slurm-mem", str(root / "docs" / "rehearse_cpu.csv")]) == 0
    printed = dict(line.split(": ") for line in capsys.readouterr().out.splitlines())
    assert {d: int(v) for d, v in printed.items()} == derived
