"""Every workflow rule names its Apptainer image; the SLURM profile plans the paper run with
images and GPU resources. No Apptainer binary can run here: the dry run uses a stub
`apptainer` that only answers `--version` (Snakemake checks it exists before planning)."""

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
BUILD_RULES = {"images", "build_image", "all"}  # local rules that run no project code


def rule_images(config: dict) -> dict[str, str | None]:
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        with SnakemakeApi(OutputSettings()) as api:
            wf = api.workflow(
                resource_settings=ResourceSettings(),
                config_settings=ConfigSettings(config=config),
                snakefile=ROOT / "Snakefile",
                workdir=ROOT,
            )._workflow
            return {r.name: r.container_img for r in wf.rules}
    finally:
        os.chdir(cwd)


def test_every_rule_names_its_image():
    images = rule_images({"profile": "paper"})
    assert images["train_torch"] == "containers/torch-cuda.sif"
    assert images["train_jax"] == "containers/jax-cuda.sif"
    for name, img in images.items():
        if name in BUILD_RULES:
            continue
        assert img, f"rule {name} has no container:"
        if not name.startswith("train_"):
            assert img == "containers/cpu.sif", name
        assert (ROOT / img.replace(".sif", ".def")).exists(), img


def test_accelerator_picks_tpu_and_cpu_images():
    tpu = rule_images({"profile": "paper", "accelerator": "tpu", "frameworks": ["jax"]})
    assert tpu["train_jax"] == "containers/jax-tpu.sif" and "train_torch" not in tpu
    cpu = rule_images({"profile": "paper", "accelerator": "cpu"})
    assert cpu["train_torch"] == cpu["train_jax"] == "containers/cpu.sif"


@pytest.mark.skipif(
    not (Path(sys.executable).parent / "snakemake").exists(), reason="snakemake not installed"
)
def test_slurm_profile_plans_the_paper_run_with_gpus(tmp_path):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    stub = tmp_path / "bin" / "apptainer"
    stub.parent.mkdir()
    stub.write_text('#!/bin/sh\necho "apptainer version 1.3.4"\n')
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    env = {
        **os.environ,
        "PATH": f"{stub.parent}{os.pathsep}{os.environ['PATH']}",
        "DNARCH_SLURM_ACCOUNT": "proj",
        "DNARCH_SLURM_PARTITION": "cpu",
        "DNARCH_SLURM_GPU_PARTITION": "gpu",
    }
    p = subprocess.run(
        [
            str(SNAKEMAKE),
            "-n",
            "--profile",
            "pipelines/profiles/slurm",
            "reports/table1.csv",
            "--config",
            "profile=paper",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    out = p.stdout + p.stderr
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", out.split("Job stats:")[1], re.M))
    assert stats["train_torch"] == stats["train_jax"] == str(6 * 4 * 3)
    assert stats["lra_extract"] == "1"  # one pass over the LRA archive for its four datasets
    assert stats["total"] == str(6 + 1 + 144 + 1)
    jobs = out.split("\nrule ")[1:] + out.split("\nlocalrule ")[1:]
    train = [j for j in jobs if j.startswith("train_")]
    assert len(train) == 144
    assert all("gpu=1" in j and "slurm_partition=gpu" in j for j in train)
