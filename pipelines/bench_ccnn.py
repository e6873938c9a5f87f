"""Train-step speed of this project's `ccnn` against the public CCNN code, side by side in one
process (the ccnn goal: ours at least 1.5x faster at CCNN_{4,140}, L = 2048, batch 8, 2 threads).

    python -m pipelines.bench_ccnn --ccnn-path /path/to/ccnn            # -> results/bench/ccnn.csv
    python -m pipelines.bench_ccnn --ccnn-path PATH --steps 1 --rounds 15 --threads 2
    python -m pipelines.bench_ccnn --ccnn-path PATH --tiny --out /tmp/ccnn.csv   # smoke run

`--ccnn-path` is the root of a local checkout of github.com/david-knigge/ccnn (the code of
Knigge et al., "Modelling Long Range Dependencies in ND: From Task-Specific to a General Purpose
CNN", 2023). It is imported from there, never copied into this repository; a path inside this
repository is refused.

Models (ListOps shapes: token ids, L = 2048, batch 8, 10 classes):
    ours-trim, ours-virtual   `build_model` of the paper profile's ListOps `ccnn` run
                              (pipelines/config/paper.yaml: CCNN_{4,140}, kernel network MLP
                              128 hidden x 4 layers, shared by the blocks), token ids through an
                              18-entry embedding
    ccnn-flexconv             the CCNN code's `models.resnet.ResNet_sequence` with the settings
                              of its ListOps CCNN-4,140 command (experiments/README.md there):
                              S4 blocks, SeparableFlexConv (Gaussian mask, init 0.03, dynamic
                              cropping: 67 of 2048 taps at initialisation, FFT convolution),
                              causal, MAGNet kernels 32 hidden x 3 layers per convolution,
                              BatchNorm, GELU; token ids as one float channel, as its ListOps
                              data module feeds them
    ccnn-global               the same with SeparableCKConv: global kernels (2048 taps), no mask
Dropout is the paper profile's ListOps value for all four (0.0; the CCNN command uses 0.1).

One step: AdamW zero_grad, forward, cross-entropy, backward, AdamW step; the same for every
model. After `--warmup` steps each, `--rounds` rounds run `--steps` timed steps of every model
in turn (round-robin, the starting model rotating by one each round), so a change in the
machine's load falls on all models alike. Per model: the median over its steps * rounds
timings. Columns, one row per pairing of ours with theirs: the two models, their median ms,
parameter counts (total and kernel networks), ratio = their median / ours, goal_met (ratio >=
1.5); the fastest step of each and their ratio (on a machine shared with other work the
fastest step is the least disturbed one: a second view, not the goal's); threads, device,
torch, git_sha, ccnn_commit (the checkout's HEAD, "unknown" if it is not a git checkout) and a
note naming the stand-ins used (below). `OUT.json` next to the CSV has the provenance, the
configurations and every timing. Expected run time at the defaults (68 steps): about a minute
on a quiet 2-core CPU; 8 minutes were measured with the two cores shared with a study.

Stand-ins: the CCNN code imports a few packages that play no part in a forward or backward
pass: omegaconf (type annotations; the configuration here is an attribute namespace, or an
OmegaConf object when omegaconf is installed), wandb and plotly (its logging hooks). Where one
is not installed, an empty module stands in for it (`STAND_INS`), and the CSV note says so; a
stand-in raises if the benchmark ever called into it. `models/__init__.py` is not run (it
imports the point-cloud ResNet and torch_geometric): only `models.resnet` and
`models.modules` are imported.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import importlib
import importlib.util
import io
import statistics
import subprocess
import sys
import time
import types
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from pipelines.provenance import provenance, write_csv, write_json

ROOT = Path(__file__).resolve().parents[1]
GOAL_RATIO = 1.5  # ours at least 1.5x faster than the CCNN code
LR, WEIGHT_DECAY = 1e-3, 0.01  # one AdamW for every model (the values do not change the time)
LISTOPS = "listops"
CCNN_URL = "github.com/david-knigge/ccnn"
# files a checkout of the CCNN code holds and the benchmark imports
REQUIRED = (
    "ckconv/__init__.py",
    "ckconv/nn/flexconv.py",
    "ckconv/nn/ckconv.py",
    "models/resnet.py",
    "models/modules/s4_block.py",
)
# absent packages that the CCNN modules import but that take no part in a training step
STAND_INS = {
    "omegaconf": "type annotations only, the configs here are attribute namespaces",
    "wandb": "logging hooks, ckconv.utils.hooks",
    "plotly": "plots of the logging hooks, ckconv.utils.visualisation",
}
COLUMNS = [
    "ours",
    "ours_ms",
    "ours_params",
    "ours_kernel_params",
    "reference",
    "reference_ms",
    "reference_params",
    "reference_kernel_params",
    "ratio",
    "goal",
    "goal_met",
    "ours_min_ms",
    "reference_min_ms",
    "ratio_of_min",
    "timed_steps",
    "threads",
    "device",
    "torch",
    "git_sha",
    "ccnn_commit",
    "note",
]
CONTEXT = COLUMNS[COLUMNS.index("threads") :]  # the same in every row: from `main`'s meta
# The CCNN code's ListOps CCNN-4,140 command (its experiments/README.md), over the defaults
# of its cfg/config.yaml; `ccnn-global` swaps the convolution for SeparableCKConv.
REFERENCE_NET = dict(
    type="ResNet",
    no_hidden=140,
    no_blocks=4,
    no_stages=-1,
    data_dim=1,
    dropout=0.1,  # replaced by the paper profile's ListOps dropout (module docstring)
    dropout_in=0.0,
    dropout_type="Dropout",
    norm="BatchNorm",
    nonlinearity="GELU",
    block_width_factors=[0.0],
    block=dict(type="S4", prenorm=True),
    downsampling=[],
    downsampling_size=-1,
)
REFERENCE_KERNEL = dict(
    type="MAGNet",
    no_hidden=32,
    no_layers=3,
    omega_0=784.655,
    input_scale=0.0,
    bias=True,
    size="same",
    chang_initialize=True,
    norm="Identity",
    nonlinearity="Identity",
    init_spatial_value=1.0,
    num_edges=-1,
    bottleneck_factor=-1,
)
REFERENCE_CONV = dict(
    type="SeparableFlexConv",
    causal=True,
    use_fft=True,
    bias=True,
    padding="same",
    stride=1,
    cache=False,
)
REFERENCE_MASK = dict(
    type="gaussian",
    init_value=0.03,
    threshold=0.1,
    dynamic_cropping=True,
    temperature=0.0,
    learn_mean=False,
)
REFERENCE_CONVS = {"ccnn-flexconv": "SeparableFlexConv", "ccnn-global": "SeparableCKConv"}
OUR_MODES = {"ours-trim": "trim", "ours-virtual": "virtual"}
# --tiny: CCNN_{2,8}, 8-unit kernel networks, L = 64, batch 2 (checks the script only)
TINY = dict(blocks=2, width=8, kernel_hidden=8, length=64, batch=2)


class CheckoutError(RuntimeError):
    """--ccnn-path is not a usable checkout of the CCNN code; the message says what to pass."""


@dataclasses.dataclass
class Contender:
    """One timed model: `step()` runs one training step and returns once its work is done."""

    name: str
    side: str  # "ours" or "reference"
    step: Callable[[], None]
    params: int
    kernel_params: int
    config: dict


# ---- the CCNN code ---------------------------------------------------------------------------
def check_checkout(path: str | Path) -> Path:
    """The resolved root of a checkout of the CCNN code at `path`, or CheckoutError."""
    root = Path(path).expanduser()
    hint = f"pass the root of a checkout of {CCNN_URL}"
    if not root.is_dir():
        raise CheckoutError(f"--ccnn-path {path}: no such directory: {hint}")
    root = root.resolve()
    if not (root / "ckconv" / "__init__.py").is_file():
        raise CheckoutError(f"no ckconv package under {root}: {hint}")
    missing = [f for f in REQUIRED if not (root / f).is_file()]
    if missing:
        raise CheckoutError(
            f"{root} has a ckconv package but lacks {', '.join(missing)}: {hint} "
            "(the whole repository, not the ckconv folder alone)"
        )
    if root == ROOT or ROOT in root.parents:
        raise CheckoutError(
            f"{root} is inside this repository: keep the CCNN code in its own checkout "
            f"outside {ROOT} (the benchmark imports it from there, it is never copied in)"
        )
    return root


def checkout_commit(root: Path) -> str:
    """HEAD of the git checkout at `root` (+ "-dirty" with local changes), else "unknown"."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != root:
            return "unknown"  # a plain copy inside some other repository
        dirty = git("status", "--porcelain", "--untracked-files=no")
        return git("rev-parse", "HEAD") + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


