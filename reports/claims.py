"""The claims study: does this suite reproduce what the paper claims, at a scale a 2-core CPU
runs? Reads result.json / metrics.csv files (never a model) of the claims profile and writes
claims.csv (one row per claim and dataset, plus an `overall` row per claim) and report.{md,html}
with the claims table, learning curves, Fig. 10-style complexity curves, the kernel sizes per
block and epoch (kernel_growth.png) and the found architectures. The step ladder (the claims at
several training lengths) is reports.ladder.

    python -m reports.claims --profile claims --claims C1 C2 C3 C4 C5 C6 \
        --out-dir claims RESULT.json...
    python -m reports.claims --write-docs     # the registry's table into docs/claims.md

The claims live in one registry, CLAIMS below: per claim its statement, where the paper states
it, on which datasets the paper claims it (Claim.scope: the paper's own scope, e.g. C1 not on
Pathfinder and Path-X), what it needs from the profile, its verdict rule and the function that
evaluates it on one dataset's runs. The rules were written down before any result was looked
at; CONVENTIONS, SCOPE_RULE and OVERALL_RULE hold what every rule shares. docs/claims.md shows
the registry as tables, rendered by `docs_block()`.
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import math
import re
import sys
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from reports.build import save_figure

VERDICTS = ("holds", "fails", "inconclusive")
VARIANTS = ("ccnn", "k", "kr", "krwd")
FRAMEWORKS = ("torch", "torch_virtual", "jax")
DOCS = Path(__file__).resolve().parent.parent / "docs" / "claims.md"
DOCS_BEGIN, DOCS_END = "<!-- claims-registry:begin -->", "<!-- claims-registry:end -->"


class ClaimsError(ValueError):
    pass


def check_request(claims: list[str], variants, frameworks, virtual_variants=None) -> None:
    """Unknown claim ids, or a profile lacking a variant/framework a claim needs: fail, naming
    what is missing (the workflow calls this before any job)."""
    unknown = [c for c in claims if c not in CLAIMS]
    if unknown:
        raise ClaimsError(f"unknown claim id(s) {unknown}; valid: {list(CLAIMS)}")
    problems = []
    for c in (CLAIMS[i] for i in claims):
        miss_v = sorted(c.variants - set(variants))
        miss_f = sorted(c.frameworks - set(frameworks))
        if miss_v:
            problems.append(f"{c.id} needs variants {miss_v}")
        if miss_f:
            problems.append(f"{c.id} needs frameworks {miss_f}")
        # torch_virtual trains only the variants of claims.virtual_variants
        if "torch_virtual" in c.frameworks and virtual_variants is not None:
            if not set(virtual_variants) & set(variants):
                problems.append(
                    f"{c.id} needs a torch_virtual variant among {list(variants)}; "
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


# ---- the claims: one function per rule, then the registry ---------------------------------
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


def _row(**values) -> dict:
    """One dataset's result of a claim: verdict, numbers, and diff/se/n/tolerance (NaN where a
    rule has none)."""
    return {"diff": float("nan"), "se": float("nan"), "n": 0, "tolerance": float("nan"), **values}


def _better_than_ccnn(runs: list[dict], a: str) -> dict:
    """C1 and C4: `a` - ccnn paired by (framework, seed), superiority at 2 SE."""
    diff, se, n = paired(_by(runs, a), _by(runs, "ccnn"))
    ma, mb = mean_se(_by(runs, a).values()), mean_se(_by(runs, "ccnn").values())
    numbers = (
        f"{a} {_fmt(ma[0])} (n={ma[2]}), ccnn {_fmt(mb[0])} (n={mb[2]}) "
        f"[score, {runs[0].get('metric', '')}]; paired diff {_fmt(diff)} +- {_fmt(se)} SE (n={n})"
    )
    return _row(diff=diff, se=se, n=n, numbers=numbers, verdict=superiority(diff, se))


def _c1(runs: list[dict], tol: dict, band: float) -> dict:
    return _better_than_ccnn(runs, "k")


def _c2(runs: list[dict], tol: dict, band: float) -> dict:
    rm, rse, rn = mean_se(r["c_ratio"] for r in runs if r["variant"] == "kr")
    if np.isfinite(rse):
        va = "holds" if rm + 2 * rse < 1 else "fails" if rm - 2 * rse >= 1 else "inconclusive"
    else:
        va = "inconclusive"
    t = tolerance(runs, tol, "k")
    diff, se, n = paired(_by(runs, "kr"), _by(runs, "k"))
    vb = non_inferiority(diff, se, t)
    numbers = (
        f"kr C_curr/C_target {_fmt(rm)} +- {_fmt(rse)} SE (n={rn}) -> {va}; "
        f"kr - k {_fmt(diff)} +- {_fmt(se)} SE (n={n}), tolerance {_fmt(t)} -> {vb}"
    )
    return _row(diff=diff, se=se, n=n, tolerance=t, verdict=combine(va, vb), numbers=numbers)


def _c3(runs: list[dict], tol: dict, band: float) -> dict:
    worst, where, epochs = 0.0, "", 0
    for r in runs:
        if r["variant"] != "krwd" or "c_ratio" not in r["_metrics"]:
            continue
        c = r["_metrics"]["c_ratio"].to_numpy(np.float64)
        epochs += c.size
        i = int(np.argmax(np.abs(c - 1)))
        if abs(c[i] - 1) >= worst:
            worst = float(abs(c[i] - 1))
            where = f"{r['framework']} seed {r['seed']} epoch {i + 1}: {c[i]:.4f}"
    verdict = "inconclusive" if epochs == 0 else "holds" if worst <= band else "fails"
    numbers = f"max abs(C_curr/C_target - 1) = {worst:.4f} over {epochs} epochs ({where})"
    return _row(diff=worst, n=epochs, tolerance=band, verdict=verdict, numbers=numbers)


def _c4(runs: list[dict], tol: dict, band: float) -> dict:
    row = _better_than_ccnn(runs, "krwd")
    ratios = [r["c_ratio"] for r in runs if r["variant"] == "krwd"]
    worst = max(abs(x - 1) for x in ratios) if ratios else float("nan")
    row["numbers"] += f"; krwd final C_curr/C_target {_fmt(min(ratios))}..{_fmt(max(ratios))}"
    if row["verdict"] == "holds" and not worst <= band:
        row["verdict"] = "inconclusive"
        row["numbers"] += f" (outside 1 +- {band}: not equal complexity)"
    return row


def _c5(runs: list[dict], tol: dict, band: float) -> dict:
    a = {(r["variant"], r["seed"]): score(r) for r in runs if r["framework"] == "torch"}
    b = {(r["variant"], r["seed"]): score(r) for r in runs if r["framework"] == "torch_virtual"}
    diff, se, n = paired(a, b)
    t = tolerance(runs, tol)
    pairs = "/".join(sorted({k[0] for k in set(a) & set(b)}, key=VARIANTS.index))
    numbers = (
        f"trim - virtual {_fmt(diff)} +- {_fmt(se)} SE (n={n} pairs of {pairs}), "
        f"tolerance {_fmt(t)}"
    )
    return _row(diff=diff, se=se, n=n, tolerance=t, verdict=equivalence(diff, se, t),
                numbers=numbers)  # fmt: skip


def _c6(runs: list[dict], tol: dict, band: float) -> dict:
    diffs, ses, parts = [], [], []
    for v in VARIANTS:
        ta = [score(r) for r in runs if r["variant"] == v and r["framework"] == "torch"]
        ja = [score(r) for r in runs if r["variant"] == v and r["framework"] == "jax"]
        if not ta or not ja:
            continue
        (mt, st, _), (mj, sj, _) = mean_se(ta), mean_se(ja)
        diffs.append(mt - mj)
        ses.append(math.hypot(st, sj))
        parts.append(f"{v} {_fmt(mt - mj)}")
    diff = float(np.mean(diffs)) if diffs else float("nan")
    se = math.sqrt(sum(s * s for s in ses)) / len(ses) if ses else float("nan")
    t = tolerance(runs, tol)
    numbers = (
        f"torch - jax per variant: {', '.join(parts)}; mean {_fmt(diff)} +- {_fmt(se)} SE "
        f"(Welch), tolerance {_fmt(t)}"
    )
    return _row(diff=diff, se=se, n=len(diffs), tolerance=t, verdict=equivalence(diff, se, t),
                numbers=numbers)  # fmt: skip


# ---- the registry ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Scope:
    """Whether the paper claims a claim on one dataset, and the sentence or table that says so.
    `paper`: on a dataset the paper does not claim it, the rule outcome that the paper's own
    words or numbers there point to ("holds" / "fails"; None where the paper reports nothing
    there), so that an unclaimed result can agree or disagree with the paper."""

    claimed: bool
    source: str
    paper: str | None = "holds"


@dataclass(frozen=True)
class Claim:
    """One claim: what it states, where the paper states it (`paper`: the section and the
    sentence it rests on), what it needs from the profile (variants, frameworks), its verdict
    rule in words and the function that applies the rule to one dataset's runs:
    evaluate(runs, tol, band) -> row (verdict, numbers, diff, se, n, tolerance).
    Where the paper claims it: on every dataset of the paper's tables, except those in `cells`
    (a Scope of their own) or, when `not_claimed` gives the reason, on none. `evidence`: the
    variants whose published numbers (reports/paper_results.yaml) each dataset's source quotes."""

    id: str
    statement: str
    paper: str
    variants: frozenset[str]
    frameworks: frozenset[str]
    rule: str
    evaluate: Callable[[list[dict], dict, float], dict]
    evidence: tuple[str, ...] = ()
    cells: Mapping[str, Scope] = field(default_factory=dict)
    not_claimed: str = ""

    def scope(self, dataset: str) -> Scope:
        if dataset not in paper_tables():
            raise ClaimsError(f"{dataset!r} is not a dataset of the paper's tables")
        numbers = _published(dataset, self.evidence)
        if dataset in self.cells:
            s = self.cells[dataset]
        elif self.not_claimed:
            s = Scope(False, f"{self.paper}; {self.not_claimed}")
        else:
            s = Scope(True, self.paper)
        return replace(s, source=f"{s.source}; {numbers}") if numbers else s


