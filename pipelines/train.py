"""Training CLI of dnarch-repro (paper Sec. 3, Appx. E.2, Table 6), one run per variant:

    python -m pipelines.train --framework torch|jax --dataset D --variant V [V ...] \
        --profile paper|smoke --seed S --out DIR [--data DATA_DIR]

Several variants: one process trains them one after the other, each into `--out` with
"{variant}" replaced by its name (the smoke profile's `group_variants`: a process start, the
framework imports and the small eager programs once per dataset instead of once per run).
Each run is exactly the run a separate call gives (same seeds, same numbers, tested); a
failing variant does not stop the others, the exit code is the first failure's.

Hyperparameters come from the profile (pipelines/config/<profile>.yaml, validated against
pipelines/config/schema.yaml): AdamW, linear warm-up then cosine annealing (per optimiser
step, `common.schedule`), no weight decay on masks/BatchNorm/biases, mask clamping after every
step, the complexity loss lambda * L_comp for krwd only (all inside
`implementations.{torch,jax}.train`, whose `Backend` is what this module drives: the same
methods in both frameworks, so nothing here depends on which one runs).

Writes into DIR:
    metrics.csv      one row per epoch: train/val loss and metric, lr, C_curr/C_target, every
                     mask size (Eqs. 9, 10), epoch wall time (rewritten atomically every epoch)
    checkpoint.pt    (torch) model + optimiser + scheduler + RNG state + epoch + metrics history
    checkpoint.msgpack  (jax) TrainState (params, buffers, opt_state, step, rng) + the same
                     extras, flax msgpack; both written atomically (temp file + rename)
    best.pt / best.msgpack  the checkpoint of the epoch with the best validation metric so far
    result.json      test metric (best-validation epoch and final epoch), C_curr/C_target (Eq. 10
                     sizes) and the realised complexity (what trim computes), found architecture
                     (Tables 4, 5), deviations from Table 6 (paper profile), wall time, seed, git
                     SHA, package versions, device, the full configuration
Rerunning the same command resumes from the checkpoint (the checkpoint carries a key of the
configuration and refuses a different one) and ends with the numbers an uninterrupted run
gives (CPU, same seed): batch order and augmentation are seeded by (seed, epoch), dropout by
the saved RNG state (torch) or (rng, step) (JAX). A NaN/Inf loss stops the run, naming the
step and the offending parameters; the last good checkpoint is left untouched.

Evaluation, as the reference CCNN code (same first author) does it: after every epoch the val
split and a fixed prefix of the train split (`train_eval_batches` full batches, no
augmentation); the checkpoint with the best validation metric (first epoch on ties) is kept,
reloaded at the end and tested: `test_metric` in result.json, what the tables use. The final
epoch's model is tested too (`test_metric_final`). Text has no validation split: its val is
the test split (LRA/S4/CCNN practice), so its best epoch is selected on the test set; the
tables say so. BatchNorm uses batch statistics in evaluation too (Appx. E.1), so evaluation
batches have the training batch size. Training drops the last incomplete batch (one compiled
JAX step shape, no BatchNorm over a handful of samples).

Losses: cross-entropy (classification), relative L2 on the NORMALISED scale (DarcyFlow; its
metric is computed on the decoded scale, pipelines.metrics), BCE-with-logits with the ignore
mask (Cosmic). The channels-first (torch) / channels-last (JAX) boundary is in pipelines.inputs.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib
import io
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from data_prep.artefacts import load_meta
from data_prep.errors import DataError
from data_prep.iterator import BatchIterator
from data_prep.registry import DATASETS
from implementations.common.config import VARIANTS, ModelConfig
from pipelines import metrics as M
from pipelines import provenance as P
from pipelines import table6
from pipelines.inputs import Resizer
from pipelines.settings import (
    FRAMEWORKS,
    PROFILES,
    SettingsError,
    backend_of,
    hyper,
    load_profile,
    torch_mode_of,
)

LOSS_BY_METRIC = {
    "accuracy": "cross_entropy",
    "rel_l2": "relative_l2",
    "one_minus_auroc": "bce_ignore",
}


class TrainError(RuntimeError):
    """The run cannot go on; the message says why and what to do."""


class NonFiniteLoss(TrainError):
    pass


class Interrupted(TrainError):
    pass


# ---- configuration ------------------------------------------------------------------------
def model_config(
    settings: dict, meta: dict, hp: dict, variant: str, shape, framework: str = "torch"
) -> ModelConfig:
    """The model of a run: the profile's sizes, the dataset's task and channels (`meta`: a
    meta.json, or the registry's spec as a dict), the dataset's hyperparameters."""
    m = settings["model"]
    task = meta["task"]
    tokens = meta["input_kind"] == "tokens"
    out = meta["num_classes"] if task in ("global", "retrieval") else meta["out_channels"]
    return ModelConfig(
        variant=variant,
        data_dim=int(meta["data_dim"]),
        input_shape=tuple(shape),
        out_size=int(out),
        task=task,
        in_channels=None if tokens else int(meta["in_channels"]),
        vocab_size=int(meta["vocab_size"]) if tokens else None,
        blocks=m["blocks"],
        width=m["width"],
        max_blocks=m["max_blocks"],
        max_width=m["max_width"],
        kernel_hidden=m["kernel_hidden"],
        kernel_layers=m["kernel_layers"],
        dropout=float(hp["dropout"]),
        w0=float(hp["w0"]),
        tau_resolution=float(hp["tau_resolution"]),
        tau_channel=float(hp["tau_channel"]),
        tau_depth=float(hp["tau_depth"]),
        mode=torch_mode_of(framework, settings),
        kernel_scale=m["kernel_scale"],
        linear_init=m["linear_init"],
    )


def run_key(run: dict) -> str:
    """What must match for a checkpoint to be resumed (everything that changes the numbers)."""
    blob = json.dumps(run, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


# XLA's cheapest CPU compilation (smoke profile): no LLVM optimisation. Tiny programs spend
# their time in compilation, not in running.
FAST_COMPILE_FLAGS = (
    "--xla_backend_optimization_level=0",
    "--xla_llvm_disable_expensive_passes=true",
)


def configure_xla(threads: int, fast_compile: bool) -> None:
    """Before importing a framework: one job = `threads` cores (Snakemake `threads:`), and
    optionally XLA's cheapest CPU compilation (smoke profile). XLA_FLAGS set by the caller
    win, flag by flag."""
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    flags = os.environ.get("XLA_FLAGS", "").split()
    if threads == 1 and not any("intra_op_parallelism_threads" in f for f in flags):
        flags += ["--xla_cpu_multi_thread_eigen=false", "intra_op_parallelism_threads=1"]
    if fast_compile:
        given = {f.split("=")[0] for f in flags}
        flags += [f for f in FAST_COMPILE_FLAGS if f.split("=")[0] not in given]
    os.environ["XLA_FLAGS"] = " ".join(flags)


def data_kind(meta: dict) -> str:
    """real | generated | substitute: what the tables print in their `data` column."""
    if meta["source"] == "download":
        return "real"
    return "substitute" if meta.get("substitute") else "generated"


# ---- evaluation -------------------------------------------------------------------------
class Evaluator:
    def __init__(self, dataset: str, meta: dict, data_dir: Path, resizer: Resizer | None):
        self.metric = M.metric_for(dataset, meta["task"])
        self.tokens = meta["input_kind"] == "tokens"
        self.resizer = resizer
        self.decode = None
        if self.metric == "rel_l2":
            norm = meta["normalisation"]
            fields = [np.load(data_dir / norm["files"][k]) for k in ("y_mean", "y_std")]
            if resizer is not None:
                fields = [resizer.apply_field(f) for f in fields]
            mean, std = fields
            eps = float(norm["eps"])
            self.decode = lambda z: z * (std + eps) + mean  # (B, 1, H, W) decoded scale

    @property
    def higher_is_better(self) -> bool:
        return M.METRICS[self.metric][0]

    def prepare(self, batch: dict) -> dict:
        return self.resizer.apply(batch, self.tokens) if self.resizer is not None else batch

    def run(
        self, backend, it: BatchIterator, max_batches: int | None = None
    ) -> tuple[float, float]:
        """(mean task loss, metric) of `backend` over (a prefix of) the split."""
        outs, tgts, igns, losses, sizes = [], [], [], [], []
        for i, raw in enumerate(it.epoch(0)):
            if max_batches is not None and i >= max_batches:
                break
            batch = self.prepare(raw)
            out, loss = backend.predict(batch)
            outs.append(out)
            tgts.append(np.asarray(batch["targets"]))
            if "ignore" in batch:
                igns.append(np.asarray(batch["ignore"]))
            losses.append(loss)
            sizes.append(len(out))
        if not outs:
            return float("nan"), float("nan")
        loss = float(np.average(losses, weights=sizes))
        out, tgt = np.concatenate(outs), np.concatenate(tgts)
        if self.metric == "accuracy":
            return loss, M.accuracy_pct(out, tgt)
        if self.metric == "rel_l2":
            return loss, M.relative_l2(self.decode(out), self.decode(tgt))
        keep = np.concatenate(igns) < 0.5 if igns else np.ones_like(tgt, bool)
        return loss, 1.0 - M.auroc(M.sigmoid(out[keep]), tgt[keep] > 0.5)


def _better(value: float, than: float, higher: bool) -> bool:
    """Strictly better (ties keep the earlier epoch); NaN is never better."""
    if not np.isfinite(value):
        return False
    return value > than if higher else value < than


def _best_epoch(history: list[dict], key: str, higher: bool) -> tuple[int, float] | None:
    """(epoch, value) of the best validation metric in `history` (first on ties), or None."""
    best = None
    for row in history:
        v = row.get(key)
        if v is not None and (best is None or _better(v, best[1], higher)):
            best = (row["epoch"], v)
    return best


# ---- files of a run -----------------------------------------------------------------------
def write_metrics(path: Path, history: list[dict]) -> None:
    fields: list[str] = []
    for row in history:
        fields += [k for k in row if k not in fields]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    w.writerows(history)
    P.write_atomic(path, buf.getvalue())


def checkpoint_path(backend, out: Path) -> Path:
    return out / backend.ckpt_name


def best_path(backend, out: Path) -> Path:
    """The checkpoint of the best-validation epoch so far: best.pt / best.msgpack."""
    return out / ("best" + Path(backend.ckpt_name).suffix)


def save_checkpoint(backend, path: Path, extra: dict) -> None:
    """Atomically (temp file + rename): a killed job leaves the previous checkpoint whole."""
    P.write_bytes_atomic(path, backend.checkpoint_bytes(extra))


def load_checkpoint(backend, path: Path) -> dict:
    """Restore `backend` from `path`; returns the checkpoint's extras."""
    try:
        return backend.restore(Path(path).read_bytes())
    except ValueError as e:
        raise TrainError(f"{path}: {e}: delete it to start afresh or pass another --out") from None


# ---- setup --------------------------------------------------------------------------------
@dataclass
class Job:
    """What a run fixes before its first epoch."""

    args: argparse.Namespace  # one variant, `out` formatted (run_args)
    settings: dict  # the profile
    hp: dict  # the dataset's hyperparameters, with the command line's overrides
    meta: dict  # the dataset's meta.json
    data_dir: Path
    threads: int
    cfg: ModelConfig
    ev: Evaluator
    loss: str
    lam: float  # lambda of the complexity loss (0 unless the variant learns its size)
    batch_size: int
    train_it: BatchIterator  # shuffled, augmented
    train_eval_it: BatchIterator  # fixed prefix, no augmentation
    val_it: BatchIterator
    test_it: BatchIterator
    config: dict  # what the run key hashes; result.json's "config"

    @property
    def out(self) -> Path:
        return Path(self.args.out)

    @property
    def epochs(self) -> int:
        return int(self.hp["epochs"])

    @property
    def steps_per_epoch(self) -> int:
        return self.config["steps_per_epoch"]

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    @property
    def key(self) -> str:
        return run_key(self.config)

    @property
    def tag(self) -> str:
        a = self.args
        return f"{a.framework}/{a.dataset}/{a.variant}/s{a.seed}"


def setup(args: argparse.Namespace) -> Job:
    """Profile, data, model configuration and iterators of a run; XLA configured (before any
    framework is imported)."""
    settings = load_profile(args.profile, args.config)
    hp = dict(hyper(settings, args.dataset))
    if args.epochs is not None:
        hp["epochs"] = args.epochs
    data_dir = Path(args.data or Path(settings["paths"]["data"]) / args.dataset)
    meta = _load_meta(args, data_dir)
    threads = settings["threads"] if args.threads is None else args.threads
    configure_xla(threads, settings["xla_fast_compile"])

    resizer = Resizer.from_settings(meta, hp)
    shape = resizer.target_shape if resizer else tuple(meta["input_shape"])
    cfg = model_config(settings, meta, hp, args.variant, shape, args.framework)
    ev = Evaluator(args.dataset, meta, data_dir, resizer)
    batch_size = min(int(hp["batch_size"]), int(meta["splits"]["train"]["size"]))
    micro = int(hp.get("micro_batches", 1))
    if batch_size % micro:
        raise TrainError(
            f"batch size {batch_size} is not divisible by micro_batches={micro} (hyper key "
            f"micro_batches of {args.dataset}): gradient accumulation splits every batch into "
            "equal parts; choose a micro_batches that divides it"
        )
    train_it = BatchIterator(data_dir, "train", batch_size, drop_last=True, seed=args.seed)
    config = {
        "framework": args.framework,
        "dataset": args.dataset,
        "variant": args.variant,
        "profile": args.profile,
        "seed": args.seed,
        "hyper": hp,
        "batch_size": batch_size,
        "steps_per_epoch": len(train_it),
        "model": cfg.to_dict(),
        "data_checksums": meta.get("raw_checksums"),
        "resize": None if resizer is None else {"shape": list(shape), "mode": resizer.mode},
    }
    return Job(
        args=args,
        settings=settings,
        hp=hp,
        meta=meta,
        data_dir=data_dir,
        threads=threads,
        cfg=cfg,
        ev=ev,
        loss=LOSS_BY_METRIC[ev.metric],
        lam=float(hp["lam"]) if cfg.uses_complexity_loss else 0.0,
        batch_size=batch_size,
        train_it=train_it,
        # drop_last: the train-metric batches have the training batch shape (one JAX
        # compilation less)
        train_eval_it=BatchIterator(
            data_dir, "train", batch_size, shuffle=False, augment=False, drop_last=True
        ),
        val_it=BatchIterator(data_dir, "val", batch_size),
        test_it=BatchIterator(data_dir, "test", batch_size),
        config=config,
    )


def _load_meta(args: argparse.Namespace, data_dir: Path) -> dict:
    """The dataset's meta.json, refused when it is another dataset's or, for the paper
    profile, generated data; a missing one names the command that makes it."""
    try:
        meta = load_meta(data_dir)
    except DataError as e:
        hint = f"the workflow makes it: snakemake --cores 1 {data_dir}/meta.json"
        if args.profile == "paper":
            hint += f" (or: python -m data_prep {args.dataset} --source download --out {data_dir})"
        raise TrainError(f"{e}; {hint}") from None
    if meta["dataset"] != args.dataset:
        raise TrainError(f"{data_dir} holds {meta['dataset']!r}, not {args.dataset!r}")
    if args.profile == "paper" and meta["source"] != "download":
        raise TrainError(
            f"{data_dir} holds GENERATED data ({meta['source']}); the paper profile needs the "
            f"real data: python -m data_prep {args.dataset} --source download --out {data_dir}"
        )
    return meta


def backend_class(framework: str) -> type:
    """`Backend` of `implementations.<torch|jax>.train`. Imported only here: after
    configure_xla, and never the framework that does not run."""
    return importlib.import_module(f"implementations.{backend_of(framework)}.train").Backend


def open_backend(job: Job):
    """A fresh model and optimiser for `job` (seeded by its seed)."""
    cls = backend_class(job.args.framework)
    cls.set_threads(job.threads)
    warmup = int(job.hp["warmup_epochs"]) * job.steps_per_epoch
    steps = (warmup, job.total_steps)
    return cls(job.cfg, job.hp, job.args.seed, job.loss, job.lam, steps)


# ---- the epoch loop -----------------------------------------------------------------------
@dataclass
class Progress:
    """What the checkpoint carries besides the framework's state."""

    epoch: int = 0  # epochs done
    history: list[dict] = field(default_factory=list)  # metrics.csv: one row per epoch
    train_wall: float = 0.0  # seconds spent training and evaluating, over all processes

    def extra(self, key: str, init_choices: dict) -> dict:
        return {
            "run_key": key,
            "init_choices": init_choices,
            "epoch": self.epoch,
            "history": self.history,
            "train_wall_s": self.train_wall,
        }


# What checkpoints written before they recorded `init_choices` were trained with.
UNRECORDED_INIT_CHOICES = {"kernel_scale": "forward", "linear_init": "uniform"}


def check_init_choices(ckpt: Path, extra: dict, cfg: ModelConfig) -> None:
    """Refuse a checkpoint trained under other `kernel_scale` / `linear_init` choices: its
    weights were drawn from another law and, for kernel_scale, the forward pass would apply
    the kernel normalisation twice or not at all."""
    have = extra.get("init_choices", UNRECORDED_INIT_CHOICES)
    want = cfg.init_choices()
    if have == want:
        return
    fmt = lambda d: ", ".join(f"{k}={d[k]}" for k in sorted(d))
    raise TrainError(
        f"{ckpt} was trained with {fmt(have)}; this run has {fmt(want)}: a model initialised "
        "under one choice cannot go on under the other. Delete the checkpoint to start afresh, "
        "pass another --out, or set the profile's model keys to the checkpoint's choices"
    )


def resume(backend, job: Job) -> Progress:
    """The run directory made, and `backend` restored from its checkpoint if it has one."""
    job.out.mkdir(parents=True, exist_ok=True)
    ckpt = checkpoint_path(backend, job.out)
    if not ckpt.exists():
        return Progress()
    extra = load_checkpoint(backend, ckpt)
    check_init_choices(ckpt, extra, job.cfg)
    if extra["run_key"] != job.key:
        raise TrainError(
            f"{ckpt} was written by a different configuration (key {extra['run_key']}, this "
            f"run {job.key}); delete it to start afresh or pass another --out"
        )
    progress = Progress(extra["epoch"], extra["history"], extra["train_wall_s"])
    print(f"resuming from {ckpt} at epoch {progress.epoch}/{job.epochs}", file=sys.stderr)
    write_metrics(job.out / "metrics.csv", progress.history)
    return progress


def run_epoch(backend, job: Job, progress: Progress, epoch: int) -> None:
    """Train epoch `epoch` (0-based), evaluate, keep the best-validation checkpoint, then the
    checkpoint and metrics.csv."""
    t0 = time.perf_counter()
    step_losses = train_steps(backend, job, epoch)
    train_eval_loss, train_metric = job.ev.run(
        backend, job.train_eval_it, job.hp["train_eval_batches"]
    )
    val_loss, val_metric = job.ev.run(backend, job.val_it)
    epoch_wall = time.perf_counter() - t0
    ratio = backend.complexity_ratio()
    metric = job.ev.metric
    best = _best_epoch(progress.history, f"val_{metric}", job.ev.higher_is_better)
    if best is None or _better(val_metric, best[1], job.ev.higher_is_better):
        # before the checkpoint: a resumed run's best.* is never older than its history
        save_checkpoint(backend, best_path(backend, job.out), {"epoch": epoch + 1})
    row = {
        "epoch": epoch + 1,
        "step": (epoch + 1) * job.steps_per_epoch,
        "lr": backend.lr(),
        "train_loss": float(np.mean(step_losses)),
        "train_eval_loss": train_eval_loss,
        f"train_{metric}": train_metric,
        "val_loss": val_loss,
        f"val_{metric}": val_metric,
        "c_ratio": ratio,
        "c_ratio_realised": backend.realised_ratio(),
        "wall_s": round(epoch_wall, 3),
    }
    row.update({f"size.{k}": v for k, v in backend.mask_sizes().items()})
    progress.history.append(row)
    progress.epoch = epoch + 1
    progress.train_wall += epoch_wall
    extra = progress.extra(job.key, job.cfg.init_choices())
    save_checkpoint(backend, checkpoint_path(backend, job.out), extra)
    write_metrics(job.out / "metrics.csv", progress.history)
    print(
        f"{job.tag} epoch {epoch + 1}/{job.epochs}: train {row['train_loss']:.4f} val "
        f"{val_loss:.4f} {metric} {val_metric:.4f} C/Ct {ratio:.3f}",
        file=sys.stderr,
    )
    stop = job.args.debug_stop_after_epoch
    if stop is not None and epoch + 1 == stop:
        raise Interrupted(f"debug: stopped after the checkpoint of epoch {epoch + 1}")


def train_steps(backend, job: Job, epoch: int) -> list[float]:
    """The optimiser steps of one epoch; their task losses. A non-finite loss stops the run
    and names the step and the offending parameters."""
    from tqdm import tqdm

    n = job.steps_per_epoch
    bar = tqdm(
        job.train_it.epoch(epoch),
        total=n,
        desc=f"{job.tag} epoch {epoch + 1}/{job.epochs}",
        file=sys.stderr,
        mininterval=2.0,
        disable=job.args.no_progress,
    )
    losses = []
    for i, raw in enumerate(bar):
        step = epoch * n + i
        batch = job.ev.prepare(raw)
        if job.args.debug_nan_step is not None and step == job.args.debug_nan_step:
            name = backend.inject_nan()
            print(f"debug: injected NaN into {name} before step {step}", file=sys.stderr)
        lr = backend.lr()
        m = backend.step(batch)
        if not np.isfinite(m["loss"]):
            ckpt = checkpoint_path(backend, job.out)
            raise NonFiniteLoss(
                f"non-finite loss ({m['loss']}) at step {step} (epoch {epoch + 1}, batch "
                f"{i + 1}/{n}, lr {lr:.3g}): {_describe(*backend.nonfinite())}. The last "
                f"good checkpoint {ckpt if ckpt.exists() else '(none yet)'} is unchanged."
            )
        losses.append(m["task_loss"])
        bar.set_postfix(loss=f"{m['task_loss']:.4f}", refresh=False)
    return losses


def _describe(found: dict[str, list[str]], total: int) -> str:
    """`found`: parameter names per kind of non-finite number (two kinds, from the backend)."""

    def fmt(names: list) -> str:
        if not names:
            return "none"
        shown = ", ".join(names[:8])
        return f"{shown}" + (f" (+{len(names) - 8} more)" if len(names) > 8 else "")

    (first, first_names), (second, second_names) = found.items()
    return (
        f"parameters with non-finite {first}: {fmt(first_names)}; with non-finite "
        f"{second}: {fmt(second_names)} ({total} parameters in all)"
    )


# ---- the result ---------------------------------------------------------------------------
def snapshot(backend, job: Job) -> dict:
    """The model as it is now: its test loss and metric, C_curr/C_target (mask sizes and what
    trim computes), found architecture and mask sizes."""
    test_loss, test_metric = job.ev.run(backend, job.test_it)
    return {
        "test_loss": test_loss,
        "test_metric": test_metric,
        "c_ratio": backend.complexity_ratio(),
        "c_ratio_realised": backend.realised_ratio(),
        "architecture": backend.architecture(),
        "mask_sizes": backend.mask_sizes(),
    }


def final_and_best(backend, job: Job, history: list[dict]):
    """(final epoch's snapshot, best-validation epoch's snapshot, (best epoch, its val
    metric) or None). The best epoch's checkpoint is reloaded unless it is the final one."""
    final = snapshot(backend, job)
    best = _best_epoch(history, f"val_{job.ev.metric}", job.ev.higher_is_better)
    if best is None or best[0] == len(history):
        return final, final, best
    load_checkpoint(backend, best_path(backend, job.out))
    return final, snapshot(backend, job), best


def write_result(backend, job: Job, progress: Progress, t_start: float) -> dict:
    """Test the final and the best-validation model; result.json."""
    final, chosen, best = final_and_best(backend, job, progress.history)
    args, meta, history = job.args, job.meta, progress.history
    metric = job.ev.metric
    higher, unit = M.METRICS[metric]
    devs = table6.deviations(
        args.dataset, {**job.hp, "batch_size": job.batch_size}, job.settings["model"]
    )
    result = P.provenance(
        framework=args.framework,
        dataset=args.dataset,
        variant=args.variant,
        profile=args.profile,
        seed=args.seed,
        torch_mode=backend.torch_mode(),  # how the PyTorch model ran
        metric=metric,
        metric_unit=unit,
        higher_is_better=higher,
        evaluation="best_val",  # the reference CCNN protocol; the final epoch's numbers below
        test_metric=chosen["test_metric"],
        test_loss=chosen["test_loss"],
        best_epoch=best[0] if best is not None else None,
        val_metric=best[1] if best is not None else None,
        val_is_test=meta.get("split_aliases", {}).get("val") == "test",
        test_metric_final=final["test_metric"],
        test_loss_final=final["test_loss"],
        val_metric_final=history[-1][f"val_{metric}"] if history else None,
        c_ratio=chosen["c_ratio"],
        c_ratio_realised=chosen["c_ratio_realised"],
        c_ratio_final=final["c_ratio"],
        c_ratio_realised_final=final["c_ratio_realised"],
        c_target=float(backend.complexity_target()),
        mask_sizes=chosen["mask_sizes"],
        architecture=chosen["architecture"],
        depth=len(chosen["architecture"]),
        architecture_final=final["architecture"],
        deviations=devs if args.profile == "paper" else [],
        epochs=job.epochs,
        steps=job.total_steps,
        wall_s=round(progress.train_wall, 3),
        wall_s_this_process=round(time.perf_counter() - t_start, 3),
        device=backend.device_name(),
        threads=job.threads,
        data={
            "dir": str(job.data_dir),
            "source": meta["source"],
            "substitute": bool(meta.get("substitute")),
            "kind": data_kind(meta),
            "distribution": meta.get("distribution"),  # faithful | approximate | ...
            "splits": {k: v["size"] for k, v in meta["splits"].items()},
        },
        run_key=job.key,
        config=job.config,
        settings_description=job.settings.get("description", ""),
    )
    P.write_json(job.out / "result.json", result)
    print(
        f"{job.tag}: test {metric} {result['test_metric']:.4f}, C/Ct {result['c_ratio']:.3f} "
        f"-> {job.out}"
    )
    return result


def train(args: argparse.Namespace) -> dict:
    """One run (one variant): setup, the epochs not yet in its checkpoint, result.json."""
    t_start = time.perf_counter()
    job = setup(args)
    backend = open_backend(job)
    progress = resume(backend, job)
    for epoch in range(progress.epoch, job.epochs):
        run_epoch(backend, job, progress, epoch)
    return write_result(backend, job, progress, t_start)


# ---- command line ---------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m pipelines.train",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--framework", required=True, choices=FRAMEWORKS)
    p.add_argument("--dataset", required=True, choices=list(DATASETS))
    p.add_argument(
        "--variant",
        required=True,
        nargs="+",
        choices=VARIANTS,
        help="one or more variants; with several, --out must contain {variant}",
    )
    p.add_argument("--profile", required=True, choices=PROFILES)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--out",
        required=True,
        help="run directory (metrics, checkpoint, result); {variant} is replaced by the variant",
    )
    p.add_argument("--data", default=None, help="dataset artefacts (default: paths.data/D)")
    p.add_argument("--config", default=None, help="profile YAML (default: the shipped one)")
    p.add_argument("--epochs", type=int, default=None, help="override the profile's epochs")
    p.add_argument("--threads", type=int, default=None, help="override the profile's threads")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    # test hooks (hidden): poison a parameter with NaN before global step N; exit like a killed
    # job right after the checkpoint of epoch N (code 3)
    p.add_argument("--debug-nan-step", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--debug-stop-after-epoch", type=int, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def run_args(args: argparse.Namespace) -> list[argparse.Namespace]:
    """One namespace per requested variant (`variant` a single name, `out` formatted)."""
    variants = list(dict.fromkeys(args.variant))  # repeated names run once
    if len(variants) > 1 and "{variant}" not in args.out:
        raise TrainError(
            f"--out {args.out!r} is one directory for {len(variants)} variants "
            f"({' '.join(variants)}); put {{variant}} in it, e.g. runs/D/{{variant}}/seed0"
        )
    return [
        argparse.Namespace(**{**vars(args), "variant": v, "out": args.out.replace("{variant}", v)})
        for v in variants
    ]


def _exit_code(e: Exception) -> int:
    return 2 if isinstance(e, NonFiniteLoss) else 3 if isinstance(e, Interrupted) else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        runs = run_args(args)
    except TrainError as e:
        print(f"pipelines.train: error: {e}", file=sys.stderr)
        return 1
    code = 0
    for one in runs:
        try:
            train(one)
        except (TrainError, SettingsError, DataError, ValueError) as e:
            where = f" ({one.variant})" if len(runs) > 1 else ""
            print(f"pipelines.train: error{where}: {e}", file=sys.stderr)
            code = code or _exit_code(e)
            if isinstance(e, Interrupted):  # a debug stop is meant to end the process
                break
    return code


if __name__ == "__main__":
    sys.exit(main())
