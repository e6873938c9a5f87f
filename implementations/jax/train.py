"""Optimisation of a DNArch model in JAX (Appx. E.2): optax AdamW with the shared warm-up +
cosine schedule (`common.schedule`), no weight decay on masks, BatchNorm parameters and
biases, task loss + lambda * L_comp (Eq. 8) and mask clamping after every step (Appx. E.1).
Mirrors `implementations.torch.train`, down to `Backend`: the one class through which the
training CLI (`pipelines.train`) drives a model, with the same methods in both frameworks.

Signature differences from PyTorch (functional style):
- `make_optimizer(model, lr, weight_decay, warmup_steps, total_steps)` returns
  `(optax transformation, schedule)`; the schedule is `table[min(count, last)]` of the same
  float64 table PyTorch's LambdaLR reads, so step s uses the same rate in both.
- `train_step(model, optimizer, state, x, target, loss, lam, ignore=None, micro_batches=1)`
  is a pure function returning `(new_state, metrics)` with `state` a `TrainState`; metrics are
  arrays (no host transfer inside the step); its gradient is `train_grads`.
  `jit_train_step(model, optimizer, loss, lam, micro_batches=1)` returns the whole
  step as ONE `jax.jit`-compiled function of (state, x, target[, ignore]); all shapes are
  static (`virtual` mode), so changing mask parameters never recompiles it.

optax.adamw equals torch.optim.AdamW: decoupled decay lr * wd * p on the same leaves,
bias-corrected moments, eps added to sqrt(v_hat) (eps_root = 0).
"""

from __future__ import annotations

import copy
import json
import platform
from typing import Any

import flax.serialization
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from implementations.common.config import ModelConfig
from implementations.common.micro_batches import check_micro_batches
from implementations.common.schedule import lr_table
from implementations.jax.model import (
    DNArch,
    architecture,
    build_model,
    clamp_masks,
    complexity,
    complexity_loss,
    complexity_target,
    init_variables,
    leaf_at,
    mask_bounds,
    param_groups,
    realised_complexity,
)

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
LOSSES = ("cross_entropy", "mse", "relative_l2", "bce_ignore")


def device_name() -> str:
    """What result files record as the JAX device: platform and device kind (on a CPU, the
    processor too)."""
    d = jax.devices()[0]
    kind = getattr(d, "device_kind", d.platform)
    if d.platform == "cpu":
        return f"jax-cpu:{platform.processor() or platform.machine()} ({kind})"
    return f"jax-{d.platform}:{kind}"


def to_channels_last(a: np.ndarray) -> np.ndarray:
    """(B, C, *S) -> (B, *S, C): the data iterator yields channels first (PyTorch's layout),
    the Flax models take channels last (continuous inputs, dense targets, ignore masks)."""
    return np.ascontiguousarray(np.moveaxis(a, 1, -1))


def output_channels_first(y: np.ndarray, dense: bool) -> np.ndarray:
    """A dense output (B, *S, out) -> (B, out, *S), so every metric sees one layout;
    global/retrieval logits (B, K) are unchanged."""
    return np.moveaxis(y, -1, 1) if dense else y


def task_loss(name: str, output: jax.Array, target: jax.Array, ignore=None) -> jax.Array:
    """cross_entropy: output (B, K) logits, target (B,) int labels.
    mse / relative_l2: output and target (B, *S, C) (channels last); relative_l2 is
    mean_b ||y - t|| / ||t||.
    bce_ignore: logits and 0/1 target (B, *S, 1), pixels where `ignore` is 1 do not count
    (logits * (1 - ignore) against target * (1 - ignore), as PyTorch)."""
    if name == "cross_entropy":
        logp = jax.nn.log_softmax(output, axis=-1)
        picked = jnp.take_along_axis(logp, target[:, None].astype(jnp.int32), axis=-1)
        return -jnp.mean(picked)
    if name == "mse":
        return jnp.mean((output - target) ** 2)
    if name == "relative_l2":
        b = output.shape[0]
        diff = jnp.linalg.norm((output - target).reshape(b, -1), axis=1)
        norm = jnp.linalg.norm(target.reshape(b, -1), axis=1)
        return jnp.mean(diff / jnp.maximum(norm, 1e-12))
    if name == "bce_ignore":
        keep = 1.0 - ignore if ignore is not None else jnp.ones_like(target)
        z, t = output * keep, target * keep
        # PyTorch's stable form: max(z, 0) - z t + log(1 + exp(-|z|))
        return jnp.mean(jnp.maximum(z, 0.0) - z * t + jnp.log1p(jnp.exp(-jnp.abs(z))))
    raise ValueError(f"task_loss: unknown loss {name!r}; valid: {list(LOSSES)}")


