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

from implementations.common.config import ModelConfig, tiny_config
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


def test_jax_backend_lr_reads_the_schedule_on_the_host():
    """`Backend.lr` indexes a host copy of the schedule instead of calling it eagerly: the
    same float the optimiser's schedule gives at every step, through warm-up, the cosine, the
    last step and past the end (the schedule repeats its last value there)."""
    cfg = tiny_config("k", (33,))
    warmup, total = 3, 9
    backend = jt.Backend(cfg, {"lr": 0.02, "weight_decay": 0.1}, 0, "cross_entropy", 0.0,
                         (warmup, total))  # fmt: skip
    for step in range(total + 4):
        backend.state = backend.state.replace(step=jnp.asarray(step, backend.state.step.dtype))
        assert backend.lr() == float(backend.schedule(step)), step
    assert backend.lr() == float(lr_table(0.02, warmup, total)[-1].astype(np.float32))


# ---- gradient accumulation over micro-batches ---------------------------------------------
def _micro_setup(task):
    """A tiny krwd model in float64 (dropout 0) with every mask drawn inside its clamps, and
    its fresh train state."""
    cfg = tiny_config("krwd", (33,), task=task, dropout=0.0)
    model = jm.build_model(cfg, jnp.float64)
    optimizer, _ = jt.make_optimizer(model, 0.01, 0.1, 0, 4)
    state = jt.init_train_state(model, optimizer, jax.random.key(0))
    rng = np.random.default_rng(1)
    params = state.params
    for path, lo, hi in jm.mask_bounds(cfg):
        leaf = jm.leaf_at(params, path)
        value = lo + rng.uniform(size=leaf.shape) * (hi - lo)
        params = jm._replace_leaf(params, path, jnp.asarray(value, leaf.dtype))
    return cfg, model, optimizer, state.replace(params=params)


def _micro_data(cfg, b, seed):
    rng = np.random.default_rng(seed)
    if cfg.tokens:
        x = rng.integers(0, cfg.vocab_size, (b, 2, *cfg.input_shape))
    else:
        x = rng.standard_normal((b, *cfg.input_shape, cfg.in_channels))
    if cfg.task == "dense":
        y = rng.standard_normal((b, *cfg.input_shape, cfg.out_size))
    else:
        y = rng.integers(0, cfg.out_size, b)
    return jnp.asarray(x), jnp.asarray(y)


def _grad_diff(a, b) -> float:
    return max(
        float(jnp.abs(u - v).max())
        for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b))
    )


MICRO_CASES = [
    ("global", "cross_entropy"),
    ("dense", "relative_l2"),
    ("retrieval", "cross_entropy"),
]


@pytest.mark.parametrize(("task", "loss"), MICRO_CASES)
@pytest.mark.parametrize("k", [2, 3])
def test_micro_batches_of_identical_copies_give_the_full_batch_gradient(task, loss, k):
    """As the PyTorch test: k identical copies of one micro-batch give every micro-batch the
    full batch's BatchNorm statistics, so the scanned accumulation must give the full batch's
    gradient, lambda * L_comp counted once (lambda 5), and the full batch's metrics. float64,
    1e-10 absolute (measured max difference: 4e-16)."""
    cfg, model, _, state = _micro_setup(task)
    xm, ym = _micro_data(cfg, 3, seed=2)
    x = jnp.concatenate([xm] * k)
    y = jnp.concatenate([ym] * k)
    lam = 5.0
    g_full, m_full = jt.train_grads(model, state, x, y, loss, lam)
    g_micro, m_micro = jax.jit(
        lambda s, a, b: jt.train_grads(model, s, a, b, loss, lam, micro_batches=k)
    )(state, x, y)
    assert _grad_diff(g_micro, g_full) < 1e-10
    for key in m_full:
        assert float(m_micro[key]) == pytest.approx(float(m_full[key]), rel=1e-12, abs=1e-14)
    # the complexity term really reaches the masks: counted twice, they would be off by this
    comp_grads = jax.grad(lambda p: jm.complexity_loss(model, {**state_vars(state), "params": p}))(
        state.params
    )
    assert lam * max(float(jnp.abs(g).max()) for g in jax.tree_util.tree_leaves(comp_grads)) > 1e-4


def state_vars(state) -> dict:
    return {"params": state.params, "buffers": state.buffers}


