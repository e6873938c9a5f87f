"""Report builders: the paper's Tables 1-5, Fig. 10 and a Markdown/HTML summary, from the
files the training CLI writes (result.json, metrics.csv). Never imports a model.

    python -m reports.build table --table table1 --profile paper --datasets ... \
        --paper reports/paper_results.yaml --out reports/table1.csv RESULT.json...
    python -m reports.build architectures --table table4 --profile paper --paper ... --out ...
    python -m reports.build fig10 --profile paper --png F.png --pdf F.pdf RESULT.json...
    python -m reports.build render --profile paper --md S.md --html S.html --fig F.png \
        --parity parity.csv TABLE.csv...

Every results table is also rendered (summary.md/html) the way the paper prints it: datasets as
columns, variants as rows, each cell "ours (paper) (C_curr/C_target)" per framework with a
verdict mark; architecture tables as Tables 4/5, one row per block (`readable`).

Results tables: per dataset and variant the paper's number (reports/paper_results.yaml), ours
per framework (mean and sample standard deviation over seeds), ours - paper, C_curr/C_target
(mean over seeds), and a verdict against the stated tolerance:
    accuracy:        |ours - paper| <= accuracy_points -> pass; above by more -> better; else fail
    rel. L2, 1-AUROC: |ours - paper| / paper <= error_relative -> pass; lower by more -> better
Only the paper profile on real (downloaded) data is compared; anything else (smoke profile,
generated or substitute data) gets the verdict "not comparable" and says why in the row. A
paper-profile run whose hyperparameters differ from Table 6 (result.json "deviations",
pipelines.table6) gets "deviates: key=value (Table 6: value)" instead of a verdict.
The metric is the test metric of the best-validation epoch (the reference CCNN protocol);
`evaluation` says where the epoch was selected (Text has no validation split: on the test set,
as LRA/S4/CCNN do). C_curr/C_target uses the Eq. 10 sizes (what the paper's tables compare);
`c_ratio_realised` is the complexity of what trim computes (kept integer sizes).
A non-paper table is refused at the paper's output place (reports/<name> at the repository
root), so a smoke table can never overwrite or pass for a real one.
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
import yaml

from pipelines import table6

VARIANTS = ("ccnn", "k", "kr", "krwd")
FRAMEWORKS = ("torch", "jax")
# columns only when such runs exist (claims profile: PyTorch in virtual mode, claim C5)
EXTRA_FRAMEWORKS = ("torch_virtual",)
MARKS = {"pass": "✓", "better": "↑", "fail": "✗", "not run": "–", "no published number": "·"}
REPO = Path(__file__).resolve().parent.parent
PAPER_REPORTS = REPO / "reports"


class ReportError(ValueError):
    pass


# ---- inputs --------------------------------------------------------------------------------
def load_results(paths: list[str], profile: str) -> list[dict]:
    results = []
    for p in paths:
        r = json.loads(Path(p).read_text())
        if r["profile"] != profile:
            raise ReportError(f"{p} is a {r['profile']!r} run, this report is for {profile!r}")
        r["_path"] = str(p)
        results.append(r)
    return results


def guard_output(out: str | Path, profile: str) -> None:
    """A non-paper report must never land where the paper's reports go."""
    if profile != "paper" and Path(out).resolve().parent == PAPER_REPORTS:
        raise ReportError(
            f"refusing to write a {profile!r} report to {out}: reports/ at the repository root "
            "holds paper-profile results only (the smoke profile writes under smoke/reports)"
        )


def write_csv(df: pd.DataFrame, out: str | Path, profile: str) -> None:
    from pipelines.provenance import write_atomic

    guard_output(out, profile)
    write_atomic(out, df.to_csv(index=False, lineterminator="\n"))


def data_label(results: list[dict]) -> str:
    kinds = sorted({run_data_label(r) for r in results})
    return "+".join(kinds) if kinds else "none"


def run_data_label(r: dict) -> str:
    """`kind`, plus how close generated data is to the real distribution, e.g.
    "generated (faithful)"; results without the field print the kind alone."""
    kind, dist = r["data"]["kind"], r["data"].get("distribution")
    return f"{kind} ({dist})" if dist and dist != "real" else kind


