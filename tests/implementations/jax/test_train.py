"""JAX training: losses equal PyTorch's, the schedule is the shared table, the jitted train
step compiles ONCE while mask parameters (and so the architecture a trimmed network would
keep) change between calls, and the training CLI's `Backend` has PyTorch's interface."""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

from implementations.common.config import ModelConfig
from implementations.common.schedule import lr_table
from implementations.jax import model as jm
from implementations.jax import train as jt
from implementations.torch import train as tt

jax.config.update("jax_enable_x64", True)


def test_task_losses_match_pytorch():
    rng = np.random.default_rng(0)
    logits, labels = rng.standard_normal((5, 4)), rng.integers(0, 4, 5)
    want = tt.task_loss("cross_entropy", torch.as_tensor(logits), torch.as_tensor(labels))
    got = jt.task_loss("cross_entropy", jnp.asarray(logits), jnp.asarray(labels))
    assert float(got) == pytest.approx(float(want), rel=1e-13)
    y, t = rng.standard_normal((3, 2, 7, 5)), rng.standard_normal((3, 2, 7, 5))  # torch layout
    ign = (rng.uniform(size=(3, 1, 7, 5)) > 0.7).astype(np.float64)
    tb = (rng.uniform(size=(3, 1, 7, 5)) > 0.5).astype(np.float64)
    last = lambda a: jnp.asarray(np.moveaxis(a, 1, -1))  # channels first -> channels last
    for name in ("mse", "relative_l2"):
        want = tt.task_loss(name, torch.as_tensor(y), torch.as_tensor(t))
        got = jt.task_loss(name, last(y), last(t))
        assert float(got) == pytest.approx(float(want), rel=1e-13), name
    want = tt.task_loss(
        "bce_ignore", torch.as_tensor(y[:, :1]), torch.as_tensor(tb), torch.as_tensor(ign)
    )
    got = jt.task_loss("bce_ignore", last(y[:, :1]), last(tb), last(ign))
    assert float(got) == pytest.approx(float(want), rel=1e-13)
    with pytest.raises(ValueError, match="valid"):
        jt.task_loss("hinge", jnp.zeros(1), jnp.zeros(1))


def test_schedule_is_the_shared_table():
    cfg = ModelConfig(variant="k", data_dim=1, input_shape=(9,), out_size=2, in_channels=1)
    _, schedule = jt.make_optimizer(jm.build_model(cfg), 0.01, 0.1, 3, 10)
    table = lr_table(0.01, 3, 10)
    got = [float(schedule(jnp.asarray(s))) for s in range(14)]
    np.testing.assert_allclose(got, [table[min(s, 10)] for s in range(14)], rtol=1e-15)


def test_train_step_compiles_once_while_masks_change(monkeypatch):
    cfg = ModelConfig(
        variant="krwd",
        data_dim=1,
        input_shape=(21,),
        out_size=3,
        in_channels=2,
        width=4,
        max_width=8,
        blocks=2,
        max_blocks=4,
        kernel_hidden=8,
        dropout=0.1,
    )
    # the run-time branches explicitly (below BRANCH_MIN_CHANNELS they are off by default)
    model = jm.build_model(cfg, skip_cut_blocks=True, width_buckets=(0.5, 1.0))
    traces = []
    original = jt.train_step

    def counting_train_step(*args, **kwargs):
        traces.append(1)  # runs only while jax.jit traces the step
        return original(*args, **kwargs)

    monkeypatch.setattr(jt, "train_step", counting_train_step)
    optimizer, _ = jt.make_optimizer(model, 1e-3, 0.1, 2, 20)
    step = jt.jit_train_step(model, optimizer, "cross_entropy", 0.5)
    state = jt.init_train_state(model, optimizer, jax.random.key(0))
    rng = np.random.default_rng(0)
    architectures = set()
    for mu in (-0.6, 0.0, 0.4, 1.0, -0.3):  # width/depth/resolution cut-offs all over the axis
        params = state.params
        for path, lo, hi in jm.mask_bounds(cfg):
            if path[-1] != "mu":
                continue
            leaf = jm.leaf_at(params, path)
            value = np.clip(np.full(leaf.shape, mu), lo, hi)
            params = jm._replace_leaf(params, path, jnp.asarray(value, leaf.dtype))
        state = state.replace(params=params)
        variables = {"params": state.params, "buffers": state.buffers}
        architectures.add(str(jm.architecture(model, variables)))
        x = jnp.asarray(rng.standard_normal((4, 21, 2)), jnp.float32)
        t = jnp.asarray(rng.integers(0, 3, 4))
        state, metrics = step(state, x, t)
        assert np.isfinite(float(metrics["loss"]))
    assert len(architectures) >= 4, architectures  # the trimmed network really changed
    assert len(traces) == 1, f"train step traced {len(traces)} times"
    assert step._cache_size() == 1
    assert int(state.step) == 5


