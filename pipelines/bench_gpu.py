"""What a paper run costs: train-step speed at every dataset shape of the paper
profile, at its Table 6 batch size, on whatever device is present.

    python -m pipelines.bench_gpu                      # everything -> results/bench/gpu.csv
    python -m pipelines.bench_gpu --datasets listops cifar10 --variants ccnn krwd --steps 3
    python -m pipelines.bench_gpu --modes torch-trim-bucketed --compile   # captured buckets
    python -m pipelines.bench_gpu --tiny --out /tmp/gpu.csv          # CI: tiny shapes, seconds

Per (dataset, variant, mode): the paper profile's model (CCNN_{4,140}; krwd CCNN_{8,280} with
masks at their initialisation) at the dataset's full input shape (data_prep.registry) and Table
6 batch size (pipelines/config/paper.yaml), one AdamW step (task loss + lambda L_comp, mask
clamping) timed as the median of `--steps` steps after `--warmup` ones. Modes: torch-trim,
torch-virtual, torch-trim-bucketed (`build_model(..., bucketed=True)`; with `--compile` its
forward is `torch.compile`d once per bucket, mode reduce-overhead = CUDA graphs on a GPU) and
jax (the jitted static-shape step). Columns: steps/s, samples/s, the fraction of a step spent in
FFTs (PyTorch: torch.profiler, the self time of the FFT operators (device time on a GPU) over
the step's; JAX: blank, its profiler writes traces only), the first step (JAX: compilation),
and the expected time per epoch (floor(train size / batch) steps) and per paper job (Table 6
epochs; training steps only: no evaluation, no data loading, masks at their initial sizes).
`OUT.json` next to the CSV records the git SHA, versions, devices and options (provenance).

On a CPU the full shapes take hours (Path-X: 16384 samples, batch 32): select datasets,
variants, modes and steps. `--tiny` shrinks everything (shapes, widths, batch) so the whole
grid runs in seconds: it checks the script, its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from data_prep.registry import DATASETS
from implementations.common.config import ModelConfig
from pipelines.provenance import provenance, write_csv, write_json
from pipelines.settings import hyper, load_profile
from pipelines.train import model_config

VARIANTS = ("ccnn", "k", "kr", "krwd")
MODES = ("torch-trim", "torch-virtual", "torch-trim-bucketed", "jax")
DEFAULT_MODES = ("torch-trim", "torch-virtual", "jax")
COLUMNS = [
    "dataset",
    "variant",
    "mode",
    "input_shape",
    "batch",
    "device",
    "first_step_s",
    "step_ms",
    "steps_per_s",
    "samples_per_s",
    "fft_fraction",
    "train_size",
    "steps_per_epoch",
    "epochs",
    "epoch_min",
    "job_gpu_hours",
]
TINY_MODEL = dict(width=4, blocks=2, max_width=8, max_blocks=4, kernel_hidden=8, kernel_layers=2)
TINY_BATCH = 2
FFT_OPS = ("fft",)  # aten::_fft_r2c, _fft_c2r, _fft_c2c and their CUDA kernels


@dataclasses.dataclass(frozen=True)
class Case:
    dataset: str
    variant: str
    cfg: ModelConfig
    batch: int
    train_size: int
    epochs: int
    lam: float
    lr: float
    weight_decay: float


def tiny_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A tiny stand-in of a full input shape (odd sizes, 1D 33, 2D 9 x 7)."""
    return (33,) if len(shape) == 1 else (9, 7)


def cases(datasets, variants, tiny: bool = False) -> list[Case]:
    """The paper profile's model per (dataset, variant) at the dataset's full input shape and
    Table 6 batch size (`--tiny`: shrunk)."""
    settings = load_profile("paper")
    if tiny:
        settings = {**settings, "model": {**settings["model"], **TINY_MODEL}}
    out = []
    for name in datasets:
        spec = DATASETS[name]
        hp = hyper(settings, name)
        shape = tiny_shape(spec.input_shape) if tiny else tuple(spec.input_shape)
        for variant in variants:
            cfg = model_config(settings, vars(spec), hp, variant, shape)
            out.append(
                Case(
                    name,
                    variant,
                    cfg,
                    TINY_BATCH if tiny else int(hp["batch_size"]),
                    int(spec.full_sizes["train"]),
                    int(hp["epochs"]),
                    float(hp["lam"]) if cfg.uses_complexity_loss else 0.0,
                    float(hp["lr"]),
                    float(hp["weight_decay"]),
                )
            )
    return out


