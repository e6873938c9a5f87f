"""Optimisation of a DNArch model in PyTorch (Appx. E.2): AdamW with the shared warm-up +
cosine schedule (`common.schedule`), no weight decay on masks, BatchNorm parameters and
biases, task loss + lambda * L_comp (Eq. 8) and mask clamping after every step (Appx. E.1).
Mirrors `implementations.jax.train`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from implementations.common.schedule import lr_table
from implementations.torch.model import DNArch

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
LOSSES = ("cross_entropy", "mse", "relative_l2", "bce_ignore")


def task_loss(name: str, output: torch.Tensor, target: torch.Tensor, ignore=None) -> torch.Tensor:
    """cross_entropy: output (B, K) logits, target (B,) int labels.
    mse / relative_l2: output and target (B, C, *S); relative_l2 is mean_b ||y - t|| / ||t||.
    bce_ignore: logits and 0/1 target (B, 1, *S), pixels where `ignore` is 1 do not count
    (NAS-Bench-360 Cosmic: logits * (1 - ignore) against target * (1 - ignore))."""
    if name == "cross_entropy":
        return F.cross_entropy(output, target)
    if name == "mse":
        return F.mse_loss(output, target)
    if name == "relative_l2":
        diff = (output - target).flatten(1).norm(dim=1)
        return (diff / target.flatten(1).norm(dim=1).clamp_min(1e-12)).mean()
    if name == "bce_ignore":
        keep = 1.0 - ignore if ignore is not None else torch.ones_like(target)
        return F.binary_cross_entropy_with_logits(output * keep, target * keep)
    raise ValueError(f"task_loss: unknown loss {name!r}; valid: {list(LOSSES)}")


def make_optimizer(
    model: DNArch, lr: float, weight_decay: float, warmup_steps: int, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    table = lr_table(lr, warmup_steps, total_steps)
    opt = torch.optim.AdamW(model.param_groups(weight_decay), lr=lr, betas=ADAM_BETAS, eps=ADAM_EPS)
    factors = (table / lr).tolist() if lr > 0 else [0.0] * len(table)
    last = len(factors) - 1
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: factors[min(s, last)])
    return opt, sched


def train_step(
    model: DNArch,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LambdaLR,
    x: torch.Tensor,
    target: torch.Tensor,
    loss: str,
    lam: float,
    ignore: torch.Tensor | None = None,
) -> dict[str, float]:
    """One optimiser step. Returns the loss terms and C_curr / C_target before the step."""
    model.train()
    opt.zero_grad(set_to_none=True)
    out = model(x)
    obj = task_loss(loss, out, target, ignore)
    comp = model.complexity_loss()
    total = obj + lam * comp
    total.backward()
    # In trim mode the parameters of what the masks cut (blocks past the depth cutoff, channels
    # past a width cutoff are slices, so only whole tensors matter) get no gradient at all, and
    # AdamW would skip them: no weight decay, no moment decay. Virtual mode (and JAX) give them
    # a zero gradient. Zero-filling keeps the two modes' optimiser states identical.
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


class CompiledForward:
    """`model(x)` with the plan computed eagerly (one host synchronisation, `DNArch.plan`) and
    `DNArch.forward_planned` compiled by `torch.compile` once per distinct plan (issue 14).

    With a bucketed trim model (`build_model(cfg, bucketed=True)`) the plans are few, so each
    is traced and compiled once and then replayed while the masks move inside its buckets
    (mode="reduce-overhead" adds CUDA graphs on a GPU). Without buckets every new kept size is a
    new compilation. `traces` counts the graphs handed to the backend."""

    def __init__(self, model: DNArch, backend: str = "inductor", mode: str | None = None):
        import torch._dynamo

        self.model = model
        self.traces = 0
        # one compiled graph per bucketed plan: allow many before dynamo falls back to eager
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 256)
        self._backend = backend

        def count(gm, example_inputs):
            self.traces += 1
            if self._backend == "eager":
                return gm.forward
            return torch._dynamo.lookup_backend(self._backend)(gm, example_inputs)

        kwargs = {"mode": mode} if mode is not None and backend == "inductor" else {}
        if kwargs:  # torch.compile takes a mode only with its own inductor backend
            self._fn = torch.compile(model.forward_planned, mode=mode, dynamic=False)
        else:
            self._fn = torch.compile(model.forward_planned, backend=count, dynamic=False)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        model = self.model
        model._check_input(x)
        trim = model.mode == "trim"
        return self._fn(x, *model.plan(trim, bucketed=trim and model.bucketed))


def compiled_forward(model: DNArch, backend: str = "inductor", mode: str | None = None):
    """A `CompiledForward` of `model` (see there)."""
    return CompiledForward(model, backend, mode)
