"""The project's Apptainer images: one table, read by the recipe generator
(`python -m containers.render`), the Snakemake build rules (`containers/containers.smk`) and the
tests. Paths are relative to the repository root, where Snakemake runs.

    from containers.images import IMAGES, def_path, sif_path, image_for
    sif_path("torch-cuda")        # "containers/torch-cuda.sif"
    image_for("jax", "tpu")       # "jax-tpu"

Torch and JAX live in separate GPU images: their CUDA wheels bring conflicting cuDNN/CUDA
libraries. The `cpu` image holds the CPU builds of both for the parity check.

The base image is pinned by digest HERE and nowhere else (`BASE_IMAGE`); the package versions
are read from pyproject.toml and requirements.lock (`project_pins`, `lock_pins`), never typed.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONTAINERS = "containers"  # relative to ROOT

# Docker Hub's official Python image, Debian 12, linux/amd64 + arm64 index digest. Taken from
# public records, NOT resolved against the registry from this project's machines: verify with
#   docker buildx imagetools inspect python:3.11-slim-bookworm   (or: skopeo inspect
#   docker://docker.io/library/python:3.11-slim-bookworm | jq -r .Digest)
# and change it here only, then `python -m containers.render` (containers/README.md).
BASE_IMAGE = (
    "python:3.11-slim-bookworm"
    "@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b"
)
# The CPU-only PyTorch wheels (same version as the lock, local label "+cpu").
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# jax's extra that pulls the CUDA plugin matching jaxlib (its pins follow jax's version).
JAX_CUDA_EXTRA = "cuda12"
# Where the project's files sit inside every image.
PREFIX = "/opt/dnarch-repro"

PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^;\s]+)$")


@dataclass(frozen=True)
class Image:
    name: str
    description: str
    extras: tuple[str, ...]  # pyproject optional-dependency groups installed
    accelerator: str  # "cuda" | "tpu" | "cpu": where the image is meant to run
    torch_build: str | None = None  # "cuda" | "cpu" when torch is in the image

    @property
    def frameworks(self) -> tuple[str, ...]:
        return tuple(f for f in ("torch", "jax") if f in self.extras)

    @property
    def def_path(self) -> str:
        return f"{CONTAINERS}/{self.name}.def"

    @property
    def sif_path(self) -> str:
        return f"{CONTAINERS}/{self.name}.sif"


IMAGES: dict[str, Image] = {
    img.name: img
    for img in (
        Image(
            "torch-cuda",
            "PyTorch (CUDA build from PyPI) for NVIDIA GPUs",
            ("torch",),
            "cuda",
            torch_build="cuda",
        ),
        Image("jax-cuda", "JAX/Flax with the CUDA plugin for NVIDIA GPUs", ("jax",), "cuda"),
        Image("jax-tpu", "JAX/Flax with libtpu, for Cloud TPU VMs", ("jax",), "tpu"),
        Image(
            "cpu",
            "CPU builds of PyTorch and JAX together: the cross-framework parity check",
            ("torch", "jax"),
            "cpu",
            torch_build="cpu",
        ),
    )
}


def def_path(name: str) -> str:
    """`containers/<name>.def`, relative to the repository root."""
    return _get(name).def_path


def sif_path(name: str) -> str:
    """`containers/<name>.sif`, relative to the repository root (built, never committed)."""
    return _get(name).sif_path


def image_for(framework: str, accelerator: str = "cuda") -> str:
    """The image a rule of `framework` ("torch" | "jax") runs in on `accelerator`."""
    for img in IMAGES.values():
        if img.frameworks == (framework,) and img.accelerator == accelerator:
            return img.name
    valid = sorted(
        {(i.frameworks[0], i.accelerator) for i in IMAGES.values() if len(i.frameworks) == 1}
    )
    raise ValueError(f"no image for {framework!r} on {accelerator!r}; valid: {valid}")


def _get(name: str) -> Image:
    if name not in IMAGES:
        raise KeyError(f"unknown image {name!r}; valid: {sorted(IMAGES)}")
    return IMAGES[name]


def normalize(name: str) -> str:
    """PEP 503 name normalisation (`PyYAML` == `pyyaml`, `ml_dtypes` == `ml-dtypes`)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(lines: list[str], where: str) -> dict[str, str]:
    out = {}
    for line in lines:
        m = PIN.match(line.strip())
        if not m:
            raise ValueError(f"{where}: {line!r} is not an exact pin (name==version)")
        out[normalize(m.group(1))] = m.group(2)
    return out


def pyproject(root: Path = ROOT) -> dict:
    return tomllib.loads((root / "pyproject.toml").read_text())["project"]


def project_pins(root: Path = ROOT) -> dict[str, str]:
    """Every direct pin of pyproject.toml (dependencies + every extra), normalised names."""
    project = pyproject(root)
    lines = list(project["dependencies"])
    for deps in project["optional-dependencies"].values():
        lines += [d for d in deps if not d.startswith(project["name"])]
    return _pins(lines, "pyproject.toml")


def extra_pins(extras: tuple[str, ...], root: Path = ROOT) -> dict[str, str]:
    """The pins an image with these extras must hold: dependencies + those extras."""
    project = pyproject(root)
    lines = list(project["dependencies"])
    for extra in extras:
        lines += project["optional-dependencies"][extra]
    return _pins(lines, "pyproject.toml")


def lock_pins(root: Path = ROOT) -> dict[str, str]:
    lines = (root / "requirements.lock").read_text().splitlines()
    return _pins([ln for ln in lines if ln.strip() and not ln.startswith("#")], "requirements.lock")


def lock_sha256(root: Path = ROOT) -> str:
    return hashlib.sha256((root / "requirements.lock").read_bytes()).hexdigest()