def loss_name(cfg: ModelConfig) -> str:
    """Cross-entropy for classification; mse for dense tasks (the same work per step as the
    relative L2 / masked BCE of the real runs, within a few elementwise ops)."""
    return "mse" if cfg.task == "dense" else "cross_entropy"


def batch_data(cfg: ModelConfig, batch: int, seed: int = 0):
    """(x, target) in PyTorch layout: tokens (B, L) or (B, 2, L); continuous (B, C, *S);
    targets (B,) labels or (B, out, *S)."""
    rng = np.random.default_rng(seed)
    if cfg.tokens:
        lead = (batch, 2) if cfg.task == "retrieval" else (batch,)
        x = rng.integers(0, cfg.vocab_size, (*lead, *cfg.input_shape))
    else:
        x = rng.standard_normal((batch, cfg.in_channels, *cfg.input_shape)).astype(np.float32)
    if cfg.task == "dense":
        t = rng.standard_normal((batch, cfg.out_size, *cfg.input_shape)).astype(np.float32)
    else:
        t = rng.integers(0, cfg.out_size, batch)
    return x, t


def time_step(step: Callable[[], None], steps: int, warmup: int = 0) -> tuple[float, float]:
    """(seconds of the first call, median ms of `steps` calls after `warmup` more). The first
    call holds compilation and allocator warm-up, so it is reported apart; `step` must return
    only once its work is done (device synchronised)."""
    t0 = time.perf_counter()
    step()
    first = time.perf_counter() - t0
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return first, 1000.0 * statistics.median(times)


