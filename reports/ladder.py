"""The step ladder of the claims study: claims C1-C4 evaluated on runs of several training
lengths (rungs) per dataset, so that a verdict at the profile's few hundred steps can be told
apart from one that changes, or turns, with more training. Reads result.json / metrics.csv
files of the claims profile (the rung of a run is its result.json `epochs`) and writes

    ladder.csv   one row per claim x dataset x rung: epochs, steps, diff, SE, n, tolerance,
                 verdict (and the numbers it rests on), from the registry's own evaluation
                 functions (reports.claims.claims_table on the runs of that rung)
    ladder.png   each claim's difference (mean +- 2 SE) against the training steps (log x), one
                 row of panels per claim and one column per dataset, the verdict at every rung

    python -m reports.ladder --profile claims --claims C1 C2 C3 C4 \\
        --csv claims/ladder.csv --png claims/ladder.png RESULT.json...

The workflow (pipelines/rules/ladder.smk) trains the rungs listed under `ladder` in the
claims profile and runs this.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from reports import claims as C
from reports.build import save_figure

# the claims a rung can decide from one framework's runs: C5 compares PyTorch modes, C6 the
# two frameworks, neither depends on how long the models train
LADDER_CLAIMS = ("C1", "C2", "C3", "C4")
COLUMNS = ["claim", "dataset", "epochs", "steps", "diff", "se", "n", "tolerance", "verdict",
           "outcome", "claimed", "numbers", "metric", "runs"]  # fmt: skip
# what each claim's `diff` is (scores are higher-is-better: errors negated)
DIFF_LABEL = {
    "C1": "k - ccnn",
    "C2": "kr - k",
    "C3": "max abs(C/Ct - 1)",
    "C4": "krwd - ccnn",
}
VERDICT_COLOUR = {"holds": "tab:green", "fails": "tab:red", "inconclusive": "tab:grey"}


def check_claims(claims: list[str], variants) -> None:
    """Only C1-C4, and every variant they compare trained at each rung."""
    bad = [c for c in claims if c not in LADDER_CLAIMS]
    if bad:
        raise C.ClaimsError(f"the ladder evaluates {list(LADDER_CLAIMS)}, not {bad}")
    missing = {c: sorted(C.CLAIMS[c].variants - set(variants)) for c in claims}
    missing = {c: m for c, m in missing.items() if m}
    if missing:
        raise C.ClaimsError(
            "the ladder omits what a claim needs: "
            + "; ".join(f"{c} needs variants {m}" for c, m in missing.items())
            + f" (ladder variants {list(variants)})"
        )


def ladder_table(results: list[dict], claims: list[str], tol: dict, band: float) -> pd.DataFrame:
    """One row per claim x dataset x rung (a rung = the runs of one dataset with the same
    number of epochs), each from reports.claims.claims_table on that rung's runs alone."""
    rungs: dict[tuple[str, int], list[dict]] = {}
    for r in results:
        rungs.setdefault((r["dataset"], int(r["epochs"])), []).append(r)
    rows = []
    for (d, e), runs in sorted(rungs.items()):
        steps = sorted({int(r["steps"]) for r in runs})
        if len(steps) != 1:
            raise C.ClaimsError(
                f"{d} at {e} epochs: runs with different step counts {steps} (another batch "
                "size or training-set size); one rung must train the same number of steps"
            )
        table = C.claims_table(runs, claims, tol, band)
        table = table[table["dataset"] == d].copy()
        table["epochs"], table["steps"], table["runs"] = e, steps[0], len(runs)
        rows.append(table)
    df = pd.concat(rows, ignore_index=True)
    df["n"] = df["n"].astype(int)  # claims_table's `overall` rows, dropped here, had none
    order = {c: i for i, c in enumerate(claims)}
    df = df.sort_values(["claim", "dataset", "steps"], key=lambda s: s.map(order) if s.name ==
                        "claim" else s, kind="stable")  # fmt: skip
    return df[COLUMNS].reset_index(drop=True)


