"""Paper-scale rehearsal: does every job of the paper profile run, and in how much memory?

    python -m pipelines.rehearse                     # everything -> results/rehearse/cpu.csv
    python -m pipelines.rehearse --datasets listops --variants ccnn krwd --out /tmp/r.csv
    python -m pipelines.rehearse --modes torch-trim torch-virtual jax --mem-limit-gb 12
    python -m pipelines.rehearse --tiny --out /tmp/r.csv            # CI: tiny shapes
    python -m pipelines.rehearse --table results/rehearse/cpu.csv   # markdown memory table

Per job (dataset, variant, masks, mode) of the paper profile (pipelines/config/paper.yaml):
the profile's model (CCNN_{4,140}; krwd CCNN_{8,280} starting as CCNN_{4,140}) at the
dataset's full input shape (data_prep.registry) and Table 6 batch size, on the device at hand:
`--steps` AdamW training steps (task loss + lambda L_comp, mask clamps: the step functions of
implementations/{torch,jax}/train.py) and one evaluation step (eval mode, no gradient; JAX
runs it twice and times the second, so its compilation is not in it). krwd runs twice: with
its masks at initialisation (`masks=initial`) and with every mask opened to its upper clamp
(`masks=opened`: CCNN_{8,280} at full resolution with full-size kernels, its worst case;
`open_masks_torch`, `open_masks_jax`). Modes: torch-trim (the profile's torch_mode),
torch-virtual (`--modes`) and jax.

Memory. Every measurement runs in a fresh subprocess, so peaks never mix. On a GPU `peak_gb`
is the device peak (`torch.cuda.max_memory_allocated`, JAX's
`memory_stats()['peak_bytes_in_use']`). On a CPU it is the peak host RSS while the steps run
(VmHWM, reset once the model, optimiser, batch and JAX's compiled programs exist: everything
resident then counts, the transient memory of XLA's compiler does not; it includes the ~0.5-1
GiB of the imported libraries). `host_peak_gb` is the peak RSS of the whole process (wait4's
ru_maxrss): what this machine needs to run the job. Each job is measured at two smaller
batches first (`--probes`; default 1/8 and 1/4 of the full batch, at least 1 and 2: large
enough that activations, not libraries and compiler, set the slope); peaks are taken as linear
in the batch and predicted at the full batch, which then runs only if the predicted
`host_peak_gb` (device peak on a GPU) times (1 + `--margin`) fits `--mem-limit-gb` (default:
75 % of the host's memory on a CPU, 90 % of the GPU's). If it does not fit, or the full batch
fails, the row carries the linear predictions (memory and step times) with `memory_source`
"extrapolated from b=B1,B2" and says why in `note`. A job that fails
even at the first probe gets `status` failed and the error; no job is skipped silently. A
watchdog kills a child whose host RSS passes `--kill-gb` (the other users of a shared machine
keep theirs); such a child counts as failed at that batch.

Columns: see COLUMNS. `OUT.json` next to the CSV records the git SHA, versions, devices and
options (provenance). The CSV is rewritten after every job, so an interrupted run keeps what
it measured; `--resume` keeps the rows of an existing CSV and runs only the jobs it lacks (one
CSV from several invocations, e.g. the cheap jobs first). `--tiny` shrinks shapes, widths and
batch (pipelines.bench_gpu's tiny cases) so a few jobs run in seconds: it checks the script,
its numbers mean nothing. `--table CSV` prints the memory per job as a markdown table.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from data_prep.registry import DATASETS
from pipelines.bench_gpu import batch_data, cases, loss_name
from pipelines.provenance import provenance, write_csv, write_json
from pipelines.settings import load_profile

VARIANTS = ("ccnn", "k", "kr", "krwd")
MODES = ("torch-trim", "torch-virtual", "jax")
MASKS = ("initial", "opened")
GIB = 2**30
# GPU sizes of the fit columns; a job "fits" with this fraction of the card to spare for the
# CUDA context, the allocators' fragmentation and the data loader's pinned batches
GPU_SIZES_GB = (40, 80)
FIT_HEADROOM = 0.9
COLUMNS = [
    "dataset",
    "variant",
    "masks",
    "mode",
    "input_shape",
    "batch",
    "device",
    "status",
    "memory_kind",  # device (GPU peak allocated) | host (peak RSS of the process)
    "peak_gb",  # GiB, at `batch`: measured or extrapolated (memory_source)
    "memory_source",  # measured | extrapolated from b=1,2
    "predicted_gb",  # the linear prediction from the probes (a check when measured)
    "probe_gb",  # peaks at the probe batches, "b=1:x;b=2:y"
    "host_peak_gb",  # peak host RSS of the whole process (extrapolated with peak_gb)
    "arch",  # blocks x widest block the trimmed network keeps (architecture())
    "step_s",  # last training step, seconds (extrapolated with the memory if so)
    "first_step_s",  # first training step
    "compile_s",  # JAX: compiling the training and evaluation steps (ahead of running them)
    "eval_s",  # the evaluation step
    "mem_limit_gb",
    "wall_s",  # the job's wall time, probes included
    "note",
    "error",
]


@dataclasses.dataclass(frozen=True)
class Job:
    dataset: str
    variant: str
    masks: str  # initial | opened (krwd only)
    mode: str

    @property
    def label(self) -> str:
        v = self.variant + ("-opened" if self.masks == "opened" else "")
        return f"{self.dataset} {v} {self.mode}"


def default_modes() -> list[str]:
    """PyTorch in the paper profile's torch_mode, and JAX."""
    return [f"torch-{load_profile('paper')['torch_mode']}", "jax"]