@functools.cache
def paper_tables() -> dict[str, tuple[str, dict]]:
    """{dataset: (table title, its published row)} from reports/paper_results.yaml."""
    import yaml

    doc = yaml.safe_load((Path(__file__).parent / "paper_results.yaml").read_text())
    return {
        d: (t["title"].split(".")[0], {**row, "unit": doc["metrics"][row["metric"]]["unit"]})
        for t in doc["tables"].values()
        for d, row in t["datasets"].items()
    }


def _published(dataset: str, variants: tuple[str, ...]) -> str:
    """'Table 1 (pathfinder, accuracy (%)): k 93.46, ccnn 94.26': the paper's numbers."""
    table, row = paper_tables()[dataset]
    cells = [
        f"{v} {'not reported' if row[v][0] is None else f'{row[v][0]:g}'}"
        + (f" ({row[v][1]:.2f}x)" if row[v][1] else "")
        for v in variants
    ]
    return f"{table} ({dataset}, {row['unit']}): {', '.join(cells)}" if cells else ""


CONVENTIONS = (
    'Scores are "higher is better" (accuracy; minus the error for DarcyFlow and Cosmic); SE is '
    "the standard error over seeds. A difference counts only when it exceeds two SEs; "
    "otherwise the verdict is `inconclusive`. Tolerance t: `tolerance.accuracy_points` (1 "
    "accuracy point); dense tasks `tolerance.error_relative` (10 %) of the reference's mean "
    "error. band: `claims.band` (0.05), the bound on abs(C_curr/C_target - 1)."
)
AGREEMENT = (
    "agrees with the paper",
    "disagrees with the paper",
    "inconclusive",
    "not in the paper",
)
SCOPE_RULE = (
    "A claim is tested as the paper states it: on the datasets where the paper claims it the "
    "verdict is the rule's outcome (holds / fails / inconclusive). Elsewhere the outcome is "
    "still reported, phrased against what the paper's own words or numbers show there: "
    "`agrees with the paper` / `disagrees with the paper` (`inconclusive` when the rule is; "
    "`not in the paper` where the paper reports nothing to compare with). claims.csv gives "
    "every row's `claimed` (yes/no), the rule's `outcome` and the `paper_source` it rests on."
)
OVERALL_RULE = (
    "over the datasets where the paper claims it: fails if it fails on any, holds if it holds on "
    "every one, else inconclusive; a claim the paper makes on no dataset: disagrees with the "
    "paper if any dataset disagrees, agrees if every comparable dataset agrees"
)

