"""containers/selftest.py, the `%test` of every image, run here against the development
environment (installed from the same lock): the pin check passes, and the full self-test of the
`cpu` image (both frameworks' forward passes) passes while the `torch-cuda` one rejects the CPU
wheel."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from containers import selftest
from containers.images import IMAGES

ROOT = Path(__file__).resolve().parents[2]


def test_development_environment_matches_the_lock():
    assert selftest.check_pins(IMAGES["cpu"]) == []


def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "containers.selftest", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


@pytest.mark.slow
def test_cpu_image_selftest_passes_here():
    out = run("--image", "cpu")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "forward torch    cpu: shape (2, 2), finite True" in out.stdout
    assert "forward jax      cpu: shape (2, 2), finite True" in out.stdout


@pytest.mark.slow
def test_torch_cuda_selftest_rejects_the_cpu_wheel():
    out = run("--image", "torch-cuda")
    if "+cpu" not in out.stdout:
        pytest.skip("this environment has a CUDA build of torch")
    assert out.returncode == 1
    assert "is the CPU build; this image needs CUDA" in out.stderr
