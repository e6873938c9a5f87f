"""The claims as the paper states them: per (claim, dataset) whether the paper claims it, the
overall verdict over the claimed datasets only, and unclaimed results phrased against the
paper. Hand-built result rows (no files): ListOps, where the paper claims C1, and Pathfinder,
where Sec. 3.1 excepts it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reports import claims as C

TOL = {"accuracy_points": 1.0, "error_relative": 0.10}
PAPER_DATASETS = ["listops", "text", "retrieval", "image", "pathfinder", "pathx",
                  "darcyflow", "cosmic", "cifar10", "cifar100"]  # fmt: skip


def _rows(dataset: str, gain: float, noise: float = 0.2) -> list[dict]:
    """ccnn and k in torch and jax, 3 seeds: k = ccnn + gain (accuracy points) + noise."""
    rng = np.random.default_rng(len(dataset))
    rows = []
    for fw in ("torch", "jax"):
        for seed in range(3):
            for v, value in (("ccnn", 60.0), ("k", 60.0 + gain + noise * rng.standard_normal())):
                rows.append(
                    {"dataset": dataset, "variant": v, "framework": fw, "seed": seed,
                     "metric": "accuracy", "higher_is_better": True, "test_metric": value,
                     "c_ratio": 1.0, "_metrics": pd.DataFrame()}
                )  # fmt: skip
    return rows


def _c1(*parts: list[dict]) -> pd.DataFrame:
    df = C.claims_table([r for p in parts for r in p], ["C1"], TOL, 0.05)
    return df.set_index("dataset")


def test_pathfinder_does_not_decide_c1():
    """k beats ccnn on ListOps and loses on Pathfinder: counting Pathfinder (as the paper does
    not) would make C1 fail; as the paper states it, C1 holds, and Pathfinder's loss agrees with
    the paper (Table 1: k 93.46 below ccnn 94.26)."""
    df = _c1(_rows("listops", +5.0), _rows("pathfinder", -5.0))
    assert list(df["outcome"][["listops", "pathfinder"]]) == ["holds", "fails"]
    assert C.combine(*df["outcome"][["listops", "pathfinder"]]) == "fails"  # Pathfinder counted
    assert df.loc["overall", "verdict"] == "holds"
    assert df.loc["pathfinder", "verdict"] == "agrees with the paper"
    assert df.loc["pathfinder", "claimed"] == "no" and df.loc["listops", "claimed"] == "yes"
    assert "Except for the PathFinder and Path-X tasks" in df.loc["pathfinder", "paper_source"]
    assert "k 93.46, ccnn 94.26" in df.loc["pathfinder", "paper_source"]
    assert "pathfinder agrees with the paper" in df.loc["overall", "numbers"]


def test_an_unclaimed_win_disagrees_and_an_unclaimed_tie_does_not_dilute():
    # k wins on Pathfinder too: reported, against the paper's own Table 1
    df = _c1(_rows("listops", +5.0), _rows("pathfinder", +5.0))
    assert df.loc["pathfinder", "verdict"] == "disagrees with the paper"
    assert df.loc["overall", "verdict"] == "holds"
    # a noisy tie on Pathfinder would make the overall inconclusive if it were counted
    df = _c1(_rows("listops", +5.0), _rows("pathfinder", 0.0, noise=5.0))
    assert df.loc["pathfinder", "outcome"] == "inconclusive"
    assert C.combine(*df["outcome"][["listops", "pathfinder"]]) == "inconclusive"
    assert df.loc["overall", "verdict"] == "holds"
    # and a failure where the paper claims C1 still fails it
    df = _c1(_rows("listops", -5.0), _rows("pathfinder", +5.0))
    assert df.loc["overall", "verdict"] == "fails"


def test_no_claimed_dataset_gives_an_agreement_overall():
    df = _c1(_rows("pathfinder", -5.0)).loc["overall"]
    assert df["claimed"] == "no" and df["verdict"] == "agrees with the paper"
    assert df["numbers"].startswith("claimed on no dataset")
    assert C.agreement("agrees with the paper", "not in the paper") == "agrees with the paper"
    assert C.agreement("agrees with the paper", "disagrees with the paper") == (
        "disagrees with the paper"
    )
    assert C.agreement("not in the paper") == "not in the paper"
    assert C.agreement("agrees with the paper", "inconclusive") == "inconclusive"


def test_scope_is_the_papers():
    """Sec. 3.1 excepts Pathfinder and Path-X from C1; Table 1 has no DNArch_{K,R} on Path-X;
    Sec. 3.2 claims C3 and C4 on all datasets; C5 and C6 are no result of the paper."""
    assert list(C.paper_tables()) == PAPER_DATASETS
    unclaimed = {(c.id, d) for c in C.REGISTRY for d in PAPER_DATASETS if not c.scope(d).claimed}
    assert unclaimed == {("C1", "pathfinder"), ("C1", "pathx"), ("C2", "pathx")} | {
        (c, d) for c in ("C5", "C6") for d in PAPER_DATASETS
    }
    for c in C.REGISTRY:
        for d in PAPER_DATASETS:
            assert c.scope(d).source.startswith(("Sec. ", "Table ", "Appx. ")), (c.id, d)
    assert C.CLAIMS["C1"].scope("pathx").paper is None
    assert C.phrase("holds", C.CLAIMS["C1"].scope("pathx")) == "not in the paper"
    assert C.phrase("holds", C.CLAIMS["C5"].scope("listops")) == "agrees with the paper"
    assert C.phrase("fails", C.CLAIMS["C6"].scope("listops")) == "disagrees with the paper"
    assert C.phrase("inconclusive", C.CLAIMS["C6"].scope("listops")) == "inconclusive"
    assert "0.79x" in C.CLAIMS["C2"].scope("darcyflow").source
    with pytest.raises(C.ClaimsError, match="not a dataset of the paper"):
        C.CLAIMS["C1"].scope("mnist")
