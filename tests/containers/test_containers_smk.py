"""containers/containers.smk, included by a throwaway Snakefile: `snakemake --lint` is clean and
a dry run of `images` plans one build per image (no Apptainer binary needed for either)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from containers.images import IMAGES

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def snakefile(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("workflow")
    include = os.path.relpath(ROOT / "containers" / "containers.smk", tmp)  # --lint flags absolute
    (tmp / "Snakefile").write_text(f'include: "{include}"\n')
    return tmp / "Snakefile"


def snakemake(snakefile: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the real Snakefile sits in ROOT
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), "-d", str(ROOT)]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, timeout=120)


def test_lint_clean(snakefile):
    out = snakemake(snakefile, "--lint")
    assert out.returncode == 0, out.stderr + out.stdout
    assert "Lints for" not in out.stdout + out.stderr, out.stdout + out.stderr


def test_dry_run_builds_every_image(snakefile):
    out = snakemake(snakefile, "-n", "--cores", "1", "images")
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    for name in IMAGES:
        assert f"output: containers/{name}.sif" in text
        assert f"log: logs/containers/{name}.log" in text
    assert "build_image        4" in text