def make_optimizer(
    model: DNArch, lr: float, weight_decay: float, warmup_steps: int, total_steps: int
) -> tuple[optax.GradientTransformation, Any]:
    """AdamW over variables["params"] (never the "buffers"), decay on `param_groups`."""
    table = lr_table(lr, warmup_steps, total_steps)
    last = len(table) - 1

    def schedule(count):
        values = jnp.asarray(table)  # float64 when x64 is on, else float32
        return values[jnp.minimum(count, last)]

    tx = flat_adamw(schedule, weight_decay, lambda params: param_groups(model, params))
    return tx, schedule


def flat_adamw(schedule: Any, weight_decay: float, decay_mask: Any) -> optax.GradientTransformation:
    """optax.adamw(schedule, ADAM_BETAS, ADAM_EPS, weight_decay, mask=decay_mask) on ONE flat
    vector of all parameters: the same element-wise arithmetic, but XLA compiles a handful of
    fused loops for the update instead of several per parameter leaf, so the train step
    compiles faster. The moments are stored flat; `decay_mask(params)` is a tree of Python
    bools like `params` (static), turned into a constant 0/1 vector, so masked-out leaves get
    `+ weight_decay * 0 * p` = exactly nothing."""
    from jax.flatten_util import ravel_pytree

    adam = optax.scale_by_adam(b1=ADAM_BETAS[0], b2=ADAM_BETAS[1], eps=ADAM_EPS)
    rate = optax.scale_by_learning_rate(schedule)

    def decay_vector(params) -> np.ndarray:
        leaves = jax.tree_util.tree_leaves(params)
        flags = jax.tree_util.tree_leaves(decay_mask(params))
        if len(flags) != len(leaves):
            raise ValueError(
                f"flat_adamw: the decay mask has {len(flags)} leaves, the parameters "
                f"{len(leaves)}; it must be a tree of bools shaped like the parameters"
            )
        parts = [
            np.full(int(np.prod(p.shape)), float(bool(m)), np.dtype(p.dtype))
            for m, p in zip(flags, leaves)
        ]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def init(params):
        flat, _ = ravel_pytree(params)
        return (adam.init(flat), optax.EmptyState(), rate.init(flat))

    def update(grads, state, params):
        """adamw = chain(scale_by_adam, add_decayed_weights(mask), scale_by_learning_rate)."""
        g, unravel = ravel_pytree(grads)
        p, _ = ravel_pytree(params)
        adam_state, empty, rate_state = state
        u, adam_state = adam.update(g, adam_state, p)
        u = u + weight_decay * jnp.asarray(decay_vector(params), p.dtype) * p
        u, rate_state = rate.update(u, rate_state, p)
        return unravel(u), (adam_state, empty, rate_state)

    return optax.GradientTransformation(init, update)


@flax.struct.dataclass
class TrainState:
    params: Any
    buffers: Any
    opt_state: Any
    step: jax.Array
    rng: jax.Array


def init_train_state(
    model: DNArch,
    optimizer: optax.GradientTransformation,
    key: jax.Array,
    variables: dict | None = None,
) -> TrainState:
    """A fresh state (or one around given `variables`, e.g. copied from PyTorch)."""
    init_key, rng = jax.random.split(key)
    if variables is None:
        variables = init_variables(model, init_key)
    params = variables["params"]
    return TrainState(
        params=params,
        buffers=variables["buffers"],
        opt_state=optimizer.init(params),
        step=jnp.zeros((), jnp.int32),
        rng=rng,
    )


