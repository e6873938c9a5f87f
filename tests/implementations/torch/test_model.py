"""The PyTorch DNArch model: trim == virtual, the documented resolution bound, odd sizes,
clamped masks, bad input, architecture rows and complexity.

The documented trim bounds (`grids.TRIM_RESOLUTION_BOUND`, `TRIM_BLOCK_BOUND`) were measured
with the pointwise layers drawn U(+-1 / sqrt(fan_in)); they are asserted under those choices
(`pipelines.parity.TRIM_BOUND_INIT`). Under the default kaiming-normal draws trim departs
further from virtual, beyond the bounds in the 2D dense cases: expected failures, strict, so
that they show when the bounds are measured for the defaults."""

import math

import pytest
import torch

from implementations.common.config import tiny_config
from implementations.common.grids import TRIM_BLOCK_BOUND, TRIM_RESOLUTION_BOUND
from implementations.torch.masks import GaussianMask, SigmoidMask
from implementations.torch.model import (
    ResidualBlock,
    build_model,
    randomize_masks,
    set_sigmoid_masks,
)
from pipelines.parity import TRIM_BOUND_INIT

SMALL = dict(width=8, max_width=16, blocks=2, max_blocks=4, kernel_hidden=32, out_size=5)
CASES = [  # (data_dim, input_shape, task, tokens)
    (1, (97,), "global", False),
    (1, (97,), "dense", False),
    (1, (97,), "retrieval", True),
    (2, (31, 17), "global", False),
    (2, (31, 17), "dense", False),
]


def make(variant, _dd, shape, task, tokens, **kw):
    """A model for one CASES row (its data_dim follows from the shape)."""
    inputs = dict(vocab_size=11) if tokens else dict(in_channels=3)
    cfg = tiny_config(variant, shape, task=task, **inputs, **{**SMALL, **kw})
    return build_model(cfg)


def batch(model, b=4, seed=0):
    cfg = model.cfg
    g = torch.Generator().manual_seed(seed)
    if cfg.tokens:
        lead = (b, 2) if cfg.task == "retrieval" else (b,)
        return torch.randint(0, cfg.vocab_size, (*lead, *cfg.input_shape), generator=g)
    return torch.randn(
        b, cfg.in_channels, *cfg.input_shape, generator=g, dtype=torch.get_default_dtype()
    )


def run(model, x, mode):
    model.mode = mode
    model.zero_grad(set_to_none=True)
    y = model(x)
    loss = (y**2).mean() + model.complexity_loss()
    loss.backward()
    grads = {
        n: (p.grad.clone() if p.grad is not None else torch.zeros_like(p))
        for n, p in model.named_parameters()
    }
    return y.detach(), grads


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


