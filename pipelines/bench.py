"""Benchmarks that write CSVs (speed goals live here, not in timed tests).

    python -m pipelines.bench trim [--out results/bench] [--repeats 3]

`trim`: forward + backward time per step of DNArch_{K,R,W,D}(CCNN_{4,140}) (instantiated as
CCNN_{8,280}) in `trim` vs `virtual` mode, with every sigmoid mask set so that
C_curr / C_full = 1.0, 0.5, 0.25 (C_full: all masks at their maximum, i.e. the full CCNN_{8,280}
at full resolution), for 1D L = 2048 (batch 8) and 2D 32 x 32 (batch 16). Goals (issue 2): at
0.25 the trim step takes at most 0.4x the virtual step; at 1.0 trim is at most 10 % slower.
It also times the `ccnn` variant (CCNN_{4,140}, ListOps shapes: tokens, L = 2048, batch 8)
against the public CCNN code's ~480 ms per step on the same CPU (performance.md; goal 1.5x).
Ratios are measured within one run: absolute times on shared machines drift.
"""

from __future__ import annotations

import argparse
import csv
import io
import statistics
import time

import torch
from tqdm import tqdm

from implementations.common.config import ModelConfig
from implementations.torch.model import build_model, set_sigmoid_masks
from pipelines.provenance import provenance, torch_device, write_atomic, write_json

REFERENCE_CCNN_MS = 480.0  # public CCNN code, CCNN_{4,140}, L = 2048, batch 8, 2 threads


def cuda_sync(x: torch.Tensor) -> None:
    """Wait for x's device (CUDA) so that a timer measures the work, not its launch."""
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)


def _step_ms(model, x, repeats: int) -> float:
    times = []
    for i in range(repeats + 1):  # the first step warms up allocators and FFT plans
        cuda_sync(x)
        t0 = time.perf_counter()
        model.zero_grad(set_to_none=True)
        y = model(x)
        (y.float() ** 2).mean().backward()
        cuda_sync(x)
        if i:
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _solve_t(model, target: float, full: float) -> float:
    """Common mask position t in [0, 1] with C_curr / C_full = target (bisection)."""
    lo, hi = 0.0, 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        set_sigmoid_masks(model, mid)
        ratio = float(model.complexity().detach()) / full
        lo, hi = (mid, hi) if ratio < target else (lo, mid)
    set_sigmoid_masks(model, (lo + hi) / 2)
    return (lo + hi) / 2


def bench_trim(repeats: int, device: torch.device) -> list[dict]:
    rows = []
    cases = [
        (
            "1d",
            ModelConfig(
                variant="krwd", data_dim=1, input_shape=(2048,), in_channels=1, out_size=10
            ),
            8,
        ),
        (
            "2d",
            ModelConfig(
                variant="krwd", data_dim=2, input_shape=(32, 32), in_channels=3, out_size=10
            ),
            16,
        ),
    ]
    for name, cfg, b in cases:
        torch.manual_seed(0)
        model = build_model(cfg).to(device)
        x = torch.randn(b, cfg.in_channels, *cfg.input_shape, device=device)
        set_sigmoid_masks(model, 1.0)
        full = float(model.complexity().detach())
        for target in tqdm((1.0, 0.5, 0.25), desc=f"trim vs virtual {name}", leave=False):
            t = _solve_t(model, target, full)
            ratio = float(model.complexity().detach()) / full
            arch = model.architecture()
            ms = {}
            for mode in ("virtual", "trim"):
                model.mode = mode
                ms[mode] = _step_ms(model, x, repeats)
            rows.append(
                {
                    "bench": "trim_vs_virtual",
                    "shape": "x".join(map(str, cfg.input_shape)),
                    "batch": b,
                    "c_over_full": round(ratio, 4),
                    "mask_t": round(t, 4),
                    "depth": len(arch),
                    "mean_width": round(sum(sum(r["width"]) / 3 for r in arch) / len(arch), 1),
                    "virtual_ms": round(ms["virtual"], 1),
                    "trim_ms": round(ms["trim"], 1),
                    "trim_over_virtual": round(ms["trim"] / ms["virtual"], 3),
                    "goal": "<= 0.40" if target == 0.25 else ("<= 1.10" if target == 1.0 else ""),
                }
            )
    cfg = ModelConfig(variant="ccnn", data_dim=1, input_shape=(2048,), vocab_size=18, out_size=10)
    torch.manual_seed(0)
    model = build_model(cfg).to(device)
    x = torch.randint(0, 18, (8, 2048), device=device)
    ms = _step_ms(model, x, repeats)
    rows.append(
        {
            "bench": "ccnn_vs_reference",
            "shape": "2048",
            "batch": 8,
            "c_over_full": 1.0,
            "mask_t": "",
            "depth": 4,
            "mean_width": 140,
            "virtual_ms": REFERENCE_CCNN_MS,
            "trim_ms": round(ms, 1),
            "trim_over_virtual": round(ms / REFERENCE_CCNN_MS, 3),
            "goal": "<= 0.667 (reference CCNN code, performance.md)",
        }
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("which", choices=["trim"])
    ap.add_argument("--out", default="results/bench")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="torch device (default: cuda when available, else cpu)",
    )
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    device = torch.device(args.device)
    rows = bench_trim(args.repeats, device)
    for r in rows:
        r["device"] = str(device)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    write_atomic(f"{args.out}/trim.csv", buf.getvalue())
    write_json(
        f"{args.out}/trim.json",
        provenance(
            device=torch_device(),
            seed=0,
            repeats=args.repeats,
            wall_s=round(time.perf_counter() - t0, 1),
        ),
    )
    print(buf.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