_BOTH = frozenset({"torch", "jax"})
_PATHX_NO_CCNN = "Table 1 has no CCNN_{4,140} (Global Kernels) result for Path-X"
REGISTRY = (
    Claim(
        "C1",
        "learning kernel sizes helps: k >= ccnn",
        "Sec. 3.1: 'Except for the PathFinder and Path-X tasks, we find that using DNArch to "
        "learn kernel sizes consistently improves the accuracy of the base architecture "
        "(DNArch_K models in Tabs. 1-3)'",
        frozenset({"ccnn", "k"}),
        _BOTH,
        "k - ccnn paired by (framework, seed) over torch and jax (same seed = same batch "
        "order): holds if mean > 2 SE, fails if mean < -2 SE",
        _c1,
        evidence=("k", "ccnn"),
        cells={
            "pathfinder": Scope(
                False,
                "Sec. 3.1 excepts it ('Except for the PathFinder and Path-X tasks'): Table 1 "
                "reports DNArch_K below the base there",
                "fails",
            ),
            "pathx": Scope(
                False, f"Sec. 3.1 excepts it ('Except for ... Path-X'); {_PATHX_NO_CCNN}", None
            ),
        },
    ),
    Claim(
        "C2",
        "learned downsampling cuts cost at no accuracy cost: kr's C_curr/C_target < 1 and kr "
        "within tolerance of k",
        "Sec. 3.1: 'When learning downsampling (DNArch_{K,R} models in Tabs. 1-3), DNArch "
        "improves the computational efficiency of the resulting models and often leads to "
        "slight accuracy improvements'",
        frozenset({"k", "kr"}),
        _BOTH,
        "(a) kr's final C_curr/C_target: holds if mean + 2 SE < 1, fails if mean - 2 SE >= 1; "
        "(b) kr - k paired as C1, non-inferior within t: holds if mean - 2 SE > -t, fails if "
        "mean + 2 SE < -t; holds if both hold, fails if either fails",
        _c2,
        evidence=("kr", "k"),
        cells={"pathx": Scope(False, "Table 1 has no DNArch_{K,R} result for Path-X", None)},
    ),
    Claim(
        "C3",
        "the budget holds throughout training: krwd's C_curr/C_target within 1 +- band at "
        "every epoch",
        "Sec. 3.2, Fig. 10 (Text): the complexity 'stays near the target complexity throughout "
        "the entire training process. This behavior is consistent across all datasets.'",
        frozenset({"krwd"}),
        frozenset(),
        "krwd's C_curr/C_target within 1 +- band at every epoch of every run (a bound on every "
        "value, no SE)",
        _c3,
    ),
    Claim(
        "C4",
        "krwd >= ccnn at equal complexity",
        "Sec. 3.2: 'DNArch finds neural architectures with higher accuracy than the base "
        "CCNN_{4,140} while keeping the same computational complexity across all datasets' "
        "(DNArch_{K,R,W,D} models in Tabs. 1-3)",
        frozenset({"ccnn", "krwd"}),
        _BOTH,
        "as C1 with krwd - ccnn; a win needs krwd's final C_curr/C_target within 1 +- band, "
        "else inconclusive",
        _c4,
        evidence=("krwd", "ccnn"),
        cells={
            "pathx": Scope(
                True,
                "Sec. 3.2 claims it 'across all datasets'; "
                f"{_PATHX_NO_CCNN} (the CCNN_{{4,140}} of Romero et al. is at random guessing)",
            )
        },
    ),
    Claim(
        "C5",
        "PyTorch trim and virtual train to the same result",
        "Sec. 4: on TPUs DNArch 'can only perform virtual modifications to the network during "
        "training, i.e., setting certain channels to zero but still computing their outputs', "
        "'solely an implementation issue' that PyTorch avoids",
        frozenset(),
        frozenset({"torch", "torch_virtual"}),
        "torch - torch_virtual paired by (variant, seed) over `claims.virtual_variants` (same "
        "initialisation, same batches): holds if abs(mean) + 2 SE <= t, fails if abs(mean) - "
        "2 SE > t and abs(mean) > 2 SE",
        _c5,
        not_claimed="the paper reports no trimmed (PyTorch) training and no comparison with "
        "virtual training, only that trimming is the same network at a lower cost: the suite's "
        "own check",
    ),
    Claim(
        "C6",
        "PyTorch and JAX, each from its own initialisation, train to the same result",
        "Appx. E.1: 'Our code is written in JAX ... In addition to our JAX implementation, we "
        "will also release a PyTorch implementation of DNArch'",
        frozenset(),
        _BOTH,
        "per variant mean(torch) - mean(jax) with the unpaired (Welch) SE, averaged over "
        "variants: equivalence as C5",
        _c6,
        not_claimed="the paper reports numbers of its JAX code only, none of PyTorch, and "
        "presents the PyTorch code as an implementation of the same method: the suite's own check "
        "of its two implementations",
    ),
)
CLAIMS = {c.id: c for c in REGISTRY}


