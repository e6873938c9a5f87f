"""The explicit parameter map between the PyTorch and the JAX/Flax DNArch.

One row per tensor: (PyTorch `state_dict()` name, JAX variable path, layout transform),
generated from the `ModelConfig` alone (number of blocks, which masks and heads exist): no
name is guessed from a substring of another. Works on NumPy arrays, so this module imports
neither framework; callers convert (`tensor.detach().cpu().numpy()`, `np.asarray(jax_array)`).

JAX paths start with the variable collection: "params" for trained parameters, "buffers" for
the fixed Fourier-feature matrix of the kernel network (a buffer in PyTorch, see
`implementations.jax.kernels`).

Layout transforms:
    identity    same array (vectors, mask parameters, embedding tables (V, E) in both)
    transpose   PyTorch nn.Linear weight (out, in)  <->  Flax Dense kernel (in, out)

Channels-first (PyTorch) vs channels-last (JAX): activations change layout, parameters do not.
No stored parameter has a spatial axis: the depthwise kernels are rendered by the kernel
network, whose output column b * N_max + c is channel c of block b in both frameworks, and
per-channel vectors (BatchNorm, conv bias) are indexed by channel alone. The only layout
change of a parameter is therefore the Linear/Dense transpose.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

TRANSFORMS = ("identity", "transpose")


@dataclass(frozen=True)
class Entry:
    torch_name: str
    jax_path: tuple[str, ...]  # (collection, module, ..., leaf)
    transform: str  # one of TRANSFORMS

    def __post_init__(self) -> None:
        if self.transform not in TRANSFORMS:
            raise ValueError(f"Entry.transform={self.transform!r}; valid: {list(TRANSFORMS)}")


def _linear(torch_prefix: str, jax_prefix: tuple[str, ...]) -> list[Entry]:
    """nn.Linear (weight (out, in), bias) <-> nn.Dense (kernel (in, out), bias)."""
    return [
        Entry(f"{torch_prefix}.weight", ("params", *jax_prefix, "kernel"), "transpose"),
        Entry(f"{torch_prefix}.bias", ("params", *jax_prefix, "bias"), "identity"),
    ]


def _param(torch_name: str, *jax_path: str) -> Entry:
    return Entry(torch_name, ("params", *jax_path), "identity")


def weight_map(cfg) -> list[Entry]:
    """Every tensor of a DNArch built from `cfg` (a `ModelConfig`), exactly once."""
    rows: list[Entry] = []
    # encoder
    if cfg.tokens:
        rows.append(_param("encoder.embedding.weight", "encoder", "embedding", "embedding"))
    rows += _linear("encoder.linear", ("encoder", "linear"))
    rows.append(_param("encoder.norm_weight", "encoder", "norm_scale"))
    rows.append(_param("encoder.norm_bias", "encoder", "norm_bias"))
    if cfg.learns_width:
        rows.append(_param("encoder.width_mask.mu", "encoder", "width_mask", "mu"))
    # kernel network: fixed Fourier features (buffer) and `kernel_layers` linear layers
    rows.append(Entry("kernel_net.freqs", ("buffers", "kernel_net", "freqs"), "identity"))
    for i in range(cfg.kernel_layers):
        rows += _linear(f"kernel_net.layers.{i}", ("kernel_net", f"dense_{i}"))
    # residual blocks
    for b in range(cfg.n_blocks):
        t, j = f"blocks.{b}", f"blocks_{b}"
        rows.append(_param(f"{t}.norm_weight", j, "norm_scale"))
        rows.append(_param(f"{t}.norm_bias", j, "norm_bias"))
        rows.append(_param(f"{t}.conv_bias", j, "conv_bias"))
        rows += _linear(f"{t}.linear1", (j, "linear1"))
        rows += _linear(f"{t}.linear2", (j, "linear2"))
        if cfg.learns_kernel:
            rows.append(_param(f"{t}.kernel_mask.sigma", j, "kernel_mask", "sigma"))
        if cfg.learns_resolution:
            rows.append(_param(f"{t}.res_mask.mu", j, "res_mask", "mu"))
        if cfg.learns_width:
            for name in ("in_mask", "mid_mask", "out_mask"):
                rows.append(_param(f"{t}.{name}.mu", j, name, "mu"))
    if cfg.learns_depth:
        rows.append(_param("depth_mask.mu", "depth_mask", "mu"))
    # decoder
    if cfg.task == "retrieval":  # nn.Sequential(Linear, GELU, Linear): indices 0 and 2
        rows += _linear("head.0", ("head_hidden",))
        rows += _linear("head.2", ("head_out",))
    else:
        rows += _linear("head", ("head",))
    return rows


def to_jax_layout(array: np.ndarray, transform: str) -> np.ndarray:
    """A PyTorch tensor (as NumPy) in the JAX layout."""
    if transform == "transpose":
        if array.ndim != 2:
            raise ValueError(f"transpose needs a 2D array, got shape {array.shape}")
        return np.ascontiguousarray(array.T)
    return np.asarray(array)


def to_torch_layout(array: np.ndarray, transform: str) -> np.ndarray:
    """A JAX array (as NumPy) in the PyTorch layout (the transforms are involutions)."""
    return to_jax_layout(array, transform)


def _get(tree: Mapping, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(tree, Mapping) or key not in tree:
            raise KeyError(f"weight map: JAX path {'/'.join(path)} not found (at {key!r})")
        tree = tree[key]
    return tree


def _set(tree: dict, path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    if path[-1] in tree:
        raise ValueError(f"weight map: JAX path {'/'.join(path)} written twice")
    tree[path[-1]] = value


def jax_leaf_paths(tree: Mapping, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Paths of every leaf of a nested mapping (the JAX variables)."""
    out: list[tuple[str, ...]] = []
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out += jax_leaf_paths(value, (*prefix, key))
        else:
            out.append((*prefix, key))
    return out


def torch_to_jax(state: Mapping[str, np.ndarray], cfg) -> dict:
    """Nested JAX variables {"params": ..., "buffers": ...} (NumPy leaves) from a PyTorch
    state dict (NumPy values). Fails on a missing or an unmapped PyTorch name."""
    entries = weight_map(cfg)
    names = {e.torch_name for e in entries}
    unmapped = sorted(set(state) - names)
    missing = sorted(names - set(state))
    if unmapped or missing:
        raise KeyError(f"weight map: unmapped torch names {unmapped}, missing {missing}")
    out: dict = {}
    for e in entries:
        _set(out, e.jax_path, to_jax_layout(np.asarray(state[e.torch_name]), e.transform))
    return out


def jax_to_torch(variables: Mapping, cfg) -> dict[str, np.ndarray]:
    """A PyTorch state dict (NumPy values) from nested JAX variables. Fails on a JAX leaf the
    map does not cover."""
    entries = weight_map(cfg)
    paths = {e.jax_path for e in entries}
    unmapped = sorted(set(jax_leaf_paths(variables)) - paths)
    if unmapped:
        raise KeyError(f"weight map: unmapped JAX paths {['/'.join(p) for p in unmapped]}")
    return {
        e.torch_name: to_torch_layout(np.asarray(_get(variables, e.jax_path)), e.transform)
        for e in entries
    }