class _Unavailable:
    """What a stand-in module hands out: usable in annotations, raises when used."""

    def __init__(self, *args, **kwargs):
        raise RuntimeError(
            f"{type(self).__qualname__} belongs to a package that is not installed and was "
            "stood in for by pipelines.bench_ccnn: the benchmark should never call it"
        )


class StandIn(types.ModuleType):
    """An empty module for an absent package the CCNN code imports but a step never uses."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return type(name, (_Unavailable,), {"__qualname__": f"{self.__name__}.{name}"})


def install_stand_ins() -> list[str]:
    """Put a StandIn into sys.modules for every STAND_INS package that is not installed;
    returns their names (already stood in ones included)."""
    used = []
    for name in STAND_INS:
        if isinstance(sys.modules.get(name), StandIn):
            used.append(name)
            continue
        if name in sys.modules or importlib.util.find_spec(name) is not None:
            continue
        sys.modules[name] = StandIn(name)
        used.append(name)
    if "plotly" in used and "plotly.graph_objects" not in sys.modules:
        sub = StandIn("plotly.graph_objects")
        sys.modules["plotly.graph_objects"] = sub
        sys.modules["plotly"].graph_objects = sub
    return used


@dataclasses.dataclass
class ReferenceCode:
    root: Path
    commit: str
    resnet: types.ModuleType  # models.resnet of the checkout
    stand_ins: list[str]


def load_reference(path: str | Path) -> ReferenceCode:
    """Import the CCNN code's ckconv and models.resnet from the checkout at `path`."""
    root = check_checkout(path)
    for name in ("ckconv", "models"):
        mod = sys.modules.get(name)
        where = getattr(mod, "__file__", None) or next(iter(getattr(mod, "__path__", [])), None)
        if mod is not None and (where is None or root not in Path(where).resolve().parents):
            raise CheckoutError(
                f"a module {name!r} from {where} is already imported: cannot import the one "
                f"under {root} in this process"
            )
    stand_ins = install_stand_ins()
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    if "models" not in sys.modules:
        # the package without its __init__ (which imports the point-cloud ResNet and
        # torch_geometric): models.resnet imports models.modules relative to it
        pkg = types.ModuleType("models")
        pkg.__path__ = [str(root / "models")]
        pkg.__package__ = "models"
        sys.modules["models"] = pkg
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            importlib.import_module("ckconv")
            resnet = importlib.import_module("models.resnet")
    except ImportError as e:
        raise CheckoutError(
            f"importing the CCNN code from {root} failed ({e}); the benchmark stands in only "
            f"for {sorted(STAND_INS)}: a package it needs for computing is missing"
        ) from e
    return ReferenceCode(root, checkout_commit(root), resnet, stand_ins)