def jobs(datasets, variants, modes) -> list[Job]:
    """Every (dataset, variant, masks, mode); krwd twice (initial and opened masks)."""
    return [
        Job(d, v, m, mode)
        for d in datasets
        for v in variants
        for m in (MASKS if v == "krwd" else MASKS[:1])
        for mode in modes
    ]


def case_of(job: Job, tiny: bool):
    (case,) = cases([job.dataset], [job.variant], tiny)
    return case


# ---- opening the masks -------------------------------------------------------------------
# Every mask parameter at its upper clamp (Appx. E.1): sigmoid offsets (width, depth,
# resolution) at mu_max, where the last entry of the axis still has weight 0.85, so every
# channel, block and frequency is kept; Gaussian kernel sigmas at sigma_max, whose cutoff is
# the end of the tap grid. krwd is then CCNN_{max_blocks, max_width} at full resolution with
# full-size kernels: the largest network its masks can reach.


def open_masks_torch(model) -> None:
    """Every mask of a PyTorch DNArch at its upper clamp, in place."""
    import torch

    from implementations.torch.masks import GaussianMask
    from implementations.torch.model import set_sigmoid_masks

    with torch.no_grad():
        set_sigmoid_masks(model, 1.0)
        for m in model.modules():
            if isinstance(m, GaussianMask):
                m.sigma.copy_(torch.tensor(m.sigma_max, dtype=m.sigma.dtype))


def open_masks_jax(model, params: dict) -> dict:
    """A copy of a JAX DNArch's `params` with every mask parameter at its upper clamp
    (`model.mask_bounds` lists each one with its range)."""
    import jax.numpy as jnp

    from implementations.jax.model import leaf_at, mask_bounds

    def replaced(tree: dict, path: tuple[str, ...], value) -> dict:
        if len(path) == 1:
            return {**tree, path[0]: value}
        return {**tree, path[0]: replaced(tree[path[0]], path[1:], value)}

    for path, _lo, hi in mask_bounds(model.cfg):
        leaf = leaf_at(params, path)
        params = replaced(params, path, jnp.broadcast_to(jnp.asarray(hi, leaf.dtype), leaf.shape))
    return params


def arch_summary(rows: list[dict]) -> str:
    """'blocks x widest' of an architecture() listing, e.g. 8x280."""
    return f"{len(rows)}x{max((max(r['width']) for r in rows), default=0)}"


