"""The Snakemake workflow: plans of both profiles, bad configuration fails before any job,
`snakemake --lint` is clean, and a real run of a tiny subset (2 datasets x 2 variants x both
frameworks) produces every report and reruns as "Nothing to be done"."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pipelines.settings import load_profile

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile")]


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def snakemake(*args, cwd=REPO, check=True) -> subprocess.CompletedProcess:
    p = subprocess.run(
        [*SNAKEMAKE, *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600
    )
    if check and p.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{p.stdout}\n{p.stderr}")
    return p


def job_counts(text: str) -> dict[str, int]:
    block = text.split("Job stats:")[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", block, re.M)}


def test_paper_plan_for_table1(tmp_path):
    p = snakemake(
        "-n", "--directory", str(tmp_path), "reports/table1.csv", "--config", "profile=paper"
    )
    counts = job_counts(p.stdout)
    seeds = 3
    assert counts["train_torch"] == counts["train_jax"] == 6 * 4 * seeds
    assert counts["data"] == 6
    assert counts["lra_extract"] == 1  # one pass over the LRA archive for the four datasets
    assert counts["results_table"] == 1
    # SLURM requests of each training job: the dataset's own (paper.yaml hyper), never one value
    # for all; the slurm profile sets none of these three for the train rules.
    paper = load_profile("paper")
    seen = set()
    for block in re.split(r"\n(?=rule |localrule )", p.stdout):
        if not block.startswith("rule train_"):
            continue
        dataset = re.search(r"wildcards: dataset=(\w+)", block)[1]
        res = dict(re.findall(r"(\w+)=([^,\s]+)", re.search(r"resources: (.*)", block)[1]))
        hyper = paper["hyper"][dataset]
        assert int(res["mem_mb"]) == hyper["mem_mb"], (dataset, res)
        assert int(res["runtime"]) == hyper["runtime_min"], (dataset, res)
        assert int(res["cpus_per_task"]) == paper["threads"], (dataset, res)
        seen.add(dataset)
    assert len(seen) == 6 and len({paper["hyper"][d]["mem_mb"] for d in seen}) > 1


def test_smoke_plan_everything(tmp_path):
    p = snakemake("-n", "--directory", str(tmp_path), "--config", "profile=smoke")
    counts = job_counts(p.stdout)
    # group_variants: one job per (dataset, framework) trains the four variants
    assert counts["train_torch"] == counts["train_jax"] == 10
    grouped = snakemake(
        "-n", "-p", "--directory", str(tmp_path), "smoke/runs/cosmic/kr/jax/seed0/result.json",
        "--config", "profile=smoke",
    )  # fmt: skip
    assert "--variant ccnn k kr krwd " in grouped.stdout
    assert "--out 'smoke/runs/cosmic/{variant}/jax/seed0'" in grouped.stdout
    ungrouped = snakemake(
        "-n", "--directory", str(tmp_path), "--config", "profile=smoke", "group_variants=False"
    )
    counts = job_counts(ungrouped.stdout)
    assert counts["train_torch"] == counts["train_jax"] == 10 * 4
    assert counts["data"] == 10
    assert counts["results_table"] == 3 and counts["architecture_table"] == 2
    assert "smoke/reports/table1.csv" in p.stdout
    assert " reports/table1.csv" not in p.stdout


@pytest.mark.parametrize(
    "override,needle",
    [
        ("profile=fast", "valid profiles: ['paper', 'smoke', 'claims']"),
        ("datasets=[listops,mnist]", "'mnist' is not one of"),
        ("variants=[kw]", "'kw' is not one of"),
        ("frameworks=[tf]", "'tf' is not one of"),
        (
            "paths={data: data, runs: results/runs, reports: reports, logs: l, benchmarks: b}",
            "never land",
        ),
    ],
)
def test_bad_config_fails_before_any_job(tmp_path, override, needle):
    p = snakemake(
        "-n", "--directory", str(tmp_path), "--config", "profile=smoke", override, check=False
    )
    assert p.returncode != 0
    assert needle in p.stdout + p.stderr
    assert "Job stats" not in p.stdout


def test_lint_clean():
    p = snakemake("--lint", check=False)
    assert "Congratulations" in p.stdout + p.stderr, p.stdout + p.stderr


def test_tiny_workflow_runs_and_reruns_as_nothing_to_do(tmp_path):
    config = [
        "--config",
        "profile=smoke",
        "datasets=[darcyflow,listops]",
        "variants=[krwd]",  # every mask and table column; more variants only add jobs
        "parity={variants: [ccnn], heads: [global], dtypes: [float64]}",
    ]
    snakemake("--cores", "2", "--directory", str(tmp_path), *config)
    reports = tmp_path / "smoke" / "reports"
    for name in ("table1.csv", "table2.csv", "table4.csv", "table5.csv", "fig10.png",
                 "fig10.pdf", "parity.csv", "summary.md", "summary.html"):  # fmt: skip
        assert (reports / name).is_file(), name
    assert not (reports / "table3.csv").exists()  # no CIFAR dataset configured
    t1 = pd.read_csv(reports / "table1.csv")
    assert set(t1["variant"]) == {"krwd"} and set(t1["profile"]) == {"smoke"}
    assert t1["torch_verdict"].str.startswith("not comparable").all()
    assert (t1["torch_seeds"] == 1).all() and (t1["jax_seeds"] == 1).all()
    bench = tmp_path / "smoke/benchmarks/train/listops/jax/seed0.tsv"  # group_variants
    assert bench.read_text().startswith("s\t")
    assert not (tmp_path / "reports").exists() and not (tmp_path / "results").exists()
    again = snakemake("--cores", "2", "--directory", str(tmp_path), *config)
    assert "Nothing to be done" in again.stdout + again.stderr
    # a lost result (e.g. a killed job whose outputs Snakemake removed) reruns from the
    # checkpoint: the CLI logs the resume and ends with the same numbers
    run = tmp_path / "smoke/runs/darcyflow/krwd/torch/seed0"
    before = (run / "result.json").read_text()
    (run / "result.json").unlink()
    target = "smoke/runs/darcyflow/krwd/torch/seed0/result.json"
    snakemake("--cores", "2", "--directory", str(tmp_path), target, *config)
    log = (tmp_path / "smoke/logs/train/darcyflow/torch/seed0.log").read_text()
    assert "resuming from" in log
    import json

    a, b = json.loads(before), json.loads((run / "result.json").read_text())
    assert a["test_metric"] == b["test_metric"] and a["c_ratio"] == b["c_ratio"]