# ---- verdicts -------------------------------------------------------------------------------
def verdict(ours: float, paper: float | None, higher: bool, tol: dict, comparable: str) -> str:
    if comparable != "yes":
        return f"not comparable ({comparable})"
    if ours is None or (isinstance(ours, float) and math.isnan(ours)):
        return "not run"
    if paper is None:
        return "no published number"
    if higher:
        diff = ours - paper
        if abs(diff) <= tol["accuracy_points"]:
            return "pass"
        return "better" if diff > 0 else "fail"
    rel = (ours - paper) / paper
    if abs(rel) <= tol["error_relative"]:
        return "pass"
    return "better" if rel < 0 else "fail"


def evaluation_text(runs: list[dict]) -> str:
    """Where the tested epoch was selected (result.json `evaluation`, `val_is_test`)."""
    if any(r.get("evaluation") != "best_val" for r in runs):
        return "final epoch"
    if any(r.get("val_is_test") for r in runs):
        return "best epoch selected on the test set (no validation split; LRA/CCNN practice)"
    return "best validation epoch"


def tolerance_text(metric: str, tol: dict) -> str:
    if metric == "accuracy":
        return f"within {tol['accuracy_points']:g} accuracy points"
    return f"within {100 * tol['error_relative']:g} % relative"


def comparability(profile: str, results: list[dict]) -> str:
    why = []
    if profile != "paper":
        why.append(f"profile {profile}")
    kinds = {r["data"]["kind"] for r in results}
    if kinds - {"real"}:
        why.append("data " + "+".join(sorted(kinds - {"real"})))
    return "yes" if not why else ", ".join(why)


def _stats(values: list[float]) -> tuple[float, float, int]:
    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], np.float64)
    if v.size == 0:
        return float("nan"), float("nan"), 0
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0, int(v.size)


def results_table(
    table: str, datasets: list[str], results: list[dict], paper: dict, profile: str, tol: dict
) -> pd.DataFrame:
    spec = paper["tables"][table]
    by_key = defaultdict(list)
    for r in results:
        by_key[(r["dataset"], r["variant"], r["framework"])].append(r)
    rows = []
    for d in datasets:
        if d not in spec["datasets"]:
            raise ReportError(
                f"{d} is not in {table} of the paper; it has {list(spec['datasets'])}"
            )
        pub = spec["datasets"][d]
        metric = pub["metric"]
        higher = paper["metrics"][metric]["higher_is_better"]
        for v in VARIANTS:
            runs = [r for fw in FRAMEWORKS for r in by_key[(d, v, fw)]]
            if not runs:
                continue
            comparable = comparability(profile, runs)
            devs = []
            for r in runs:
                devs += [x for x in r.get("deviations") or [] if x not in devs]
            p_val, p_ratio = pub[v]
            row = {
                "table": table,
                "dataset": d,
                "variant": v,
                "model": paper["rows"][v],
                "metric": paper["metrics"][metric]["unit"],
                "paper": p_val,
                "paper_c_ratio": p_ratio,
            }
            present = {r["framework"] for r in results}
            for fw in FRAMEWORKS + tuple(f for f in EXTRA_FRAMEWORKS if f in present):
                rs = by_key[(d, v, fw)]
                mean, std, n = _stats([r["test_metric"] for r in rs])
                ratio, _, _ = _stats([r["c_ratio"] for r in rs])
                realised, _, _ = _stats([r.get("c_ratio_realised") for r in rs])
                row[f"{fw}_mean"] = mean
                row[f"{fw}_std"] = std
                row[f"{fw}_seeds"] = n
                row[f"{fw}_diff"] = mean - p_val if (p_val is not None and n) else float("nan")
                row[f"{fw}_c_ratio"] = ratio
                row[f"{fw}_c_ratio_realised"] = realised
                row[f"{fw}_verdict"] = (
                    table6.describe(devs)
                    if devs
                    else verdict(mean if n else None, p_val, higher, tol, comparable)
                )
            row["evaluation"] = evaluation_text(runs)
            row["tolerance"] = tolerance_text(metric, tol)
            row["profile"] = profile
            row["data"] = data_label(runs)
            row["comparable"] = comparable
            rows.append(row)
    if not rows:
        raise ReportError(f"{table}: no results for datasets {datasets}")
    return pd.DataFrame(rows)