# ---- one measurement (runs inside the child process) --------------------------------------
def reset_host_peak() -> None:
    """Restart this process's peak RSS (VmHWM) at its current RSS (Linux clear_refs 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def host_peak_now() -> float | None:
    """This process's peak RSS since start or the last `reset_host_peak`, GiB (Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / GIB
    except OSError:
        pass
    return None


def torch_job(case, job: Job, batch: int, steps: int, device: str) -> dict:
    import torch

    from implementations.torch import build_model
    from implementations.torch.train import make_optimizer, train_step

    dev = torch.device(device)
    cuda = dev.type == "cuda"
    cfg = case.cfg.replace(mode="virtual" if job.mode == "torch-virtual" else "trim")
    torch.manual_seed(0)
    model = build_model(cfg).to(dev)
    opened = job.masks == "opened"
    if opened:
        open_masks_torch(model)
    arch = arch_summary(model.architecture())
    opt, sched = make_optimizer(model, case.lr, case.weight_decay, 10, 10**6)
    x, t = (torch.as_tensor(a, device=dev) for a in batch_data(cfg, batch))
    loss = loss_name(cfg)
    if cuda:
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
    reset_host_peak()
    times = []
    for _ in range(steps):
        if opened:  # an AdamW step moves the masks off their upper clamp: reopen them
            open_masks_torch(model)
        t0 = time.perf_counter()
        train_step(model, opt, sched, x, t, loss, case.lam)
        if cuda:
            torch.cuda.synchronize(dev)
        times.append(time.perf_counter() - t0)
    model.eval()
    with torch.no_grad():  # eager: no compilation to keep out of the timing, one step
        t0 = time.perf_counter()
        out = model(x)
        if cuda:
            torch.cuda.synchronize(dev)
        eval_s = time.perf_counter() - t0
    if not bool(torch.isfinite(out).all()):
        raise FloatingPointError("the evaluation output is not finite")
    peak = torch.cuda.max_memory_allocated(dev) if cuda else None
    name = torch.cuda.get_device_name(dev) if cuda else f"cpu x{torch.get_num_threads()}"
    return dict(
        first_step_s=times[0], step_s=times[-1], eval_s=eval_s, compile_s=None,
        device_peak=peak, run_peak_gb=host_peak_now(), device=f"torch {name}", arch=arch,
    )  # fmt: skip


def jax_job(case, job: Job, batch: int, steps: int, device: str) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from implementations.jax import model as jm
    from implementations.jax import train as jt

    del device  # JAX's default backend; the parent sets JAX_PLATFORMS=cpu for --device cpu
    cfg = case.cfg.replace(mode="virtual")
    model = jm.build_model(cfg)
    optimizer, _ = jt.make_optimizer(model, case.lr, case.weight_decay, 10, 10**6)
    jit_step = jt.jit_train_step(model, optimizer, loss_name(cfg), case.lam)
    state = jt.init_train_state(model, optimizer, jax.random.key(0))
    opened = job.masks == "opened"
    if opened:
        state = state.replace(params=open_masks_jax(model, state.params))
    arch = arch_summary(jm.architecture(model, {"params": state.params, "buffers": state.buffers}))
    x, t = batch_data(cfg, batch)
    if not cfg.tokens:
        x = np.moveaxis(x, 1, -1)  # channels first (B, C, *S) -> last (B, *S, C)
    if cfg.task == "dense":
        t = np.moveaxis(t, 1, -1)
    x, t = jnp.asarray(x), jnp.asarray(t)
    predict = jax.jit(lambda p, b, x: model.apply({"params": p, "buffers": b}, x, train=False))
    t0 = time.perf_counter()  # both programs compiled ahead: no compilation in the timings
    step = jit_step.lower(state, x, t).compile()
    evaluate = predict.lower(state.params, state.buffers, x).compile()
    compile_s = time.perf_counter() - t0
    reset_host_peak()
    times = []
    for _ in range(steps):
        if opened:  # an AdamW step moves the masks off their upper clamp: reopen them
            state = state.replace(params=open_masks_jax(model, state.params))
        t0 = time.perf_counter()
        state, metrics = step(state, x, t)
        jax.block_until_ready((state, metrics))
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    out = jax.block_until_ready(evaluate(state.params, state.buffers, x))
    eval_s = time.perf_counter() - t0
    if not bool(jnp.isfinite(out).all()):
        raise FloatingPointError("the evaluation output is not finite")
    dev = jax.devices()[0]
    stats = dev.memory_stats() if dev.platform != "cpu" else None
    peak = stats.get("peak_bytes_in_use") if stats else None
    return dict(
        first_step_s=times[0], step_s=times[-1], eval_s=eval_s, compile_s=compile_s,
        device_peak=peak, run_peak_gb=host_peak_now(),
        device=f"jax {dev.platform}:{getattr(dev, 'device_kind', '')}", arch=arch,
    )  # fmt: skip


