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
`implementations.{torch,jax}.train`).

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
tables say so. BatchNorm
uses batch statistics in evaluation too (Appx. E.1), so evaluation batches have the training
batch size. Training drops the last incomplete batch (one compiled JAX step shape, no
BatchNorm over a handful of samples).

Losses: cross-entropy (classification), relative L2 on the NORMALISED scale (DarcyFlow; its
metric is computed on the decoded scale, pipelines.metrics), BCE-with-logits with the ignore
mask (Cosmic). The channels-first (torch) / channels-last (JAX) boundary is in pipelines.inputs.
"""

from __future__ import annotations

import argparse
import copy
import csv
import hashlib
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from data_prep.artefacts import load_meta
from data_prep.errors import DataError
from data_prep.iterator import BatchIterator
from data_prep.registry import DATASETS
from implementations.common.config import VARIANTS, ModelConfig
from pipelines import metrics as M
from pipelines import provenance as P
from pipelines import table6
from pipelines.inputs import Resizer, output_channels_first, to_channels_last
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
    )


def run_key(run: dict) -> str:
    """What must match for a checkpoint to be resumed (everything that changes the numbers)."""
    blob = json.dumps(run, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


# ---- backends: same interface, numpy in and out (channels first) ---------------------------
class TorchBackend:
    name = "torch"
    ckpt_name = "checkpoint.pt"

    def __init__(self, cfg: ModelConfig, hp: dict, seed: int, loss: str, lam: float, steps: tuple):
        import torch

        from implementations.torch import model as tm
        from implementations.torch import train as tt

        self.torch, self.tt = torch, tt
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        torch.manual_seed(seed)
        self.model = tm.build_model(cfg).to(self.device)
        warmup, total = steps
        self.opt, self.sched = tt.make_optimizer(
            self.model, hp["lr"], hp["weight_decay"], warmup, total
        )
        self.loss, self.lam, self.cfg = loss, lam, cfg
        self.names = {id(p): n for n, p in self.model.named_parameters()}

    def _t(self, a: np.ndarray, kind: str):
        t = self.torch.from_numpy(np.ascontiguousarray(a))
        if kind == "label":
            t = t.long()
        return t.to(self.device)

    def _xy(self, batch: dict):
        x = self._t(batch["inputs"], "x")
        y = self._t(batch["targets"], "label" if self.loss == "cross_entropy" else "y")
        ig = self._t(batch["ignore"], "y") if "ignore" in batch else None
        return x, y, ig

    def step(self, batch: dict) -> dict[str, float]:
        x, y, ig = self._xy(batch)
        # which parameters were finite BEFORE the (in-place) step: read only on a NaN loss
        with self.torch.no_grad():
            self._finite_before = self.torch.stack(
                [self.torch.isfinite(p).all() for p in self.model.parameters()]
            )
        return self.tt.train_step(self.model, self.opt, self.sched, x, y, self.loss, self.lam, ig)

    def lr(self) -> float:
        return float(self.opt.param_groups[0]["lr"])

    def predict(self, batch: dict) -> tuple[np.ndarray, float]:
        x, y, ig = self._xy(batch)
        self.model.eval()
        with self.torch.no_grad():
            out = self.model(x)
            loss = float(self.tt.task_loss(self.loss, out, y, ig))
        return out.float().cpu().numpy(), loss

    def complexity_ratio(self) -> float:
        return self.model.complexity_ratio()

    def realised_ratio(self) -> float:
        """C of what trim computes (kept integer sizes) over C_target."""
        return self.model.realised_complexity() / self.model.complexity_target()

    def mask_sizes(self) -> dict[str, float]:
        return dict(sorted(self.model.mask_sizes().items()))

    def architecture(self) -> list[dict]:
        return self.model.architecture()

    def device_name(self) -> str:
        return P.torch_device()

    def inject_nan(self) -> str:
        """Test hook: poison one parameter of the head with NaN."""
        p = next(self.model.head.parameters())
        with self.torch.no_grad():
            p.fill_(float("nan"))
        return self.names[id(p)]

    def nonfinite(self) -> str:
        before = self._finite_before.cpu().numpy()
        bad_v, bad_g = [], []
        for (n, p), ok in zip(self.model.named_parameters(), before):
            if not ok:
                bad_v.append(n)
            if p.grad is not None and not bool(self.torch.isfinite(p.grad).all()):
                bad_g.append(n)
        return _describe(bad_v, bad_g, len(self.names), ("values before the step", "gradients"))

    def save(self, path: Path, extra: dict) -> None:
        torch = self.torch
        blob = {
            "model": self.model.state_dict(),
            "opt": self.opt.state_dict(),
            "sched": self.sched.state_dict(),
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "extra": json.dumps(extra),
        }
        buf = io.BytesIO()
        torch.save(blob, buf)
        P.write_bytes_atomic(path, buf.getvalue())

    def load(self, path: Path) -> dict:
        torch = self.torch
        blob = torch.load(path, map_location=self.device, weights_only=True)
        self.model.load_state_dict(blob["model"])
        self.opt.load_state_dict(blob["opt"])
        self.sched.load_state_dict(blob["sched"])
        torch.set_rng_state(blob["rng"])
        if blob["cuda_rng"]:
            torch.cuda.set_rng_state_all(blob["cuda_rng"])
        return json.loads(blob["extra"])


class JaxBackend:
    name = "jax"
    ckpt_name = "checkpoint.msgpack"

    def __init__(self, cfg: ModelConfig, hp: dict, seed: int, loss: str, lam: float, steps: tuple):
        import flax.serialization
        import jax
        import jax.numpy as jnp

        from implementations.jax import model as jm
        from implementations.jax import train as jt

        self.jax, self.jnp, self.jm, self.jt, self.ser = jax, jnp, jm, jt, flax.serialization
        self.model = jm.build_model(cfg)
        warmup, total = steps
        self.tx, self.schedule = jt.make_optimizer(
            self.model, hp["lr"], hp["weight_decay"], warmup, total
        )
        model, tx = self.model, self.tx
        # Eager: init_variables draws on the host and compiles only a small layout program
        self.state = jt.init_train_state(model, tx, jax.random.PRNGKey(seed))
        self.loss, self.lam, self.cfg = loss, lam, cfg
        self._memo_cache: dict = {}
        self._step = jt.jit_train_step(self.model, self.tx, loss, lam)
        self._sizes = jax.jit(lambda v: model.apply(v, method=jm.DNArch.mask_size_values))
        self._complexity = jax.jit(lambda v: jm.complexity(model, v))

        def _predict(params, buffers, x, y, ignore):
            out = model.apply({"params": params, "buffers": buffers}, x, train=False)
            return out, jt.task_loss(loss, out, y, ignore)

        self._predict = jax.jit(_predict)

    def _xy(self, batch: dict):
        jnp = self.jnp
        dense = self.cfg.task == "dense"
        x = batch["inputs"]
        if not self.cfg.tokens:
            x = to_channels_last(x)  # (B, C, *S) -> (B, *S, C)
        y = to_channels_last(batch["targets"]) if dense else batch["targets"]
        ig = to_channels_last(batch["ignore"]) if "ignore" in batch else None
        return jnp.asarray(x), jnp.asarray(y), None if ig is None else jnp.asarray(ig)

    def step(self, batch: dict) -> dict[str, float]:
        x, y, ig = self._xy(batch)
        self.prev = self.state
        if ig is None:
            self.state, m = self._step(self.state, x, y)
        else:
            self.state, m = self._step(self.state, x, y, ig)
        return self.jt.to_numpy_metrics(m)

    def lr(self) -> float:
        return float(self.schedule(int(self.state.step)))

    def predict(self, batch: dict) -> tuple[np.ndarray, float]:
        x, y, ig = self._xy(batch)
        out, loss = self._predict(self.state.params, self.state.buffers, x, y, ig)
        return output_channels_first(np.asarray(out), self.cfg.task == "dense"), float(loss)

    def _variables(self) -> dict:
        return {"params": self.state.params, "buffers": self.state.buffers}

    def complexity_ratio(self) -> float:
        c = float(self._complexity(self._variables()))
        return c / self.jm.complexity_target(self.model)

    def _mask_key(self) -> bytes:
        """The mask parameters' bytes: the architecture depends on nothing else."""
        params = self.state.params
        return b"|".join(
            np.asarray(self.jm.leaf_at(params, path)).tobytes()
            for path, _, _ in self.jm.mask_bounds(self.cfg)
        )

    def _memo(self, name: str, compute):
        """`compute()` once per mask-parameter values: the eager evaluation costs ~0.1 s of
        JAX dispatch per call, and a run asks again for the same masks (the last epoch's row,
        the final result, the best epoch's reload)."""
        key = (name, self._mask_key())
        if key not in self._memo_cache:
            self._memo_cache[key] = compute()
        return copy.deepcopy(self._memo_cache[key])

    def realised_ratio(self) -> float:
        """C of what a trimmed network computes (kept integer sizes) over C_target."""
        c = self._memo(
            "realised", lambda: self.jm.realised_complexity(self.model, self._variables())
        )
        return c / self.jm.complexity_target(self.model)

    def mask_sizes(self) -> dict[str, float]:
        return {k: float(v) for k, v in sorted(self._sizes(self._variables()).items())}

    def architecture(self) -> list[dict]:
        return self._memo(
            "architecture", lambda: self.jm.architecture(self.model, self._variables())
        )

    def device_name(self) -> str:
        return P.jax_device()

    def _leaves(self, tree) -> list[tuple[str, Any]]:
        flat = self.jax.tree_util.tree_flatten_with_path(tree)[0]
        return [(".".join(str(getattr(k, "key", k)) for k in path), v) for path, v in flat]

    def inject_nan(self) -> str:
        params = self.state.params
        head = "head" if "head" in params else "head_out"
        poisoned = {**params, head: {**params[head], "bias": params[head]["bias"] * np.nan}}
        self.state = self.state.replace(params=poisoned)
        return f"{head}.bias"

    def nonfinite(self) -> str:
        before = [n for n, v in self._leaves(self.prev.params) if not np.isfinite(v).all()]
        after = [n for n, v in self._leaves(self.state.params) if not np.isfinite(v).all()]
        total = len(self._leaves(self.state.params))
        return _describe(before, after, total, ("values before the step", "values after it"))

    def save(self, path: Path, extra: dict) -> None:
        blob = {"state": self.ser.to_state_dict(self.state), "extra": json.dumps(extra)}
        P.write_bytes_atomic(path, self.ser.msgpack_serialize(blob))

    def load(self, path: Path) -> dict:
        blob = self.ser.msgpack_restore(Path(path).read_bytes())
        try:
            self.state = self.ser.from_state_dict(self.state, blob["state"])
        except (ValueError, KeyError, TypeError) as e:
            raise TrainError(
                f"{path}: its training state does not fit this version's ({e}); checkpoints "
                "written before the flat JAX optimiser state (issue 14) cannot be resumed: "
                "delete it to start afresh or pass another --out"
            ) from None
        return json.loads(blob["extra"])


