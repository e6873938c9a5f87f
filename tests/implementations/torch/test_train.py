"""Optimisation: every variant learns a toy problem; L_comp pulls C_curr / C_target to 1;
gradient accumulation over micro-batches takes the full batch's step exactly where BatchNorm
sees the full batch's statistics, and another step otherwise."""

import numpy as np
import pytest
import torch

from implementations.common.config import ModelConfig, tiny_config
from implementations.common.schedule import lr_table
from implementations.torch.model import build_model, randomize_masks, set_sigmoid_masks
from implementations.torch.train import (
    Backend,
    finite_flags,
    make_optimizer,
    task_loss,
    train_step,
)
from pipelines.toy import toy_problem


@pytest.mark.parametrize("variant", ["ccnn", "k", "kr", "krwd"])
@pytest.mark.parametrize(("dd", "shape"), [(1, (64,)), (2, (16, 16))])
def test_50_adamw_steps_lower_the_loss_clearly(variant, dd, shape):
    torch.manual_seed(0)
    cfg = ModelConfig(
        variant=variant,
        data_dim=dd,
        input_shape=shape,
        in_channels=1,
        out_size=2,
        width=12,
        max_width=24,
        blocks=2,
        max_blocks=4,
        kernel_hidden=32,
        w0=3000.0,
    )
    model = build_model(cfg)
    x, y = toy_problem(dd, shape, 256, seed=1)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    opt, sched = make_optimizer(model, lr=0.01, weight_decay=0.01, warmup_steps=5, total_steps=50)
    with torch.no_grad():
        initial = float(task_loss("cross_entropy", model(x), y))
    g = torch.Generator().manual_seed(2)
    losses = []
    for _ in range(50):
        idx = torch.randint(0, 256, (32,), generator=g)
        out = train_step(model, opt, sched, x[idx], y[idx], "cross_entropy", lam=0.1)
        losses.append(out["task_loss"])
    with torch.no_grad():
        final = float(task_loss("cross_entropy", model(x), y))
    assert initial > 0.6  # near chance (ln 2 = 0.69) at the start
    assert final < 0.5 * initial, (initial, losses[::10], final)


def _ratio_at(model, t):
    set_sigmoid_masks(model, t, resolution=False)
    return model.complexity_ratio()


@pytest.mark.parametrize("start", [2.0, 0.5])
def test_complexity_loss_pulls_the_ratio_to_one(start):
    torch.manual_seed(0)
    cfg = ModelConfig(
        variant="krwd",
        data_dim=1,
        input_shape=(64,),
        in_channels=1,
        out_size=2,
        width=8,
        max_width=16,
        blocks=2,
        max_blocks=4,
    )
    model = build_model(cfg)
    lo, hi = 0.0, 1.0  # bisection on the common mask position for the starting ratio
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _ratio_at(model, mid) < start else (lo, mid)
    r0 = _ratio_at(model, (lo + hi) / 2)
    assert r0 == pytest.approx(start, rel=1e-3)
    opt = torch.optim.Adam(model.mask_parameters(), lr=0.01)
    for _ in range(150):
        opt.zero_grad()
        model.complexity_loss().backward()
        opt.step()
        model.clamp_masks()
    r1 = model.complexity_ratio()
    assert abs(r1 - 1.0) < 0.1 * abs(r0 - 1.0), (r0, r1)


def test_lr_table_warms_up_then_anneals():
    t = lr_table(0.01, 10, 110)
    np.testing.assert_allclose(t[:10], 0.01 * np.arange(1, 11) / 10)
    assert t[10] == pytest.approx(0.01) and t[60] == pytest.approx(0.005)
    assert t[110] == pytest.approx(0.0, abs=1e-15) and np.all(np.diff(t[10:]) <= 1e-15)