def evaluate(claim: str, runs: list[dict], tol: dict, band: float) -> dict:
    """One dataset's row of `claim`."""
    return CLAIMS[claim].evaluate(runs, tol, band)


def phrase(outcome: str, scope: Scope) -> str:
    """The verdict of one dataset: the rule's outcome where the paper claims it, else the
    outcome against what the paper shows there."""
    if scope.claimed:
        return outcome
    if scope.paper is None:
        return AGREEMENT[3]
    if outcome == "inconclusive":
        return outcome
    return AGREEMENT[0] if outcome == scope.paper else AGREEMENT[1]


def agreement(*verdicts: str) -> str:
    """Overall of a claim the paper makes nowhere: its datasets' agreement with the paper."""
    comparable = [v for v in verdicts if v != AGREEMENT[3]]
    if not comparable:
        return AGREEMENT[3]
    if AGREEMENT[1] in comparable:
        return AGREEMENT[1]
    return AGREEMENT[0] if all(v == AGREEMENT[0] for v in comparable) else "inconclusive"


def _counts(rows: list[dict]) -> str:
    verdicts = [r["verdict"] for r in rows]
    return ", ".join(f"{verdicts.count(v)} {v}" for v in VERDICTS if verdicts.count(v))


def claims_table(results: list[dict], claims: list[str], tol: dict, band: float) -> pd.DataFrame:
    by_ds = defaultdict(list)
    for r in results:
        by_ds[r["dataset"]].append(r)
    rows = []
    for c in (CLAIMS[i] for i in claims):
        per = []
        for d in sorted(by_ds):
            scope = c.scope(d)
            row = {"claim": c.id, "dataset": d, "statement": c.statement, "rule": c.rule}
            row.update(c.evaluate(by_ds[d], tol, band))
            row.update(
                outcome=row["verdict"],
                verdict=phrase(row["verdict"], scope),
                claimed="yes" if scope.claimed else "no",
                paper_source=scope.source,
                metric=by_ds[d][0].get("metric", ""),
            )
            per.append(row)
        rows += per
        claimed = [r for r in per if r["claimed"] == "yes"]
        others = [r for r in per if r["claimed"] == "no"]
        if claimed:
            verdict = combine(*(r["verdict"] for r in claimed))
            numbers = _counts(claimed)
        else:
            verdict = agreement(*(r["verdict"] for r in others))
            numbers = "claimed on no dataset"
        if others:
            numbers += "; not claimed: " + ", ".join(
                f"{r['dataset']} {r['verdict']}" for r in others
            )
        rows.append(
            {
                "claim": c.id,
                "dataset": "overall",
                "claimed": "yes" if claimed else "no",
                "statement": c.statement,
                "rule": OVERALL_RULE,
                "numbers": numbers,
                "verdict": verdict,
                "outcome": verdict if claimed else "",
                "paper_source": c.paper + (f"; {c.not_claimed}" if c.not_claimed else ""),
            }
        )
    cols = ["claim", "dataset", "claimed", "verdict", "numbers", "diff", "se", "n", "tolerance"]
    df = pd.DataFrame(rows)
    return df[[*cols, "metric", "outcome", "statement", "rule", "paper_source"]]