def fft_fraction_torch(step, device) -> float:
    """Fraction of one step's operator self time spent in FFT operators (torch.profiler):
    device (CUDA kernel) time on a GPU, CPU time on a CPU."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        step()
    fft = total = 0.0
    for e in prof.key_averages():
        t = e.self_device_time_total if device.type == "cuda" else e.self_cpu_time_total
        total += t
        if any(k in e.key.lower() for k in FFT_OPS):
            fft += t
    return fft / total if total > 0 else float("nan")


def time_torch(case: Case, mode: str, warmup: int, steps: int, device, compile_: bool):
    import torch

    from implementations.torch import build_model
    from implementations.torch.train import compiled_forward, make_optimizer, train_step

    torch_mode = "virtual" if mode == "torch-virtual" else "trim"
    cfg = case.cfg.replace(mode=torch_mode)
    torch.manual_seed(0)
    model = build_model(cfg, bucketed=mode == "torch-trim-bucketed").to(device)
    if compile_ and mode == "torch-trim-bucketed":
        fwd = compiled_forward(model, mode="reduce-overhead" if device.type == "cuda" else None)
        model.forward = fwd  # train_step calls model(x)
    opt, sched = make_optimizer(model, case.lr, case.weight_decay, 10, 10**6)
    x, t = (torch.as_tensor(a, device=device) for a in batch_data(cfg, case.batch))
    loss = loss_name(cfg)

    def step() -> None:
        train_step(model, opt, sched, x, t, loss, case.lam)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    first, ms = time_step(step, steps, warmup)
    return first, ms, fft_fraction_torch(step, device)


def time_jax(case: Case, warmup: int, steps: int):
    import jax
    import jax.numpy as jnp

    from implementations.jax import model as jm
    from implementations.jax import train as jt

    cfg = case.cfg.replace(mode="virtual")
    model = jm.build_model(cfg)
    optimizer, _ = jt.make_optimizer(model, case.lr, case.weight_decay, 10, 10**6)
    jit_step = jt.jit_train_step(model, optimizer, loss_name(cfg), case.lam)
    state = jt.init_train_state(model, optimizer, jax.random.key(0))
    x, t = batch_data(cfg, case.batch)
    if not cfg.tokens:
        x = np.moveaxis(x, 1, -1)  # channels first (B, C, *S) -> last (B, *S, C)
    if cfg.task == "dense":
        t = np.moveaxis(t, 1, -1)
    x, t = jnp.asarray(x), jnp.asarray(t)

    def step() -> None:
        nonlocal state
        state, metrics = jit_step(state, x, t)
        jax.block_until_ready((state, metrics))

    first, ms = time_step(step, steps, warmup)
    return first, ms, float("nan")


def row(case: Case, mode: str, device: str, first: float, ms: float, fft: float) -> dict:
    steps_per_s = 1000.0 / ms
    per_epoch = case.train_size // case.batch
    epoch_s = per_epoch / steps_per_s
    return {
        "dataset": case.dataset,
        "variant": case.variant,
        "mode": mode,
        "input_shape": "x".join(map(str, case.cfg.input_shape)),
        "batch": case.batch,
        "device": device,
        "first_step_s": f"{first:.3f}",
        "step_ms": f"{ms:.3f}",
        "steps_per_s": f"{steps_per_s:.4g}",
        "samples_per_s": f"{steps_per_s * case.batch:.4g}",
        "fft_fraction": "" if math.isnan(fft) else f"{fft:.3f}",
        "train_size": case.train_size,
        "steps_per_epoch": per_epoch,
        "epochs": case.epochs,
        "epoch_min": f"{epoch_s / 60:.4g}",
        "job_gpu_hours": f"{case.epochs * epoch_s / 3600:.4g}",
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--modes", nargs="+", default=list(DEFAULT_MODES), choices=MODES)
    p.add_argument("--steps", type=int, default=5, help="timed steps (median)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps after the first")
    p.add_argument("--device", default=None, help="PyTorch device (default: cuda if present)")
    p.add_argument("--compile", action="store_true", help="torch.compile the bucketed forward")
    p.add_argument("--tf32", action="store_true", help="TF32 matmuls (PyTorch, CUDA only)")
    p.add_argument("--tiny", action="store_true", help="tiny shapes (CI): numbers mean nothing")
    p.add_argument("--out", type=Path, default=Path("results/bench/gpu.csv"))
    args = p.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        p.error(f"--steps must be >= 1 and --warmup >= 0, got {args.steps}, {args.warmup}")

    import torch

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
    from pipelines.provenance import jax_device, torch_device

    torch_name = torch_device() if device.type == "cuda" else f"cpu x{torch.get_num_threads()}"
    jax_name = jax_device() if "jax" in args.modes else ""
    rows = []
    t_start = time.perf_counter()
    for case in cases(args.datasets, args.variants, args.tiny):
        for mode in args.modes:
            if mode == "jax":
                first, ms, fft = time_jax(case, args.warmup, args.steps)
                name = jax_name
            else:
                first, ms, fft = time_torch(
                    case, mode, args.warmup, args.steps, device, args.compile
                )
                name = torch_name
            r = row(case, mode, name, first, ms, fft)
            rows.append(r)
            print(
                f"{case.dataset:<10} {case.variant:<4} {mode:<19} b={case.batch:<3} "
                f"{r['step_ms']:>10} ms  {r['samples_per_s']:>9} samples/s  "
                f"fft {r['fft_fraction']:>5}"
                f"  job {r['job_gpu_hours']:>8} h",
                flush=True,
            )
    write_csv(args.out, rows, COLUMNS)
    sidecar = args.out.with_suffix(".json")
    write_json(
        sidecar,
        provenance(
            options={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            torch_device=torch_name,
            jax_device=jax_name,
            cpu_count=os.cpu_count(),
            profile="paper" + (" (tiny: shapes, widths and batch shrunk)" if args.tiny else ""),
            note="job_gpu_hours: Table 6 epochs x floor(train / batch) steps / steps_per_s; "
            "training steps only, masks at their initial sizes",
            wall_s=round(time.perf_counter() - t_start, 1),
        ),
    )
    print(f"-> {args.out}, {sidecar}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
