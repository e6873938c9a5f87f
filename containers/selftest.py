"""Self-test of an image: pins, framework builds, a tiny forward pass. The `%test` section of
every recipe runs it at build time (CPU only, no accelerator needed); run it on a GPU node with

    apptainer run --nv containers/torch-cuda.sif --device gpu
    apptainer run containers/jax-tpu.sif --device tpu                  # on a Cloud TPU VM

Outside an image it checks the current environment the same way:
    python -m containers.selftest --image cpu

Checks, each failing with the offending names:
  1. Python is the version pyproject.toml requires (3.11).
  2. Every installed distribution that requirements.lock names has the locked version (a local
     label such as "+cpu" aside), and every pin of the image's extras is installed.
  3. The framework builds are the intended ones: torch CUDA vs CPU wheel, the jax CUDA plugin or
     libtpu at the jax version.
  4. A tiny DNArch (krwd, 1D, L = 33) runs forward in each framework on `--device` and gives
     finite logits of shape (2, 2).
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import os
import platform
import sys
from pathlib import Path

from containers.images import (
    IMAGES,
    JAX_CUDA_EXTRA,
    ROOT,
    Image,
    extra_pins,
    lock_pins,
    normalize,
    pyproject,
)

# Inside an Apptainer image the project itself must be installed too (a checkout used in place,
# e.g. the development .venv, need not be).
IN_IMAGE = Path("/.singularity.d").is_dir()


def _installed() -> dict[str, str]:
    return {normalize(d.metadata["Name"]): d.version for d in md.distributions()}


def check_pins(image: Image) -> list[str]:
    errors = []
    want = pyproject(ROOT)["requires-python"].removeprefix("==").removesuffix(".*")
    if not platform.python_version().startswith(want + "."):
        errors.append(f"python {platform.python_version()} != {want}.*")
    installed = _installed()
    lock = lock_pins(ROOT)
    for name, version in sorted(installed.items()):
        if name in lock and version.split("+")[0] != lock[name]:
            errors.append(f"{name} {version} installed, requirements.lock pins {lock[name]}")
    for name, version in sorted(extra_pins(image.extras, ROOT).items()):
        if name not in installed:
            errors.append(f"{name}=={version} (pyproject.toml) is not installed")
    project = pyproject(ROOT)
    got = installed.get(project["name"])
    if (IN_IMAGE or got is not None) and got != project["version"]:
        errors.append(
            f"{project['name']} {got} installed, pyproject.toml says {project['version']}"
        )
    return errors


def check_builds(image: Image) -> list[str]:
    errors = []
    installed = _installed()
    if image.torch_build is not None:
        import torch

        cuda = torch.version.cuda
        if image.torch_build == "cuda" and cuda is None:
            errors.append(f"torch {torch.__version__} is the CPU build; this image needs CUDA")
        if image.torch_build == "cpu" and cuda is not None:
            errors.append(f"torch {torch.__version__} is a CUDA {cuda} build; expected CPU")
    if "jax" in image.frameworks:
        jax_version = installed.get("jax")
        plugin = {"cuda": f"jax-{JAX_CUDA_EXTRA}-plugin", "tpu": "libtpu"}.get(image.accelerator)
        if plugin is not None and plugin not in installed:
            errors.append(f"{plugin} is not installed (jax[{image.accelerator}] extra)")
        if image.accelerator == "cuda" and installed.get(plugin) not in (None, jax_version):
            errors.append(f"{plugin} {installed[plugin]} != jax {jax_version}")
        if image.accelerator == "cpu" and any(n.startswith("jax-cuda") for n in installed):
            errors.append("a jax CUDA plugin is installed in the CPU image")
    return errors


def selftest_config():
    """Check 4's model: the tiny krwd, 1D, L = 33, one input channel, two outputs."""
    from implementations.common.config import tiny_config

    return tiny_config("krwd", (33,), in_channels=1, out_size=2)


def forward_torch(device: str) -> tuple[tuple[int, ...], bool]:
    import torch

    from implementations.torch import build_model

    dev = {"cpu": "cpu", "gpu": "cuda"}[device]
    torch.manual_seed(0)
    model = build_model(selftest_config()).to(dev).eval()
    with torch.no_grad():
        y = model(torch.randn(2, 1, 33, device=dev))  # (B, C, L) -> (B, out)
    return tuple(y.shape), bool(torch.isfinite(y).all())


def forward_jax(device: str) -> tuple[tuple[int, ...], bool]:
    import jax
    import jax.numpy as jnp

    from implementations.jax import build_model, init_variables

    backend = jax.default_backend()
    if backend != device:
        raise RuntimeError(f"jax runs on {backend!r}, expected {device!r}")
    model = build_model(selftest_config())
    variables = init_variables(model, jax.random.PRNGKey(0))
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 33, 1))  # (B, L, C): channels last
    y = model.apply(variables, x)
    return tuple(y.shape), bool(jnp.isfinite(y).all())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--image", required=True, choices=sorted(IMAGES))
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu", "tpu"])
    args = p.parse_args(argv)
    image = IMAGES[args.image]
    if args.device == "cpu" and "jax" in image.frameworks:
        os.environ["JAX_PLATFORMS"] = "cpu"  # before jax is imported: no accelerator probing

    errors = check_pins(image) + check_builds(image)
    installed = _installed()
    for name in (
        "numpy",
        "torch",
        "jax",
        "jaxlib",
        "flax",
        "optax",
        f"jax-{JAX_CUDA_EXTRA}-plugin",
    ):
        if name in installed:
            print(f"{name:24s} {installed[name]}")
    print(f"{'python':24s} {platform.python_version()}")

    runs = {"torch": forward_torch, "jax": forward_jax}
    for framework in image.frameworks:
        if framework == "torch" and args.device == "tpu":
            continue
        try:
            shape, finite = runs[framework](args.device)
        except Exception as e:  # report every failure, not only the first
            errors.append(f"{framework} forward on {args.device}: {type(e).__name__}: {e}")
            continue
        ok = shape == (2, 2) and finite
        print(f"forward {framework:8s} {args.device}: shape {shape}, finite {finite}")
        if not ok:
            errors.append(f"{framework} forward: shape {shape} (want (2, 2)), finite {finite}")

    for e in errors:
        print(f"FAIL: {e}", file=sys.stderr)
    print(f"selftest {args.image}: {'FAILED' if errors else 'ok'} ({len(errors)} errors)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
