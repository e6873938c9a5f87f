"""The claims study (issue 12): does this suite reproduce what the paper claims, at a scale a
2-core CPU runs? Reads result.json / metrics.csv files (never a model) of the claims profile
and writes claims.csv (one row per claim and dataset, plus an `overall` row per claim) and
report.{md,html} with the claims table, learning curves, Fig. 10-style complexity curves and the
found architectures.

    python -m reports.claims --profile claims --claims C1 C2 C3 C4 C5 C6 \
        --out-dir claims RESULT.json...

The rules (also in pipelines/config/claims.yaml and the README, written before any result):
scores are "higher is better" (accuracy; minus the error for DarcyFlow/Cosmic), SE = standard
error over seeds. A difference counts only when it exceeds two SEs; otherwise `inconclusive`.
  C1  learning kernel sizes helps, k >= ccnn (Tables 1-3): paired by (framework, seed) over
      torch and jax (same seed = same batch order); holds if mean(k - ccnn) > 2 SE, fails if
      < -2 SE.
  C2  learned downsampling cuts cost at no accuracy cost: (a) kr's final C_curr/C_target < 1
      (paper 0.75-0.89): holds if mean + 2 SE < 1, fails if mean - 2 SE >= 1; (b) kr within the
      tolerance t of k (1 accuracy point; dense tasks 10 % of k's error), paired as C1: holds if
      mean(kr - k) - 2 SE > -t, fails if mean(kr - k) + 2 SE < -t. Both hold -> holds; either
      fails -> fails.
  C3  the budget holds throughout training: krwd's C_curr/C_target within 1.00 +- band (0.05)
      at every epoch of every run (Fig. 10): no SE, a bound on every value.
  C4  krwd >= ccnn at equal complexity: as C1 with krwd, and krwd's final C_curr/C_target
      within the C3 band; a significant win outside the band is `inconclusive`.
  C5  PyTorch trim and virtual train to the same result: torch - torch_virtual paired by
      (variant, seed) (same initialisation, same batches; the variants of
      claims.virtual_variants): holds if |mean| + 2 SE <= t, fails if |mean| - 2 SE > t and
      |mean| > 2 SE.
  C6  PyTorch and JAX, each from its own initialisation, train to the same result: per variant
      mean(torch) - mean(jax) with the unpaired (Welch) SE, averaged over variants; equivalence
      as C5.
Overall (per claim, over datasets): fails if it fails on any dataset, holds if it holds on
every dataset, else inconclusive.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

CLAIMS = {
    "C1": "learning kernel sizes helps: k >= ccnn (Tables 1-3)",
    "C2": "learned downsampling cuts cost at no accuracy cost: kr's C_curr/C_target < 1 and "
    "kr within tolerance of k",
    "C3": "the budget holds throughout training: krwd's C_curr/C_target within 1 +- band at "
    "every epoch (Fig. 10)",
    "C4": "krwd >= ccnn at equal complexity",
    "C5": "PyTorch trim and virtual train to the same result",
    "C6": "PyTorch and JAX, each from its own initialisation, train to the same result",
}
# what each claim needs from the profile: (variants, frameworks)
NEEDS = {
    "C1": ({"ccnn", "k"}, {"torch", "jax"}),
    "C2": ({"k", "kr"}, {"torch", "jax"}),
    "C3": ({"krwd"}, set()),
    "C4": ({"ccnn", "krwd"}, {"torch", "jax"}),
    "C5": (set(), {"torch", "torch_virtual"}),
    "C6": (set(), {"torch", "jax"}),
}
VERDICTS = ("holds", "fails", "inconclusive")
VARIANTS = ("ccnn", "k", "kr", "krwd")
FRAMEWORKS = ("torch", "torch_virtual", "jax")


class ClaimsError(ValueError):
    pass


def check_request(claims: list[str], variants, frameworks, virtual_variants=None) -> None:
    """Unknown claim ids, or a profile lacking a variant/framework a claim needs: fail, naming
    what is missing (the workflow calls this before any job)."""
    unknown = [c for c in claims if c not in CLAIMS]
    if unknown:
        raise ClaimsError(f"unknown claim id(s) {unknown}; valid: {list(CLAIMS)}")
    problems = []
    for c in claims:
        need_v, need_f = NEEDS[c]
        miss_v, miss_f = sorted(need_v - set(variants)), sorted(need_f - set(frameworks))
        if miss_v:
            problems.append(f"{c} needs variants {miss_v}")
        if miss_f:
            problems.append(f"{c} needs frameworks {miss_f}")
    if "C5" in claims and virtual_variants is not None:
        if not set(virtual_variants) & set(variants):
            problems.append(
                f"C5 needs a torch_virtual variant among {list(variants)}; "
                f"claims.virtual_variants is {list(virtual_variants)}"
            )
    if problems:
        raise ClaimsError(
            "the claims profile omits what a claim needs: "
            + "; ".join(problems)
            + f" (profile has variants {list(variants)}, frameworks {list(frameworks)})"
        )


# ---- inputs ---------------------------------------------------------------------------------
def load(paths: list[str], profile: str) -> list[dict]:
    out = []
    for p in paths:
        r = json.loads(Path(p).read_text())
        if r.get("profile") != profile:
            raise ClaimsError(f"{p} is a {r.get('profile')!r} run, not a {profile!r} run")
        m = Path(p).parent / "metrics.csv"
        r["_metrics"] = pd.read_csv(m) if m.exists() else pd.DataFrame()
        r["_path"] = str(p)
        out.append(r)
    if not out:
        raise ClaimsError("no results given")
    return out


def score(r: dict, key: str = "test_metric") -> float:
    """Higher is better: accuracy as is, errors negated."""
    v = float(r[key])
    return v if r.get("higher_is_better", True) else -v


# ---- statistics -----------------------------------------------------------------------------
def paired(a: dict, b: dict) -> tuple[float, float, int]:
    """Mean and SE of a[k] - b[k] over the keys both have."""
    keys = sorted(set(a) & set(b))
    d = np.array([a[k] - b[k] for k in keys], np.float64)
    if d.size == 0:
        return float("nan"), float("nan"), 0
    se = float(d.std(ddof=1) / math.sqrt(d.size)) if d.size > 1 else float("nan")
    return float(d.mean()), se, int(d.size)


def mean_se(v) -> tuple[float, float, int]:
    v = np.asarray(list(v), np.float64)
    if v.size == 0:
        return float("nan"), float("nan"), 0
    se = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else float("nan")
    return float(v.mean()), se, int(v.size)


def superiority(diff: float, se: float) -> str:
    """A > B claimed: holds / fails only when |diff| exceeds 2 SE."""
    if not np.isfinite(diff) or not np.isfinite(se):
        return "inconclusive"
    if diff > 2 * se:
        return "holds"
    if diff < -2 * se:
        return "fails"
    return "inconclusive"


def non_inferiority(diff: float, se: float, tol: float) -> str:
    if not np.isfinite(diff) or not np.isfinite(se):
        return "inconclusive"
    if diff - 2 * se > -tol:
        return "holds"
    if diff + 2 * se < -tol:
        return "fails"
    return "inconclusive"


def equivalence(diff: float, se: float, tol: float) -> str:
    if not np.isfinite(diff) or not np.isfinite(se):
        return "inconclusive"
    if abs(diff) + 2 * se <= tol:
        return "holds"
    if abs(diff) - 2 * se > tol and abs(diff) > 2 * se:
        return "fails"
    return "inconclusive"


def combine(*verdicts: str) -> str:
    if "fails" in verdicts:
        return "fails"
    return "holds" if all(v == "holds" for v in verdicts) else "inconclusive"


# ---- the claims -----------------------------------------------------------------------------
def _by(runs, variant=None, frameworks=("torch", "jax"), key="test_metric"):
    """{(framework, seed): score} of one variant."""
    return {
        (r["framework"], r["seed"]): score(r, key)
        for r in runs
        if (variant is None or r["variant"] == variant) and r["framework"] in frameworks
    }


def _fmt(x: float, digits: int = 4) -> str:
    return "nan" if x is None or not np.isfinite(x) else f"{x:.{digits}g}"


def tolerance(runs: list[dict], tol: dict, ref_variant: str | None = None) -> float:
    """1 accuracy point, or error_relative of the reference's mean error (dense tasks)."""
    if runs[0].get("higher_is_better", True):
        return float(tol["accuracy_points"])
    ref = [r["test_metric"] for r in runs if ref_variant is None or r["variant"] == ref_variant]
    return float(tol["error_relative"] * np.mean(ref))