def _describe(first: list, second: list, total: int, labels=("values", "gradients")) -> str:
    def fmt(names: list) -> str:
        if not names:
            return "none"
        shown = ", ".join(names[:8])
        return f"{shown}" + (f" (+{len(names) - 8} more)" if len(names) > 8 else "")

    return (
        f"parameters with non-finite {labels[0]}: {fmt(first)}; with non-finite "
        f"{labels[1]}: {fmt(second)} ({total} parameters in all)"
    )


BACKENDS = {"torch": TorchBackend, "jax": JaxBackend}


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


# ---- the run ----------------------------------------------------------------------------
def write_metrics(path: Path, history: list[dict]) -> None:
    fields: list[str] = []
    for row in history:
        fields += [k for k in row if k not in fields]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    w.writerows(history)
    P.write_atomic(path, buf.getvalue())


# XLA's cheapest CPU compilation (smoke profile): no LLVM optimisation. Tiny programs spend
# their time in compilation, not in running. Tried for issue 14 without a clear gain:
# --xla_cpu_max_isa=SSE4_2 (10-15 % less compile time in one comparison, ~4 % in an
# interleaved one), --xla_cpu_parallel_codegen_split_count=1, --xla_cpu_use_xnnpack=false.
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


def train(args: argparse.Namespace) -> dict:
    t_start = time.perf_counter()
    settings = load_profile(args.profile, args.config)
    hp = dict(hyper(settings, args.dataset))
    if args.epochs is not None:
        hp["epochs"] = args.epochs
    data_dir = Path(args.data or Path(settings["paths"]["data"]) / args.dataset)
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
    threads = settings["threads"] if args.threads is None else args.threads
    configure_xla(threads, settings["xla_fast_compile"])

    resizer = Resizer.from_settings(meta, hp)
    shape = resizer.target_shape if resizer else tuple(meta["input_shape"])
    cfg = model_config(settings, meta, hp, args.variant, shape, args.framework)
    ev = Evaluator(args.dataset, meta, data_dir, resizer)
    loss = LOSS_BY_METRIC[ev.metric]
    lam = float(hp["lam"]) if cfg.uses_complexity_loss else 0.0

    n_train = int(meta["splits"]["train"]["size"])
    batch_size = min(int(hp["batch_size"]), n_train)
    train_it = BatchIterator(data_dir, "train", batch_size, drop_last=True, seed=args.seed)
    # drop_last: the train-metric batches have the training batch shape (one JAX compile less)
    train_eval_it = BatchIterator(
        data_dir, "train", batch_size, shuffle=False, augment=False, drop_last=True
    )
    val_it = BatchIterator(data_dir, "val", batch_size)
    test_it = BatchIterator(data_dir, "test", batch_size)
    steps_per_epoch = len(train_it)
    epochs = int(hp["epochs"])
    warmup = int(hp["warmup_epochs"]) * steps_per_epoch
    total = epochs * steps_per_epoch

    run = {
        "framework": args.framework,
        "dataset": args.dataset,
        "variant": args.variant,
        "profile": args.profile,
        "seed": args.seed,
        "hyper": hp,
        "batch_size": batch_size,
        "steps_per_epoch": steps_per_epoch,
        "model": cfg.to_dict(),
        "data_checksums": meta.get("raw_checksums"),
        "resize": None if resizer is None else {"shape": list(shape), "mode": resizer.mode},
    }
    key = run_key(run)
    import_threads(backend_of(args.framework), threads)
    backend = BACKENDS[backend_of(args.framework)](cfg, hp, args.seed, loss, lam, (warmup, total))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / backend.ckpt_name
    best_name = "best" + Path(backend.ckpt_name).suffix
    history: list[dict] = []
    start_epoch, train_wall = 0, 0.0
    if ckpt.exists():
        extra = backend.load(ckpt)
        if extra["run_key"] != key:
            raise TrainError(
                f"{ckpt} was written by a different configuration (key {extra['run_key']}, this "
                f"run {key}); delete it to start afresh or pass another --out"
            )
        start_epoch, history, train_wall = extra["epoch"], extra["history"], extra["train_wall_s"]
        print(f"resuming from {ckpt} at epoch {start_epoch}/{epochs}", file=sys.stderr)
        write_metrics(out / "metrics.csv", history)

    from tqdm import tqdm

    tag = f"{args.framework}/{args.dataset}/{args.variant}/s{args.seed}"
    for epoch in range(start_epoch, epochs):
        t0 = time.perf_counter()
        bar = tqdm(
            train_it.epoch(epoch),
            total=steps_per_epoch,
            desc=f"{tag} epoch {epoch + 1}/{epochs}",
            file=sys.stderr,
            mininterval=2.0,
            disable=args.no_progress,
        )
        step_losses = []
        for i, raw in enumerate(bar):
            step = epoch * steps_per_epoch + i
            batch = ev.prepare(raw)
            if args.debug_nan_step is not None and step == args.debug_nan_step:
                name = backend.inject_nan()
                print(f"debug: injected NaN into {name} before step {step}", file=sys.stderr)
            lr = backend.lr()
            m = backend.step(batch)
            if not np.isfinite(m["loss"]):
                raise NonFiniteLoss(
                    f"non-finite loss ({m['loss']}) at step {step} (epoch {epoch + 1}, batch "
                    f"{i + 1}/{steps_per_epoch}, lr {lr:.3g}): {backend.nonfinite()}. The last "
                    f"good checkpoint {ckpt if ckpt.exists() else '(none yet)'} is unchanged."
                )
            step_losses.append(m["task_loss"])
            bar.set_postfix(loss=f"{m['task_loss']:.4f}", refresh=False)
        train_eval_loss, train_metric = ev.run(backend, train_eval_it, hp["train_eval_batches"])
        val_loss, val_metric = ev.run(backend, val_it)
        epoch_wall = time.perf_counter() - t0
        train_wall += epoch_wall
        ratio = backend.complexity_ratio()
        best = _best_epoch(history, f"val_{ev.metric}", M.METRICS[ev.metric][0])
        if best is None or _better(val_metric, best[1], M.METRICS[ev.metric][0]):
            backend.save(out / best_name, {"epoch": epoch + 1})  # before the checkpoint: resume
        row = {
            "epoch": epoch + 1,
            "step": (epoch + 1) * steps_per_epoch,
            "lr": backend.lr(),
            "train_loss": float(np.mean(step_losses)),
            "train_eval_loss": train_eval_loss,
            f"train_{ev.metric}": train_metric,
            "val_loss": val_loss,
            f"val_{ev.metric}": val_metric,
            "c_ratio": ratio,
            "c_ratio_realised": backend.realised_ratio(),
            "wall_s": round(epoch_wall, 3),
        }
        row.update({f"size.{k}": v for k, v in backend.mask_sizes().items()})
        history.append(row)
        extra = {"run_key": key, "epoch": epoch + 1, "history": history, "train_wall_s": train_wall}
        backend.save(ckpt, extra)
        write_metrics(out / "metrics.csv", history)
        print(
            f"{tag} epoch {epoch + 1}/{epochs}: train {row['train_loss']:.4f} val {val_loss:.4f} "
            f"{ev.metric} {val_metric:.4f} C/Ct {ratio:.3f}",
            file=sys.stderr,
        )
        if args.debug_stop_after_epoch is not None and epoch + 1 == args.debug_stop_after_epoch:
            raise Interrupted(f"debug: stopped after the checkpoint of epoch {epoch + 1}")

    higher, unit = M.METRICS[ev.metric]
    final = {
        "test_loss": ev.run(backend, test_it),
        "c_ratio": backend.complexity_ratio(),
        "c_ratio_realised": backend.realised_ratio(),
        "architecture": backend.architecture(),
        "mask_sizes": backend.mask_sizes(),
    }
    final["test_loss"], final["test_metric"] = final["test_loss"]
    best = _best_epoch(history, f"val_{ev.metric}", higher)
    chosen = final
    if best is not None and best[0] != len(history):  # reload the best-validation checkpoint
        backend.load(out / best_name)
        loss_b, metric_b = ev.run(backend, test_it)
        chosen = {
            "test_loss": loss_b,
            "test_metric": metric_b,
            "c_ratio": backend.complexity_ratio(),
            "c_ratio_realised": backend.realised_ratio(),
            "architecture": backend.architecture(),
            "mask_sizes": backend.mask_sizes(),
        }
    test_metric = chosen["test_metric"]
    result_arch = chosen["architecture"]
    devs = table6.deviations(args.dataset, {**hp, "batch_size": batch_size}, settings["model"])
    result = P.provenance(
        framework=args.framework,
        dataset=args.dataset,
        variant=args.variant,
        profile=args.profile,
        seed=args.seed,
        # how the PyTorch model ran (JAX always runs the virtual computation)
        torch_mode=cfg.mode if backend.name == "torch" else None,
        metric=ev.metric,
        metric_unit=unit,
        higher_is_better=higher,
        evaluation="best_val",  # the reference CCNN protocol; the final epoch's numbers below
        test_metric=test_metric,
        test_loss=chosen["test_loss"],
        best_epoch=best[0] if best is not None else None,
        val_metric=best[1] if best is not None else None,
        val_is_test=meta.get("split_aliases", {}).get("val") == "test",
        test_metric_final=final["test_metric"],
        test_loss_final=final["test_loss"],
        val_metric_final=history[-1][f"val_{ev.metric}"] if history else None,
        c_ratio=chosen["c_ratio"],
        c_ratio_realised=chosen["c_ratio_realised"],
        c_ratio_final=final["c_ratio"],
        c_ratio_realised_final=final["c_ratio_realised"],
        c_target=float(_c_target(backend)),
        mask_sizes=chosen["mask_sizes"],
        architecture=result_arch,
        depth=len(result_arch),
        architecture_final=final["architecture"],
        deviations=devs if args.profile == "paper" else [],
        epochs=epochs,
        steps=total,
        wall_s=round(train_wall, 3),
        wall_s_this_process=round(time.perf_counter() - t_start, 3),
        device=backend.device_name(),
        threads=threads,
        data={
            "dir": str(data_dir),
            "source": meta["source"],
            "substitute": bool(meta.get("substitute")),
            "kind": data_kind(meta),
            "distribution": meta.get("distribution"),  # faithful | approximate | ... (issue 11)
            "splits": {k: v["size"] for k, v in meta["splits"].items()},
        },
        run_key=key,
        config=run,
        settings_description=settings.get("description", ""),
    )
    P.write_json(out / "result.json", result)
    print(f"{tag}: test {ev.metric} {test_metric:.4f}, C/Ct {result['c_ratio']:.3f} -> {out}")
    return result


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


def import_threads(framework: str, threads: int) -> None:
    if framework == "torch":
        import torch

        torch.set_num_threads(threads)


def _c_target(backend) -> float:
    if backend.name == "torch":
        return backend.model.complexity_target()
    return backend.jm.complexity_target(backend.model)


def data_kind(meta: dict) -> str:
    """real | generated | substitute: what the tables print in their `data` column."""
    if meta["source"] == "download":
        return "real"
    return "substitute" if meta.get("substitute") else "generated"


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
