"""PyTorch masks against the float64 NumPy reference; gradients by gradcheck."""

import numpy as np
import pytest
import torch

from implementations.common import masks as ref
from implementations.torch import masks as tm

T = 0.1


def test_values_match_the_reference_in_float64():
    x = torch.linspace(-1, 1, 997, dtype=torch.float64)
    for sigma in (0.0325, 0.2, 0.46):
        got = tm.gaussian_mask(x, torch.tensor(sigma, dtype=torch.float64), T).numpy()
        np.testing.assert_allclose(got, ref.gaussian_mask(x.numpy(), sigma, T), rtol=1e-14, atol=0)
    for tau, mu in ((25.0, -0.3), (50.0, 0.9), (8.0, 0.1)):
        got = tm.sigmoid_mask(x, torch.tensor(mu, dtype=torch.float64), tau, T).numpy()
        np.testing.assert_allclose(
            got, ref.sigmoid_mask(x.numpy(), mu, tau, T), rtol=1e-13, atol=1e-300
        )


def test_cutoffs_and_sizes_match_the_reference():
    s = torch.tensor(0.07, dtype=torch.float64)
    assert float(tm.gaussian_cutoff(s, T)) == pytest.approx(ref.gaussian_cutoff(0.07, T), 1e-15)
    mu = torch.tensor(-0.2, dtype=torch.float64)
    assert float(tm.sigmoid_cutoff(mu, 25.0, T)) == pytest.approx(
        ref.sigmoid_cutoff(-0.2, 25.0, T), 1e-15
    )
    m = tm.SigmoidMask(280, 25.0, T, 140).double()
    assert float(m.size().detach()) == pytest.approx(140.0, rel=1e-8)  # float32 init
    assert m.kept() == 140
    m.mu.data.fill_(-0.5)
    assert float(m.size().detach()) == pytest.approx(
        ref.sigmoid_size(-0.5, 25.0, T, 280), rel=1e-14
    )
    assert m.kept() == ref.kept_prefix(ref.sigmoid_mask(ref.axis_coordinates(280), -0.5, 25.0, T))
    g = tm.GaussianMask((2049,), T, 0.0325).double()
    sigma = float(g.sigma.detach()[0])  # the float32 initial value, widened
    assert float(g.size(0).detach()) == pytest.approx(ref.gaussian_size(sigma, T, 2049), rel=1e-14)


def test_clamps_match_appendix_e():
    m = tm.SigmoidMask(280, 25.0, T, 140).double()
    lo, hi = ref.sigmoid_mu_bounds(25.0)
    m.mu.data.fill_(-5.0)
    m.clamp_()
    assert m.mu.item() == pytest.approx(lo, rel=1e-15)
    m.mu.data.fill_(5.0)
    m.clamp_()
    assert m.mu.item() == pytest.approx(hi, rel=1e-15)
    g = tm.GaussianMask((33, 9), T, 0.0325).double()
    g.sigma.data = torch.tensor([1e-4, 9.0], dtype=torch.float64)
    g.clamp_()
    lo0, _ = ref.gaussian_sigma_bounds(33, T)
    _, hi1 = ref.gaussian_sigma_bounds(9, T)
    np.testing.assert_allclose(g.sigma.detach().numpy(), [lo0, hi1], rtol=1e-15)
    x = tm.coordinates(33, g.sigma)
    assert int(torch.count_nonzero(g.values(x, 0))) == 3  # never below 3 taps


def test_gradcheck_every_mask_parameter():
    x = torch.linspace(-1, 1, 41, dtype=torch.float64)
    sigma = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    mu = torch.tensor(0.1, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: tm.gaussian_mask(x, s, T), (sigma,))
    assert torch.autograd.gradcheck(lambda m: tm.sigmoid_mask(x, m, 25.0, T), (mu,))
    assert torch.autograd.gradcheck(lambda s: tm.gaussian_cutoff(s, T), (sigma,))
    assert torch.autograd.gradcheck(lambda m: tm.sigmoid_cutoff(m, 25.0, T), (mu,))
    # the mask modules: values and sizes (Eqs. 9, 10, through the straight-through clip)
    # as functions of their parameters
    sm = tm.SigmoidMask((33, 17), 50.0, T, (10, 5)).double()
    gm = tm.GaussianMask((33, 17), T, 0.2).double()

    for fn, param in (
        (lambda mu: _call(sm, {"mu": mu}), sm.mu),
        (lambda s: _call(gm, {"sigma": s}), gm.sigma),
    ):
        assert torch.autograd.gradcheck(fn, (param.detach().clone().requires_grad_(),))


def _call(mask, params):
    """Everything a mask module returns, as one vector, for the parameter values `params`."""

    def run(module):
        if isinstance(module, tm.SigmoidMask):
            return [module.values(0), module.values(1), module.size(0), module.size(1, total=40)]
        x = tm.coordinates(33, module.sigma)
        y = tm.coordinates(17, module.sigma)
        return [module.values(x, 0), module.values(y, 1), module.size(0), module.size(1)]

    saved = {k: getattr(mask, k) for k in params}
    try:
        for k, v in params.items():
            delattr(mask, k)
            setattr(mask, k, v)
        return torch.cat([t.reshape(-1) for t in run(mask)])
    finally:
        for k, v in saved.items():
            delattr(mask, k)
            mask.register_parameter(k, v)


def test_straight_through_clip_passes_gradient_at_the_maximum():
    s = torch.tensor([100.0, 280.0, 400.0], dtype=torch.float64, requires_grad=True)
    out = tm.straight_through_clip(s, 280.0)
    np.testing.assert_array_equal(out.detach().numpy(), [100.0, 280.0, 280.0])
    out.sum().backward()
    np.testing.assert_array_equal(s.grad.numpy(), [1.0, 1.0, 1.0])
    # and a full-size mask can still shrink: d size / d mu > 0 at mu_max. Eq. 10 normalises by
    # the initial cutoff, here mu_max's (beyond the axis end): d size / d mu = 280 / (x0 + 1)
    m = tm.SigmoidMask(280, 25.0, T, 280).double()
    m.size().backward()
    x0 = ref.resolution_initial_cutoff(25.0, T)
    assert float(m.mu.grad) == pytest.approx(280 / (x0 + 1.0), rel=1e-12)
    assert float(m.size().detach()) == pytest.approx(280.0, rel=1e-12)  # N_0 at initialisation