# ---- docs -----------------------------------------------------------------------------------
def _cell(text: str) -> str:
    return text.replace("|", "/")


def docs_block() -> str:
    """The registry as Markdown: what docs/claims.md holds between its markers."""
    datasets = list(paper_tables())
    claims = [
        "| claim | statement | where the paper states it | needs (variants; frameworks) "
        "| verdict rule |",
        "| --- | --- | --- | --- | --- |",
    ]
    scope = ["| claim | " + " | ".join(datasets) + " |", "|---" * (len(datasets) + 1) + "|"]
    notes = []
    for c in REGISTRY:
        needs = "; ".join(
            ", ".join(x for x in order if x in s)
            for order, s in ((VARIANTS, c.variants), (FRAMEWORKS, c.frameworks))
            if s
        )
        claims.append(
            "| " + " | ".join(map(_cell, (c.id, c.statement, c.paper, needs, c.rule))) + " |"
        )
        scope.append(
            f"| {c.id} | "
            + " | ".join("yes" if c.scope(d).claimed else "no" for d in datasets)
            + " |"
        )
        if c.not_claimed:
            notes.append(
                f"- {c.id}, every dataset: not claimed: {c.not_claimed}; a result agrees with the "
                "paper if the rule holds."
            )
        for d, s in c.cells.items():
            notes.append(
                f"- {c.id}, {d}: claimed: {s.source}."
                if s.claimed
                else f"- {c.id}, {d}: not claimed: {s.source}; "
                + (
                    f"a result agrees with the paper if the rule {s.paper} there."
                    if s.paper
                    else "nothing to compare a result with."
                )
            )
    return "\n".join(
        [
            "<!-- rendered from the registry in reports/claims.py; regenerate with "
            "`python -m reports.claims --write-docs` -->",
            "",
            CONVENTIONS,
            "",
            *claims,
            "",
            "Where the paper claims each, over the ten datasets of its tables (claims.csv quotes "
            "the published numbers in every row's `paper_source`):",
            "",
            *scope,
            "",
            *map(_cell, notes),
            "",
            SCOPE_RULE,
            "",
            f"Overall, per claim: {OVERALL_RULE}.",
        ]
    )


