"""Train-step speed, JAX vs PyTorch: the jitted JAX step (`virtual`, static shapes) against
PyTorch's `virtual` and `trim` steps, same model, same shapes.

    python -m pipelines.bench_frameworks                  # -> results/bench/frameworks.csv
    python -m pipelines.bench_frameworks --steps 5 --out /tmp/frameworks.csv
    python -m pipelines.bench_frameworks --device cuda    # PyTorch on the GPU (JAX: default)

Models: CCNN_{4,140} (variant ccnn) and krwd (CCNN_{8,280} instantiated, masks at their
initialisation, i.e. starting as CCNN_{4,140}); shapes: 1D L = 2048 at batch 8 (1 input
channel) and 2D 32 x 32 at batch 16 (3 input channels), 10 classes, cross-entropy, AdamW.
Modes: torch virtual, torch trim, jax virtual (the default JAX model: blocks cut by the
depth mask skipped and blocks run at a bucket width, both decided at run time inside the one
compiled step), and for krwd jax virtual-literal (every block at full width: the paper's
literal virtual mode, `skip_cut_blocks=False, width_buckets=(1.0,)`).
Columns: model, shape, batch, framework, mode, compile_s (JAX: the first call, i.e. trace +
XLA compile + one step; PyTorch: the first step, which has no compilation), step_ms (median
of `--steps` further steps), ratio_to_fastest_torch (step_ms / the faster PyTorch mode's),
goal_met (JAX rows). `OUT.json` next to the CSV records the git SHA, package versions,
devices, configs and wall time. This is a measurement script, not a timed test; expected run
time on 2 CPU cores: about 5 minutes.
Goal: on a CPU the jitted JAX step within 1.5x of the faster PyTorch mode, compile time under
60 s.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np

from implementations.common.config import ModelConfig
from pipelines.bench import cuda_sync
from pipelines.bench_gpu import time_step
from pipelines.provenance import jax_device, provenance, torch_device, write_csv, write_json

COLUMNS = [
    "model",
    "shape",
    "batch",
    "framework",
    "mode",
    "compile_s",
    "step_ms",
    "ratio_to_fastest_torch",
    "goal_met",
]
SHAPES = {"1d": ((2048,), 8, 1), "2d": ((32, 32), 16, 3)}  # input_shape, batch, channels
MODELS = ("ccnn", "krwd")
LR, WEIGHT_DECAY, LAMBDA = 1e-3, 0.05, 0.1
GOAL_RATIO, GOAL_COMPILE_S = 1.5, 60.0  # JAX within 1.5x of the faster torch mode


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


def time_torch(cfg: ModelConfig, batch: int, steps: int, device=None) -> tuple[float, float]:
    import torch

    from implementations.torch import build_model
    from implementations.torch.train import make_optimizer, train_step

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(0)
    model = build_model(cfg).to(device)
    opt, sched = make_optimizer(model, LR, WEIGHT_DECAY, 10, 1000)
    x, t = (torch.as_tensor(a, device=device) for a in batch_data(cfg, batch))
    lam = LAMBDA if cfg.uses_complexity_loss else 0.0

    def step() -> None:
        train_step(model, opt, sched, x, t, "cross_entropy", lam)
        cuda_sync(x)

    return time_step(step, steps)


def time_jax(
    cfg: ModelConfig, batch: int, steps: int, literal: bool = False
) -> tuple[float, float]:
    import jax
    import jax.numpy as jnp

    from implementations.jax import model as jm
    from implementations.jax import train as jt

    if literal:
        model = jm.build_model(cfg, skip_cut_blocks=False, width_buckets=(1.0,))
    else:
        model = jm.build_model(cfg)
    optimizer, _ = jt.make_optimizer(model, LR, WEIGHT_DECAY, 10, 1000)
    jit_step = jt.jit_train_step(
        model, optimizer, "cross_entropy", LAMBDA if cfg.uses_complexity_loss else 0.0
    )
    state = jt.init_train_state(model, optimizer, jax.random.key(0))
    x, t = batch_data(cfg, batch)
    x = jnp.asarray(np.moveaxis(x, 1, -1))  # channels first (B, C, *S) -> last (B, *S, C)
    t = jnp.asarray(t)

    def step() -> None:
        nonlocal state
        state, metrics = jit_step(state, x, t)
        jax.block_until_ready((state, metrics))

    return time_step(step, steps)


def measurements(model: str) -> list[tuple[str, str]]:
    """(framework, mode) pairs timed for `model`. `virtual-literal` is the JAX step without
    the run-time branches (every block at full width), for models that learn depth."""
    pairs = [("torch", "virtual"), ("torch", "trim"), ("jax", "virtual")]
    if bench_config(model, next(iter(SHAPES)), "virtual").learns_depth:
        pairs.append(("jax", "virtual-literal"))
    return pairs


def main(argv: list[str] | None = None) -> int:
    import jax
    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    p.add_argument("--steps", type=int, default=3, help="timed steps after the first")
    p.add_argument(
        "--device",
        default=None,
        help="PyTorch device (default: cuda when available, else cpu). JAX uses its default "
        "backend; JAX_PLATFORMS=cpu forces the CPU",
    )
    p.add_argument("--out", type=Path, default=Path("results/bench/frameworks.csv"))
    args = p.parse_args(argv)
    if args.steps < 1:
        p.error(f"--steps must be >= 1, got {args.steps}")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))

    rows = []
    t_start = time.perf_counter()
    for model in args.models:
        for shape in args.shapes:
            batch = SHAPES[shape][1]
            label = "x".join(map(str, SHAPES[shape][0]))
            measured = {}
            for framework, mode in measurements(model):
                if framework == "jax":
                    cfg = bench_config(model, shape, "virtual")
                    timing = time_jax(cfg, batch, args.steps, literal=mode == "virtual-literal")
                else:
                    timing = time_torch(bench_config(model, shape, mode), batch, args.steps, device)
                measured[(framework, mode)] = timing
                first, ms = timing
                print(
                    f"{model:<5} {label:<6} {framework:<6} {mode:<19} first {first:7.2f} s  "
                    f"step {ms:9.1f} ms",
                    flush=True,
                )
            fastest = min(measured[("torch", "virtual")][1], measured[("torch", "trim")][1])
            for (framework, mode), (first, ms) in measured.items():
                ratio = ms / fastest
                goal = framework == "jax" and ratio <= GOAL_RATIO and first <= GOAL_COMPILE_S
                rows.append(
                    {
                        "model": model,
                        "shape": label,
                        "batch": batch,
                        "framework": framework,
                        "mode": mode,
                        "compile_s": f"{first:.3f}",
                        "step_ms": f"{ms:.3f}",
                        "ratio_to_fastest_torch": f"{ratio:.3f}",
                        "goal_met": "" if framework == "torch" else goal,
                    }
                )
    write_csv(args.out, rows, COLUMNS)
    sidecar = args.out.with_suffix(".json")
    write_json(
        sidecar,
        provenance(
            steps=args.steps,
            seed=0,
            torch_device=f"{device}" + (f" ({torch_device()})" if device.type == "cuda" else ""),
            torch_threads=torch.get_num_threads(),
            jax_device=jax_device(),
            jax_devices=[str(d) for d in jax.devices()],
            cpu_count=os.cpu_count(),
            goal={"ratio_to_fastest_torch": GOAL_RATIO, "compile_s": GOAL_COMPILE_S},
            configs={
                f"{m}-{s}": dataclasses.asdict(bench_config(m, s, "virtual"))
                for m in args.models
                for s in args.shapes
            },
            wall_s=round(time.perf_counter() - t_start, 1),
        ),
    )
    print(f"-> {args.out}, {sidecar}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