@pytest.mark.parametrize("variant", ["ccnn", "k", "kr", "krwd"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}d-{c[2]}")
def test_trim_equals_virtual_for_kernel_width_depth_masks(variant, case):
    """float32 outputs to 1e-5 relative, float64 outputs and every gradient to 1e-9."""
    torch.manual_seed(0)
    model = make(variant, *case)
    g = torch.Generator().manual_seed(7)
    for trial in range(3):
        if trial:
            randomize_masks(model, g, resolution=False)
        x = batch(model, seed=trial)
        yt, _ = run(model, x, "trim")
        yv, _ = run(model, x, "virtual")
        assert rel_err(yt, yv) < 1e-5
        m64 = model.double()
        x64 = x if x.dtype == torch.long else x.double()
        yt, gt = run(m64, x64, "trim")
        yv, gv = run(m64, x64, "virtual")
        assert rel_err(yt, yv) < 1e-9
        scale = max(v.abs().max().item() for v in gv.values())
        for name in gv:
            err = (gt[name] - gv[name]).abs().max().item()
            assert err <= 1e-9 * max(gv[name].abs().max().item(), 1e-6 * scale), name
        model.float()


@pytest.mark.parametrize("mode", ["trim", "virtual"])
@pytest.mark.parametrize("variant", ["ccnn", "k", "krwd"])
@pytest.mark.parametrize("case", [CASES[0], CASES[3]], ids=["1d", "2d"])
def test_blocks_share_the_kernel_features_of_one_grid(variant, case, mode, monkeypatch):
    """The blocks of one forward share the kernel network's hidden features per tap grid:
    the same outputs and gradients as one evaluation per block (float64, 1e-12 relative;
    only the order of the gradient sums changes), and one evaluation per distinct grid (with
    k's masks drawn apart in trim, grids differ between blocks). At ListOps' Table 6 w0, where
    the kernel network's features oscillate fastest."""
    torch.manual_seed(0)
    model = make(variant, *case, blocks=3, max_blocks=4, w0=27500.0).double()
    model.mode = mode
    if variant != "ccnn":
        randomize_masks(model, torch.Generator().manual_seed(3), resolution=False)
    x = batch(model)
    x = x if x.dtype == torch.long else x.double()
    calls = []
    features = model.kernel_net.features
    monkeypatch.setattr(
        model.kernel_net,
        "features",
        lambda c: calls.append(tuple(c.flatten().tolist())) or features(c),
    )
    shared_y, shared_g = run(model, x, mode)
    shared_calls, calls[:] = list(calls), []
    kernel = ResidualBlock.kernel
    monkeypatch.setattr(
        ResidualBlock, "kernel", lambda self, net, n, plan, _cache: kernel(self, net, n, plan, None)
    )
    own_y, own_g = run(model, x, mode)
    n_run = len(calls)  # one evaluation per block run
    assert n_run >= 2
    assert len(shared_calls) == len(set(shared_calls)) <= n_run
    if mode == "virtual" or variant == "ccnn":
        assert len(shared_calls) == 1
    assert rel_err(shared_y, own_y) < 1e-12
    scale = max(v.abs().max().item() for v in own_g.values())
    for name in own_g:
        err = (shared_g[name] - own_g[name]).abs().max().item()
        assert err <= 1e-12 * max(own_g[name].abs().max().item(), 1e-6 * scale), name


DEFAULT_INIT = {"kernel_scale": "init", "linear_init": "ccnn"}
BEYOND_BOUND = pytest.mark.xfail(
    strict=True, reason="the trim bounds were measured under TRIM_BOUND_INIT, not the defaults"
)


def _bound_cases():
    out = []
    for case in (c for c in CASES if c[2] != "retrieval"):
        out.append(pytest.param(case, TRIM_BOUND_INIT, id=f"{case}-bound_init"))
        marks = BEYOND_BOUND if case[0] == 2 and case[2] == "dense" else ()
        out.append(pytest.param(case, DEFAULT_INIT, id=f"{case}-default_init", marks=marks))
    return out


@pytest.mark.parametrize("variant", ["kr", "krwd"])
@pytest.mark.parametrize(("case", "init"), _bound_cases())
def test_resolution_masks_trim_vs_virtual_within_documented_bound(variant, case, init):
    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(1)
        model = make(variant, *case, **init)
        g = torch.Generator().manual_seed(3)
        cut = 0
        for trial in range(4):
            randomize_masks(model, g)
            x = batch(model, seed=trial)
            yt, _ = run(model, x, "trim")
            yv, _ = run(model, x, "virtual")
            cut += any(r["resolution"] != list(case[1]) for r in model.architecture())
            assert rel_err(yt, yv) <= TRIM_RESOLUTION_BOUND
        assert cut > 0  # the check really exercised lower resolutions
    finally:
        torch.set_default_dtype(torch.float32)


@pytest.mark.parametrize(
    "init",
    [
        pytest.param(TRIM_BOUND_INIT, id="bound_init"),
        pytest.param(DEFAULT_INIT, id="default_init", marks=BEYOND_BOUND),
    ],
)
def test_trim_vs_virtual_per_block_and_output_at_table6_w0(init, monkeypatch):
    """The documented bounds (grids.TRIM_RESOLUTION_BOUND, TRIM_BLOCK_BOUND) at Table 6's w0
    values, per block (each block fed the same input) and at the network output, measured by
    the benchmark's own code on reduced sizes, its models built with `init`'s choices."""
    import functools

    from pipelines import bench
    from pipelines.bench import bench_trimdiff

    monkeypatch.setattr(bench, "tiny_config", functools.partial(bench.tiny_config, **init))
    rows = bench_trimdiff(states=3, sizes=((64,), (15, 11)))
    assert len(rows) >= 10  # blocks that really run at a lower resolution
    assert {r["w0"] for r in rows} == {5500.0, 21500.0, 30000.0}
    assert max(r["block_rel_err"] for r in rows) <= TRIM_BLOCK_BOUND
    assert max(r["output_rel_err"] for r in rows) <= TRIM_RESOLUTION_BOUND


def _masks_at(model, where):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, SigmoidMask):
                m.mu.fill_(m.mu_min if where == "min" else m.mu_max)
            elif isinstance(m, GaussianMask):
                for a in range(len(m.taps_full)):
                    m.sigma[a] = (m.sigma_min if where == "min" else m.sigma_max)[a]