def _namespace(d: dict):
    """A config object as the CCNN code reads it (attribute access, writable): OmegaConf
    when installed, else nested SimpleNamespaces."""
    omegaconf = sys.modules.get("omegaconf")
    if omegaconf is None and importlib.util.find_spec("omegaconf") is not None:
        omegaconf = importlib.import_module("omegaconf")
    if omegaconf is not None and not isinstance(omegaconf, StandIn):
        return omegaconf.OmegaConf.create(d)
    return types.SimpleNamespace(
        **{k: _namespace(v) if isinstance(v, dict) else v for k, v in d.items()}
    )


def reference_settings(
    name: str, *, dropout: float, width: int, blocks: int, kernel_hidden: int
) -> dict:
    """The CCNN code's configuration groups (net, kernel, conv, mask) for model `name`."""
    net = dict(REFERENCE_NET, no_hidden=width, no_blocks=blocks, dropout=dropout)
    kernel = dict(REFERENCE_KERNEL, no_hidden=kernel_hidden)
    conv = dict(REFERENCE_CONV, type=REFERENCE_CONVS[name])
    return {"net": net, "kernel": kernel, "conv": conv, "mask": dict(REFERENCE_MASK)}


def build_reference(code: ReferenceCode, settings: dict, classes: int) -> nn.Module:
    """`ResNet_sequence` of the CCNN code, one input channel (its ListOps data module feeds the
    token ids as one float channel), `classes` outputs."""
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a line per block
        return code.resnet.ResNet_sequence(
            in_channels=1,
            out_channels=classes,
            net_cfg=_namespace(settings["net"]),
            kernel_cfg=_namespace(settings["kernel"]),
            conv_cfg=_namespace(settings["conv"]),
            mask_cfg=_namespace(settings["mask"]),
        )