def train_grads(
    model: DNArch,
    state: TrainState,
    x: jax.Array,
    target: jax.Array,
    loss: str,
    lam: float,
    ignore: jax.Array | None = None,
    micro_batches: int = 1,
) -> tuple[Any, dict[str, jax.Array]]:
    """The gradient of task loss + lam * L_comp at `state.params` and the loss terms (pure).

    micro_batches > 1 (static): gradient accumulation, as `implementations.torch.train`. The
    batch is split into `micro_batches` equal consecutive parts; a `lax.scan` runs forward +
    backward part by part (so peak activation memory is one part's) and sums the gradients of
    the parts' task losses weighted by part size / batch size; the gradient of lam * L_comp,
    which does not depend on the data, is added once. The returned terms are full-batch means.
    Dropout draws part i's masks from the step's key folded with i.

    Not the full batch's gradient in general: BatchNorm normalises with the current batch's
    statistics in training (Appx. E.1), so each sample is normalised with its micro-batch's
    mean and variance instead of the full batch's, and its output, loss and gradient change.
    The accumulated gradient equals the full batch's exactly only when every micro-batch has
    the full batch's statistics (e.g. a batch made of identical copies of one micro-batch).
    """
    dropout_key = jax.random.fold_in(state.rng, state.step)

    if micro_batches == 1:

        def objective(params):
            variables = {"params": params, "buffers": state.buffers}
            out = model.apply(variables, x, train=True, rngs={"dropout": dropout_key})
            obj = task_loss(loss, out, target, ignore)
            comp = complexity_loss(model, variables)
            return obj + lam * comp, (obj, comp)

        (total, (obj, comp)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
        return grads, {"loss": total, "task_loss": obj, "complexity_loss": comp}

    n = x.shape[0]
    size = check_micro_batches(n, micro_batches)
    weight = size / n

    def part_loss(params, xs, ts, igs, key):
        variables = {"params": params, "buffers": state.buffers}
        out = model.apply(variables, xs, train=True, rngs={"dropout": key})
        return task_loss(loss, out, ts, igs) * weight

    def split(a):
        return None if a is None else a.reshape(micro_batches, size, *a.shape[1:])

    parts = (jnp.arange(micro_batches), split(x), split(target), split(ignore))
    first = jax.tree_util.tree_map(lambda a: a[0], parts[1:])
    obj_type = jax.eval_shape(part_loss, state.params, *first, dropout_key)

    def accumulate(carry, part):
        grads, obj = carry
        i, xs, ts, igs = part
        key = jax.random.fold_in(dropout_key, i)
        o, g = jax.value_and_grad(part_loss)(state.params, xs, ts, igs, key)
        return (jax.tree_util.tree_map(jnp.add, grads, g), obj + o), None

    zeros = jax.tree_util.tree_map(jnp.zeros_like, state.params)
    start = (zeros, jnp.zeros(obj_type.shape, obj_type.dtype))
    (grads, obj), _ = jax.lax.scan(accumulate, start, parts)

    def comp_objective(params):
        return complexity_loss(model, {"params": params, "buffers": state.buffers})

    comp, comp_grads = jax.value_and_grad(comp_objective)(state.params)
    grads = jax.tree_util.tree_map(lambda g, c: g + lam * c, grads, comp_grads)
    return grads, {"loss": obj + lam * comp, "task_loss": obj, "complexity_loss": comp}


def train_step(
    model: DNArch,
    optimizer: optax.GradientTransformation,
    state: TrainState,
    x: jax.Array,
    target: jax.Array,
    loss: str,
    lam: float,
    ignore: jax.Array | None = None,
    micro_batches: int = 1,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimiser step (pure). Returns the new state and the loss terms before the step.
    micro_batches > 1: gradient accumulation (`train_grads`, BatchNorm caveat there)."""
    grads, metrics = train_grads(model, state, x, target, loss, lam, ignore, micro_batches)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = clamp_masks(model, optax.apply_updates(state.params, updates))
    new_state = state.replace(params=params, opt_state=opt_state, step=state.step + 1)
    return new_state, metrics


def jit_train_step(
    model: DNArch,
    optimizer: optax.GradientTransformation,
    loss: str,
    lam: float,
    micro_batches: int = 1,
):
    """`train_step` as one jitted function (state, x, target, ignore=None) -> (state, metrics)."""

    def step(state, x, target, ignore=None):
        return train_step(model, optimizer, state, x, target, loss, lam, ignore, micro_batches)

    return jax.jit(step)


def to_numpy_metrics(metrics: dict[str, jax.Array]) -> dict[str, float]:
    """Host floats of the metrics (PyTorch's train_step returns floats)."""
    return {k: float(np.asarray(v)) for k, v in metrics.items()}


class Backend:
    """A JAX DNArch as the training CLI drives it (`implementations.torch.train.Backend` has
    the same methods): NumPy batches in, channels first, as the iterator yields them (moved
    to channels last here, `to_channels_last`); NumPy outputs (channels first again) and host
    floats out. `steps` is (warm-up steps, total steps) of the schedule.
    `hp["micro_batches"]` (default 1) splits every training batch into that many equal parts
    accumulated into one step (`train_grads`: less activation memory, but BatchNorm then
    normalises each part with its own statistics); evaluation batches are never split."""

    name = "jax"
    ckpt_name = "checkpoint.msgpack"

    @staticmethod
    def set_threads(threads: int) -> None:
        """Nothing to do: XLA takes its thread count from XLA_FLAGS, which must be set before
        jax is imported (`pipelines.train.configure_xla`)."""

    def __init__(self, cfg: ModelConfig, hp: dict, seed: int, loss: str, lam: float, steps: tuple):
        self.model = build_model(cfg)
        warmup, total = steps
        self.tx, self.schedule = make_optimizer(
            self.model, hp["lr"], hp["weight_decay"], warmup, total
        )
        model = self.model
        # Eager: init_variables draws on the host and compiles only a small layout program
        self.state = init_train_state(model, self.tx, jax.random.PRNGKey(seed))
        self.loss, self.lam, self.cfg = loss, lam, cfg
        # gradient accumulation over equal parts of each batch (see `train_grads`); 1 = none
        micro = hp.get("micro_batches", 1)
        check_micro_batches(micro, micro)  # an integer >= 1
        self.micro_batches = int(micro)
        self._memo_cache: dict = {}
        # the schedule at every step it distinguishes (steps past the end repeat the last),
        # computed by the schedule itself in the optimiser's dtype: `lr` indexes it on the host
        self._lr_values = np.asarray(self.schedule(jnp.arange(total + 1)))
        self._step = jit_train_step(model, self.tx, loss, lam, self.micro_batches)
        self._sizes = jax.jit(lambda v: model.apply(v, method=DNArch.mask_size_values))
        self._complexity = jax.jit(lambda v: complexity(model, v))

        def _predict(params, buffers, x, y, ignore):
            out = model.apply({"params": params, "buffers": buffers}, x, train=False)
            return out, task_loss(loss, out, y, ignore)

        self._predict = jax.jit(_predict)

    def _xy(self, batch: dict):
        dense = self.cfg.task == "dense"
        x = batch["inputs"]
        if not self.cfg.tokens:
            x = to_channels_last(x)  # (B, C, *S) -> (B, *S, C)
        y = to_channels_last(batch["targets"]) if dense else batch["targets"]
        ig = to_channels_last(batch["ignore"]) if "ignore" in batch else None
        return jnp.asarray(x), jnp.asarray(y), None if ig is None else jnp.asarray(ig)

    def step(self, batch: dict) -> dict[str, float]:
        """One optimiser step on `batch`: the loss terms before it."""
        x, y, ig = self._xy(batch)
        self.prev = self.state  # what `nonfinite` compares with after a NaN loss
        if ig is None:
            self.state, m = self._step(self.state, x, y)
        else:
            self.state, m = self._step(self.state, x, y, ig)
        return to_numpy_metrics(m)

    def lr(self) -> float:
        """The learning rate of the next step: the schedule's values, read on the host (the
        training loop asks before every step; an eager schedule call costs ~1-8 ms of JAX
        dispatch on a CPU)."""
        step = int(self.state.step)
        return float(self._lr_values[min(step, len(self._lr_values) - 1)])

    def predict(self, batch: dict) -> tuple[np.ndarray, float]:
        """(output channels first, mean task loss) in evaluation mode."""
        x, y, ig = self._xy(batch)
        out, loss = self._predict(self.state.params, self.state.buffers, x, y, ig)
        return output_channels_first(np.asarray(out), self.cfg.task == "dense"), float(loss)

    def _variables(self) -> dict:
        return {"params": self.state.params, "buffers": self.state.buffers}

    def complexity_target(self) -> float:
        """C_target (Eq. 10 sizes of the configured network)."""
        return complexity_target(self.model)

    def complexity_ratio(self) -> float:
        """C_curr / C_target (Eq. 10 mask sizes)."""
        return float(self._complexity(self._variables())) / self.complexity_target()

    def _mask_key(self) -> bytes:
        """The mask parameters' bytes: the architecture depends on nothing else."""
        params = self.state.params
        return b"|".join(
            np.asarray(leaf_at(params, path)).tobytes() for path, _, _ in mask_bounds(self.cfg)
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
        c = self._memo("realised", lambda: realised_complexity(self.model, self._variables()))
        return c / self.complexity_target()

    def mask_sizes(self) -> dict[str, float]:
        return {k: float(v) for k, v in sorted(self._sizes(self._variables()).items())}

    def architecture(self) -> list[dict]:
        return self._memo("architecture", lambda: architecture(self.model, self._variables()))

    def torch_mode(self) -> str | None:
        """None: JAX always runs the virtual computation."""
        return None

    def device_name(self) -> str:
        return device_name()

    def _leaves(self, tree) -> list[tuple[str, Any]]:
        flat = jax.tree_util.tree_flatten_with_path(tree)[0]
        return [(".".join(str(getattr(k, "key", k)) for k in path), v) for path, v in flat]

    def inject_nan(self) -> str:
        """Test hook: poison one parameter of the head with NaN; returns its name."""
        params = self.state.params
        head = "head" if "head" in params else "head_out"
        poisoned = {**params, head: {**params[head], "bias": params[head]["bias"] * np.nan}}
        self.state = self.state.replace(params=poisoned)
        return f"{head}.bias"

    def nonfinite(self) -> tuple[dict[str, list[str]], int]:
        """After a non-finite loss: the parameters with non-finite values before the step and
        after it, and how many parameters there are."""
        before = [n for n, v in self._leaves(self.prev.params) if not np.isfinite(v).all()]
        after = [n for n, v in self._leaves(self.state.params) if not np.isfinite(v).all()]
        total = len(self._leaves(self.state.params))
        return {"values before the step": before, "values after it": after}, total

    def checkpoint_bytes(self, extra: dict) -> bytes:
        """The TrainState (params, buffers, opt_state, step, rng) and `extra` (JSON), flax
        msgpack."""
        blob = {"state": flax.serialization.to_state_dict(self.state), "extra": json.dumps(extra)}
        return flax.serialization.msgpack_serialize(blob)

    def restore(self, data: bytes) -> dict:
        """The state `checkpoint_bytes` wrote; returns its `extra`. A ValueError when the
        state does not fit this model and optimiser."""
        blob = flax.serialization.msgpack_restore(data)
        try:
            self.state = flax.serialization.from_state_dict(self.state, blob["state"])
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(
                f"its training state does not fit this version's ({e}); checkpoints written "
                "before the flat JAX optimiser state cannot be resumed"
            ) from None
        return json.loads(blob["extra"])
