"""Optimisation: every variant learns a toy problem; L_comp pulls C_curr / C_target to 1."""

import numpy as np
import pytest
import torch

from implementations.common.config import ModelConfig
from implementations.common.schedule import lr_table
from implementations.torch.model import build_model, set_sigmoid_masks
from implementations.torch.train import make_optimizer, task_loss, train_step
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