def figure(df: pd.DataFrame, out: Path) -> None:
    """Each claim's diff +- 2 SE against steps (log x), claims as rows, datasets as columns;
    the verdict of every rung written beside its point. Reference lines: 0 for the paired
    differences, -t for C2's non-inferiority bound, the band for C3's bound."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    claims = list(dict.fromkeys(df["claim"]))
    datasets = sorted(set(df["dataset"]))
    fig, axes = plt.subplots(
        len(claims), len(datasets), figsize=(4.2 * len(datasets), 2.6 * len(claims)),
        squeeze=False,
    )  # fmt: skip
    for i, c in enumerate(claims):
        for j, d in enumerate(datasets):
            ax = axes[i, j]
            sub = df[(df["claim"] == c) & (df["dataset"] == d)].sort_values("steps")
            if sub.empty:
                ax.set_axis_off()
                continue
            x = sub["steps"].to_numpy(np.float64)
            y = sub["diff"].to_numpy(np.float64)
            err = 2 * sub["se"].to_numpy(np.float64)
            ax.plot(x, y, "-", color="black", lw=0.8)
            for xi, yi, ei, v in zip(x, y, err, sub["verdict"]):
                colour = VERDICT_COLOUR.get(v, "tab:blue")
                ax.errorbar(xi, yi, yerr=ei if np.isfinite(ei) else None, fmt="o",
                            color=colour, ms=4, capsize=3)  # fmt: skip
                ax.annotate(v, (xi, yi), textcoords="offset points", xytext=(4, 4),
                            fontsize=7, color=colour)  # fmt: skip
            t = sub["tolerance"].dropna()
            if c == "C3":
                if len(t):
                    ax.axhline(t.iloc[0], color="black", lw=0.6, ls=":", label="band")
            else:
                ax.axhline(0.0, color="black", lw=0.6, ls=":")
            if c == "C2" and len(t):
                ax.axhline(-t.mean(), color="tab:orange", lw=0.6, ls="--", label="-t")
            ax.set_xscale("log")
            ax.margins(x=0.25, y=0.15)  # room for the verdicts beside the outer points
            ax.set_xticks(x)
            ax.set_xticklabels([f"{int(s)}\n({int(e)} ep)" for s, e in zip(x, sub["epochs"])],
                               fontsize=7)  # fmt: skip
            ax.minorticks_off()
            metric = sub["metric"].iloc[0]
            ax.set_title(f"{c} on {d}", fontsize=9)
            ax.set_ylabel(DIFF_LABEL.get(c, "diff") + ("" if c == "C3" else f"\n({metric} score)"),
                          fontsize=8)  # fmt: skip
            if i == len(claims) - 1:
                ax.set_xlabel("training steps")
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=6)
    fig.suptitle(
        "Claims against training steps: diff (mean +- 2 SE over seeds; scores higher is "
        "better, errors negated) and the verdict at each rung",
        fontsize=9,
    )
    save_figure(fig, out, dpi=90)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m reports.ladder", description=__doc__.split("\n")[0])
    p.add_argument("--profile", required=True)
    p.add_argument("--claims", nargs="+", default=list(LADDER_CLAIMS))
    p.add_argument("--variants", nargs="+", default=list(C.VARIANTS))
    p.add_argument("--accuracy-points", type=float, default=1.0)
    p.add_argument("--error-relative", type=float, default=0.10)
    p.add_argument("--band", type=float, default=0.05, help="C3/C4: |C_curr/C_target - 1| bound")
    p.add_argument("--csv", required=True)
    p.add_argument("--png", required=True)
    p.add_argument("inputs", nargs="+", help="result.json of every run of every rung")
    args = p.parse_args(argv)
    from pipelines.provenance import write_atomic

    try:
        check_claims(args.claims, args.variants)
        results = C.load(args.inputs, args.profile)
        tol = {"accuracy_points": args.accuracy_points, "error_relative": args.error_relative}
        df = ladder_table(results, args.claims, tol, args.band)
        write_atomic(args.csv, df.to_csv(index=False, lineterminator="\n"))
        figure(df, Path(args.png))
    except (C.ClaimsError, OSError, KeyError) as e:
        print(f"reports.ladder: error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.csv} ({len(df)} rows) and {args.png}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