def architecture_table(table: str, results: list[dict], paper: dict, profile: str) -> pd.DataFrame:
    depth = paper["architectures"][table]["depth"]
    rows = []
    order = {d: i for i, d in enumerate(depth)}
    results = sorted(
        results, key=lambda r: (order.get(r["dataset"], 99), r["framework"], r["seed"])
    )
    for r in results:
        if r["variant"] != "krwd":
            continue
        for blk in r["architecture"]:
            rows.append(
                {
                    "table": table,
                    "dataset": r["dataset"],
                    "framework": r["framework"],
                    "seed": r["seed"],
                    "depth": r["depth"],
                    "paper_depth": depth.get(r["dataset"]),
                    "block": blk["block"],
                    "kernel_size": " ".join(map(str, blk["kernel_size"])),
                    "resolution": " ".join(map(str, blk["resolution"])),
                    "width": " ".join(map(str, blk["width"])),
                    "c_ratio": r["c_ratio"],
                    "profile": profile,
                    "data": run_data_label(r),
                    "comparable": comparability(profile, [r]),
                }
            )
    if not rows:
        raise ReportError(f"{table}: no krwd results")
    return pd.DataFrame(rows)


# ---- tables as the paper prints them -------------------------------------------------------
def verdict_mark(v: str) -> str:
    """One character per verdict: ✓ pass, ↑ better, ✗ fail, ~ not comparable, ! deviates."""
    if not isinstance(v, str) or not v:
        return ""
    if v.startswith("not comparable"):
        return "~"
    if v.startswith("deviates"):
        return "!"
    return MARKS.get(v, "?")


def _num(x, digits: int = 4) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}g}"


def paper_style(df: pd.DataFrame) -> str:
    """A results table (the wide CSV) as the paper prints it, in Markdown: datasets as columns,
    variants as rows; each cell "ours (paper)" per framework, C_curr/C_target of ours in
    parentheses ("x" suffix, as the paper's "(0.80x)"), and the verdict mark."""
    datasets = list(dict.fromkeys(df["dataset"]))
    fws = [f for f in FRAMEWORKS + EXTRA_FRAMEWORKS if f"{f}_mean" in df.columns]
    lines = ["| model | " + " | ".join(datasets) + " |", "|---" * (len(datasets) + 1) + "|"]
    for v in VARIANTS:
        rows = df[df["variant"] == v]
        if rows.empty:
            continue
        cells = []
        for d in datasets:
            r = rows[rows["dataset"] == d]
            if r.empty:
                cells.append("")
                continue
            r = r.iloc[0]
            parts = []
            for f in fws:
                if not r.get(f"{f}_seeds"):
                    continue
                ratio = r.get(f"{f}_c_ratio")
                c = "" if ratio is None or math.isnan(ratio) else f" ({ratio:.2f}x)"
                parts.append(
                    f"{f}: {_num(r[f'{f}_mean'])} ({_num(r['paper'])}){c} "
                    f"{verdict_mark(r[f'{f}_verdict'])}"
                )
            cells.append("<br>".join(parts))
        lines.append(f"| {rows.iloc[0]['model']} | " + " | ".join(cells) + " |")
    legend = (
        "Cell: ours (paper) (C_curr/C_target of ours), mark: ✓ within tolerance, ↑ better, "
        "✗ worse, ~ not comparable, ! deviates from Table 6, – not run."
    )
    return "\n".join(lines) + "\n\n" + legend


