"""Optimisation of a DNArch model in JAX (Appx. E.2): optax AdamW with the shared warm-up +
cosine schedule (`common.schedule`), no weight decay on masks, BatchNorm parameters and
biases, task loss + lambda * L_comp (Eq. 8) and mask clamping after every step (Appx. E.1).
Mirrors `implementations.torch.train`.

Signature differences from PyTorch (functional style):
- `make_optimizer(model, lr, weight_decay, warmup_steps, total_steps)` returns
  `(optax transformation, schedule)`; the schedule is `table[min(count, last)]` of the same
  float64 table PyTorch's LambdaLR reads, so step s uses the same rate in both.
- `train_step(model, optimizer, state, x, target, loss, lam, ignore=None)` is a pure function
  returning `(new_state, metrics)` with `state` a `TrainState`; metrics are arrays (no host
  transfer inside the step). `jit_train_step(model, optimizer, loss, lam)` returns the whole
  step as ONE `jax.jit`-compiled function of (state, x, target[, ignore]); all shapes are
  static (`virtual` mode), so changing mask parameters never recompiles it.

optax.adamw equals torch.optim.AdamW: decoupled decay lr * wd * p on the same leaves,
bias-corrected moments, eps added to sqrt(v_hat) (eps_root = 0).
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from implementations.common.schedule import lr_table
from implementations.jax.model import (
    DNArch,
    clamp_masks,
    complexity_loss,
    init_variables,
    param_groups,
)

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
LOSSES = ("cross_entropy", "mse", "relative_l2", "bce_ignore")


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
    vector of all parameters (issue 14): the same element-wise arithmetic, but XLA compiles
    a handful of fused loops for the update instead of several per parameter leaf (krwd smoke
    step: 719 -> 566 fusions, 1.5 CPU-s less compile time). The moments are stored flat;
    `decay_mask(params)` is a tree of Python bools like `params` (static), turned into a
    constant 0/1 vector, so masked-out leaves get `+ weight_decay * 0 * p` = exactly nothing."""
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


def train_step(
    model: DNArch,
    optimizer: optax.GradientTransformation,
    state: TrainState,
    x: jax.Array,
    target: jax.Array,
    loss: str,
    lam: float,
    ignore: jax.Array | None = None,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimiser step (pure). Returns the new state and the loss terms before the step."""
    dropout_key = jax.random.fold_in(state.rng, state.step)

    def objective(params):
        variables = {"params": params, "buffers": state.buffers}
        out = model.apply(variables, x, train=True, rngs={"dropout": dropout_key})
        obj = task_loss(loss, out, target, ignore)
        comp = complexity_loss(model, variables)
        return obj + lam * comp, (obj, comp)

    (total, (obj, comp)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = clamp_masks(model, optax.apply_updates(state.params, updates))
    new_state = state.replace(params=params, opt_state=opt_state, step=state.step + 1)
    return new_state, {"loss": total, "task_loss": obj, "complexity_loss": comp}


def jit_train_step(model: DNArch, optimizer: optax.GradientTransformation, loss: str, lam: float):
    """`train_step` as one jitted function (state, x, target, ignore=None) -> (state, metrics)."""

    def step(state, x, target, ignore=None):
        return train_step(model, optimizer, state, x, target, loss, lam, ignore)

    return jax.jit(step)


def to_numpy_metrics(metrics: dict[str, jax.Array]) -> dict[str, float]:
    """Host floats of the metrics (PyTorch's train_step returns floats)."""
    return {k: float(np.asarray(v)) for k, v in metrics.items()}