def docs_text(text: str) -> str:
    """`text` (docs/claims.md) with the block between the markers replaced by docs_block()."""
    head, begin, rest = text.partition(DOCS_BEGIN)
    _, end, tail = rest.partition(DOCS_END)
    if not begin or not end:
        raise ClaimsError(f"{DOCS} lacks the markers {DOCS_BEGIN} ... {DOCS_END}")
    return f"{head}{DOCS_BEGIN}\n{docs_block()}\n{DOCS_END}{tail}"


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
    save_figure(fig, out, dpi=90)


# ---- kernel growth ---------------------------------------------------------------------------
KERNEL_SIZE = re.compile(r"^size\.blocks\.(\d+)\.kernel\.(\d+)$")


def full_grid_taps(size: float, n: int) -> int:
    """Taps a centred Gaussian kernel mask keeps on the n-tap full-resolution grid (n odd,
    coordinates -1 + 2 i / (n - 1)) given its size as metrics.csv records it (Eq. 9: n x_T,
    x_T the cutoff, straight-through clipped at n): the taps with abs(x) <= x_T. The small
    margin keeps a cutoff that lands on a tap, as the sigma floor's does, from losing it to
    rounding."""
    if n <= 1:
        return 1
    x_t = min(float(size) / n, 1.0)
    return 2 * math.floor(x_t * (n - 1) / 2 + 1e-9) + 1