def evaluate(claim: str, runs: list[dict], tol: dict, band: float) -> dict:
    """One dataset's row of `claim`."""
    unit = runs[0].get("metric", "")
    row = {"diff": float("nan"), "se": float("nan"), "n": 0, "tolerance": float("nan")}

    def mean_of(v, fws=("torch", "jax")):
        return mean_se(_by(runs, v, fws).values())

    if claim in ("C1", "C4"):
        a = "k" if claim == "C1" else "krwd"
        diff, se, n = paired(_by(runs, a), _by(runs, "ccnn"))
        verdict = superiority(diff, se)
        ma, mb = mean_of(a), mean_of("ccnn")
        numbers = (
            f"{a} {_fmt(ma[0])} (n={ma[2]}), ccnn {_fmt(mb[0])} (n={mb[2]}) [score, {unit}]; "
            f"paired diff {_fmt(diff)} +- {_fmt(se)} SE (n={n})"
        )
        if claim == "C4":
            ratios = [r["c_ratio"] for r in runs if r["variant"] == "krwd"]
            worst = max(abs(x - 1) for x in ratios) if ratios else float("nan")
            numbers += f"; krwd final C_curr/C_target {_fmt(min(ratios))}..{_fmt(max(ratios))}"
            if verdict == "holds" and not worst <= band:
                verdict = "inconclusive"
                numbers += f" (outside 1 +- {band}: not equal complexity)"
        row.update(diff=diff, se=se, n=n, numbers=numbers, verdict=verdict)
    elif claim == "C2":
        ratios = [r["c_ratio"] for r in runs if r["variant"] == "kr"]
        rm, rse, rn = mean_se(ratios)
        if np.isfinite(rse):
            va = "holds" if rm + 2 * rse < 1 else "fails" if rm - 2 * rse >= 1 else "inconclusive"
        else:
            va = "inconclusive"
        t = tolerance(runs, tol, "k")
        diff, se, n = paired(_by(runs, "kr"), _by(runs, "k"))
        vb = non_inferiority(diff, se, t)
        row.update(
            diff=diff,
            se=se,
            n=n,
            tolerance=t,
            verdict=combine(va, vb),
            numbers=(
                f"kr C_curr/C_target {_fmt(rm)} +- {_fmt(rse)} SE (n={rn}) -> {va}; "
                f"kr - k {_fmt(diff)} +- {_fmt(se)} SE (n={n}), tolerance {_fmt(t)} -> {vb}"
            ),
        )
    elif claim == "C3":
        worst, where, epochs = 0.0, "", 0
        for r in runs:
            if r["variant"] != "krwd" or "c_ratio" not in r["_metrics"]:
                continue
            c = r["_metrics"]["c_ratio"].to_numpy(np.float64)
            epochs += c.size
            i = int(np.argmax(np.abs(c - 1)))
            if abs(c[i] - 1) >= worst:
                worst, where = float(abs(c[i] - 1)), f"{r['framework']} seed {r['seed']} "
                where += f"epoch {i + 1}: {c[i]:.4f}"
        verdict = "inconclusive" if epochs == 0 else "holds" if worst <= band else "fails"
        row.update(
            diff=worst,
            n=epochs,
            tolerance=band,
            verdict=verdict,
            numbers=f"max abs(C_curr/C_target - 1) = {worst:.4f} over {epochs} epochs ({where})",
        )
    elif claim == "C5":
        a = {(r["variant"], r["seed"]): score(r) for r in runs if r["framework"] == "torch"}
        b = {(r["variant"], r["seed"]): score(r) for r in runs if r["framework"] == "torch_virtual"}
        diff, se, n = paired(a, b)
        t = tolerance(runs, tol)
        row.update(
            diff=diff,
            se=se,
            n=n,
            tolerance=t,
            verdict=equivalence(diff, se, t),
            numbers=f"trim - virtual {_fmt(diff)} +- {_fmt(se)} SE (n={n} pairs of "
            f"{'/'.join(sorted({k[0] for k in set(a) & set(b)}, key=VARIANTS.index))}), "
            f"tolerance {_fmt(t)}",
        )
    elif claim == "C6":
        diffs, ses, parts = [], [], []
        for v in VARIANTS:
            ta = [score(r) for r in runs if r["variant"] == v and r["framework"] == "torch"]
            ja = [score(r) for r in runs if r["variant"] == v and r["framework"] == "jax"]
            if not ta or not ja:
                continue
            mt, st, _nt = mean_se(ta)
            mj, sj, _nj = mean_se(ja)
            diffs.append(mt - mj)
            ses.append(math.hypot(st, sj))
            parts.append(f"{v} {_fmt(mt - mj)}")
        diff = float(np.mean(diffs)) if diffs else float("nan")
        se = math.sqrt(sum(s * s for s in ses)) / len(ses) if ses else float("nan")
        t = tolerance(runs, tol)
        row.update(
            diff=diff,
            se=se,
            n=len(diffs),
            tolerance=t,
            verdict=equivalence(diff, se, t),
            numbers=f"torch - jax per variant: {', '.join(parts)}; mean {_fmt(diff)} +- "
            f"{_fmt(se)} SE (Welch), tolerance {_fmt(t)}",
        )
    return row