def architecture_blocks(df: pd.DataFrame) -> str:
    """An architecture table (the long CSV) as Tables 4/5 print it: one row per block, one
    column per dataset (first seed per framework): kernel size / resolution / widths."""
    firsts = df.sort_values(["dataset", "framework", "seed", "block"])
    keys = list(dict.fromkeys(zip(firsts["dataset"], firsts["framework"])))
    seed_of = {k: firsts[(firsts["dataset"] == k[0]) & (firsts["framework"] == k[1])]["seed"].min()
               for k in keys}  # fmt: skip
    cols = [f"{d} ({fw}, seed {seed_of[(d, fw)]})" for d, fw in keys]
    depth = int(df["block"].max()) + 1 if len(df) else 0
    lines = ["| block | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for b in range(depth):
        cells = []
        for d, fw in keys:
            r = df[(df["dataset"] == d) & (df["framework"] == fw) & (df["seed"] == seed_of[(d, fw)])
                   & (df["block"] == b)]  # fmt: skip
            if r.empty:
                cells.append("")
            else:
                r = r.iloc[0]
                cells.append(f"k {r['kernel_size']} · r {r['resolution']} · w {r['width']}")
        lines.append(f"| {b + 1} | " + " | ".join(cells) + " |")
    depth_row, paper_row = [], []
    for d, fw in keys:
        r = df[(df["dataset"] == d) & (df["framework"] == fw) & (df["seed"] == seed_of[(d, fw)])]
        depth_row.append(str(r["depth"].iloc[0]))
        pd_ = r["paper_depth"].iloc[0]
        paper_row.append("–" if pd.isna(pd_) else str(int(pd_)))
    lines.append("| depth (ours) | " + " | ".join(depth_row) + " |")
    lines.append("| depth (paper) | " + " | ".join(paper_row) + " |")
    return "\n".join(lines)


def readable(df: pd.DataFrame) -> str | None:
    """The paper-style Markdown of a results or architecture table, None for other CSVs."""
    if {"variant", "paper", "model"} <= set(df.columns):
        return paper_style(df)
    if {"block", "kernel_size", "resolution"} <= set(df.columns):
        return architecture_blocks(df)
    return None


# ---- Fig. 10 --------------------------------------------------------------------------------


def save_figure(fig, outs, dpi: int) -> None:
    """Lay out, write each of `outs` (one path or several formats) under a temporary name and
    rename it into place, so a killed report never leaves a half-written image; close `fig`."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    for out in [outs] if isinstance(outs, (str, Path)) else outs:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(out).with_name(f".{Path(out).stem}.tmp{Path(out).suffix}")
        fig.savefig(tmp, dpi=dpi)
        tmp.replace(out)
    plt.close(fig)


def fig10(results: list[dict], profile: str, png: str, pdf: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    guard_output(png, profile)
    guard_output(pdf, profile)
    curves = defaultdict(list)  # (dataset, variant, framework) -> [c_ratio per epoch] per seed
    for r in results:
        if r["variant"] not in ("kr", "krwd"):
            continue
        m = pd.read_csv(Path(r["_path"]).parent / "metrics.csv")
        curves[(r["dataset"], r["variant"], r["framework"])].append(m["c_ratio"].to_numpy())
    datasets = list(dict.fromkeys(k[0] for k in curves))
    if not datasets:
        raise ReportError("fig10: no kr/krwd results")
    cols = min(4, len(datasets))
    rows = math.ceil(len(datasets) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False)
    styles = {"torch": "-", "jax": "--"}
    colours = {"kr": "tab:blue", "krwd": "tab:red"}
    for ax, d in zip(axes.flat, datasets):
        for (dd, v, fw), seeds in sorted(curves.items()):
            if dd != d:
                continue
            n = min(len(s) for s in seeds)
            y = np.mean([s[:n] for s in seeds], axis=0)
            ax.plot(np.arange(1, n + 1), y, styles[fw], color=colours[v], label=f"{v} {fw}")
        ax.axhline(1.0, color="grey", lw=0.8, ls=":")
        ax.set_title(d)
        ax.set_xlabel("epoch")
        ax.set_ylabel("C_curr / C_target")
    for ax in list(axes.flat)[len(datasets) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    note = "" if profile == "paper" else f" [{profile} profile: NOT comparable to the paper]"
    fig.suptitle(f"Fig. 10: relative complexity during training{note}", fontsize=10)
    save_figure(fig, (png, pdf), dpi=120)


# ---- summary ---------------------------------------------------------------------------------
def _fmt(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for c in out.columns:
        if out[c].dtype.kind == "f":
            out[c] = out[c].map(lambda x: "" if pd.isna(x) else f"{x:.4g}")
    return out


def render(profile: str, tables: list[str], parity: str, fig: str, md: str, html: str) -> None:
    guard_output(md, profile)
    guard_output(html, profile)
    banner = (
        "Paper profile: comparable numbers where the data column says real."
        if profile == "paper"
        else f"**{profile.upper()} PROFILE: generated data, tiny models, a few epochs. "
        "Nothing here is comparable to the paper.**"
    )
    par = pd.read_csv(parity, comment="#")
    failed = par[~par["passed"].astype(bool)]
    par_line = f"Parity: {len(par)} checks, {len(failed)} failed ({Path(parity).name})."
    md_parts = [f"# dnarch-repro results ({profile} profile)", "", banner, ""]
    html_parts = [
        f"<html><head><meta charset='utf-8'><title>dnarch-repro ({profile})</title>",
        "<style>table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;"
        "padding:2px 6px}</style></head><body>",
        f"<h1>dnarch-repro results ({profile} profile)</h1><p>{banner}</p>",
    ]
    for t in tables:
        raw = pd.read_csv(t)
        df = _fmt(raw)
        name = Path(t).stem
        view = readable(raw)
        md_parts += [f"## {name}", ""]
        html_parts += [f"<h2>{name}</h2>"]
        if view is not None:
            md_parts += [view, "", f"<details><summary>{name}.csv (every column)</summary>", ""]
            html_parts.append(markdown_table_html(view))
        md_parts += [df.to_markdown(index=False), ""]
        if view is not None:
            md_parts += ["</details>", ""]
            html_parts.append(f"<details><summary>{name}.csv (every column)</summary>")
        html_parts.append(df.to_html(index=False))
        if view is not None:
            html_parts.append("</details>")
    md_parts += ["## Fig. 10", "", f"![Fig. 10]({Path(fig).name})", "", "## Parity", "", par_line]
    png = base64.b64encode(Path(fig).read_bytes()).decode()
    html_parts += [
        "<h2>Fig. 10</h2>",
        f"<img src='data:image/png;base64,{png}' style='max-width:100%'>",
        f"<h2>Parity</h2><p>{par_line}</p>",
    ]
    if len(failed):
        md_parts += ["", _fmt(failed).to_markdown(index=False)]
        html_parts.append(_fmt(failed).to_html(index=False))
    html_parts.append("</body></html>")
    from pipelines.provenance import write_atomic

    write_atomic(md, "\n".join(md_parts) + "\n")
    write_atomic(html, "\n".join(html_parts) + "\n")


def markdown_table_html(md: str) -> str:
    """Our own Markdown tables (pipe rows, then a legend paragraph) as HTML."""
    import html

    rows, rest = [], []
    for line in md.split("\n"):
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not all(set(c) <= set("-: ") for c in cells):
                rows.append(cells)
        elif line.strip():
            rest.append(f"<p>{html.escape(line)}</p>")

    def cell(tag: str, c: str) -> str:
        return f"<{tag}>" + "<br>".join(html.escape(x) for x in c.split("<br>")) + f"</{tag}>"

    out = ["<table>", "<tr>" + "".join(cell("th", c) for c in rows[0]) + "</tr>"]
    out += ["<tr>" + "".join(cell("td", c) for c in r) + "</tr>" for r in rows[1:]]
    return "\n".join([*out, "</table>", *rest])


# ---- CLI --------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m reports.build", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("table")
    t.add_argument("--table", required=True, choices=("table1", "table2", "table3"))
    t.add_argument("--datasets", nargs="+", required=True)
    t.add_argument("--accuracy-points", type=float, default=1.0)
    t.add_argument("--error-relative", type=float, default=0.10)
    a = sub.add_parser("architectures")
    a.add_argument("--table", required=True, choices=("table4", "table5"))
    f = sub.add_parser("fig10")
    f.add_argument("--png", required=True)
    f.add_argument("--pdf", required=True)
    r = sub.add_parser("render")
    r.add_argument("--md", required=True)
    r.add_argument("--html", required=True)
    r.add_argument("--fig", required=True)
    r.add_argument("--parity", required=True)
    for s in (t, a, f, r):
        s.add_argument("--profile", required=True, choices=("paper", "smoke", "claims"))
        s.add_argument("inputs", nargs="*")
    for s in (t, a):
        s.add_argument("--paper", default=str(PAPER_REPORTS / "paper_results.yaml"))
        s.add_argument("--out", required=True)
    args = p.parse_args(argv)
    try:
        if args.cmd == "render":
            render(args.profile, args.inputs, args.parity, args.fig, args.md, args.html)
            return 0
        results = load_results(args.inputs, args.profile)
        if args.cmd == "fig10":
            fig10(results, args.profile, args.png, args.pdf)
            return 0
        paper = yaml.safe_load(Path(args.paper).read_text())
        if args.cmd == "table":
            tol = {"accuracy_points": args.accuracy_points, "error_relative": args.error_relative}
            df = results_table(args.table, args.datasets, results, paper, args.profile, tol)
        else:
            df = architecture_table(args.table, results, paper, args.profile)
        write_csv(df, args.out, args.profile)
    except (ReportError, OSError, KeyError) as e:
        print(f"reports.build: error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {getattr(args, 'out', None) or args.inputs}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