def kernel_growth(results: list[dict]) -> pd.DataFrame:
    """Every learned kernel mask per epoch, averaged over seeds: one row per (dataset, variant,
    framework, block, axis, epoch) with `size` (Eq. 9, in taps of the full-resolution grid, as
    metrics.csv records it), `taps` (full_grid_taps of each seed's size, then the mean), `full`
    (the taps of a global kernel on that axis: what ccnn uses), `seeds` and `kept` (the share of
    seeds whose final network still runs the block: krwd's depth mask drops blocks whose masks
    keep their initial size). A block at a reduced resolution (kr, krwd) runs its kernel on its
    own, coarser grid with proportionally fewer taps; the full-grid taps compare blocks and
    variants on one scale. Runs without learned kernel sizes (ccnn) give no rows."""
    from implementations.common.grids import kernel_taps

    rows = []
    for r in results:
        m = r["_metrics"]
        cols = [(c, KERNEL_SIZE.match(c)) for c in m.columns]
        cols = [(c, int(k[1]), int(k[2])) for c, k in cols if k]
        if not cols:
            continue
        shape = (r.get("config") or {}).get("model", {}).get("input_shape")
        if not shape:
            raise ClaimsError(f"{r['_path']}: metrics.csv has kernel sizes but result.json no "
                              "config.model.input_shape to count their taps on")  # fmt: skip
        arch = r.get("architecture_final") or r.get("architecture") or []
        kept = {int(b["block"]) for b in arch}
        epochs = m["epoch"].to_numpy() if "epoch" in m else np.arange(1, len(m) + 1)
        for col, block, axis in cols:
            n = kernel_taps(int(shape[axis]))
            for e, size in zip(epochs, m[col].to_numpy(np.float64)):
                rows.append(
                    {
                        "dataset": r["dataset"], "variant": r["variant"],
                        "framework": r["framework"], "block": block, "axis": axis,
                        "epoch": int(e), "size": float(size), "taps": full_grid_taps(size, n),
                        "full": n, "kept": float(block in kept), "seed": r["seed"],
                    }
                )  # fmt: skip
    keys = ["dataset", "variant", "framework", "block", "axis", "epoch"]
    if not rows:
        return pd.DataFrame(columns=[*keys, "size", "taps", "full", "kept", "seeds"])
    df = pd.DataFrame(rows)
    out = df.groupby(keys, as_index=False).agg(
        size=("size", "mean"),
        taps=("taps", "mean"),
        full=("full", "first"),
        kept=("kept", "mean"),
        seeds=("seed", "nunique"),
    )
    return out.sort_values(keys, key=_variant_order).reset_index(drop=True)


def _variant_order(col: pd.Series) -> pd.Series:
    return col.map(VARIANTS.index) if col.name == "variant" else col