def claims_table(
    results: list[dict], claims: list[str], tol: dict, band: float, rules: dict[str, str]
) -> pd.DataFrame:
    by_ds = defaultdict(list)
    for r in results:
        by_ds[r["dataset"]].append(r)
    rows = []
    for c in claims:
        per = []
        for d in sorted(by_ds):
            row = {"claim": c, "dataset": d, "statement": CLAIMS[c], "rule": rules[c]}
            row.update(evaluate(c, by_ds[d], tol, band))
            row["metric"] = by_ds[d][0].get("metric", "")
            per.append(row)
        rows += per
        verdicts = [r["verdict"] for r in per]
        counts = ", ".join(f"{verdicts.count(v)} {v}" for v in VERDICTS if verdicts.count(v))
        rows.append(
            {
                "claim": c,
                "dataset": "overall",
                "statement": CLAIMS[c],
                "rule": "fails if it fails on any dataset; holds if it holds on every one",
                "numbers": counts,
                "verdict": combine(*verdicts) if verdicts else "inconclusive",
            }
        )
    cols = ["claim", "dataset", "verdict", "numbers", "diff", "se", "n", "tolerance", "metric"]
    df = pd.DataFrame(rows)
    return df[[*cols, "statement", "rule"]]


RULES = {
    "C1": "paired (framework, seed) k - ccnn: holds if > 2 SE, fails if < -2 SE",
    "C2": "kr C/Ct: mean + 2 SE < 1; kr - k non-inferior within tolerance at 2 SE; both",
    "C3": "every epoch of every krwd run within 1 +- band",
    "C4": "as C1 with krwd; a win needs krwd's C/Ct within 1 +- band",
    "C5": "paired (variant, seed) torch - torch_virtual: |mean| + 2 SE <= tolerance",
    "C6": "per-variant torch - jax (Welch SE), mean over variants: |mean| + 2 SE <= tolerance",
}


