"""Metrics (AUROC, relative L2, accuracy) against obvious references, and the report builders
on synthetic result files: verdicts, tolerances, the smoke guard."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipelines import metrics as M
from reports import build as B

PAPER = yaml.safe_load((Path(B.__file__).parent / "paper_results.yaml").read_text())
TOL = {"accuracy_points": 1.0, "error_relative": 0.10}


def test_auroc_matches_pairwise_counting():
    rng = np.random.default_rng(3)
    s = np.round(rng.random(97), 1)  # many ties
    y = rng.random(97) < 0.3
    pos, neg = s[y], s[~y]
    ref = np.mean((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :]))
    assert M.auroc(s, y) == pytest.approx(ref, abs=1e-12)
    assert M.auroc(s, np.zeros(97, bool)) != M.auroc(s, np.zeros(97, bool))  # NaN


def test_relative_l2_and_accuracy():
    t = np.ones((2, 1, 3, 3))
    p = t.copy()
    p[1] *= 1.5
    assert M.relative_l2(p, t) == pytest.approx(0.25)
    assert M.accuracy_pct(np.array([[0.1, 0.9], [2.0, 1.0]]), np.array([1, 1])) == 50.0


def _result(tmp: Path, dataset, variant, fw, seed, metric, value, kind="real", profile="paper"):
    d = tmp / dataset / variant / fw / f"seed{seed}"
    d.mkdir(parents=True)
    r = {
        "dataset": dataset, "variant": variant, "framework": fw, "seed": seed,
        "profile": profile, "metric": metric, "test_metric": value, "c_ratio": 1.0,
        "data": {"kind": kind}, "depth": 1,
        "architecture": [{"block": 0, "kernel_size": [3], "resolution": [8], "width": [2, 2, 2]}],
    }  # fmt: skip
    (d / "result.json").write_text(json.dumps(r))
    (d / "metrics.csv").write_text("epoch,c_ratio\n1,1.0\n2,0.99\n")
    return str(d / "result.json")


def test_verdicts_against_tolerance(tmp_path):
    paths = [
        _result(tmp_path, "listops", "ccnn", "torch", 0, "accuracy", 55.0),
        _result(tmp_path, "listops", "ccnn", "torch", 1, "accuracy", 56.0),  # mean 55.5: pass
        _result(tmp_path, "listops", "ccnn", "jax", 0, "accuracy", 50.0),  # fail
        _result(tmp_path, "listops", "k", "torch", 0, "accuracy", 62.0),  # better
    ]
    res = B.load_results(paths, "paper")
    df = B.results_table("table1", ["listops"], res, PAPER, "paper", TOL).set_index("variant")
    assert df.loc["ccnn", "torch_verdict"] == "pass"
    assert df.loc["ccnn", "torch_seeds"] == 2
    assert df.loc["ccnn", "torch_std"] == pytest.approx(np.std([55, 56], ddof=1))
    assert df.loc["ccnn", "torch_diff"] == pytest.approx(55.5 - 55.65)
    assert df.loc["ccnn", "jax_verdict"] == "fail"
    assert df.loc["k", "torch_verdict"] == "better"
    assert df.loc["k", "jax_verdict"] == "not run"
    assert df.loc["ccnn", "tolerance"] == "within 1 accuracy points"


def test_a_run_that_deviates_from_table6_gets_no_verdict(tmp_path):
    paths = [
        _result(tmp_path, "listops", "ccnn", "torch", 0, "accuracy", 55.7),  # would pass
        _result(tmp_path, "listops", "ccnn", "jax", 0, "accuracy", 55.7),
    ]
    r = json.loads(Path(paths[0]).read_text())
    r["deviations"] = [{"key": "epochs", "value": 5, "paper": 50, "source": "Table 6"}]
    r.update(evaluation="best_val", val_is_test=False, c_ratio_realised=0.97)
    Path(paths[0]).write_text(json.dumps(r))
    res = B.load_results(paths, "paper")
    df = B.results_table("table1", ["listops"], res, PAPER, "paper", TOL).set_index("variant")
    # one deviating seed marks the whole row: both frameworks' cells, no verdict
    assert df.loc["ccnn", "torch_verdict"] == "deviates: epochs=5 (Table 6: 50)"
    assert df.loc["ccnn", "jax_verdict"] == "deviates: epochs=5 (Table 6: 50)"
    assert df.loc["ccnn", "torch_c_ratio_realised"] == pytest.approx(0.97)
    assert df.loc["ccnn", "evaluation"] == "final epoch"  # the jax file predates best_val


def test_evaluation_column_says_where_the_epoch_was_selected(tmp_path):
    paths = [_result(tmp_path, "text", "k", "torch", 0, "accuracy", 88.0)]
    r = json.loads(Path(paths[0]).read_text())
    r.update(evaluation="best_val", val_is_test=True)
    Path(paths[0]).write_text(json.dumps(r))
    df = B.results_table("table1", ["text"], B.load_results(paths, "paper"), PAPER, "paper", TOL)
    assert df["evaluation"].iloc[0].startswith("best epoch selected on the test set")
    assert df["torch_verdict"].iloc[0] == "pass"


def test_error_metric_relative_tolerance_and_missing_paper_number(tmp_path):
    paths = [
        _result(tmp_path, "darcyflow", "krwd", "torch", 0, "rel_l2", 0.0024),  # +5 %: pass
        _result(tmp_path, "darcyflow", "kr", "torch", 0, "rel_l2", 0.0040),  # fail
    ]
    df = B.results_table(
        "table2", ["darcyflow"], B.load_results(paths, "paper"), PAPER, "paper", TOL
    )
    v = df.set_index("variant")["torch_verdict"]
    assert v["krwd"] == "pass" and v["kr"] == "fail"
    p = [_result(tmp_path, "pathx", "ccnn", "torch", 0, "accuracy", 50.0)]
    df = B.results_table("table1", ["pathx"], B.load_results(p, "paper"), PAPER, "paper", TOL)
    assert df["torch_verdict"].iloc[0] == "no published number"


def test_data_column_states_the_distribution(tmp_path):
    """Issue 11: generated data says how close it is to the real distribution."""
    paths = []
    for seed, dist in ((0, "faithful"), (1, "approximate")):
        paths.append(_result(tmp_path, "listops", "k", "torch", seed, "accuracy", 50.0,
                             "generated", "smoke"))  # fmt: skip
        r = json.loads(Path(paths[-1]).read_text())
        r["data"]["distribution"] = dist
        Path(paths[-1]).write_text(json.dumps(r))
    df = B.results_table("table1", ["listops"], B.load_results(paths, "smoke"), PAPER, "smoke", TOL)
    assert df["data"].iloc[0] == "generated (approximate)+generated (faithful)"
    assert df["torch_verdict"].iloc[0].startswith("not comparable")


def test_smoke_is_never_comparable_and_never_lands_in_reports(tmp_path):
    p = [_result(tmp_path, "text", "k", "jax", 0, "accuracy", 88.3, "substitute", "smoke")]
    df = B.results_table("table1", ["text"], B.load_results(p, "smoke"), PAPER, "smoke", TOL)
    assert df["jax_verdict"].iloc[0].startswith("not comparable (profile smoke, data substitute")
    assert df["profile"].iloc[0] == "smoke" and df["data"].iloc[0] == "substitute"
    with pytest.raises(B.ReportError, match="refusing"):
        B.write_csv(df, B.PAPER_REPORTS / "table1.csv", "smoke")
    with pytest.raises(B.ReportError, match="is a 'smoke' run"):
        B.load_results(p, "paper")
    # generated data under the paper profile: not comparable either
    q = [_result(tmp_path, "image", "k", "jax", 0, "accuracy", 86.0, "generated")]
    df = B.results_table("table1", ["image"], B.load_results(q, "paper"), PAPER, "paper", TOL)
    assert df["jax_verdict"].iloc[0] == "not comparable (data generated)"


def test_architecture_table_fig10_and_render(tmp_path):
    p = [
        _result(tmp_path, "darcyflow", "krwd", "torch", 0, "rel_l2", 0.1, "generated", "smoke"),
        _result(tmp_path, "darcyflow", "kr", "jax", 0, "rel_l2", 0.1, "generated", "smoke"),
    ]
    res = B.load_results(p, "smoke")
    arch = B.architecture_table("table5", res, PAPER, "smoke")
    assert list(arch["paper_depth"]) == [3] and list(arch["width"]) == ["2 2 2"]
    out = tmp_path / "out"
    B.fig10(res, "smoke", str(out / "f.png"), str(out / "f.pdf"))
    assert (out / "f.png").stat().st_size > 1000 and (out / "f.pdf").exists()
    arch.to_csv(out / "table5.csv", index=False)
    (out / "parity.csv").write_text(
        "# a comment line, as pipelines.parity writes\ncheck,passed\nforward,True\n"
    )
    B.render("smoke", [str(out / "table5.csv")], str(out / "parity.csv"), str(out / "f.png"),
             str(out / "s.md"), str(out / "s.html"))  # fmt: skip
    assert "SMOKE PROFILE" in (out / "s.md").read_text()
    assert "data:image/png;base64" in (out / "s.html").read_text()