def test_flat_adamw_equals_optax_adamw_with_the_decay_mask():
    """The flat optimiser (one vector for all leaves) takes the same steps as
    optax.adamw with the per-leaf weight-decay mask: float64, 6 steps through warm-up and decay
    of the shared schedule, odd leaf shapes, leaves with and without decay. Tolerance: 1e-15
    relative (the same element-wise operations; only the array layout differs)."""
    rng = np.random.default_rng(3)
    params = {
        "a": {
            "kernel": jnp.asarray(rng.standard_normal((3, 5))),
            "bias": jnp.asarray(rng.standard_normal(5)),
        },
        "mask": {"mu": jnp.asarray(rng.standard_normal(()))},
        "emb": {"embedding": jnp.asarray(rng.standard_normal((7, 2)))},
    }
    decide = lambda p: jax.tree_util.tree_map_with_path(
        lambda path, _: path[-1].key in ("kernel", "embedding"), p
    )
    table = jnp.asarray(lr_table(0.05, 2, 6))
    schedule = lambda c: table[jnp.minimum(c, len(table) - 1)]
    ref = optax.adamw(schedule, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.3, mask=decide)
    flat = jt.flat_adamw(schedule, 0.3, decide)
    p_ref, p_flat = params, params
    s_ref, s_flat = ref.init(p_ref), flat.init(p_flat)
    for step in range(6):
        grads = jax.tree_util.tree_map(lambda x: jnp.asarray(rng.standard_normal(x.shape)), params)
        u_ref, s_ref = ref.update(grads, s_ref, p_ref)
        u_flat, s_flat = jax.jit(flat.update)(grads, s_flat, p_flat)
        p_ref, p_flat = optax.apply_updates(p_ref, u_ref), optax.apply_updates(p_flat, u_flat)
        for (path, a), b in zip(
            jax.tree_util.tree_leaves_with_path(p_ref), jax.tree_util.tree_leaves(p_flat)
        ):
            np.testing.assert_allclose(b, a, rtol=1e-15, atol=1e-15, err_msg=f"{path} step {step}")
    # the masked-out leaves really were not decayed: with zero gradients only decay moves them
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    u, _ = flat.update(zeros, flat.init(params), params)
    assert float(jnp.abs(u["a"]["bias"]).max()) == 0.0 and float(jnp.abs(u["mask"]["mu"])) == 0.0
    assert float(jnp.abs(u["a"]["kernel"]).max()) > 0.0


def test_flat_adamw_rejects_a_mask_of_another_shape():
    flat = jt.flat_adamw(lambda c: 0.1, 0.1, lambda p: {"x": True})
    params = {"x": jnp.ones(2), "y": jnp.ones(3)}
    with pytest.raises(ValueError, match="decay mask has 1 leaves, the parameters 2"):
        flat.update(params, flat.init(params), params)


def test_backend_has_the_interface_of_the_pytorch_backend():
    """The training CLI drives either framework through the same `Backend` methods: same
    public names, same signatures."""

    def interface(cls) -> dict:
        return {
            name: inspect.signature(member) if callable(member) else type(member)
            for name, member in vars(cls).items()
            if not name.startswith("_") or name == "__init__"
        }

    assert interface(jt.Backend) == interface(tt.Backend)
    assert (jt.Backend.name, tt.Backend.name) == ("jax", "torch")


def test_jax_backend_architecture_follows_the_masks_it_is_asked_about():
    """The backend remembers architecture / realised complexity per mask values: after the
    masks move, it reports the new network (the direct computation), and asked again for the
    old masks it reports the old one."""
    cfg = ModelConfig(
        variant="krwd", data_dim=1, input_shape=(33,), out_size=2, in_channels=1, width=4,
        max_width=8, blocks=2, max_blocks=3,
    )  # fmt: skip
    backend = jt.Backend(cfg, {"lr": 0.01, "weight_decay": 0.1}, 0, "cross_entropy", 0.1, (1, 4))
    first_state = backend.state
    first, first_ratio = backend.architecture(), backend.realised_ratio()
    params = first_state.params
    for path, lo, _hi in jm.mask_bounds(cfg):  # every mask to its lower clamp: a smaller net
        params = jm._replace_leaf(params, path, jax.numpy.full_like(jm.leaf_at(params, path), lo))
    backend.state = first_state.replace(params=params)
    moved = backend.architecture()
    assert moved == jm.architecture(backend.model, backend._variables()) != first
    assert backend.realised_ratio() < first_ratio
    backend.state = first_state
    assert backend.architecture() == first and backend.realised_ratio() == first_ratio