def run_job(spec: dict) -> dict:
    """One measurement of `spec` (job fields, batch, steps, tiny, device): the timings and
    peaks of `torch_job` / `jax_job`, or status error and the exception. Never raises."""
    job = Job(spec["dataset"], spec["variant"], spec["masks"], spec["mode"])
    try:
        case = case_of(job, spec["tiny"])
        fn = jax_job if job.mode == "jax" else torch_job
        out = fn(case, job, spec["batch"], spec["steps"], spec["device"])
        return {"status": "ok", **out}
    except (Exception, MemoryError) as e:  # reported in the row, never lost
        return {"status": "error", "error": f"{type(e).__name__}: {e}"[:500]}


def _child_main(spec_json: str) -> int:
    result = run_job(json.loads(spec_json))
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


# ---- the parent: one subprocess per measurement --------------------------------------------
def host_memory() -> tuple[float, float]:
    """(MemTotal, MemAvailable) of this host, GiB."""
    info = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, value = line.split(":", 1)
            info[key] = int(value.split()[0]) * 1024 / GIB
    return info["MemTotal"], info.get("MemAvailable", info["MemTotal"])


def _rss_gb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024 / GIB
    except OSError:
        pass
    return 0.0


@dataclasses.dataclass
class Options:
    steps: int = 2
    tiny: bool = False
    device: str = "cpu"  # torch device: cpu | cuda
    kill_gb: float = math.inf
    timeout_s: float = 3600.0
    in_process: bool = False


def measure(job: Job, batch: int, opts: Options) -> dict:
    """`run_job` at `batch` in a fresh subprocess (or in this one with `in_process`), plus
    host_peak_gb: the peak RSS of that process."""
    spec = {**dataclasses.asdict(job), "batch": batch, "steps": opts.steps, "tiny": opts.tiny}
    spec["device"] = opts.device
    if opts.in_process:  # peaks mix with everything this process did before: tests only
        out = run_job(spec)
        out["host_peak_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB
        return out
    env = dict(os.environ)
    env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"  # JAX's peak is what it used, not 75 %
    if opts.device == "cpu":
        env["JAX_PLATFORMS"] = "cpu"
    cmd = [sys.executable, "-m", "pipelines.rehearse", "--child", json.dumps(spec)]
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=root)
        t0, killed, rusage, status = time.monotonic(), "", None, 0
        while True:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if not killed and _rss_gb(proc.pid) > opts.kill_gb:
                killed = f"host RSS above the kill limit {opts.kill_gb:.1f} GiB"
                proc.send_signal(signal.SIGKILL)
            elif not killed and time.monotonic() - t0 > opts.timeout_s:
                killed = f"timed out after {opts.timeout_s:.0f} s"
                proc.send_signal(signal.SIGKILL)
            time.sleep(0.1)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        lines = [ln for ln in out.read().splitlines() if ln.startswith("{")]
        err.seek(0)
        err_tail = err.read()[-400:].strip()
    host_peak = rusage.ru_maxrss * 1024 / GIB  # Linux: KiB
    if killed or not lines:
        why = killed or f"exit code {proc.returncode} without a result: {err_tail}"
        return {"status": "error", "error": why[:500], "host_peak_gb": host_peak}
    result = json.loads(lines[-1])
    result["host_peak_gb"] = host_peak
    return result


