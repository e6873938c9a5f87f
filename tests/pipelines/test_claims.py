"""The claims study: the verdict rules of reports.claims on synthetic result files,
bad requests failing before any job, and a reduced claims workflow run (one dataset, one seed,
a few steps, torch + torch_virtual + jax) that writes one claims.csv row per claim."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines import settings as S
from reports import build as B
from reports import claims as C

from .test_workflow import snakemake

TOL = {"accuracy_points": 1.0, "error_relative": 0.10}


def _run(tmp: Path, d, v, fw, seed, value, ratios=(1.0,), metric="accuracy", higher=True):
    out = tmp / d / v / fw / f"seed{seed}"
    out.mkdir(parents=True)
    r = {
        "dataset": d, "variant": v, "framework": fw, "seed": seed, "profile": "claims",
        "metric": metric, "higher_is_better": higher, "test_metric": value,
        "c_ratio": ratios[-1], "epochs": len(ratios), "depth": 1,
        "data": {"kind": "generated", "distribution": "faithful", "splits": {"train": 10}},
        "config": {"resize": None},
        "architecture": [{"block": 0, "kernel_size": [3], "resolution": [8], "width": [2, 2, 2]}],
    }  # fmt: skip
    (out / "result.json").write_text(json.dumps(r))
    rows = "\n".join(f"{i + 1},{c},{value}" for i, c in enumerate(ratios))
    (out / "metrics.csv").write_text(f"epoch,c_ratio,val_{metric}\n{rows}\n")
    return str(out / "result.json")


def _grid(tmp, k_gain=5.0, noise=0.3, kr_ratio=0.8, krwd_ratios=(1.0, 1.01, 0.99)):
    rng = np.random.default_rng(0)
    base = {"ccnn": 40.0, "k": 40.0 + k_gain, "kr": 40.0 + k_gain, "krwd": 40.0 + k_gain}
    ratios = {"ccnn": (1.0,), "k": (1.0,), "kr": (1.0, kr_ratio), "krwd": krwd_ratios}
    paths = []
    for fw in ("torch", "torch_virtual", "jax"):
        for v in C.VARIANTS:
            for s in range(3):
                value = base[v] + noise * rng.standard_normal()
                paths.append(_run(tmp, "listops", v, fw, s, value, ratios[v]))
    return C.load(paths, "claims")


def _verdicts(df):
    per = df[df["dataset"] != "overall"]
    return dict(zip(per["claim"], per["verdict"]))


def test_rules_on_a_grid_where_the_paper_holds(tmp_path):
    df = C.claims_table(_grid(tmp_path), list(C.CLAIMS), TOL, 0.05)
    assert set(df["verdict"]) <= set(C.VERDICTS) | set(C.AGREEMENT)
    assert len(df) == 2 * len(C.CLAIMS)  # one dataset row + one overall row per claim
    per = df[df["dataset"] != "overall"]
    assert set(per["outcome"]) == {"holds"}
    # the paper claims C1-C4 on ListOps; C5 and C6 are the suite's own checks
    assert _verdicts(df) == {
        **{c: "holds" for c in ("C1", "C2", "C3", "C4")},
        **{c: "agrees with the paper" for c in ("C5", "C6")},
    }
    assert list(per["claimed"]) == ["yes"] * 4 + ["no"] * 2
    assert per["paper_source"].str.len().min() > 0


def test_rules_fail_and_stay_inconclusive(tmp_path):
    # k worse than ccnn, kr not cheaper, krwd off budget at epoch 2
    res = _grid(tmp_path, k_gain=-5.0, kr_ratio=1.0, krwd_ratios=(1.0, 1.2, 1.0))
    v = _verdicts(C.claims_table(res, list(C.CLAIMS), TOL, 0.05))
    assert v["C1"] == v["C2"] == v["C3"] == v["C4"] == "fails"
    # a difference within the seed noise is inconclusive, never a verdict
    noisy = _grid(tmp_path / "n", k_gain=0.5, noise=5.0)
    assert _verdicts(C.claims_table(noisy, ["C1"], TOL, 0.05))["C1"] == "inconclusive"


def test_one_seed_is_inconclusive_not_a_verdict():
    assert C.superiority(3.0, float("nan")) == "inconclusive"
    assert C.equivalence(0.0, float("nan"), 1.0) == "inconclusive"
    assert C.equivalence(0.2, 0.1, 1.0) == "holds"
    assert C.equivalence(3.0, 0.5, 1.0) == "fails"
    assert C.non_inferiority(-0.5, 0.1, 1.0) == "holds"


@pytest.mark.parametrize(
    "claims,variants,frameworks,needle",
    [
        (["C7"], C.VARIANTS, ["torch", "jax"], "unknown claim id(s) ['C7']"),
        (["C1"], ["ccnn", "kr"], ["torch", "jax"], "C1 needs variants ['k']"),
        (["C5"], C.VARIANTS, ["torch", "jax"], "C5 needs frameworks ['torch_virtual']"),
        (["C5"], ["ccnn"], ["torch", "torch_virtual"], "C5 needs a torch_virtual variant"),
    ],
)
def test_bad_requests_name_what_is_missing(claims, variants, frameworks, needle):
    with pytest.raises(C.ClaimsError) as e:
        C.check_request(claims, variants, frameworks, ["k"])
    assert needle in str(e.value)


def test_claims_profile_validates_and_covers_every_claim():
    cfg = S.load_profile("claims")
    C.check_request(
        cfg["claims"]["ids"], cfg["variants"], cfg["frameworks"], cfg["claims"]["virtual_variants"]
    )
    assert cfg["seeds"] == [0, 1, 2] and not cfg["generate_fast"]
    assert all(Path(p).parts[0] == "claims" for p in cfg["paths"].values())
    assert S.backend_of("torch_virtual") == "torch"
    assert S.torch_mode_of("torch_virtual", cfg) == "virtual"


def test_paper_style_table(tmp_path):
    paths = [
        _run(tmp_path, "listops", "ccnn", "torch", 0, 50.0),
        _run(tmp_path, "listops", "kr", "jax", 0, 60.0, (0.8,)),
    ]
    paper = __import__("yaml").safe_load(
        (Path(B.__file__).parent / "paper_results.yaml").read_text()
    )
    res = B.load_results(paths, "claims")
    df = B.results_table("table1", ["listops"], res, paper, "claims", TOL)
    md = B.paper_style(df)
    assert "| model | listops |" in md
    assert "torch: 50 (55.65) (1.00x) ~" in md and "jax: 60 (60.15) (0.80x) ~" in md


@pytest.mark.parametrize(
    "override,needle",
    [
        ("claims={ids: [C1, C9]}", "'C9' is not one of"),
        ("frameworks=[torch,jax]", "C5 needs frameworks ['torch_virtual']"),
        ("variants=[ccnn,k,kr]", "C3 needs variants ['krwd']"),
    ],
)
def test_bad_claims_profile_fails_before_any_job(tmp_path, override, needle):
    p = snakemake("-n", "--directory", str(tmp_path), "--config", "profile=claims", override,
                  check=False)  # fmt: skip
    assert p.returncode != 0 and needle in p.stdout + p.stderr
    assert "Job stats" not in p.stdout


def test_generator_options_reach_the_data_command(tmp_path):
    """The profile's `generate_options` (ListOps: LRA's length flags) are what the data job
    runs with: the claims study's ListOps is 32-128-token expressions, not LRA's 500-2000."""
    p = snakemake("-n", "-p", "--directory", str(tmp_path), "--config", "profile=claims",
                  "--", "claims/data/listops/meta.json")  # fmt: skip
    assert "--option max_length=128 --option min_length=32" in p.stdout
    assert "--size 4000" in p.stdout


def test_run_directory_of_another_profile_fails_before_any_job(tmp_path):
    run = tmp_path / "claims/runs/listops/k/torch/seed0"
    run.mkdir(parents=True)
    (run / "result.json").write_text(json.dumps({"profile": "smoke"}))
    p = snakemake("-n", "--directory", str(tmp_path), "--config", "profile=claims", check=False)
    assert p.returncode != 0 and "holds runs of another profile" in p.stdout + p.stderr
    assert "seed0/result.json (smoke)" in p.stdout + p.stderr


def test_reduced_claims_run(tmp_path):
    """One dataset, one seed, 1 epoch of a tiny model, every variant, torch + torch_virtual +
    jax: claims.csv has one row per claim (plus `overall`) with a valid verdict."""
    overlay = {  # a --configfile over the shipped profile (typed values, unlike --config)
        "datasets": ["darcyflow"],
        "seeds": [0],
        "generate_fast": True,  # the 85 x 85 solver: seconds instead of the 421 one
        "xla_fast_compile": True,
        "model": {"blocks": 1, "width": 4, "max_blocks": 2, "max_width": 8,
                  "kernel_hidden": 8, "kernel_layers": 2},
        "hyper": {"darcyflow": {"epochs": 2, "batch_size": 4, "lr": 0.02, "dropout": 0.0,
                                "weight_decay": 0.0001, "w0": 24500, "lam": 0.1,
                                "tau_resolution": 50, "warmup_epochs": 0, "input_shape": [22, 22],
                                "resize": "stride", "generate_size": 8, "train_eval_batches": 1}},
    }  # fmt: skip
    (tmp_path / "overlay.yaml").write_text(json.dumps(overlay))
    config = ["--configfile", str(tmp_path / "overlay.yaml"), "--config", "profile=claims"]
    snakemake("--cores", "2", "--directory", str(tmp_path), *config)
    out = tmp_path / "claims"
    df = pd.read_csv(out / "claims.csv")
    per = df[df["dataset"] == "darcyflow"]
    assert list(per["claim"]) == list(C.CLAIMS)
    assert set(df["verdict"]) <= set(C.VERDICTS) | set(C.AGREEMENT)
    assert list(per["claimed"]) == ["yes"] * 4 + ["no"] * 2
    assert per["paper_source"].str.match(r"(Sec\.|Appx\.) ").all()
    assert set(df[df["dataset"] == "overall"]["claim"]) == set(C.CLAIMS)
    assert "data:image/png;base64" in (out / "report.html").read_text()
    assert "## Claims" in (out / "report.md").read_text()
    assert (out / "table2.csv").is_file() and (out / "table5.csv").is_file()
    r = json.loads((out / "runs/darcyflow/kr/torch_virtual/seed0/result.json").read_text())
    assert r["torch_mode"] == "virtual" and r["framework"] == "torch_virtual"
    assert not (tmp_path / "reports").exists() and not (tmp_path / "results").exists()