# ---- figures --------------------------------------------------------------------------------
COLOURS = {"ccnn": "tab:grey", "k": "tab:green", "kr": "tab:blue", "krwd": "tab:red"}
STYLES = {"torch": "-", "torch_virtual": ":", "jax": "--"}


def _curves(results, key, variants):
    out = defaultdict(list)  # (dataset, variant, framework) -> [array per seed]
    for r in results:
        m = r["_metrics"]
        if r["variant"] in variants and key in m:
            out[(r["dataset"], r["variant"], r["framework"])].append(m[key].to_numpy(np.float64))
    return out


def figure(results, key_fn, variants, ylabel, title, out: Path, hline=None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted({r["dataset"] for r in results})
    fig, axes = plt.subplots(1, len(datasets), figsize=(4 * len(datasets), 3.2), squeeze=False)
    for ax, d in zip(axes.flat, datasets):
        runs = [r for r in results if r["dataset"] == d]
        curves = _curves(runs, key_fn(runs[0]), variants)
        for (_, v, fw), seeds in sorted(curves.items()):
            n = min(len(s) for s in seeds)
            y = np.array([s[:n] for s in seeds])
            x = np.arange(1, n + 1)
            ax.plot(x, y.mean(0), STYLES.get(fw, "-"), color=COLOURS[v], lw=1.2, label=f"{v} {fw}")
            if len(seeds) > 1:
                ax.fill_between(x, y.min(0), y.max(0), color=COLOURS[v], alpha=0.12, lw=0)
        if hline is not None:
            for h in hline:
                ax.axhline(h, color="black", lw=0.6, ls=":")
        ax.set_title(d)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel if not callable(ylabel) else ylabel(runs[0]))
    axes.flat[0].legend(fontsize=6, ncol=2)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)