# ---- this project ----------------------------------------------------------------------------
def our_config(mode: str, tiny: bool = False):
    """The paper profile's ListOps `ccnn` model (what `pipelines.train` builds for that run)."""
    from data_prep.registry import DATASETS
    from pipelines.settings import hyper, load_profile
    from pipelines.train import model_config

    settings = load_profile("paper")
    spec = DATASETS[LISTOPS]
    shape = (TINY["length"],) if tiny else tuple(spec.input_shape)
    cfg = model_config(settings, vars(spec), hyper(settings, LISTOPS), "ccnn", shape)
    cfg = cfg.replace(mode=mode)
    if tiny:
        cfg = cfg.replace(
            blocks=TINY["blocks"], width=TINY["width"], kernel_hidden=TINY["kernel_hidden"]
        )
    return cfg


# ---- timing ----------------------------------------------------------------------------------
def train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    """One AdamW step of cross-entropy on (x, y): the same step for every model."""
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)

    return step


def count_params(model: nn.Module, kernel: Callable[[str], bool]) -> tuple[int, int]:
    """(all parameters, those of the kernel networks: names for which `kernel` holds)."""
    named = list(model.named_parameters())
    return (
        sum(p.numel() for _, p in named),
        sum(p.numel() for n, p in named if kernel(n)),
    )


def build_contenders(
    code: ReferenceCode, device: torch.device, tiny: bool = False, seed: int = 0
) -> list[Contender]:
    """Our two modes and the CCNN code's two convolutions on the same batch of token ids."""
    from implementations.torch.model import build_model

    cfg = our_config("trim", tiny)
    batch = TINY["batch"] if tiny else 8
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, cfg.vocab_size, (batch, *cfg.input_shape), generator=g)
    labels = torch.randint(0, cfg.out_size, (batch,), generator=g).to(device)
    tokens = tokens.to(device)
    out = []
    for name, mode in OUR_MODES.items():
        torch.manual_seed(seed)
        model = build_model(cfg.replace(mode=mode)).to(device)
        params = count_params(model, lambda n: n.startswith("kernel_net."))
        step = train_step(model, tokens, labels)
        out.append(Contender(name, "ours", step, *params, cfg.replace(mode=mode).to_dict()))
    floats = tokens.unsqueeze(1).float()  # (B, 1, L), as the CCNN code's ListOps collate_fn
    for name in REFERENCE_CONVS:
        settings = reference_settings(
            name,
            dropout=cfg.dropout,
            width=cfg.width,
            blocks=cfg.blocks,
            kernel_hidden=TINY["kernel_hidden"] if tiny else REFERENCE_KERNEL["no_hidden"],
        )
        torch.manual_seed(seed)
        model = build_reference(code, settings, cfg.out_size).to(device)
        params = count_params(model, lambda n: ".Kernel." in n)
        step = train_step(model, floats, labels)
        out.append(Contender(name, "reference", step, *params, settings))
    return out


def time_interleaved(
    contenders: Sequence[Contender],
    steps: int,
    rounds: int,
    warmup: int = 1,
    progress: Callable[[str], None] | None = None,
) -> dict[str, list[float]]:
    """ms of every timed step per contender: `warmup` untimed steps each, then `rounds` rounds
    of `steps` timed steps of each contender in turn, the first contender of a round rotating
    by one from round to round. `progress(name)` is called after every step."""
    for c in contenders:
        for _ in range(warmup):
            c.step()
            if progress:
                progress(c.name)
    times: dict[str, list[float]] = {c.name: [] for c in contenders}
    n = len(contenders)
    for r in range(rounds):
        for i in range(n):
            c = contenders[(r + i) % n]
            for _ in range(steps):
                t0 = time.perf_counter()
                c.step()
                times[c.name].append((time.perf_counter() - t0) * 1e3)
                if progress:
                    progress(c.name)
    return times


