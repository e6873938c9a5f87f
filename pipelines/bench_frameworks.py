"""Train-step speed, JAX vs PyTorch (issue 3): the jitted JAX step (`virtual`, static shapes)
against PyTorch's `virtual` and `trim` steps, same model, same shapes, same CPU.

    python -m pipelines.bench_frameworks                  # -> results/bench/frameworks.csv
    python -m pipelines.bench_frameworks --steps 5 --out /tmp/frameworks.csv

Models: CCNN_{4,140} (variant ccnn) and krwd (CCNN_{8,280} instantiated, masks at their
initialisation, i.e. starting as CCNN_{4,140}); shapes: 1D L = 2048 at batch 8 (1 input
channel) and 2D 32 x 32 at batch 16 (3 input channels), 10 classes, cross-entropy, AdamW.
Columns: model, shape, batch, framework, mode, compile_s (JAX: the first call, i.e. trace +
XLA compile + one step; PyTorch: the first step, which has no compilation), step_ms (median
of `--steps` further steps), ratio_to_fastest_torch (step_ms / the faster PyTorch mode's).
A JSON sidecar records the git SHA, package versions and the device. This is a measurement
script, not a timed test; expected run time on 2 CPU cores: about 5 minutes.
Goal (issue 3): on a CPU the jitted JAX step within 1.5x of the faster PyTorch mode, compile
time under 60 s.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from implementations.common.config import ModelConfig

COLUMNS = [
    "model",
    "shape",
    "batch",
    "framework",
    "mode",
    "compile_s",
    "step_ms",
    "ratio_to_fastest_torch",
]
SHAPES = {"1d": ((2048,), 8, 1), "2d": ((32, 32), 16, 3)}  # input_shape, batch, channels
MODELS = ("ccnn", "krwd")
LR, WEIGHT_DECAY, LAMBDA = 1e-3, 0.05, 0.1


def bench_config(model: str, shape: str, mode: str) -> ModelConfig:
    input_shape, _, channels = SHAPES[shape]
    return ModelConfig(
        variant=model,
        data_dim=len(input_shape),
        input_shape=input_shape,
        out_size=10,
        in_channels=channels,
        mode=mode,
    )


def batch_data(cfg: ModelConfig, batch: int, seed: int = 0):
    """(x, labels) in PyTorch layout (B, C, *S), float32."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, cfg.in_channels, *cfg.input_shape)).astype(np.float32)
    return x, rng.integers(0, cfg.out_size, batch)


def time_torch(cfg: ModelConfig, batch: int, steps: int) -> tuple[float, float]:
    import torch

    from implementations.torch import build_model
    from implementations.torch.train import make_optimizer, train_step

    torch.manual_seed(0)
    model = build_model(cfg)
    opt, sched = make_optimizer(model, LR, WEIGHT_DECAY, 10, 1000)
    x, t = (torch.as_tensor(a) for a in batch_data(cfg, batch))
    lam = LAMBDA if cfg.uses_complexity_loss else 0.0
    t0 = time.perf_counter()
    train_step(model, opt, sched, x, t, "cross_entropy", lam)
    first = time.perf_counter() - t0
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        train_step(model, opt, sched, x, t, "cross_entropy", lam)
        times.append(time.perf_counter() - t0)
    return first, 1000.0 * statistics.median(times)


def time_jax(cfg: ModelConfig, batch: int, steps: int) -> tuple[float, float]:
    import jax
    import jax.numpy as jnp

    from implementations.jax import model as jm
    from implementations.jax import train as jt

    model = jm.build_model(cfg)
    optimizer, _ = jt.make_optimizer(model, LR, WEIGHT_DECAY, 10, 1000)
    step = jt.jit_train_step(
        model, optimizer, "cross_entropy", LAMBDA if cfg.uses_complexity_loss else 0.0
    )
    state = jt.init_train_state(model, optimizer, jax.random.key(0))
    x, t = batch_data(cfg, batch)
    x = jnp.asarray(np.moveaxis(x, 1, -1))  # channels first (B, C, *S) -> last (B, *S, C)
    t = jnp.asarray(t)
    t0 = time.perf_counter()
    state, metrics = step(state, x, t)
    jax.block_until_ready((state, metrics))
    first = time.perf_counter() - t0
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        state, metrics = step(state, x, t)
        jax.block_until_ready((state, metrics))
        times.append(time.perf_counter() - t0)
    return first, 1000.0 * statistics.median(times)


def environment() -> dict:
    import jax
    import torch

    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        sha = "unknown"
    versions = {"python": platform.python_version(), "numpy": np.__version__}
    for name in ("jax", "jaxlib", "flax", "optax", "torch"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            versions[name] = None
    return {
        "git_sha": sha,
        "versions": versions,
        "device": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "jax_devices": [str(d) for d in jax.devices()],
        },
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    p.add_argument("--steps", type=int, default=3, help="timed steps after the first")
    p.add_argument("--out", type=Path, default=Path("results/bench/frameworks.csv"))
    args = p.parse_args(argv)

    rows = []
    for model in args.models:
        for shape in args.shapes:
            batch = SHAPES[shape][1]
            label = "x".join(map(str, SHAPES[shape][0]))
            measured = {}
            for framework, mode in (("torch", "virtual"), ("torch", "trim"), ("jax", "virtual")):
                cfg = bench_config(model, shape, mode)
                timer = time_jax if framework == "jax" else time_torch
                measured[(framework, mode)] = timer(cfg, batch, args.steps)
                first, ms = measured[(framework, mode)]
                print(
                    f"{model:<5} {label:<6} {framework:<6} {mode:<8} first {first:7.2f} s  "
                    f"step {ms:9.1f} ms",
                    flush=True,
                )
            fastest = min(measured[("torch", "virtual")][1], measured[("torch", "trim")][1])
            for (framework, mode), (first, ms) in measured.items():
                rows.append(
                    {
                        "model": model,
                        "shape": label,
                        "batch": batch,
                        "framework": framework,
                        "mode": mode,
                        "compile_s": f"{first:.3f}",
                        "step_ms": f"{ms:.1f}",
                        "ratio_to_fastest_torch": f"{ms / fastest:.3f}",
                    }
                )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    sidecar = args.out.with_suffix(".json")
    sidecar.write_text(json.dumps({**environment(), "steps": args.steps}, indent=2) + "\n")
    print(f"-> {args.out}, {sidecar}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
