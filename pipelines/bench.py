"""Benchmarks that write CSVs (speed goals live here, not in timed tests).

    python -m pipelines.bench trim [--out results/bench] [--repeats 3]
    python -m pipelines.bench trimdiff [--out results/bench] [--states 24]

`trim`: forward + backward time per step of DNArch_{K,R,W,D}(CCNN_{4,140}) (instantiated as
CCNN_{8,280}) in `trim` vs `virtual` mode, with every sigmoid mask set so that
C_curr / C_full = 1.0, 0.5, 0.25 (C_full: all masks at their maximum, i.e. the full CCNN_{8,280}
at full resolution), for 1D L = 2048 (batch 8) and 2D 32 x 32 (batch 16). Goals: at
0.25 the trim step takes at most 0.4x the virtual step; at 1.0 trim is at most 10 % slower.
Ratios are measured within one run: absolute times on shared machines drift. The `ccnn`
variant against the public CCNN code (goal: at least 1.5x faster) is `pipelines.bench_ccnn`,
which imports that code from a checkout and times both in one process.

`trimdiff`: how far `trim` is from `virtual` once resolution masks cut frequencies (float64,
weights at initialisation, random mask states drawn within the clamps), at Table 6's w0 values
5.5k / 21.5k / 30k: per block (each block fed the same input, the virtual network's, so the
number is that block's own difference: the pointwise layers and GELUs run at r instead of L) and
at the network output, relative to the largest |virtual| value. Writes trimdiff.csv; the
documented bound is `implementations.common.grids.TRIM_RESOLUTION_BOUND`.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from tqdm import tqdm

from implementations.common.config import ModelConfig, tiny_config
from implementations.torch.model import build_model, set_sigmoid_masks
from pipelines.provenance import provenance, torch_device, write_csv, write_json


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
    return rows


TRIMDIFF_W0 = (5500.0, 21500.0, 30000.0)


TRIMDIFF_SIZES = ((256,), (31, 17))


def _trimdiff_configs(sizes) -> list[tuple[str, ModelConfig]]:
    small = dict(width=16, blocks=3, max_width=32, max_blocks=6, kernel_hidden=32, out_size=4)
    out = []
    for variant in ("kr", "krwd"):
        for shape in sizes:
            task = "global" if len(shape) == 1 else "dense"
            cfg = tiny_config(variant, shape, task=task, in_channels=2, **small)
            out.append((variant, cfg))
    return out


@torch.no_grad()
def bench_trimdiff(states: int, seed: int = 0, sizes=TRIMDIFF_SIZES) -> list[dict]:
    from implementations.torch.model import randomize_masks

    rows = []
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        cases = [(v, c, w0) for v, c in _trimdiff_configs(sizes) for w0 in TRIMDIFF_W0]
        for variant, cfg, w0 in tqdm(cases, desc="trim vs virtual (accuracy)", leave=False):
            cfg = cfg.replace(w0=w0)
            torch.manual_seed(seed)
            model = build_model(cfg)
            g = torch.Generator().manual_seed(seed)
            for state in range(states):
                randomize_masks(model, g)
                x = torch.randn(4, cfg.in_channels, *cfg.input_shape, generator=g)
                model.mode = "virtual"
                inputs: list[torch.Tensor] = []
                hooks = [
                    b.register_forward_pre_hook(lambda _m, args, acc=inputs: acc.append(args[0]))
                    for b in model.blocks
                ]
                yv = model(x)
                for h in hooks:
                    h.remove()
                model.mode = "trim"
                yt = model(x)
                out_err = float((yt - yv).abs().max() / yv.abs().max())
                _, n_run, t_plans = model.plan(True)
                _, _, v_plans = model.plan(False)
                shape = "x".join(map(str, cfg.input_shape))
                for b, (blk, pt) in enumerate(zip(model.blocks[:n_run], t_plans)):
                    if pt.resolution == tuple(cfg.input_shape):
                        continue  # no crop: trim == virtual exactly (tested elsewhere)
                    xin = inputs[b]
                    bv = blk(xin, model.kernel_net, None, v_plans[b]) - xin
                    w = xin.shape[1]
                    xt = xin[:, : max(pt.widths)] if variant == "krwd" else xin
                    bt = blk(xt, model.kernel_net, None, pt) - xt
                    bv = bv[:, : bt.shape[1]]
                    rows.append(
                        {
                            "bench": "trimdiff",
                            "variant": variant,
                            "shape": shape,
                            "w0": w0,
                            "state": state,
                            "block": b,
                            "resolution": "x".join(map(str, pt.resolution)),
                            "block_rel_err": float((bt - bv).abs().max() / bv.abs().max()),
                            "block_rel_rms": float((bt - bv).norm() / bv.norm()),
                            "output_rel_err": out_err,
                            "width": w,
                        }
                    )
    finally:
        torch.set_default_dtype(dtype)
    return rows


def summarise_trimdiff(rows: list[dict]) -> str:
    """Median / 90th percentile / max of the block and output errors per w0."""
    lines = ["w0      block: median  p90     max      output: median  p90     max   (max|diff|)"]
    lines_rms = ["w0      block: median  p90     max   (RMS diff / RMS virtual)"]
    for w0 in TRIMDIFF_W0:
        rms = [r["block_rel_rms"] for r in rows if r["w0"] == w0]
        q90 = statistics.quantiles(rms, n=10)[8]
        lines_rms.append(f"{w0:<7g} {statistics.median(rms):14.3g} {q90:7.3g} {max(rms):8.3g}")
        b = [r["block_rel_err"] for r in rows if r["w0"] == w0]
        o = sorted({(r["variant"], r["shape"], r["state"]): r["output_rel_err"]
                    for r in rows if r["w0"] == w0}.values())  # fmt: skip
        q = lambda v, p: statistics.quantiles(v, n=10)[8] if p == 90 else statistics.median(v)
        lines.append(
            f"{w0:<7g} {q(b, 50):14.3g} {q(b, 90):7.3g} {max(b):8.3g} "
            f"{q(o, 50):15.3g} {q(o, 90):7.3g} {max(o):8.3g}"
        )
    return "\n".join(lines + lines_rms)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("which", choices=["trim", "trimdiff"])
    ap.add_argument("--states", type=int, default=24, help="trimdiff: mask states per case")
    ap.add_argument("--out", default="results/bench")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="torch device (default: cuda when available, else cpu)",
    )
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    if args.which == "trimdiff":
        rows = bench_trimdiff(args.states)
        write_csv(f"{args.out}/trimdiff.csv", rows)
        write_json(
            f"{args.out}/trimdiff.json",
            provenance(device="cpu", seed=0, states=args.states,
                       wall_s=round(time.perf_counter() - t0, 1)),
        )  # fmt: skip
        print(summarise_trimdiff(rows))
        return 0
    device = torch.device(args.device)
    rows = bench_trim(args.repeats, device)
    for r in rows:
        r["device"] = str(device)
    text = write_csv(f"{args.out}/trim.csv", rows)
    write_json(
        f"{args.out}/trim.json",
        provenance(
            device=torch_device(),
            seed=0,
            repeats=args.repeats,
            wall_s=round(time.perf_counter() - t0, 1),
        ),
    )
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
