"""Where a claims-study job's time goes: the real training CLI (`pipelines.train.train`) run
with timers around each of its phases, one fresh process per job, per framework, dataset and
variant.

    python -m pipelines.bench_claims                       # -> results/bench/claims_time.csv
    python -m pipelines.bench_claims --datasets darcyflow --variants ccnn krwd --epochs 2

Phases (exclusive: time inside a nested phase counts there, not in its parent):
    process start + imports  interpreter start to `pipelines.train` and the framework imported
                             (the parent's wall clock minus everything the child timed after)
    setup                    profile, meta.json, model configuration, batch iterators
    build                    model and optimiser (`open_backend`)
    first step               the first optimiser step (JAX: trace + XLA compilation + the step)
    steps                    every further optimiser step
    data                     the batch iterator (memory-mapped reads, shuffling, augmentation)
                             and the evaluator's input preparation (resizing)
    first evaluation         the first evaluation pass (JAX: the predict function's compilation)
    evaluation               the other per-epoch evaluation passes (train prefix + val)
    checkpoints              per-epoch checkpoint + best-validation checkpoint (serialise, write)
    metrics                  metrics.csv per epoch
    final test               the final and best-epoch test passes, reload, result.json
    other                    the rest of the child's wall time (loop, complexity, mask sizes,
                             architecture; JAX compiles these on their first call)

PyTorch jobs also get a step breakdown (`--step-breakdown N` further steps on the trained
model, default 20): the forward pass split by component (kernel network + masks of the
kernel, the FFT convolution, pointwise layers and normalisation, the rest), the backward pass
split by autograd node (FFT, matrix products, the rest, which also holds the loss, zero_grad
and the gradient zero-fill; `torch.profiler`), the optimiser (AdamW) and the mask clamps.
JAX's step is one XLA program: no split.

JAX compiles cold by default, as the first seed of a study does. The workflow gives the
non-paper profiles a persistent compilation cache (<outputs>/cache/jax), so later seeds load
the compiled programs: `--jax-cache DIR` measures that (run twice with the same DIR).

`--epochs E` (default 2) runs E epochs instead of the profile's; the CSV extrapolates the
profile's job (`job_s_pred`: the once-per-job phases + epoch 1 + (profile epochs - 1) x the
mean per-epoch cost of epochs 2..E, so epoch 1's warm-up is not counted twice; `pred_s` per
phase). Rows: one per (job, phase) with seconds, share and per-epoch seconds; `OUT.json` has
provenance. This is a measurement script, not a timed test. Data: the claims profile's
(`snakemake --cores 1 claims/data/<dataset>/meta.json --config profile=claims`), or
`--data-root`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

from data_prep.registry import DATASETS
from implementations.common.config import VARIANTS
from pipelines.settings import FRAMEWORKS, load_profile

ONCE = ("process start + imports", "setup", "build", "first step", "first evaluation", "final test")
PER_EPOCH = ("steps", "data", "evaluation", "checkpoints", "metrics", "other")
PHASES = ONCE + PER_EPOCH
STEP_PARTS = (
    "forward: kernel network",
    "forward: FFT convolution",
    "forward: pointwise + norm",
    "forward: other",
    "backward: FFT",
    "backward: matrix products",
    "backward: other",
    "optimiser",
    "mask clamps",
)
COLUMNS = [
    "framework", "dataset", "variant", "epochs", "profile_epochs", "steps_per_epoch",
    "phase", "seconds", "share", "per_epoch_s", "pred_s", "job_s", "job_s_pred",
]  # fmt: skip


class Phases:
    """Exclusive wall time per named phase; nested phases are subtracted from their parent."""

    def __init__(self):
        self.total: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._inner: list[float] = []

    @contextmanager
    def __call__(self, name: str):
        t0 = time.perf_counter()
        self._inner.append(0.0)
        try:
            yield
        finally:
            dt = time.perf_counter() - t0
            inner = self._inner.pop()
            self.total[name] += dt - inner
            self.calls[name] += 1
            if self._inner:
                self._inner[-1] += dt

    def wrap(self, fn, name):
        """`fn` timed as `name`; `name` may be a function of the call count (first vs rest)."""

        def timed(*a, **k):
            label = name(self.calls) if callable(name) else name
            with self(label):
                return fn(*a, **k)

        return timed

    def iterate(self, it, name: str):
        """Yield from `it`, timing each `next` as `name`."""
        it = iter(it)
        while True:
            with self(name):
                try:
                    item = next(it)
                except StopIteration:
                    return
            yield item


# ---- the child: one job, timed ----------------------------------------------------------------
def _child(spec: dict) -> dict:
    t_child = time.perf_counter()
    ph = Phases()
    with ph("process start + imports"):
        import pipelines.train as T
        from data_prep.iterator import BatchIterator
        from pipelines.settings import backend_of

        __import__(f"implementations.{backend_of(spec['framework'])}.train")
    state: dict = {}

    def first_or(first: str, rest: str):
        return lambda calls: first if calls[first] == 0 else rest

    def open_backend(job):
        backend = orig_open(job)
        backend.step = ph.wrap(backend.step, first_or("first step", "steps"))
        state["backend"], state["job"] = backend, job
        return backend

    def ev_run(self, backend, it, max_batches=None):
        # the final test passes count in "final test" (their parent), the rest here
        name = "final test" if state.get("final") else first_or("first evaluation", "evaluation")
        return ph.wrap(orig_run, name)(self, backend, it, max_batches)

    def write_result(*a, **k):
        state["final"] = True
        return orig_result(*a, **k)

    def epoch(self, e=0):
        if self is state["job"].train_it and e == 1 and "epoch1" not in state:
            # epoch 2 starts: what epoch 1 cost (warm-up, compilation) is known now
            state["epoch1"] = dict(ph.total)
            state["epoch1"]["other"] = time.perf_counter() - t_child - sum(ph.total.values())
        return ph.iterate(orig_epoch(self, e), "data")

    orig_open, orig_run, orig_result = T.open_backend, T.Evaluator.run, T.write_result
    orig_epoch = BatchIterator.epoch
    T.setup = ph.wrap(T.setup, "setup")
    T.open_backend = ph.wrap(open_backend, "build")
    T.Evaluator.run = ev_run
    T.Evaluator.prepare = ph.wrap(T.Evaluator.prepare, "data")
    BatchIterator.epoch = epoch
    T.save_checkpoint = ph.wrap(T.save_checkpoint, "checkpoints")
    T.write_metrics = ph.wrap(T.write_metrics, "metrics")
    T.write_result = ph.wrap(write_result, "final test")

    argv = [
        "--framework", spec["framework"], "--dataset", spec["dataset"],
        "--variant", spec["variant"], "--profile", spec["profile"], "--seed", "0",
        "--out", spec["out"], "--data", spec["data"], "--epochs", str(spec["epochs"]),
        "--threads", str(spec["threads"]), "--no-progress",
    ]  # fmt: skip
    args = T.parse_args(argv)
    T.train(T.run_args(args)[0])
    timed = time.perf_counter() - t_child
    phases = dict(ph.total)
    phases["other"] = timed - sum(phases.values())
    job = state["job"]
    epoch1 = state["epoch1"]
    out = {
        "phases": phases,
        "epoch1": epoch1,
        "timed_s": timed,
        "steps_per_epoch": job.steps_per_epoch,
        "profile_epochs": int(
            T.hyper(T.load_profile(spec["profile"], None), spec["dataset"])["epochs"]
        ),
    }
    if spec["step_breakdown"] and backend_of(spec["framework"]) == "torch":
        t0 = time.perf_counter()
        out["step"] = torch_step_breakdown(state["backend"], job, spec["step_breakdown"])
        out["breakdown_s"] = time.perf_counter() - t0  # not the job's: taken off its wall
    return out


def torch_step_breakdown(backend, job, steps: int) -> dict:
    """Seconds per step of each STEP_PARTS entry, over `steps` steps on the job's batches.

    Two passes over the same batches: the first, with plain timers only, gives the step, the
    forward components, the optimiser and the clamps; the backward pass is the rest of the
    step (loss, zero_grad and the gradient zero-fill included). The second pass, under
    `torch.profiler`, only apportions that backward time among its autograd nodes (the
    profiler's overhead would inflate the first pass's numbers)."""
    from torch.autograd.profiler import profile

    import implementations.torch.model as tm

    ph = Phases()
    blk = tm.ResidualBlock
    patched = {
        (blk, "kernel"): "forward: kernel network",
        (blk, "conv_path"): "forward: FFT convolution",
        (tm, "pwlinear"): "forward: pointwise + norm",
        (tm, "batch_norm"): "forward: pointwise + norm",
    }
    saved = {k: getattr(*k) for k in patched}
    model, opt = backend.model, backend.opt
    opt_step = opt.__dict__.get("step")  # the LR scheduler may have wrapped it per instance
    batches = [job.ev.prepare(b) for _, b in zip(range(steps), job.train_it.epoch(1))]
    try:
        for (owner, attr), name in patched.items():
            setattr(owner, attr, ph.wrap(saved[(owner, attr)], name))
        model.forward = ph.wrap(model.forward, "forward: other")
        model.clamp_masks = ph.wrap(model.clamp_masks, "mask clamps")
        opt.step = ph.wrap(opt.step, "optimiser")
        t0 = time.perf_counter()
        for b in batches:
            backend.step(b)
        total = time.perf_counter() - t0
    finally:
        for (owner, attr), fn in saved.items():
            setattr(owner, attr, fn)
        del model.forward, model.clamp_masks
        if opt_step is None:
            del opt.step
        else:
            opt.step = opt_step
    parts = dict(ph.total)
    backward = max(0.0, total - sum(parts.values()))
    with profile() as prof:
        for b in batches:
            backend.step(b)
    nodes = defaultdict(float)
    for e in prof.key_averages():
        if not e.key.startswith("autograd::engine::evaluate_function: "):
            continue
        node = e.key.split(": ", 1)[1]
        kind = (
            "backward: FFT"
            if any(m in node for m in ("Fft", "Spectrum", "FFTConv"))
            else "backward: matrix products"
            if any(m in node for m in ("Mm", "Addmm", "Bmm", "Linear", "Einsum"))
            else "backward: other"
        )
        nodes[kind] += e.cpu_time_total
    profiled = sum(nodes.values()) or 1.0
    for kind in ("backward: FFT", "backward: matrix products", "backward: other"):
        parts[kind] = backward * nodes.get(kind, 0.0) / profiled
    n = len(batches)
    return {"step_s": total / n, **{k: parts.get(k, 0.0) / n for k in STEP_PARTS}}


# ---- the parent: one process per job -----------------------------------------------------------
def run_job(spec: dict, timeout: float, jax_cache: Path | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    if jax_cache is not None:
        env["JAX_COMPILATION_CACHE_DIR"] = str(jax_cache.resolve())
    t0 = time.perf_counter()
    p = subprocess.run(
        [sys.executable, "-m", "pipelines.bench_claims", "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(
            f"{spec['framework']}/{spec['dataset']}/{spec['variant']} failed "
            f"(exit {p.returncode}):\n{p.stderr[-3000:]}"
        )
    out = json.loads(p.stdout.strip().splitlines()[-1])
    wall -= out.get("breakdown_s", 0.0)
    # interpreter start (and anything before the child's first timer) counts as imports
    out["phases"]["process start + imports"] += wall - out["timed_s"]
    out["wall_s"] = wall
    return out


def rows_of(spec: dict, res: dict) -> list[dict]:
    """CSV rows of one job. per_epoch_s: the mean over epochs 2..E (epoch 1 also compiles
    what later epochs reuse, e.g. JAX's evaluation of a smaller last batch); job_s_pred: the
    once-per-job phases + epoch 1's per-epoch phases + (profile epochs - 1) x per_epoch_s."""
    ph, e1, e, pe = res["phases"], res["epoch1"], spec["epochs"], res["profile_epochs"]
    once = sum(ph.get(k, 0.0) for k in ONCE)
    per_epoch = {k: (ph.get(k, 0.0) - e1.get(k, 0.0)) / (e - 1) for k in PER_EPOCH}
    first = sum(e1.get(k, 0.0) for k in PER_EPOCH)
    pred = once + first + (pe - 1) * sum(per_epoch.values())
    rows = []
    for name in PHASES:
        s = ph.get(name, 0.0)
        if name in per_epoch:
            pred_s = e1.get(name, 0.0) + (pe - 1) * per_epoch[name]
        else:
            pred_s = s
        rows.append(
            dict(
                framework=spec["framework"], dataset=spec["dataset"], variant=spec["variant"],
                epochs=e, profile_epochs=pe, steps_per_epoch=res["steps_per_epoch"],
                phase=name, seconds=round(s, 3), share=round(s / res["wall_s"], 4),
                per_epoch_s=round(per_epoch[name], 3) if name in per_epoch else "",
                pred_s=round(pred_s, 2), job_s=round(res["wall_s"], 2), job_s_pred=round(pred, 1),
            )
        )  # fmt: skip
    for name, s in res.get("step", {}).items():
        rows.append(
            dict(
                framework=spec["framework"], dataset=spec["dataset"], variant=spec["variant"],
                epochs=e, profile_epochs=pe, steps_per_epoch=res["steps_per_epoch"],
                phase=f"step | {name}", seconds=round(s, 5),
                share=round(s / res["step"]["step_s"], 4), per_epoch_s="", pred_s="",
                job_s=round(res["wall_s"], 2), job_s_pred=round(pred, 1),
            )
        )  # fmt: skip
    return rows


def markdown(rows: list[dict]) -> str:
    """Per job: the profile job's predicted seconds and the phases' shares of it."""
    jobs: dict[tuple, dict] = {}
    for r in rows:
        j = jobs.setdefault((r["framework"], r["dataset"], r["variant"]), {"pred": r["job_s_pred"]})
        if r["phase"] in PHASES:
            j[r["phase"]] = float(r["pred_s"])
    head = ["job", "predicted job s", *PHASES]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (fw, d, v), j in jobs.items():
        pred = float(j["pred"])
        cells = [f"{j.get(p, 0.0):.1f} ({100 * j.get(p, 0.0) / pred:.0f} %)" for p in PHASES]
        lines.append(f"| {fw}/{d}/{v} | {pred:.0f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipelines.bench_claims", description=__doc__)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument(
        "--datasets", nargs="+", default=None, choices=list(DATASETS), help="default: the profile's"
    )
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--frameworks", nargs="+", default=["torch", "jax"], choices=FRAMEWORKS)
    p.add_argument("--profile", default="claims", choices=("claims", "smoke"))
    p.add_argument("--epochs", type=int, default=2, help="epochs per timed job (>= 2)")
    p.add_argument("--threads", type=int, default=1, help="the claims profile's: 1")
    p.add_argument("--step-breakdown", type=int, default=20, help="PyTorch steps to split")
    p.add_argument("--data-root", type=Path, default=Path("claims/data"))
    p.add_argument(
        "--jax-cache",
        type=Path,
        default=None,
        help="JAX persistent compilation cache (default none: every job compiles cold)",
    )
    p.add_argument("--timeout-s", type=float, default=1800.0)
    p.add_argument("--out", type=Path, default=Path("results/bench/claims_time.csv"))
    args = p.parse_args(argv)
    if args.child is not None:
        print(json.dumps(_child(json.loads(args.child))))
        return 0
    if args.epochs < 2:
        p.error("--epochs must be >= 2: epoch 1 carries the warm-up and compilation")
    if args.datasets is None:
        args.datasets = load_profile(args.profile)["datasets"]
    missing = [d for d in args.datasets if not (args.data_root / d / "meta.json").exists()]
    if missing:
        targets = " ".join(f"{args.data_root}/{d}/meta.json" for d in missing)
        print(
            f"bench_claims: no data for {', '.join(missing)} under {args.data_root}: make it "
            f"with `snakemake --cores 1 {targets} --config profile={args.profile}` or pass "
            "--data-root",
            file=sys.stderr,
        )
        return 2
    from tqdm import tqdm

    from pipelines.provenance import provenance, write_csv, write_json

    specs = [
        dict(framework=fw, dataset=d, variant=v, profile=args.profile, epochs=args.epochs,
             threads=args.threads,
             data=str(args.data_root / d), step_breakdown=args.step_breakdown)
        for d in args.datasets for v in args.variants for fw in args.frameworks
    ]  # fmt: skip
    rows: list[dict] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-claims-") as tmp:
        for spec in tqdm(specs, unit="job", file=sys.stderr, dynamic_ncols=True):
            spec["out"] = os.path.join(
                tmp, f"{spec['framework']}-{spec['dataset']}-{spec['variant']}"
            )
            rows += rows_of(spec, run_job(spec, args.timeout_s, args.jax_cache))
    write_csv(args.out, rows, COLUMNS)
    write_json(
        args.out.with_suffix(".json"),
        provenance(
            options={k: str(v) for k, v in vars(args).items() if k != "child"},
            wall_s=round(time.perf_counter() - t0, 1),
            note="seconds: exclusive wall time per phase in one fresh process per job; "
            "job_s_pred: once-per-job phases + profile epochs x per-epoch phases",
        ),
    )
    print(markdown(rows))
    print(f"-> {args.out}, {args.out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