def pair_rows(
    contenders: Sequence[Contender], times: dict[str, list[float]], context: dict
) -> list[dict]:
    """One row per (ours, reference) pairing: medians, parameter counts, ratio = reference
    median / ours, goal_met = ratio >= GOAL_RATIO; `context` fills the remaining columns."""
    med = {name: statistics.median(ts) for name, ts in times.items()}
    low = {name: min(ts) for name, ts in times.items()}
    rows = []
    for a in (c for c in contenders if c.side == "ours"):
        for b in (c for c in contenders if c.side == "reference"):
            ratio = med[b.name] / med[a.name]
            rows.append(
                {
                    "ours": a.name,
                    "ours_ms": f"{med[a.name]:.1f}",
                    "ours_params": a.params,
                    "ours_kernel_params": a.kernel_params,
                    "reference": b.name,
                    "reference_ms": f"{med[b.name]:.1f}",
                    "reference_params": b.params,
                    "reference_kernel_params": b.kernel_params,
                    "ratio": f"{ratio:.3f}",
                    "goal": f">= {GOAL_RATIO}",
                    "goal_met": ratio >= GOAL_RATIO,
                    "ours_min_ms": f"{low[a.name]:.1f}",
                    "reference_min_ms": f"{low[b.name]:.1f}",
                    "ratio_of_min": f"{low[b.name] / low[a.name]:.3f}",
                    "timed_steps": f"{len(times[a.name])}/{len(times[b.name])}",
                    **{k: context.get(k, "") for k in CONTEXT},
                }
            )
    return rows


def write_results(
    out: Path, contenders: Sequence[Contender], times: dict[str, list[float]], meta: dict
) -> str:
    """The CSV (`pair_rows`) and OUT.json beside it (provenance, configs, every timing), both
    written atomically; returns the CSV text."""
    text = write_csv(out, pair_rows(contenders, times, meta), COLUMNS)
    models = {
        c.name: {
            "side": c.side,
            "median_ms": statistics.median(times[c.name]),
            "times_ms": [round(t, 3) for t in times[c.name]],
            "params": c.params,
            "kernel_params": c.kernel_params,
            "config": c.config,
        }
        for c in contenders
    }
    write_json(out.with_suffix(".json"), provenance(**meta, models=models))
    return text


def note(code: ReferenceCode) -> str:
    """The CSV note: where the CCNN code came from and what stood in for what."""
    text = f"CCNN code imported from {code.root}; models/__init__.py not run"
    if code.stand_ins:
        parts = [f"{n} ({STAND_INS[n]})" for n in code.stand_ins]
        text += "; empty stand-ins for absent packages no step uses: " + "; ".join(parts)
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--ccnn-path", required=True, help=f"root of a checkout of {CCNN_URL}")
    p.add_argument("--steps", type=int, default=1, help="timed steps per model and round")
    p.add_argument("--rounds", type=int, default=15, help="round-robin rounds over the models")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per model first")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.add_argument("--tiny", action="store_true", help="CCNN_{2,8}, L = 64, batch 2: smoke run")
    p.add_argument("--out", type=Path, default=Path("results/bench/ccnn.csv"))
    args = p.parse_args(argv)
    for key in ("steps", "rounds", "threads"):
        if getattr(args, key) < 1:
            p.error(f"--{key} must be >= 1, got {getattr(args, key)}")
    if args.warmup < 0:
        p.error(f"--warmup must be >= 0, got {args.warmup}")
    try:
        code = load_reference(args.ccnn_path)
    except CheckoutError as e:
        print(f"bench_ccnn: error: {e}", file=sys.stderr)
        return 2
    # the CCNN code's linspace_grid calls torch.meshgrid without `indexing` (a FutureWarning
    # of torch, not of this benchmark)
    warnings.filterwarnings("ignore", message="torch.meshgrid: in an upcoming release")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    t0 = time.perf_counter()
    contenders = build_contenders(code, device, tiny=args.tiny)
    total = (args.warmup + args.steps * args.rounds) * len(contenders)
    with tqdm(total=total, desc="ccnn steps", unit="step") as bar:

        def tick(name: str) -> None:
            bar.set_postfix_str(name)
            bar.update()

        times = time_interleaved(contenders, args.steps, args.rounds, args.warmup, tick)
    meta = {
        "threads": torch.get_num_threads(),
        "device": str(device),
        "torch": torch.__version__,
        "git_sha": provenance()["git_sha"],
        "ccnn_commit": code.commit,
        "note": note(code),
        "ccnn_path": str(code.root),
        "stand_ins": code.stand_ins,
        "steps": args.steps,
        "rounds": args.rounds,
        "warmup": args.warmup,
        "tiny": args.tiny,
        "seed": 0,
        "goal_ratio": GOAL_RATIO,
        "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    print(write_results(args.out, contenders, times, meta), end="")
    print(f"-> {args.out}, {args.out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