def peak_of(result: dict) -> tuple[float, str]:
    """(peak GiB, memory kind) of a measurement: the device peak where there is one, else the
    host peak while the steps ran (the whole process's where that is unknown)."""
    if result.get("device_peak") is not None:
        return result["device_peak"] / GIB, "device"
    run = result.get("run_peak_gb")
    return (result["host_peak_gb"] if run is None else run), "host"


def need_of(result: dict) -> float:
    """GiB a measurement needed of the memory `--mem-limit-gb` bounds: the device peak on a
    GPU, the whole process's peak RSS on a CPU."""
    peak, kind = peak_of(result)
    return peak if kind == "device" else result["host_peak_gb"]


def probe_batches(full: int) -> tuple[int, int]:
    """The default probes: 1/8 and 1/4 of the full batch, at least 1 and 2."""
    b1 = max(1, full // 8)
    return b1, max(b1 + 1, full // 4)


def linear(b: int, b1: int, y1: float, b2: int, y2: float) -> float:
    """The line through (b1, y1) and (b2, y2) at b."""
    return y1 + (y2 - y1) * (b - b1) / (b2 - b1)


def rehearse(
    job: Job, opts: Options, mem_limit_gb: float, margin: float, probes, batch=None
) -> dict:
    """The row of one job: probes, prediction, the full batch if it is predicted to fit."""
    case = case_of(job, opts.tiny)
    full = int(batch or case.batch)
    row = {
        "dataset": job.dataset,
        "variant": job.variant,
        "masks": job.masks,
        "mode": job.mode,
        "input_shape": "x".join(map(str, case.cfg.input_shape)),
        "batch": full,
        "mem_limit_gb": f"{mem_limit_gb:.2f}",
    }
    probes = sorted(probes or probe_batches(full))
    small = probes if full > probes[-1] else []  # else measured directly
    points = []  # (batch, measurement)
    errors = []
    while small:
        points = []
        for b in small:
            r = measure(job, b, opts)
            if r["status"] != "ok":
                errors.append(f"b={b}: {r['error']}")
                break
            points.append((b, r))
        if len(points) == 2 or small == [1, 2]:
            break
        small = [max(1, small[0] // 2), max(2, small[1] // 2)]  # a probe failed: halve them
    if small and len(points) < 2:
        row.update(status="failed", error="; ".join(errors))
        if points:  # what the first probe gave
            row.update(_fill(points[-1][1]), note=f"measured at b={points[-1][0]} only")
        return row
    if errors:
        row["note"] = "smaller probes after " + "; ".join(errors)
    row["probe_gb"] = ";".join(f"b={b}:{peak_of(r)[0]:.3f}" for b, r in points)
    pred = None
    if len(points) == 2:
        (b1, r1), (b2, r2) = points
        pred = linear(full, b1, peak_of(r1)[0], b2, peak_of(r2)[0])
        row["predicted_gb"] = f"{pred:.3f}"
        need = linear(full, b1, need_of(r1), b2, need_of(r2))
    if pred is not None and need * (1.0 + margin) > mem_limit_gb:
        what = "device peak" if peak_of(r2)[1] == "device" else "process peak RSS"
        note = (
            f"full batch not run: predicted {what} {need:.2f} GiB x {1 + margin:.2f} > "
            f"limit {mem_limit_gb:.2f} GiB"
        )
        note = "; ".join(x for x in (row.get("note"), note) if x)
        return {**row, **_extrapolated(points, full), "status": "ok", "note": note}
    r = measure(job, full, opts)
    if r["status"] != "ok":
        if pred is None:  # no probes below the full batch: nothing to extrapolate from
            return {**row, "status": "failed", "error": f"b={full}: {r['error']}"}
        return {
            **row,
            **_extrapolated(points, full),
            "status": "full-batch-failed",
            "note": "; ".join(x for x in (row.get("note"), "full batch failed: extrapolated") if x),
            "error": f"b={full}: {r['error']}",
        }
    return {**row, **_fill(r), "status": "ok", "memory_source": "measured"}


def _fill(r: dict) -> dict:
    peak, kind = peak_of(r)
    return {
        "device": r.get("device", ""),
        "memory_kind": kind,
        "peak_gb": f"{peak:.3f}",
        "host_peak_gb": f"{r['host_peak_gb']:.3f}",
        "arch": r.get("arch", ""),
        "step_s": f"{r['step_s']:.4g}",
        "first_step_s": f"{r['first_step_s']:.4g}",
        "compile_s": "" if r.get("compile_s") is None else f"{r['compile_s']:.4g}",
        "eval_s": f"{r['eval_s']:.4g}",
    }


def _extrapolated(points, full: int) -> dict:
    """The columns of the full batch as lines through the two probes, never below the larger
    probe's value (on a busy machine two small-batch timings can fall the wrong way round, and
    a line through them would predict less for more samples). The first step, dominated by
    one-off costs that do not scale with the batch, is left blank."""
    (b1, r1), (b2, r2) = points
    out = _fill(r2)
    at = lambda y1, y2: max(linear(full, b1, y1, b2, y2), y2)
    out["peak_gb"] = f"{at(peak_of(r1)[0], peak_of(r2)[0]):.3f}"
    out["host_peak_gb"] = f"{at(r1['host_peak_gb'], r2['host_peak_gb']):.3f}"
    for key in ("step_s", "eval_s"):
        out[key] = f"{at(r1[key], r2[key]):.4g}"
    out["first_step_s"] = ""
    out["memory_source"] = f"extrapolated from b={b1},{b2}"
    return out


# ---- the memory table ------------------------------------------------------------------------
def _fits(peak: float, size: float) -> str:
    if peak <= FIT_HEADROOM * size:
        return "yes"
    return "tight" if peak <= size else "no"


def markdown_table(rows: list[dict]) -> str:
    """Memory per job as a markdown table; host RSS rows are labelled as the proxy they are."""
    host = any(r.get("memory_kind") == "host" for r in rows)
    head = [
        "dataset",
        "variant / mode",
        "batch",
        "peak memory (GiB)",
        "source",
        "step s",
        *(f"fits {g} GB" for g in GPU_SIZES_GB),
    ]
    lines = []
    if host:
        lines += [
            "Host rows: peak RSS of a CPU process while its training and evaluation steps run, "
            "used as a proxy for GPU memory (it includes ~0.5-1 GiB of imported libraries; a "
            "GPU run's allocations differ).",
            "",
        ]
    lines += [
        f"'fits': peak <= {FIT_HEADROOM:.0%} of the card (yes), <= the card (tight), else no.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] * len(head)) + "|",
    ]
    for r in rows:
        v = r["variant"] + (" (opened)" if r.get("masks") == "opened" else "")
        peak = r.get("peak_gb") or ""
        kind = "host RSS" if r.get("memory_kind") == "host" else "GPU"
        if r.get("status") == "failed" or not peak:
            src = f"failed: {r.get('error', '')[:80]}"
            fits = ["?"] * len(GPU_SIZES_GB)
            peak_s, step = "-", "-"
        else:
            src = f"{kind}, {r.get('memory_source', '')}"
            if r.get("status") == "full-batch-failed":
                src += " (full batch failed)"
            fits = [_fits(float(peak), g) for g in GPU_SIZES_GB]
            peak_s, step = f"{float(peak):.2f}", r.get("step_s", "")
        cells = [r["dataset"], f"{v} / {r['mode']}", str(r["batch"]), peak_s, src, step, *fits]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def read_rows(path: str | Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def sort_rows(rows: list[dict]) -> list[dict]:
    """Rows in the grid's order (datasets of the registry, variants, masks, modes): a CSV
    written by several `--resume` invocations holds them in the order they ran."""
    order = lambda seq, x: seq.index(x) if x in seq else len(seq)
    return sorted(
        rows,
        key=lambda r: (
            order(list(DATASETS), r["dataset"]),
            order(VARIANTS, r["variant"]),
            order(MASKS, r.get("masks", "")),
            order(MODES, r["mode"]),
        ),
    )


# ---- SLURM host memory ---------------------------------------------------------------------------
# What a paper training job asks SLURM for in host memory (paper.yaml hyper.<dataset>.mem_mb),
# from this rehearsal's CPU rows. On a CPU a job's whole working set (weights, activations,
# optimiser state, batches) lives in host memory; on a GPU the activations and the optimiser
# state move to the device and the data stay memory-mapped (page cache, which the kernel
# reclaims under a cgroup's limit), so the CPU peak bounds a GPU job's host side from above.
# krwd with every mask opened is the device's worst case, not the host's: those rows are left
# out, as are rows without a host measurement. The floor covers the CUDA libraries a GPU
# process maps and a CPU process never loads (a few GB; not measurable without a GPU).
HOST_MEM_MARGIN = 1.25
HOST_MEM_FLOOR_GIB = 8


def host_mem_mb(rows: list[dict]) -> dict[str, int]:
    """Per dataset: max measured host peak (GiB) x HOST_MEM_MARGIN, rounded up to whole GiB,
    at least HOST_MEM_FLOOR_GIB, in MiB (SLURM's --mem unit)."""
    peaks: dict[str, float] = {}
    for r in rows:
        if r.get("masks") == "opened" or not r.get("host_peak_gb"):
            continue
        peaks[r["dataset"]] = max(peaks.get(r["dataset"], 0.0), float(r["host_peak_gb"]))
    missing = [d for d in DATASETS if d not in peaks]
    if missing:
        raise ValueError(
            f"no host measurement at the initial architecture for {', '.join(missing)}: "
            f"run `python -m pipelines.rehearse --resume --datasets {' '.join(missing)}` first"
        )
    return {
        d: 1024 * max(HOST_MEM_FLOOR_GIB, math.ceil(HOST_MEM_MARGIN * peaks[d])) for d in DATASETS
    }


# ---- command line ------------------------------------------------------------------------------
def _progress(total: int):
    try:
        from tqdm import tqdm

        return tqdm(total=total, unit="job", file=sys.stderr, dynamic_ncols=True)
    except ImportError:
        return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return _child_main(argv[1])
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--masks", nargs="+", default=list(MASKS), choices=MASKS, help="krwd's masks")
    p.add_argument("--modes", nargs="+", default=None, choices=MODES, help="default: profile's")
    p.add_argument("--steps", type=int, default=2, help="training steps per measurement")
    p.add_argument(
        "--probes", nargs=2, type=int, default=None, help="small batches (default 1/8, 1/4)"
    )
    p.add_argument("--batch", type=int, default=None, help="instead of Table 6's batch size")
    p.add_argument(
        "--mem-limit-gb",
        type=float,
        default=None,
        help="run the full batch if its prediction fits (default: 75%% of the host's memory; "
        "on a GPU 90%% of the card's)",
    )
    p.add_argument("--margin", type=float, default=0.15, help="safety margin on the prediction")
    p.add_argument(
        "--kill-gb",
        type=float,
        default=None,
        help="kill a child above this host RSS (default: 90%% of the available memory)",
    )
    p.add_argument("--timeout-s", type=float, default=3600.0, help="per measurement")
    p.add_argument("--device", choices=("auto", "cpu"), default="auto")
    p.add_argument("--tiny", action="store_true", help="tiny shapes (CI): numbers mean nothing")
    p.add_argument("--in-process", action="store_true", help="no subprocesses (peaks mix; tests)")
    p.add_argument("--out", type=Path, default=Path("results/rehearse/cpu.csv"))
    p.add_argument("--resume", action="store_true", help="keep --out's rows, run the rest")
    p.add_argument("--table", type=Path, default=None, help="print CSV's memory table and exit")
    p.add_argument(
        "--slurm-mem",
        type=Path,
        default=None,
        help="print the host mem_mb per dataset that CSV implies (paper.yaml hyper) and exit",
    )
    args = p.parse_args(argv)
    if args.table is not None:
        print(markdown_table(sort_rows(read_rows(args.table))))
        return 0
    if args.slurm_mem is not None:
        for dataset, mem in host_mem_mb(read_rows(args.slurm_mem)).items():
            print(f"{dataset}: {mem}")
        return 0
    bad_probes = args.probes is not None and (min(args.probes) < 1 or len(set(args.probes)) < 2)
    if args.steps < 1 or bad_probes:
        p.error("--steps >= 1 and two distinct --probes >= 1 are needed")

    import torch

    cuda = args.device == "auto" and torch.cuda.is_available()
    total, available = host_memory()
    if args.mem_limit_gb is None:
        gpu = torch.cuda.get_device_properties(0).total_memory / GIB if cuda else None
        args.mem_limit_gb = round(0.9 * gpu if cuda else 0.75 * total, 2)
    if args.kill_gb is None:
        args.kill_gb = round(0.9 * available, 2)
    modes = args.modes or default_modes()
    opts = Options(
        steps=args.steps,
        tiny=args.tiny,
        device="cuda" if cuda else "cpu",
        kill_gb=args.kill_gb,
        timeout_s=args.timeout_s,
        in_process=args.in_process,
    )
    todo = [j for j in jobs(args.datasets, args.variants, modes) if j.masks in args.masks]
    from pipelines.provenance import jax_device, torch_device

    meta = dict(
        options={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        modes=modes,
        torch_device=torch_device() if cuda else f"cpu x{torch.get_num_threads()}",
        jax_device=jax_device() if "jax" in modes and not (args.device == "cpu") else "cpu",
        cpu_count=os.cpu_count(),
        host_memory_gib=round(total, 2),
        profile="paper" + (" (tiny: shapes, widths and batch shrunk)" if args.tiny else ""),
        note="peak_gb: GPU peak allocated on a GPU, else the peak host RSS of a fresh process "
        "while its steps run; host_peak_gb: the whole process's; extrapolated rows: linear in "
        "the batch through the two probes",
    )
    rows: list[dict] = []
    if args.resume and args.out.exists():
        rows = read_rows(args.out)
        done = {(r["dataset"], r["variant"], r["masks"], r["mode"]) for r in rows}
        todo = [j for j in todo if (j.dataset, j.variant, j.masks, j.mode) not in done]
        sidecar = args.out.with_suffix(".json")
        if sidecar.exists():  # the provenance of the rows kept
            before = json.loads(sidecar.read_text())
            meta["earlier_runs"] = [*before.pop("earlier_runs", []), before]
    bar = _progress(len(todo))
    say = bar.write if bar is not None else (lambda s: print(s, file=sys.stderr, flush=True))
    t_start = time.perf_counter()
    for i, job in enumerate(todo):
        if bar is not None:
            bar.set_description(job.label)
        else:
            say(f"[{i + 1}/{len(todo)}] {job.label} ...")
        t0 = time.perf_counter()
        row = rehearse(job, opts, args.mem_limit_gb, args.margin, args.probes, args.batch)
        row["wall_s"] = f"{time.perf_counter() - t0:.1f}"
        rows.append(row)
        write_csv(args.out, rows, COLUMNS)
        wall = round(time.perf_counter() - t_start, 1)
        write_json(args.out.with_suffix(".json"), provenance(**meta, wall_s=wall))
        say(
            f"{job.label:<34} b={row['batch']:<3} {row['status']:<8} "
            f"{row.get('peak_gb', '-'):>8} GiB {row.get('memory_source', ''):<24} "
            f"step {row.get('step_s', '-')} s  ({time.perf_counter() - t0:.0f} s)"
        )
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    print(f"-> {args.out}, {args.out.with_suffix('.json')} ({time.perf_counter() - t_start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
