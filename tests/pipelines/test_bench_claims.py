"""pipelines.bench_claims: the phases of a real training run add up to its wall time, the
PyTorch step parts to the step, and a missing dataset is one clear error. Tiny generated data,
the smoke profile, CPU; the numbers themselves are measured by running the module."""

from __future__ import annotations

import csv
import itertools

import pytest

from data_prep.pipeline import prepare
from pipelines import bench_claims as bc


def test_phases_are_exclusive(monkeypatch):
    clock = itertools.count()  # every perf_counter call advances 1 s
    monkeypatch.setattr(bc.time, "perf_counter", lambda: float(next(clock)))
    ph = bc.Phases()
    with ph("outer"):  # t=0
        with ph("inner"):  # t=1 .. t=2
            pass
        with ph("inner"):  # t=3 .. t=4
            pass
    # outer: 0 .. 5 = 5 s, of which 2 s are inner's
    assert ph.total == {"inner": 2.0, "outer": 3.0}
    assert ph.calls == {"inner": 2, "outer": 1}
    timed = ph.wrap(lambda: 7, lambda calls: "first" if calls["first"] == 0 else "rest")
    assert [timed(), timed(), timed()] == [7, 7, 7]
    assert ph.calls["first"] == 1 and ph.calls["rest"] == 2


def test_a_torch_job_adds_up(tmp_path):
    root = tmp_path / "data"
    prepare("darcyflow", "generate", root / "darcyflow", size=20, progress=False, fast=True)
    out = tmp_path / "bench.csv"
    argv = [
        "--profile", "smoke", "--datasets", "darcyflow", "--variants", "krwd",
        "--frameworks", "torch", "--epochs", "2", "--step-breakdown", "3",
        "--data-root", str(root), "--out", str(out),
    ]  # fmt: skip
    assert bc.main(argv) == 0
    rows = list(csv.DictReader(open(out)))
    phases = {r["phase"]: r for r in rows}
    assert set(bc.PHASES) <= set(phases)
    job_s = float(rows[0]["job_s"])
    # exclusive phases: together they are the process's wall time (rounding: 1 ms per phase)
    assert sum(float(phases[p]["seconds"]) for p in bc.PHASES) == pytest.approx(job_s, abs=0.02)
    assert all(float(phases[p]["seconds"]) >= 0 for p in bc.PHASES if p != "other")
    # the step's parts are the step
    step = float(phases["step | step_s"]["seconds"])
    parts = sum(float(phases[f"step | {p}"]["seconds"]) for p in bc.STEP_PARTS)
    assert parts == pytest.approx(step, rel=0.01)
    assert float(phases["step | forward: FFT convolution"]["seconds"]) > 0
    # prediction: once-per-job phases + epoch 1 + (profile epochs - 1) x per-epoch mean
    pe = int(rows[0]["profile_epochs"])
    assert float(rows[0]["job_s_pred"]) == pytest.approx(
        sum(float(phases[p]["pred_s"]) for p in bc.PHASES), abs=0.05 * len(bc.PHASES)
    )
    assert pe >= 2 and float(rows[0]["job_s_pred"]) > 0
    assert out.with_suffix(".json").exists()


def test_missing_data_is_named_and_nothing_written(tmp_path, capsys):
    out = tmp_path / "bench.csv"
    argv = ["--datasets", "listops", "--data-root", str(tmp_path / "nowhere"), "--out", str(out)]
    assert bc.main(argv) == 2
    err = capsys.readouterr().err
    assert "no data for listops under" in err and "snakemake --cores 1" in err
    assert not out.exists()