@pytest.mark.parametrize("variant", ["ccnn", "k", "kr", "krwd"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}d-{c[2]}")
@pytest.mark.parametrize("where", ["init", "min", "max"])
def test_forward_backward_on_odd_sizes_at_the_clamps(variant, case, where):
    torch.manual_seed(2)
    model = make(variant, *case)
    if where != "init":
        _masks_at(model, where)
    for mode in ("trim", "virtual"):
        y, grads = run(model, batch(model), mode)
        assert torch.isfinite(y).all()
        assert all(torch.isfinite(v).all() for v in grads.values())
        assert model.clamp_masks() is None and math.isfinite(model.complexity_ratio())


def test_masks_receive_task_gradients():
    """m_in after BatchNorm and the conv (docs/design.md, "Network"): the task loss reaches
    every mask."""
    torch.manual_seed(3)
    model = make("krwd", 1, (97,), "global", False)
    randomize_masks(model, torch.Generator().manual_seed(0), resolution=False)
    model.zero_grad()
    (model(batch(model)) ** 2).mean().backward()
    b = model.blocks[0]
    for p in (
        b.in_mask.mu,
        b.mid_mask.mu,
        b.out_mask.mu,
        b.kernel_mask.sigma,
        model.encoder.width_mask.mu,
        model.depth_mask.mu,
    ):
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_ccnn_has_global_kernels_and_no_masks():
    model = make("ccnn", 2, (31, 17), "global", False)
    assert model.mask_parameters() == []
    rows = model.architecture()
    assert [r["kernel_size"] for r in rows] == [[31, 17]] * 2  # 2 floor(n/2) + 1 taps
    assert model.complexity_ratio() == pytest.approx(1.0, rel=1e-6)


def test_architecture_rows_follow_the_masks():
    torch.manual_seed(4)
    model = make("krwd", 1, (97,), "global", False)
    rows = model.architecture()
    assert len(rows) == 2 and all(r["width"] == [8, 8, 8] for r in rows)  # starts as CCNN_{2,8}
    assert all(r["resolution"] == [97] for r in rows)
    assert model.complexity_ratio() == pytest.approx(1.0, rel=1e-6)
    set_sigmoid_masks(model, 1.0)
    rows = model.architecture()
    assert len(rows) == 4 and all(r["width"] == [16, 16, 16] for r in rows)
    set_sigmoid_masks(model, 0.0)
    rows = model.architecture()
    # tau_depth = 8 at mu_min: cutoff -1 + 5.14 / 8 = -0.36 keeps the block at -1 but not the
    # one at -1/3 (size 4 x 0.32 = 1.3 blocks; on the paper's 8 blocks: 2.6, "a minimum of 2")
    assert len(rows) == 1
    assert all(r["width"][0] < 8 and r["resolution"][0] < 97 for r in rows)


def test_complexity_is_differentiable_in_every_size():
    torch.manual_seed(5)
    model = make("krwd", 2, (31, 17), "dense", False)
    randomize_masks(model, torch.Generator().manual_seed(1))
    with torch.no_grad():
        model.depth_mask.mu.fill_(model.depth_mask.mu_max)  # every block counts
    model.complexity().backward()
    with_grad = [
        p for p in model.mask_parameters() if p.grad is not None and p.grad.abs().sum() > 0
    ]
    # encoder width, depth, 4 blocks x (resolution, in, mid, out); kernel sizes cost nothing
    # (Fourier convolutions, Sec. 3.1)
    assert len(with_grad) == 1 + 1 + 4 * 4
    assert all(b.kernel_mask.sigma.grad is None for b in model.blocks)


@pytest.mark.parametrize(
    ("case", "x", "needle"),
    [
        (
            (1, (97,), "global", False),
            torch.randn(2, 3, 96),
            r"expects input of shape \(B, C, L\) = \(B, 3, 97\), got \(2, 3, 96\)",
        ),
        ((1, (97,), "global", False), torch.randn(2, 4, 97), r"= \(B, 3, 97\), got \(2, 4, 97\)"),
        ((1, (97,), "global", False), torch.randn(3, 97), r"got \(3, 97\)"),
        (
            (1, (97,), "global", False),
            torch.zeros(2, 3, 97, dtype=torch.long),
            "floating-point input",
        ),
        (
            (2, (31, 17), "dense", False),
            torch.randn(2, 3, 17, 31),
            r"\(B, C, H, W\) = \(B, 3, 31, 17\)",
        ),
        ((1, (97,), "retrieval", True), torch.zeros(2, 97, dtype=torch.long), r"\(B, 2, L\)"),
        (
            (1, (97,), "retrieval", True),
            torch.full((2, 2, 97), 11),
            r"in \[0, 10\] \(vocab_size=11\), got values in \[11, 11\]",
        ),
        ((1, (97,), "retrieval", True), torch.zeros(2, 2, 97), "integer token ids"),
    ],
)
def test_bad_input_gets_one_clear_error(case, x, needle):
    model = make("krwd", *case)
    with pytest.raises((ValueError, TypeError), match=needle):
        model(x)
