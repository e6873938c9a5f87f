"""The step ladder of the claims study: reports.ladder evaluates each rung with the claims
registry's rules, the workflow plans one training job per rung, variant and seed (reading the
rung at the profile's epochs from the main study), a bad ladder fails before any job, and a
reduced ladder (tiny model, DarcyFlow, rungs of 1 and 2 epochs, one seed) writes ladder.csv
and ladder.png."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reports import claims as C
from reports import ladder as L

from .test_workflow import job_counts, snakemake

TOL = {"accuracy_points": 1.0, "error_relative": 0.10}


def _run(tmp: Path, d, v, seed, epochs, value, spe=25, ratios=(1.0,)):
    out = tmp / d / f"e{epochs}" / v / "torch" / f"seed{seed}"
    out.mkdir(parents=True)
    r = {
        "dataset": d, "variant": v, "framework": "torch", "seed": seed, "profile": "claims",
        "metric": "rel_l2", "higher_is_better": False, "test_metric": value,
        "c_ratio": ratios[-1], "epochs": epochs, "steps": epochs * spe,
    }  # fmt: skip
    (out / "result.json").write_text(json.dumps(r))
    rows = "\n".join(f"{i + 1},{c}" for i, c in enumerate(ratios))
    (out / "metrics.csv").write_text(f"epoch,c_ratio\n{rows}\n")
    return str(out / "result.json")


def _ladder(tmp, gap_by_rung):
    """DarcyFlow runs whose learned-size variants trail ccnn by `gap` at each rung."""
    rng = np.random.default_rng(0)
    paths = []
    for epochs, gap in gap_by_rung.items():
        for v in C.VARIANTS:
            for s in range(3):
                err = 0.05 + (0.0 if v == "ccnn" else gap) + 0.0005 * rng.standard_normal()
                ratios = (0.8,) if v == "kr" else (1.0, 1.01) if v == "krwd" else (1.0,)
                paths.append(_run(tmp, "darcyflow", v, s, epochs, err, ratios=ratios))
    return C.load(paths, "claims")


def test_each_rung_is_evaluated_by_the_registry(tmp_path):
    res = _ladder(tmp_path, {10: 0.03, 40: 0.01, 160: -0.01})
    df = L.ladder_table(res, list(L.LADDER_CLAIMS), TOL, 0.05)
    assert list(df.columns) == L.COLUMNS
    assert len(df) == 4 * 3  # claim x rung
    c1 = df[df["claim"] == "C1"]
    assert list(c1["steps"]) == [250, 1000, 4000] and list(c1["epochs"]) == [10, 40, 160]
    # k behind ccnn, then ahead: the verdict turns with the training length
    assert list(c1["verdict"]) == ["fails", "fails", "holds"]
    assert (c1["n"] == 3).all() and (c1["runs"] == 12).all()
    # the same numbers as the registry's own table on that rung's runs
    rung = [r for r in res if r["epochs"] == 40]
    direct = C.claims_table(rung, ["C1"], TOL, 0.05).iloc[0]
    row = c1[c1["epochs"] == 40].iloc[0]
    assert row["diff"] == pytest.approx(direct["diff"]) and row["se"] == pytest.approx(direct["se"])
    assert set(df["verdict"]) <= set(C.VERDICTS)
    assert set(df[df["claim"] == "C3"]["verdict"]) == {"holds"}
    out = tmp_path / "ladder.png"
    L.figure(df, out)
    assert out.stat().st_size > 0


def test_a_rung_mixing_step_counts_is_refused(tmp_path):
    paths = [
        _run(tmp_path / "a", "darcyflow", "ccnn", 0, 10, 0.05, spe=25),
        _run(tmp_path / "b", "darcyflow", "k", 0, 10, 0.05, spe=50),
    ]
    with pytest.raises(C.ClaimsError, match="different step counts"):
        L.ladder_table(C.load(paths, "claims"), ["C1"], TOL, 0.05)


def test_only_rung_dependent_claims_with_their_variants():
    L.check_claims(["C1", "C4"], ["ccnn", "k", "krwd"])
    with pytest.raises(C.ClaimsError, match=r"not \['C5'\]"):
        L.check_claims(["C1", "C5"], C.VARIANTS)
    with pytest.raises(C.ClaimsError, match=r"C2 needs variants \['kr'\]"):
        L.check_claims(["C2"], ["ccnn", "k"])


def test_plan_trains_every_rung_but_the_main_studys(tmp_path):
    """Shipped ladder: the rung at the profile's epochs is the main study's torch run, every
    other rung one job per variant and seed, with --epochs."""
    import yaml

    cfg = yaml.safe_load((Path(C.__file__).parents[1] / "pipelines/config/claims.yaml").read_text())
    ladder, hyper = cfg["ladder"], cfg["hyper"]
    jobs = sum(
        len([e for e in rungs if e != hyper[d]["epochs"]]) for d, rungs in ladder["epochs"].items()
    ) * len(cfg["variants"]) * len(ladder["seeds"])  # fmt: skip
    reused = sum(hyper[d]["epochs"] in rungs for d, rungs in ladder["epochs"].items())
    p = snakemake("-n", "-p", "--directory", str(tmp_path), "--config", "profile=claims", "--",
                  "claims/ladder.csv")  # fmt: skip
    counts = job_counts(p.stdout)
    assert counts["ladder_train_torch"] == jobs and counts["ladder"] == 1
    assert counts["train_torch"] == reused * len(cfg["variants"]) * len(ladder["seeds"])
    top = max(ladder["epochs"]["darcyflow"])
    assert f"--epochs {top} --out 'claims/ladder/darcyflow/e{top}/krwd/torch/seed2'" in p.stdout


@pytest.mark.parametrize(
    "override,needle",
    [
        ("ladder={claims: [C1, C6]}", "'C6' is not one of"),
        ("ladder={frameworks: [torch_virtual]}", "'torch_virtual' is not one of"),
        ("variants=[ccnn,k,krwd]", "the ladder omits what a claim needs: C2 needs variants ['kr']"),
    ],
)
def test_bad_ladder_fails_before_any_job(tmp_path, override, needle):
    # the main study without C2, so that only the ladder's own check meets variants=[ccnn,k,krwd]
    config = ["--config", "profile=claims", "claims={ids: [C1, C3, C4]}", override]
    p = snakemake("-n", "--directory", str(tmp_path), "claims/ladder.csv", *config, check=False)
    assert p.returncode != 0 and needle in p.stdout + p.stderr, p.stdout + p.stderr
    assert "Job stats" not in p.stdout


def test_reduced_ladder_run(tmp_path):
    """DarcyFlow, a tiny model, rungs of 1 and 2 epochs, one seed: the 1-epoch rung is the
    main study's run, the 2-epoch rung trains with its own schedule; ladder.csv has one row
    per claim and rung with a valid verdict, and ladder.png exists."""
    overlay = {  # a --configfile over the shipped profile (typed values, unlike --config)
        "datasets": ["darcyflow"],
        "seeds": [0],
        "generate_fast": True,  # the 85 x 85 solver: seconds instead of the 421 one
        "model": {"blocks": 1, "width": 4, "max_blocks": 2, "max_width": 8,
                  "kernel_hidden": 8, "kernel_layers": 2},
        "hyper": {"darcyflow": {"epochs": 1, "batch_size": 4, "lr": 0.02, "dropout": 0.0,
                                "weight_decay": 0.0001, "w0": 24500, "lam": 0.1,
                                "tau_resolution": 50, "warmup_epochs": 0, "input_shape": [22, 22],
                                "resize": "stride", "generate_size": 8, "train_eval_batches": 1}},
        "ladder": {"epochs": {"darcyflow": [1, 2]}, "seeds": [0]},
    }  # fmt: skip
    (tmp_path / "overlay.yaml").write_text(json.dumps(overlay))
    config = ["--configfile", str(tmp_path / "overlay.yaml"), "--config", "profile=claims"]
    snakemake("--cores", "2", "--directory", str(tmp_path), *config, "--", "claims/ladder.csv")
    out = tmp_path / "claims"
    df = pd.read_csv(out / "ladder.csv")
    assert len(df) == 4 * 2
    assert sorted(zip(df["claim"], df["epochs"])) == [
        (c, e) for c in L.LADDER_CLAIMS for e in (1, 2)
    ]
    assert set(df["dataset"]) == {"darcyflow"} and set(df["verdict"]) <= set(C.VERDICTS)
    spe = 2  # 8 training fields at batch 4
    assert dict(zip(df["epochs"], df["steps"])) == {1: spe, 2: 2 * spe}
    assert (out / "ladder.png").stat().st_size > 0
    # the 1-epoch rung is the main study's run; the 2-epoch rung's schedule spans 2 epochs
    assert (out / "runs/darcyflow/k/torch/seed0/result.json").is_file()
    assert not (out / "ladder/darcyflow/e1").exists()
    run = out / "ladder/darcyflow/e2/k/torch/seed0"
    r = json.loads((run / "result.json").read_text())
    assert r["epochs"] == 2 and r["steps"] == 2 * spe and r["config"]["hyper"]["epochs"] == 2
    lr = pd.read_csv(run / "metrics.csv")["lr"].to_numpy()
    assert lr[0] == pytest.approx(0.01) and lr[1] == pytest.approx(0.0, abs=1e-12)  # cosine