def _reference_step(model, optimizer, state, x, target, loss, lam):
    """The full-batch train step as it was before micro-batching existed."""
    dropout_key = jax.random.fold_in(state.rng, state.step)

    def objective(params):
        variables = {"params": params, "buffers": state.buffers}
        out = model.apply(variables, x, train=True, rngs={"dropout": dropout_key})
        obj = jt.task_loss(loss, out, target)
        comp = jm.complexity_loss(model, variables)
        return obj + lam * comp, (obj, comp)

    (total, (obj, comp)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = jm.clamp_masks(model, optax.apply_updates(state.params, updates))
    new_state = state.replace(params=params, opt_state=opt_state, step=state.step + 1)
    return new_state, {"loss": total, "task_loss": obj, "complexity_loss": comp}


def test_one_micro_batch_is_bit_identical_to_the_full_batch_step():
    """micro_batches = 1 (the default) is the full-batch step: the jitted step without the
    argument, with micro_batches=1 and the Backend's with hp micro_batches 1 give states and
    metrics bit-identical to the step as it was, three steps, dropout on, float32."""
    cfg = tiny_config("krwd", (33,), dropout=0.2)
    model = jm.build_model(cfg)
    optimizer, _ = jt.make_optimizer(model, 0.01, 0.1, 1, 5)
    state0 = jt.init_train_state(model, optimizer, jax.random.PRNGKey(0))
    x, y = _micro_data(cfg, 6, seed=3)
    x = x.astype(jnp.float32)
    hp = {"lr": 0.01, "weight_decay": 0.1, "micro_batches": 1}
    results = []
    for step in (
        jax.jit(lambda s, a, b: _reference_step(model, optimizer, s, a, b, "cross_entropy", 0.5)),
        jt.jit_train_step(model, optimizer, "cross_entropy", 0.5),
        jt.jit_train_step(model, optimizer, "cross_entropy", 0.5, micro_batches=1),
        jt.Backend(cfg, hp, 0, "cross_entropy", 0.5, (1, 5))._step,
    ):
        state, metrics = state0, []
        for _ in range(3):
            state, m = step(state, x, y)
            metrics.append({k: np.asarray(v).tobytes() for k, v in m.items()})
        results.append(([np.asarray(a) for a in jax.tree_util.tree_leaves(state)], metrics))
    (ref_leaves, ref_metrics), *others = results
    for leaves, metrics in others:
        assert metrics == ref_metrics
        for a, b in zip(ref_leaves, leaves, strict=True):
            np.testing.assert_array_equal(a, b)


def test_a_batch_not_divisible_by_micro_batches_is_refused():
    cfg, model, optimizer, state = _micro_setup("global")
    x, y = _micro_data(cfg, 5, seed=4)
    with pytest.raises(ValueError, match=r"batch size 5 is not divisible by micro_batches=2"):
        jt.jit_train_step(model, optimizer, "cross_entropy", 0.1, micro_batches=2)(state, x, y)
    with pytest.raises(ValueError, match="BatchNorm"):
        jt.train_step(model, optimizer, state, x, y, "cross_entropy", 0.1, micro_batches=3)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="micro_batches must be an integer >= 1"):
            jt.Backend(cfg, {"lr": 0.01, "weight_decay": 0.1, "micro_batches": bad}, 0,
                       "cross_entropy", 0.1, (1, 5))  # fmt: skip


@pytest.mark.parametrize(("task", "loss"), MICRO_CASES[:2])
def test_micro_batches_of_ordinary_data_take_another_step(task, loss):
    """Documents the BatchNorm effect: halves that differ are normalised with their own
    statistics, so the accumulated gradient is NOT the full batch's (measured: max
    |difference| / max |gradient| 5e-4 dense, 3e-3 global)."""
    cfg, model, optimizer, state = _micro_setup(task)
    x, y = _micro_data(cfg, 6, seed=5)
    g_full, _ = jt.train_grads(model, state, x, y, loss, 5.0)
    g_micro, _ = jt.train_grads(model, state, x, y, loss, 5.0, micro_batches=2)
    scale = max(float(jnp.abs(g).max()) for g in jax.tree_util.tree_leaves(g_full))
    assert _grad_diff(g_micro, g_full) > 1e-6 * scale  # far above float64 rounding
    s_full, _ = jt.train_step(model, optimizer, state, x, y, loss, 5.0)
    s_micro, _ = jt.train_step(model, optimizer, state, x, y, loss, 5.0, micro_batches=2)
    assert _grad_diff(s_micro.params, s_full.params) > 0
