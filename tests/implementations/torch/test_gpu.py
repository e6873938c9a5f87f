"""CUDA: the model runs there and computes what it computes on the CPU (marker `gpu`)."""

import pytest
import torch

from implementations.common.config import tiny_config
from implementations.torch.model import build_model, randomize_masks

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize("variant", ["ccnn", "k", "kr", "krwd"])
@pytest.mark.parametrize("shape", [(97,), (31, 17)])
def test_cuda_matches_cpu_in_both_modes(variant, shape):
    torch.manual_seed(0)
    cfg = tiny_config(
        variant, shape, task="dense", in_channels=3, out_size=5, width=8, max_width=16,
        kernel_hidden=32,
    )  # fmt: skip
    cpu = build_model(cfg).double()
    randomize_masks(cpu, torch.Generator().manual_seed(1))
    gpu = build_model(cfg).double().cuda()
    gpu.load_state_dict(cpu.state_dict())
    x = torch.randn(4, 3, *shape, dtype=torch.float64)
    for mode in ("trim", "virtual"):
        cpu.mode = gpu.mode = mode
        a = cpu(x)
        b = gpu(x.cuda())
        assert b.device.type == "cuda"
        torch.testing.assert_close(b.cpu(), a, rtol=1e-9, atol=1e-9 * a.abs().max().item())
        a.square().mean().backward()
        b.square().mean().backward()
        assert gpu.complexity().device.type == "cuda"
        # tolerance relative to the largest gradient of the model: some gradients are exactly
        # zero in exact arithmetic (a bias followed by BatchNorm) and only rounding noise here
        scale = max(p.grad.abs().max().item() for p in cpu.parameters() if p.grad is not None)
        for (n, p), q in zip(cpu.named_parameters(), gpu.parameters()):
            if p.grad is not None:
                torch.testing.assert_close(
                    q.grad.cpu(), p.grad, rtol=1e-7, atol=1e-9 * scale, msg=n
                )
        cpu.zero_grad()
        gpu.zero_grad()