# ---- report ---------------------------------------------------------------------------------
def architectures_md(results: list[dict]) -> str:
    """Table 4/5 style: per dataset, krwd's blocks (seed 0 per framework)."""
    parts = []
    for d in sorted({r["dataset"] for r in results}):
        runs = sorted(
            (r for r in results if r["dataset"] == d and r["variant"] == "krwd"),
            key=lambda r: (r["framework"], r["seed"]),
        )
        firsts = {}
        for r in runs:
            firsts.setdefault(r["framework"], r)
        if not firsts:
            continue
        depth = max(len(r["architecture"]) for r in firsts.values())
        header = "| block | " + " | ".join(f"{fw} (seed {r['seed']})" for fw, r in firsts.items())
        lines = [f"**{d}** (krwd; kernel size / resolution / width per block)", "", header + " |"]
        lines.append("|---" * (len(firsts) + 1) + "|")
        for i in range(depth):
            cells = []
            for r in firsts.values():
                if i < len(r["architecture"]):
                    b = r["architecture"][i]
                    cells.append(
                        f"k {'x'.join(map(str, b['kernel_size']))}, r "
                        f"{'x'.join(map(str, b['resolution']))}, w {'/'.join(map(str, b['width']))}"
                    )
                else:
                    cells.append("-")
            lines.append(f"| {i + 1} | " + " | ".join(cells) + " |")
        lines.append(
            "| depth | " + " | ".join(str(len(r["architecture"])) for r in firsts.values()) + " |"
        )
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def scores_md(results: list[dict]) -> str:
    """Datasets as columns, variants x frameworks as rows: mean +- SE test metric (C/Ct)."""
    datasets = sorted({r["dataset"] for r in results})
    lines = ["| variant | framework | " + " | ".join(datasets) + " |"]
    lines.append("|---|---|" + "---|" * len(datasets))
    for v in VARIANTS:
        for fw in FRAMEWORKS:
            cells, any_run = [], False
            for d in datasets:
                rs = [
                    r
                    for r in results
                    if r["dataset"] == d and r["variant"] == v and r["framework"] == fw
                ]
                if not rs:
                    cells.append("")
                    continue
                any_run = True
                m, se, _n = mean_se(r["test_metric"] for r in rs)
                c, _, _ = mean_se(r["c_ratio"] for r in rs)
                sd = f" +- {_fmt(se, 3)}" if np.isfinite(se) else ""
                cells.append(f"{_fmt(m)}{sd} ({c:.2f})")
            if any_run:
                lines.append(f"| {v} | {fw} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(df: pd.DataFrame, results: list[dict], out_dir: Path, profile: str, tables=()) -> None:
    from pipelines.provenance import write_atomic

    figs = out_dir / "figures"
    curves_png, cost_png = figs / "learning_curves.png", figs / "complexity.png"
    figure(
        results,
        lambda r: f"val_{r['metric']}",
        VARIANTS,
        lambda r: f"val {r['metric']}",
        "Validation metric per epoch (mean over seeds, band = min..max); "
        "line style: torch -, torch_virtual :, jax --",
        curves_png,
    )
    figure(
        results,
        lambda r: "c_ratio",
        ("kr", "krwd"),
        "C_curr / C_target",
        "Fig. 10 style: relative complexity during training (kr blue, krwd red)",
        cost_png,
        hline=(0.95, 1.0, 1.05),
    )
    data = sorted({f"{r['dataset']}: {r['data'].get('kind')} ({r['data'].get('distribution')})"
                   f", train {r['data']['splits'].get('train')}" for r in results})  # fmt: skip
    shapes = sorted(
        {
            f"{r['dataset']}: input {(r['config'].get('resize') or {}).get('shape', 'full')}, "
            f"{r['epochs']} epochs"
            for r in results
        }
    )
    table = df[["claim", "dataset", "verdict", "numbers"]]
    md = [
        f"# DNArch claims study ({profile} profile)",
        "",
        "Reduced scale (CPU): small models, generated data, few epochs. The verdicts test the "
        "paper's qualitative claims at this scale; the numbers are not the paper's.",
        "",
        "Data: " + "; ".join(data),
        "",
        "Scale: " + "; ".join(shapes),
        "",
        "## Claims",
        "",
        table.to_markdown(index=False),
        "",
        "Rules:",
        "",
        *[f"- {c}: {CLAIMS[c]}. Verdict rule: {RULES[c]}." for c in dict.fromkeys(df["claim"])],
        "",
        "## Test metric per variant and framework (mean +- SE over seeds; C_curr/C_target)",
        "",
        scores_md(results),
        "",
        "## Learning curves",
        "",
        f"![learning curves](figures/{curves_png.name})",
        "",
        "## Complexity during training (Fig. 10 style)",
        "",
        f"![complexity](figures/{cost_png.name})",
        "",
        "## Found architectures (Tables 4/5 style)",
        "",
        architectures_md(results),
        "",
    ]
    from reports.build import readable

    for t in tables:  # the results/architecture tables of this profile, as the paper prints them
        view = readable(pd.read_csv(t))
        if view is not None:
            md += [
                f"## {Path(t).stem} (paper layout; {Path(t).name} has every column)",
                "",
                view,
                "",
            ]
    write_atomic(out_dir / "report.md", "\n".join(md))

    html = _html(md, {curves_png.name: curves_png, cost_png.name: cost_png}, profile)
    write_atomic(out_dir / "report.html", html)


def _html(md_lines: list[str], images: dict[str, Path], profile: str) -> str:
    """Minimal Markdown -> HTML for our own report (headings, tables, lists, images)."""
    import html as h

    out = [
        f"<html><head><meta charset='utf-8'><title>DNArch claims ({profile})</title><style>"
        "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;"
        "padding:2px 6px}</style></head><body>"
    ]
    table: list[str] = []
    for line in [*"\n".join(md_lines).split("\n"), ""]:
        if line.startswith("|"):
            table.append(line)
            continue
        if table:
            from reports.build import markdown_table_html

            out.append(markdown_table_html("\n".join(table)))
            table = []
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{h.escape(line.lstrip('# '))}</h{level}>")
        elif line.startswith("!["):
            name = line.split("(")[1].rstrip(")").split("/")[-1]
            png = base64.b64encode(images[name].read_bytes()).decode()
            out.append(f"<img src='data:image/png;base64,{png}' style='max-width:100%'>")
        elif line.startswith("- "):
            out.append(f"<li>{h.escape(line[2:])}</li>")
        elif line.strip():
            out.append(f"<p>{h.escape(line)}</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m reports.claims", description=__doc__.split("\n")[0])
    p.add_argument("--profile", required=True)
    p.add_argument("--claims", nargs="+", default=list(CLAIMS))
    p.add_argument("--variants", nargs="+", default=list(VARIANTS))
    p.add_argument("--frameworks", nargs="+", default=["torch", "torch_virtual", "jax"])
    p.add_argument("--accuracy-points", type=float, default=1.0)
    p.add_argument("--error-relative", type=float, default=0.10)
    p.add_argument("--band", type=float, default=0.05, help="C3/C4: |C_curr/C_target - 1| bound")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--tables", nargs="*", default=[], help="results tables to show paper-style")
    p.add_argument("inputs", nargs="+")
    args = p.parse_args(argv)
    try:
        check_request(args.claims, args.variants, args.frameworks)
        if Path(args.out_dir).resolve() in (
            Path(__file__).resolve().parent,
            Path(__file__).resolve().parent.parent / "results",
        ):
            raise ClaimsError(f"refusing to write claims outputs to {args.out_dir}")
        results = load(args.inputs, args.profile)
        tol = {"accuracy_points": args.accuracy_points, "error_relative": args.error_relative}
        df = claims_table(results, args.claims, tol, args.band, RULES)
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        from pipelines.provenance import write_atomic

        write_atomic(out / "claims.csv", df.to_csv(index=False, lineterminator="\n"))
        report(df, results, out, args.profile, args.tables)
    except (ClaimsError, OSError, KeyError) as e:
        print(f"reports.claims: error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.out_dir}/claims.csv and report.{{md,html}}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
