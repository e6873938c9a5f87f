"""JAX training: losses equal PyTorch's, the schedule is the shared table, and the jitted
train step compiles ONCE while mask parameters (and so the architecture a trimmed network
would keep) change between calls."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
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
            leaf = params
            for key in path:
                leaf = leaf[key]
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