def growth_figure(growth: pd.DataFrame, out: Path) -> None:
    """Kernel taps per block and epoch (full-resolution grid, mean over seeds): one panel per
    dataset (rows) and learned-size variant (columns), one colour per block, solid / dashed
    for the first / second axis; the dotted line is the global kernel ccnn uses. PyTorch trim's
    runs where the study has them (each framework's in the frame)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    g = growth[growth["kept"] > 0] if len(growth) else growth
    datasets = sorted(set(g["dataset"]))
    variants = [v for v in VARIANTS if v in set(g["variant"])]
    nr, nc = max(len(datasets), 1), max(len(variants), 1)
    fig, axes = plt.subplots(nr, nc, figsize=(3.6 * nc, 2.8 * nr), squeeze=False)
    if g.empty:
        axes[0, 0].text(0.5, 0.5, "no learned kernel sizes in these runs", ha="center",
                        va="center", transform=axes[0, 0].transAxes)  # fmt: skip
        axes[0, 0].set_axis_off()
    colours = plt.get_cmap("tab10")
    for i, d in enumerate(datasets):
        for j, v in enumerate(variants):
            ax = axes[i, j]
            sub = g[(g["dataset"] == d) & (g["variant"] == v)]
            fws = [f for f in FRAMEWORKS if f in set(sub["framework"])]
            if not fws:
                ax.set_axis_off()
                continue
            sub = sub[sub["framework"] == fws[0]]
            for (block, axis), line in sub.groupby(["block", "axis"]):
                ax.plot(line["epoch"], line["taps"], "-" if axis == 0 else "--",
                        color=colours(block % 10), lw=1.1,
                        label=f"block {block}" if axis == 0 else None)  # fmt: skip
            ax.axhline(sub["full"].max(), color="black", lw=0.6, ls=":")
            seeds = int(sub["seeds"].max())
            ax.set_title(f"{d}, {v} ({fws[0]}, {seeds} seed{'s' * (seeds != 1)})", fontsize=8)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("epoch")
            ax.set_ylabel("kernel taps (full grid)")
            ax.set_ylim(0, sub["full"].max() * 1.05)
            ax.legend(fontsize=6)
    fig.suptitle(
        "Kernel size per block and epoch (taps on the full-resolution grid, mean over seeds; "
        "solid axis 0, dashed axis 1; dotted: the global kernel)",
        fontsize=8,
    )
    save_figure(fig, out, dpi=90)


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
    growth_png = out_dir / "kernel_growth.png"
    growth_figure(kernel_growth(results), growth_png)
    data = sorted({f"{r['dataset']}: {r['data'].get('kind')} ({r['data'].get('distribution')})"
                   f", train {r['data']['splits'].get('train')}" for r in results})  # fmt: skip
    shapes = sorted(
        {
            f"{r['dataset']}: input {(r['config'].get('resize') or {}).get('shape', 'full')}, "
            f"{r['epochs']} epochs"
            for r in results
        }
    )
    table = df[["claim", "dataset", "claimed", "verdict", "numbers"]]
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
        CONVENTIONS,
        "",
        *[
            f"- {c.id}: {c.statement}. Paper: {c.paper}. Verdict rule: {c.rule}."
            for c in (CLAIMS[i] for i in dict.fromkeys(df["claim"]))
        ],
        f"- Overall: {OVERALL_RULE}.",
        "",
        SCOPE_RULE,
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
        "## Kernel size during training",
        "",
        "Taps per block and axis on the full-resolution grid (the Gaussian mask's size as "
        "metrics.csv records it; a block at a reduced resolution runs proportionally fewer "
        "taps), mean over seeds, for the variants that learn it; blocks krwd drops are left "
        "out. Whether and when the masks grow towards the global kernel ccnn uses.",
        "",
        f"![kernel growth]({growth_png.name})",
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

    images = {p.name: p for p in (curves_png, cost_png, growth_png)}
    html = _html(md, images, profile)
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
    p.add_argument("--write-docs", action="store_true", help=f"render the registry into {DOCS}")
    p.add_argument("--profile")
    p.add_argument("--claims", nargs="+", default=list(CLAIMS))
    p.add_argument("--variants", nargs="+", default=list(VARIANTS))
    p.add_argument("--frameworks", nargs="+", default=["torch", "torch_virtual", "jax"])
    p.add_argument("--accuracy-points", type=float, default=1.0)
    p.add_argument("--error-relative", type=float, default=0.10)
    p.add_argument("--band", type=float, default=0.05, help="C3/C4: |C_curr/C_target - 1| bound")
    p.add_argument("--out-dir")
    p.add_argument("--tables", nargs="*", default=[], help="results tables to show paper-style")
    p.add_argument("inputs", nargs="*")
    args = p.parse_args(argv)
    if args.write_docs:
        DOCS.write_text(docs_text(DOCS.read_text()))
        print(f"wrote the claims registry into {DOCS}", file=sys.stderr)
        return 0
    if not (args.profile and args.out_dir and args.inputs):
        p.error("--profile, --out-dir and at least one RESULT.json are required")
    try:
        check_request(args.claims, args.variants, args.frameworks)
        if Path(args.out_dir).resolve() in (
            Path(__file__).resolve().parent,
            Path(__file__).resolve().parent.parent / "results",
        ):
            raise ClaimsError(f"refusing to write claims outputs to {args.out_dir}")
        results = load(args.inputs, args.profile)
        tol = {"accuracy_points": args.accuracy_points, "error_relative": args.error_relative}
        df = claims_table(results, args.claims, tol, args.band)
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
