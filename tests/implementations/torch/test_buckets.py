"""Bucketed trim (`common.buckets`): kept sizes rounded up to a few fixed values give
the same outputs and gradients as exact trim (float64, random mask states, odd sizes), the
extra channels stay exactly zero, and a compiled forward is traced once per bucket."""

import pytest
import torch

from implementations.common import buckets as bk
from implementations.common.config import tiny_config
from implementations.torch.model import build_model, randomize_masks

# max_width 24: width ladder {8, 16, 24}; 97 samples: 97 taps, an odd ladder of eighths
SMALL = dict(width=12, max_width=24, blocks=2, max_blocks=4, kernel_hidden=8, out_size=5)
CASES = [  # (data_dim, input_shape, task, tokens)
    (1, (97,), "retrieval", True),
    (2, (31, 17), "dense", False),
]


def make(variant, _dd, shape, task, tokens, bucketed):
    """A model for one CASES row (its data_dim follows from the shape)."""
    inputs = dict(vocab_size=11) if tokens else dict(in_channels=3)
    cfg = tiny_config(variant, shape, task=task, mode="trim", **inputs, **SMALL)
    torch.manual_seed(0)
    return build_model(cfg, bucketed=bucketed).double()


def batch(cfg, b=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    if cfg.tokens:
        lead = (b, 2) if cfg.task == "retrieval" else (b,)
        return torch.randint(0, cfg.vocab_size, (*lead, *cfg.input_shape), generator=g)
    return torch.randn(b, cfg.in_channels, *cfg.input_shape, generator=g, dtype=torch.float64)


def run(model, x):
    model.zero_grad(set_to_none=True)
    y = model(x)
    ((y**2).mean() + model.complexity_loss()).backward()
    grads = {
        n: (p.grad.clone() if p.grad is not None else torch.zeros_like(p))
        for n, p in model.named_parameters()
    }
    return y.detach(), grads


def untouched(model, k_enc, n_run, plans):
    """name -> bool mask of the parameter entries exact trim never uses (cut channels, cut
    blocks, their kernel rows); mask parameters excluded (the complexity loss reaches them)."""
    n = model.cfg.n_channels
    out = {n_: torch.zeros_like(p, dtype=torch.bool) for n_, p in model.named_parameters()}
    for name in ("linear.weight", "linear.bias", "norm_weight", "norm_bias"):
        out[f"encoder.{name}"][k_enc:] = True
    last = f"kernel_net.layers.{len(model.kernel_net.layers) - 1}"
    for b in range(len(model.blocks)):
        pre = f"blocks.{b}"
        if b >= n_run:
            for name in out:
                if name.startswith(pre + ".") and "mask" not in name:
                    out[name][:] = True
            out[f"{last}.weight"][b * n : (b + 1) * n] = True
            out[f"{last}.bias"][b * n : (b + 1) * n] = True
            continue
        ki, km, ko = plans[b].widths
        for name in ("norm_weight", "norm_bias", "conv_bias"):
            out[f"{pre}.{name}"][ki:] = True
        out[f"{pre}.linear1.weight"][km:] = True
        out[f"{pre}.linear1.weight"][:, ki:] = True
        out[f"{pre}.linear1.bias"][km:] = True
        out[f"{pre}.linear2.weight"][ko:] = True
        out[f"{pre}.linear2.weight"][:, km:] = True
        out[f"{pre}.linear2.bias"][ko:] = True
        out[f"{last}.weight"][b * n + ki : (b + 1) * n] = True
        out[f"{last}.bias"][b * n + ki : (b + 1) * n] = True
    return out


def test_ladders_end_at_the_largest_size_and_round_up():
    assert bk.ladder(24, 8, 8) == (8, 16, 24)
    assert bk.ladder(97, 8, odd=True) == (13, 25, 37, 49, 61, 73, 85, 97)
    assert bk.ladder(140, 8, 8) == (24, 40, 56, 72, 88, 112, 128, 140)
    for n_max, steps, align, odd in [(280, 8, 8, False), (2049, 8, 1, True), (3, 4, 1, False)]:
        rungs = bk.ladder(n_max, steps, align, odd)
        assert rungs[-1] == n_max and list(rungs) == sorted(set(rungs))
        for n in range(1, n_max + 1):
            b = bk.bucket(n, n_max, steps, align, odd)
            assert n <= b <= n_max and b in rungs
    assert bk.bins_bucket(5, 6, 97) == 6 and bk.bins_bucket(98, 97, 97) == 98
    with pytest.raises(ValueError, match="odd n_max"):
        bk.ladder(96, 8, odd=True)


@pytest.mark.parametrize("variant", ["k", "kr", "krwd"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}d-{c[2]}")
def test_bucketed_trim_equals_exact_trim_values_and_gradients(variant, case, monkeypatch):
    """float64: outputs and every gradient to 1e-12 relative; parameters exact trim leaves
    untouched (cut channels, taps, blocks) get exactly zero gradient; channels of the stream
    beyond the exact trim's width are exactly zero."""
    monkeypatch.setattr(bk, "BLOCK_STEPS", 2)  # 4 blocks: depth buckets {2, 4}
    exact, bucketed = make(variant, *case, False), make(variant, *case, True)
    g = torch.Generator().manual_seed(3)
    grew = set()
    for trial in range(2):
        randomize_masks(exact, g)
        bucketed.load_state_dict(exact.state_dict())
        k0, n0, p0 = exact.plan(True)
        k1, n1, p1 = bucketed.plan(True, bucketed=True)
        assert n1 >= n0 and k1 >= k0
        assert [p.resolution for p in p1[:n0]] == [p.resolution for p in p0]
        for a, b in zip(p0, p1):
            assert all(y >= x for x, y in zip(a.widths, b.widths))
            grew |= {"width"} if b.widths != a.widths else set()
            grew |= {"taps"} if b.windows != a.windows else set()
            grew |= {"bins"} if b.kept_bins != a.kept_bins else set()
        grew |= {"blocks"} if n1 > n0 else set()
        width0 = max([k0] + [w for p in p0 for w in p.widths])
        seen: list[torch.Tensor] = []
        hooks = [
            b.register_forward_hook(lambda m, i, o, seen=seen: seen.append(o))
            for b in bucketed.blocks
        ]
        x = batch(exact.cfg, seed=trial)
        y0, g0 = run(exact, x)
        y1, g1 = run(bucketed, x)
        for h in hooks:
            h.remove()
        scale = y0.abs().max()
        assert ((y1 - y0).abs().max() / scale).item() < 1e-12
        gscale = max(v.abs().max().item() for v in g0.values())
        for name in g0:
            diff = (g1[name] - g0[name]).abs().max().item()
            assert diff <= 1e-12 * gscale, (name, diff, gscale)
        for name, cut in untouched(exact, k0, n0, p0).items():
            assert (g0[name][cut] == 0).all() and (g1[name][cut] == 0).all(), name
        for out in seen:
            assert (out[:, width0:] == 0).all()
    expected = {"taps"} | ({"width", "blocks"} if variant == "krwd" else set())
    expected |= {"bins"} if variant != "k" else set()
    assert expected <= grew, (expected, grew)


def test_bf16_pointwise_linears_stay_close_to_float32():
    """Mixed precision: bf16 GEMMs for the pointwise linears only; the output moves by a few
    bf16 roundings (8 bits of mantissa), not more."""
    cfg = tiny_config("krwd", (97,), in_channels=3, **SMALL)
    torch.manual_seed(0)
    m32 = build_model(cfg)
    mbf = build_model(cfg, precision="bf16")
    mbf.load_state_dict(m32.state_dict())
    x = batch(cfg).float()
    y32, ybf = m32(x), mbf(x)
    assert ybf.dtype == torch.float32
    assert ((ybf - y32).abs().max() / y32.abs().max()).item() < 5e-2
    with pytest.raises(ValueError, match="valid"):
        build_model(cfg, precision="fp8")


@pytest.mark.slow  # dynamo traces the whole forward once per plan: ~1-2 minutes on 2 cores
def test_compiled_forward_traces_once_per_bucket():
    """The compiled forward (`train.compiled_forward`, backend "eager" on the CPU) is traced
    again only when the bucketed plan changes, not when the masks move inside a bucket."""
    from implementations.torch.train import compiled_forward

    cfg = tiny_config("krwd", (97,), in_channels=3, **SMALL)
    torch.manual_seed(0)
    model = build_model(cfg, bucketed=True)
    fwd = compiled_forward(model, backend="eager")
    x = batch(cfg).float()
    y = fwd(x)
    assert torch.allclose(y, model(x), rtol=1e-5, atol=1e-6)
    plans = {repr(model.plan(True, bucketed=True))}
    g = torch.Generator().manual_seed(1)
    for _ in range(4):
        with torch.no_grad():
            for m in model.mask_parameters():
                m.mul_(1.0 + 1e-4 * torch.rand(m.shape, generator=g))  # inside a bucket
        plans.add(repr(model.plan(True, bucketed=True)))
        y = fwd(x)
        assert torch.allclose(y, model(x), rtol=1e-5, atol=1e-6)
    assert fwd.traces == len(plans)
