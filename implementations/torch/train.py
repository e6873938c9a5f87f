"""Optimisation of a DNArch model in PyTorch (Appx. E.2): AdamW with the shared warm-up +
cosine schedule (`common.schedule`), no weight decay on masks, BatchNorm parameters and
biases, task loss + lambda * L_comp (Eq. 8) and mask clamping after every step (Appx. E.1).
Mirrors `implementations.jax.train`, down to `Backend`: the one class through which the
training CLI (`pipelines.train`) drives a model, with the same methods in both frameworks.
"""

from __future__ import annotations

import io
import json
import platform

import numpy as np
import torch
import torch.nn.functional as F

from implementations.common.config import ModelConfig
from implementations.common.micro_batches import check_micro_batches
from implementations.common.schedule import lr_table
from implementations.torch.model import DNArch, build_model

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
LOSSES = ("cross_entropy", "mse", "relative_l2", "bce_ignore")


def device_name() -> str:
    """What result files record as the PyTorch device: the GPU's name, or the CPU and the
    thread count (CPU step times depend on both)."""
    if torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(0)}"
    return f"cpu:{platform.processor() or platform.machine()} x{torch.get_num_threads()} threads"


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


@torch.no_grad()
def finite_flags(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Bool vector: is every entry of each tensor finite? One multi-tensor max-abs reduction
    (NaN and inf both give a non-finite maximum; no sum that could overflow) instead of two
    ops per tensor; empty tensors count as finite."""
    flags = torch.ones(
        len(tensors), dtype=torch.bool, device=tensors[0].device if tensors else None
    )
    full = [i for i, t in enumerate(tensors) if t.numel() > 0]
    if full:
        norms = torch._foreach_norm([tensors[i] for i in full], float("inf"))
        flags[full] = torch.isfinite(torch.stack(norms))
    return flags


def make_optimizer(
    model: DNArch, lr: float, weight_decay: float, warmup_steps: int, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    table = lr_table(lr, warmup_steps, total_steps)
    # foreach: a few multi-tensor kernels per step instead of ~12 small ops per parameter
    # (a krwd model has ~110 parameters); the same arithmetic in the same order, so the
    # parameters are bit-identical to the per-parameter loop (tested). PyTorch's CPU default
    # is the loop. Not `fused`, whose arithmetic differs.
    opt = torch.optim.AdamW(
        model.param_groups(weight_decay), lr=lr, betas=ADAM_BETAS, eps=ADAM_EPS, foreach=True
    )
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
    micro_batches: int = 1,
) -> dict[str, float]:
    """One optimiser step. Returns the loss terms and C_curr / C_target before the step.

    micro_batches > 1: gradient accumulation. The batch is split into `micro_batches` equal
    consecutive parts; each runs forward + backward on its own with its task loss weighted by
    part size / batch size, so the accumulated gradient is that of the parts' mean losses
    averaged, and peak activation memory is one part's. lambda * L_comp does not depend on the
    data and is added once; then one AdamW step and the mask clamps, as with one part. The
    returned terms are full-batch means. micro_batches = 1 is the plain full-batch step.

    Not the full batch's step in general: BatchNorm normalises with the current batch's
    statistics in training (Appx. E.1), so each sample is normalised with its micro-batch's
    mean and variance instead of the full batch's, and its output, loss and gradient change.
    The accumulated gradient equals the full batch's exactly only when every micro-batch has
    the full batch's statistics (e.g. a batch made of identical copies of one micro-batch).
    Dropout, too, draws its masks part by part.
    """
    model.train()
    opt.zero_grad(set_to_none=True)
    if micro_batches == 1:
        out = model(x)
        obj = task_loss(loss, out, target, ignore)
        comp = model.complexity_loss()
        total = obj + lam * comp
        total.backward()
    else:
        n = x.shape[0]
        size = check_micro_batches(n, micro_batches)
        obj = torch.zeros((), dtype=torch.float64, device=x.device)
        for i in range(micro_batches):
            part = slice(i * size, (i + 1) * size)
            ig = None if ignore is None else ignore[part]
            weighted = task_loss(loss, model(x[part]), target[part], ig) * (size / n)
            weighted.backward()
            obj = obj + weighted.detach().double()
        comp = model.complexity_loss()
        if comp.requires_grad:  # the one-part step differentiates lam * comp even for lam 0
            (lam * comp).backward()
        total = obj + lam * comp.detach().double()
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
    `DNArch.forward_planned` compiled by `torch.compile` once per distinct plan.

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


class Backend:
    """A PyTorch DNArch as the training CLI drives it (`implementations.jax.train.Backend` has
    the same methods): NumPy batches in, channels first, as the iterator yields them; NumPy
    outputs and host floats out. `steps` is (warm-up steps, total steps) of the schedule.
    `hp["micro_batches"]` (default 1) splits every training batch into that many equal parts
    accumulated into one step (`train_step`: less activation memory, but BatchNorm then
    normalises each part with its own statistics); evaluation batches are never split."""

    name = "torch"
    ckpt_name = "checkpoint.pt"

    @staticmethod
    def set_threads(threads: int) -> None:
        """One job = `threads` cores (before the model is built)."""
        torch.set_num_threads(threads)

    def __init__(self, cfg: ModelConfig, hp: dict, seed: int, loss: str, lam: float, steps: tuple):
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        torch.manual_seed(seed)
        self.model = build_model(cfg).to(self.device)
        warmup, total = steps
        self.opt, self.sched = make_optimizer(
            self.model, hp["lr"], hp["weight_decay"], warmup, total
        )
        self.loss, self.lam, self.cfg = loss, lam, cfg
        # gradient accumulation over equal parts of each batch (see `train_step`); 1 = none
        micro = hp.get("micro_batches", 1)
        check_micro_batches(micro, micro)  # an integer >= 1
        self.micro_batches = int(micro)
        self.names = {id(p): n for n, p in self.model.named_parameters()}

    def _t(self, a: np.ndarray, kind: str) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(a))
        if kind == "label":
            t = t.long()
        return t.to(self.device)

    def _xy(self, batch: dict):
        x = self._t(batch["inputs"], "x")
        y = self._t(batch["targets"], "label" if self.loss == "cross_entropy" else "y")
        ig = self._t(batch["ignore"], "y") if "ignore" in batch else None
        return x, y, ig

    def step(self, batch: dict) -> dict[str, float]:
        """One optimiser step on `batch`: the loss terms before it."""
        x, y, ig = self._xy(batch)
        # the step updates the parameters in place: which were finite before it is only
        # knowable now (read by `nonfinite` after a NaN loss)
        self._finite_before = finite_flags(list(self.model.parameters()))
        return train_step(
            self.model, self.opt, self.sched, x, y, self.loss, self.lam, ig, self.micro_batches
        )

    def lr(self) -> float:
        """The learning rate of the next step."""
        return float(self.opt.param_groups[0]["lr"])

    def predict(self, batch: dict) -> tuple[np.ndarray, float]:
        """(output channels first, mean task loss) in evaluation mode."""
        x, y, ig = self._xy(batch)
        self.model.eval()
        with torch.no_grad():
            out = self.model(x)
            loss = float(task_loss(self.loss, out, y, ig))
        return out.float().cpu().numpy(), loss

    def complexity_target(self) -> float:
        """C_target (Eq. 10 sizes of the configured network)."""
        return self.model.complexity_target()

    def complexity_ratio(self) -> float:
        """C_curr / C_target (Eq. 10 mask sizes)."""
        return self.model.complexity_ratio()

    def realised_ratio(self) -> float:
        """C of what trim computes (kept integer sizes) over C_target."""
        return self.model.realised_complexity() / self.complexity_target()

    def mask_sizes(self) -> dict[str, float]:
        return dict(sorted(self.model.mask_sizes().items()))

    def architecture(self) -> list[dict]:
        return self.model.architecture()

    def torch_mode(self) -> str | None:
        """How the PyTorch model runs: trim or virtual."""
        return self.cfg.mode

    def device_name(self) -> str:
        return device_name()

    def inject_nan(self) -> str:
        """Test hook: poison one parameter of the head with NaN; returns its name."""
        p = next(self.model.head.parameters())
        with torch.no_grad():
            p.fill_(float("nan"))
        return self.names[id(p)]

    def nonfinite(self) -> tuple[dict[str, list[str]], int]:
        """After a non-finite loss: the parameters with non-finite values before the step and
        those with non-finite gradients, and how many parameters there are."""
        before = self._finite_before.cpu().numpy()
        bad_v, bad_g = [], []
        for (n, p), ok in zip(self.model.named_parameters(), before):
            if not ok:
                bad_v.append(n)
            if p.grad is not None and not bool(torch.isfinite(p.grad).all()):
                bad_g.append(n)
        return {"values before the step": bad_v, "gradients": bad_g}, len(self.names)

    def checkpoint_bytes(self, extra: dict) -> bytes:
        """Model, optimiser, scheduler and RNG state, and `extra` (JSON), as `torch.save`
        writes them."""
        blob = {
            "model": self.model.state_dict(),
            "opt": self.opt.state_dict(),
            "sched": self.sched.state_dict(),
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "extra": json.dumps(extra),
        }
        buf = io.BytesIO()
        torch.save(blob, buf)
        return buf.getvalue()

    def restore(self, data: bytes) -> dict:
        """The state `checkpoint_bytes` wrote; returns its `extra`."""
        blob = torch.load(io.BytesIO(data), map_location=self.device, weights_only=True)
        self.model.load_state_dict(blob["model"])
        self.opt.load_state_dict(blob["opt"])
        self.sched.load_state_dict(blob["sched"])
        torch.set_rng_state(blob["rng"])
        if blob["cuda_rng"]:
            torch.cuda.set_rng_state_all(blob["cuda_rng"])
        return json.loads(blob["extra"])