def test_no_weight_decay_on_masks_norms_and_biases():
    cfg = ModelConfig(
        variant="krwd",
        data_dim=1,
        input_shape=(33,),
        vocab_size=7,
        out_size=2,
        width=4,
        max_width=8,
        blocks=2,
        max_blocks=4,
        task="retrieval",
    )
    model = build_model(cfg)
    decay, rest = model.param_groups(0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    assert all(n.endswith("weight") and "norm" not in n and "mask" not in n for n in decayed)
    assert {names[id(p)] for p in rest["params"]} | decayed == set(names.values())
    assert "encoder.embedding.weight" in decayed and "head.2.weight" in decayed


# ---- gradient accumulation over micro-batches ---------------------------------------------
MICRO_CASES = [  # (task, loss, mode)
    ("global", "cross_entropy", "trim"),
    ("global", "cross_entropy", "virtual"),
    ("dense", "relative_l2", "trim"),
    ("retrieval", "cross_entropy", "trim"),
]


def _micro_model(task, mode):
    """A tiny krwd model in float64, dropout 0, masks drawn inside their clamps (trim cuts
    some channels and blocks); the same weights for every call with the same arguments."""
    cfg = tiny_config("krwd", (33,), task=task, mode=mode, dropout=0.0)
    torch.manual_seed(0)
    model = build_model(cfg).double()
    randomize_masks(model, torch.Generator().manual_seed(1))
    return model


def _micro_batch(cfg, b, seed):
    g = torch.Generator().manual_seed(seed)
    if cfg.tokens:
        x = torch.randint(0, cfg.vocab_size, (b, 2, *cfg.input_shape), generator=g)
    else:
        x = torch.randn(b, cfg.in_channels, *cfg.input_shape, generator=g, dtype=torch.float64)
    if cfg.task == "dense":
        y = torch.randn(b, cfg.out_size, *cfg.input_shape, generator=g, dtype=torch.float64)
    else:
        y = torch.randint(0, cfg.out_size, (b,), generator=g)
    return x, y


def _step(task, mode, x, y, loss, lam, micro_batches):
    """One AdamW step of a fresh model: (metrics, gradients, parameters after the step)."""
    model = _micro_model(task, mode)
    opt, sched = make_optimizer(model, lr=0.01, weight_decay=0.1, warmup_steps=0, total_steps=4)
    m = train_step(model, opt, sched, x, y, loss, lam, micro_batches=micro_batches)
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    return m, grads, params


def _max_diff(a: dict, b: dict) -> float:
    return max(float((a[n] - b[n]).abs().max()) for n in a)


@pytest.mark.parametrize(("task", "loss", "mode"), MICRO_CASES)
@pytest.mark.parametrize("k", [2, 3])
def test_micro_batches_of_identical_copies_give_the_full_batch_step(task, loss, mode, k):
    """A batch of k identical copies of one micro-batch: every micro-batch's BatchNorm
    statistics are the full batch's, so the accumulated gradient must be the full batch's
    mean-loss gradient, lambda * L_comp counted once (lambda 5 makes a double count show on
    the mask gradients), and the metrics the full batch's. float64, every parameter's
    gradient to 1e-10 absolute (measured max difference: 1e-15). The parameters after the
    step are not the comparison: AdamW's first step is lr * g / (|g| + eps), which turns
    rounding-level differences of near-zero gradients into differences up to lr / eps times
    larger."""
    cfg = _micro_model(task, mode).cfg
    xm, ym = _micro_batch(cfg, 3, seed=2)
    x, y = xm.repeat(k, *[1] * (xm.dim() - 1)), ym.repeat(k, *[1] * (ym.dim() - 1))
    lam = 5.0
    m_full, g_full, _ = _step(task, mode, x, y, loss, lam, 1)
    m_micro, g_micro, _ = _step(task, mode, x, y, loss, lam, k)
    assert _max_diff(g_micro, g_full) < 1e-10
    for key in m_full:
        assert m_micro[key] == pytest.approx(m_full[key], rel=1e-12, abs=1e-14), key
    # the complexity term really reaches the masks: counted twice, they would be off by this
    model = _micro_model(task, mode)
    model.complexity_loss().backward()
    comp_grad = max(
        float(lam * p.grad.abs().max())
        for n, p in model.named_parameters()
        if p.grad is not None and "mask" in n
    )
    assert comp_grad > 1e-4


def _reference_step(model, opt, sched, x, target, loss, lam):
    """The full-batch train step as it was before micro-batching existed."""
    model.train()
    opt.zero_grad(set_to_none=True)
    out = model(x)
    obj = task_loss(loss, out, target)
    comp = model.complexity_loss()
    total = obj + lam * comp
    total.backward()
    for p in model.parameters():
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    opt.step()
    sched.step()
    model.clamp_masks()
    return {
        "loss": float(total.detach()),
        "task_loss": float(obj.detach()),
        "complexity_loss": float(comp.detach()),
    }


@pytest.mark.parametrize("via_backend", [False, True])
def test_one_micro_batch_is_bit_identical_to_the_full_batch_step(via_backend):
    """micro_batches = 1 (the default) changes nothing: float32, dropout on, three steps,
    every parameter, optimiser moment and metric bit for bit."""
    cfg = tiny_config("krwd", (33,), dropout=0.2)
    x = torch.randn(6, cfg.in_channels, 33, generator=torch.Generator().manual_seed(3))
    y = torch.randint(0, cfg.out_size, (6,), generator=torch.Generator().manual_seed(4))
    hp = {"lr": 0.01, "weight_decay": 0.1, "micro_batches": 1}

    torch.manual_seed(7)
    ref = build_model(cfg)
    opt, sched = make_optimizer(ref, 0.01, 0.1, 1, 5)
    ref_metrics = []
    torch.manual_seed(8)
    for _ in range(3):
        ref_metrics.append(_reference_step(ref, opt, sched, x, y, "cross_entropy", 0.5))

    if via_backend:
        backend = Backend(cfg, hp, 7, "cross_entropy", 0.5, (1, 5))
        got, got_opt = backend.model, backend.opt
        torch.manual_seed(8)
        metrics = [backend.step({"inputs": x.numpy(), "targets": y.numpy()}) for _ in range(3)]
    else:
        torch.manual_seed(7)
        got = build_model(cfg)
        got_opt, got_sched = make_optimizer(got, 0.01, 0.1, 1, 5)
        torch.manual_seed(8)
        metrics = [
            train_step(got, got_opt, got_sched, x, y, "cross_entropy", 0.5, micro_batches=1)
            for _ in range(3)
        ]
    assert metrics == ref_metrics
    for (n, a), b in zip(ref.named_parameters(), got.parameters()):
        assert torch.equal(a, b), n
        sa, sb = opt.state[a], got_opt.state[b]
        assert torch.equal(sa["exp_avg"], sb["exp_avg"]) and torch.equal(
            sa["exp_avg_sq"], sb["exp_avg_sq"]
        ), n


@pytest.mark.parametrize("mode", ["trim", "virtual"])
def test_foreach_adamw_is_bit_identical_to_the_per_parameter_loop(mode):
    """make_optimizer's AdamW runs foreach (multi-tensor) kernels; PyTorch's CPU default is a
    loop over parameters. Five float32 steps of a krwd model whose masks cut channels and
    blocks (trim zero-fills their gradients), dropout on: every parameter and both moments
    bit for bit, and the metrics."""
    cfg = tiny_config("krwd", (33,), dropout=0.2, mode=mode)
    x = torch.randn(6, cfg.in_channels, 33, generator=torch.Generator().manual_seed(3))
    y = torch.randint(0, cfg.out_size, (6,), generator=torch.Generator().manual_seed(4))
    runs = []
    for foreach in (True, False):
        torch.manual_seed(7)
        model = build_model(cfg)
        randomize_masks(model, torch.Generator().manual_seed(1))
        opt, sched = make_optimizer(model, 0.01, 0.1, 1, 6)
        assert opt.defaults["foreach"] is True
        if not foreach:  # the same optimiser with the per-parameter loop
            for group in opt.param_groups:
                group["foreach"] = False
        torch.manual_seed(8)
        metrics = [train_step(model, opt, sched, x, y, "cross_entropy", 0.5) for _ in range(5)]
        runs.append((model, opt, metrics))
    (a, opt_a, m_a), (b, opt_b, m_b) = runs
    assert m_a == m_b
    for (n, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(pa, pb), n
        sa, sb = opt_a.state[pa], opt_b.state[pb]
        assert torch.equal(sa["exp_avg"], sb["exp_avg"]), n
        assert torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"]), n


def test_finite_flags_match_isfinite_per_tensor():
    """One multi-tensor max-abs per step replaces isfinite().all() per parameter: NaN, +-inf,
    NaN beside inf, huge finite values (whose sum would overflow), empty tensors, a 2-D
    tensor."""
    big = torch.full((8,), 3e38)
    tensors = [
        torch.tensor([1.0, float("nan"), 2.0]),
        torch.tensor([1.0, float("inf")]),
        torch.tensor([-float("inf"), 0.0]),
        torch.tensor([float("inf"), float("nan")]),
        big,
        torch.zeros(0),
        torch.randn(3, 4),
        torch.tensor([0.0]),
    ]
    want = [bool(torch.isfinite(t).all()) for t in tensors]
    assert (
        finite_flags(tensors).tolist()
        == want
        == [False, False, False, False, True, True, True, True]
    )
    assert finite_flags([]).tolist() == []


def test_a_batch_not_divisible_by_micro_batches_is_refused():
    cfg = tiny_config("krwd", (33,))
    model = build_model(cfg)
    opt, sched = make_optimizer(model, 0.01, 0.1, 1, 5)
    x, y = torch.randn(5, cfg.in_channels, 33), torch.randint(0, cfg.out_size, (5,))
    with pytest.raises(ValueError, match=r"batch size 5 is not divisible by micro_batches=2"):
        train_step(model, opt, sched, x, y, "cross_entropy", 0.1, micro_batches=2)
    with pytest.raises(ValueError, match="BatchNorm"):  # the caveat travels with the error
        train_step(model, opt, sched, x, y, "cross_entropy", 0.1, micro_batches=3)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="micro_batches must be an integer >= 1"):
            Backend(cfg, {"lr": 0.01, "weight_decay": 0.1, "micro_batches": bad}, 0,
                    "cross_entropy", 0.1, (1, 5))  # fmt: skip


@pytest.mark.parametrize(("task", "loss", "mode"), MICRO_CASES[:1] + MICRO_CASES[2:3])
def test_micro_batches_of_ordinary_data_take_another_step(task, loss, mode):
    """Documents the BatchNorm effect: with a batch whose halves differ, each half is
    normalised with its own statistics, so the accumulated gradient is NOT the full batch's
    (measured: max |difference| / max |gradient| 0.007 dense, 0.16 global)."""
    cfg = _micro_model(task, mode).cfg
    x, y = _micro_batch(cfg, 6, seed=5)
    _, g_full, p_full = _step(task, mode, x, y, loss, 5.0, 1)
    _, g_micro, p_micro = _step(task, mode, x, y, loss, 5.0, 2)
    scale = max(float(g.abs().max()) for g in g_full.values())
    assert _max_diff(g_micro, g_full) > 1e-6 * scale  # far above float64 rounding
    assert any(not torch.equal(p_micro[n], p_full[n]) for n in p_full)
