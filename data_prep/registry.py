"""The ten datasets of the paper (Appx. D.1-D.3) as data: what Snakemake rules and configs read.

Per dataset: family, task, data dimension, input kind, the paper's full-size input shape,
channels / vocabulary, classes / outputs, splits, download sources (URLs, mirrors, ecosystem
loaders, published checksums) and the generator defaults. `artefact_paths` lists the files
`python -m data_prep <name> --out DIR` produces, for rule outputs.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from data_prep.errors import DataError

Task = Literal["global", "dense", "retrieval"]


@dataclass(frozen=True)
class Source:
    """One raw file (or loader) a dataset needs; `key` is its name in checksums.json.

    `urls` then `mirrors` are tried in this order (each attempt is logged). `manual` names
    places a person can fetch the file from by hand (a Google Drive folder): they appear in the
    error when every URL failed. `size` is the download size in bytes (exact when published,
    approximate otherwise: the approximate value in checksums.json is what trust on first use
    checks); `unpacked_size` is what extracting it adds on disk (the disk-space check).
    """

    key: str
    urls: tuple[str, ...] = ()
    mirrors: tuple[str, ...] = ()
    published: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    pattern: str = ""  # fnmatch pattern a user --file name may match instead of `key`
    manual: tuple[str, ...] = ()
    size: int = 0
    unpacked_size: int = 0

    def matches(self, filename: str) -> bool:
        return filename == self.key or bool(self.pattern and fnmatch(filename, self.pattern))


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    family: str
    module: str
    task: Task
    data_dim: int
    input_kind: Literal["tokens", "continuous"]
    input_shape: tuple[int, ...]  # spatial shape at full size (paper), e.g. (2048,) or (32, 32)
    in_channels: int | None  # continuous inputs
    vocab_size: int | None  # token inputs: the value on full data (approximate for IMDB)
    num_classes: int | None  # global / retrieval tasks
    out_channels: int | None  # dense tasks
    splits: tuple[str, ...]
    arrays: tuple[str, ...]  # arrays per split
    full_sizes: dict[str, int]
    sources: tuple[Source, ...]
    loaders: tuple[str, ...] = ()  # ecosystem loaders tried before the raw archive
    split_aliases: dict[str, str] = field(default_factory=dict)
    extras: tuple[str, ...] = ()  # extra artefact files (relative paths)
    generate_size: int = 64  # default --size for --source generate (training examples)
    generate_seed: int = 0
    substitute_when_generated: bool = False  # generated data is a format substitute
    # generated data vs the real distribution: faithful | approximate | format-only, and why
    distribution: tuple[str, str] = ("format-only", "format-identical substitute")
    notes: str = ""

    def load_module(self) -> ModuleType:
        return importlib.import_module(self.module)


LRA_URL = "https://storage.googleapis.com/long-range-arena/lra_release.gz"
LRA = Source(
    key="lra_release.gz",
    urls=(LRA_URL,),
    note="gzipped tar despite the name, ~8.2 GB; no published checksum (trust on first use). "
    "An already extracted `lra_release` directory can be passed with --file.",
    size=8_200_000_000,
    unpacked_size=18_600_000_000,
)
IMDB = Source(
    key="aclImdb_v1.tar.gz",
    urls=("https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",),
    published={
        "sha256": "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe",
        "size": 84125825,
    },
    size=84125825,
    unpacked_size=500_000_000,
)
CIFAR10 = Source(
    key="cifar-10-python.tar.gz",
    urls=("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
    published={
        "sha256": "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
        "md5": "c58f30108f718f92721af3b95e74349a",
        "size": 170498071,
    },
    size=170498071,
    unpacked_size=190_000_000,
)
CIFAR100 = Source(
    key="cifar-100-python.tar.gz",
    urls=("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",),
    published={
        "sha256": "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7",
        "md5": "eb9058c3a382ffc7106e4002c42a8d85",
        "size": 169001437,
    },
    size=169001437,
    unpacked_size=190_000_000,
)
# NAS-Bench-360's original bucket (pde-xd.s3.amazonaws.com) has answered 403 since 2022; the
# maintainers moved every file to a Google Drive folder (README, Oct 2022), which serves a
# confirmation page instead of a large file to scripts. The PINO authors host the same DarcyFlow
# files (neuraloperator/physics_informed download_data.py); Zenodo record 4295902 holds the
# deepCR tars. None of these could be checked from the project's machines: candidates, tried in
# order, each verified (HTML pages and far-off sizes are refused before trusting a first copy).
NB360_DRIVE = "https://drive.google.com/drive/folders/1OOp6UrCiP79mTIkCrUdjjHWDo8K0bJUw"
PINO = "https://hkzdata.s3.us-west-2.amazonaws.com/PINO"
DARCY = tuple(
    Source(
        key=f"piececonst_r421_N1024_smooth{i}.mat",
        urls=(f"{PINO}/data/piececonst_r421_N1024_smooth{i}.mat",),
        mirrors=(
            f"{PINO}/piececonst_r421_N1024_smooth{i}.mat",
            f"https://pde-xd.s3.amazonaws.com/piececonst_r421_N1024_smooth{i}.mat",
        ),
        manual=(
            f"NAS-Bench-360 shared drive {NB360_DRIVE}",
            "the FNO authors' Google Drive file Darcy_421.zip (holds both .mat files; pass the "
            "zip itself with --file or --url)",
        ),
        note="no published checksum (trust on first use)",
        pattern=f"piececonst_r*_N*_smooth{i}.mat",
        size=1_600_000_000,
    )
    for i in (1, 2)
)
ZENODO = "https://zenodo.org/record/4295902/files"
COSMIC = tuple(
    Source(
        key=f"deepCR.ACS-WFC.{s}.tar",
        urls=(f"{ZENODO}/deepCR.ACS-WFC.{s}.tar?download=1",),
        mirrors=(
            f"https://zenodo.org/records/4295902/files/deepCR.ACS-WFC.{s}.tar?download=1",
            f"https://pde-xd.s3.amazonaws.com/cosmic/deepCR.ACS-WFC.{s}.tar",
        ),
        manual=(f"NAS-Bench-360 shared drive {NB360_DRIVE}",),
        note="no published checksum (trust on first use)",
        pattern=f"*{s}*.tar*",
        size=size,
        unpacked_size=size or 2_000_000_000,
    )
    for s, size in (("train", 6_500_000_000), ("test", 0))  # test tar: size not published
)

SNAKES = ("faithful", "Linsley's snakes2 with LRA's settings; pixel statistics in reference bands")
# generated data stands in for the real data only in format
SUBSTITUTE = dict(
    distribution=("format-only", "format-identical substitute: the real data cannot be generated"),
    substitute_when_generated=True,
)
# What the datasets share: an entry below states only what is its own.
_COMMON = dict(
    task="global",
    splits=("train", "val", "test"),
    in_channels=None,
    vocab_size=None,
    num_classes=None,
    out_channels=None,
)
_TOKENS = dict(
    _COMMON,
    data_dim=1,
    input_kind="tokens",
    arrays=("inputs", "targets", "lengths"),
    extras=("vocab.json",),
)
_CONTINUOUS = dict(_COMMON, input_kind="continuous", arrays=("inputs", "targets"))
_CIFAR = dict(  # CIFAR-10 and CIFAR-100: one reader, one layout, the same splits
    family="cifar",
    module="data_prep.cifar",
    data_dim=2,
    input_shape=(32, 32),
    in_channels=3,
    full_sizes={"train": 45000, "val": 5000, "test": 10000},
    **SUBSTITUTE,
)


def _tokens(**fields: Any) -> DatasetSpec:
    return DatasetSpec(**{**_TOKENS, **fields})


def _continuous(**fields: Any) -> DatasetSpec:
    return DatasetSpec(**{**_CONTINUOUS, **fields})


DATASETS: dict[str, DatasetSpec] = {
    s.name: s
    for s in (
        _tokens(
            name="listops",
            family="lra",
            module="data_prep.lra.listops",
            input_shape=(2048,),
            vocab_size=18,
            num_classes=10,
            full_sizes={"train": 96000, "val": 2000, "test": 2000},
            sources=(LRA,),
            generate_size=96,
            distribution=(
                "faithful",
                "LRA listops.py tree law; audit: lengths KS p = 0.73, labels chi2 p = 0.36",
            ),
        ),
        _tokens(
            name="text",
            family="lra",
            module="data_prep.lra.text",
            input_shape=(4096,),
            vocab_size=135,
            num_classes=2,
            splits=("train", "test"),
            full_sizes={"train": 25000, "test": 25000},
            sources=(IMDB,),
            loaders=("hf:stanfordnlp/imdb", "tfds:imdb_reviews"),
            split_aliases={"val": "test"},
            generate_size=64,
            **SUBSTITUTE,
            notes="validation = test, as in LRA, S4 and CCNN",
        ),
        _tokens(
            name="retrieval",
            family="lra",
            module="data_prep.lra.retrieval",
            task="retrieval",
            input_shape=(4000,),
            vocab_size=101,
            num_classes=2,
            full_sizes={"train": 147086, "val": 18090, "test": 17437},
            sources=(LRA,),
            generate_size=64,
            **SUBSTITUTE,
            notes="inputs (N, 2, 4000): the two documents of a pair; lengths (N, 2)",
        ),
        _continuous(
            name="image",
            family="lra",
            module="data_prep.lra.image",
            data_dim=1,
            input_shape=(1024,),
            in_channels=1,
            num_classes=10,
            full_sizes={"train": 45000, "val": 5000, "test": 10000},
            sources=(CIFAR10,),
            loaders=("hf:uoft-cs/cifar10", "tfds:cifar10"),
            generate_size=90,
            **SUBSTITUTE,
        ),
        _continuous(
            name="pathfinder",
            family="lra",
            module="data_prep.lra.pathfinder",
            data_dim=1,
            input_shape=(1024,),
            in_channels=1,
            num_classes=2,
            full_sizes={"train": 160000, "val": 20000, "test": 20000},
            sources=(LRA,),
            generate_size=80,
            distribution=SNAKES,
        ),
        _continuous(
            name="pathx",
            family="lra",
            module="data_prep.lra.pathfinder",
            data_dim=1,
            input_shape=(16384,),
            in_channels=1,
            num_classes=2,
            full_sizes={"train": 160000, "val": 20000, "test": 20000},
            sources=(LRA,),
            generate_size=40,
            distribution=SNAKES,
        ),
        _continuous(
            name="cifar10",
            **_CIFAR,
            num_classes=10,
            sources=(CIFAR10,),
            loaders=("hf:uoft-cs/cifar10", "tfds:cifar10"),
            generate_size=90,
        ),
        _continuous(
            name="cifar100",
            **_CIFAR,
            num_classes=100,
            sources=(CIFAR100,),
            loaders=("hf:uoft-cs/cifar100", "tfds:cifar100"),
            generate_size=180,
        ),
        _continuous(
            name="darcyflow",
            family="nasbench360",
            module="data_prep.darcyflow",
            task="dense",
            data_dim=2,
            input_shape=(85, 85),
            in_channels=3,
            out_channels=1,
            full_sizes={"train": 1000, "val": 100, "test": 100},
            sources=DARCY,
            extras=(
                "normaliser/x_mean.npy",
                "normaliser/x_std.npy",
                "normaliser/y_mean.npy",
                "normaliser/y_std.npy",
            ),
            generate_size=20,
            distribution=(
                "faithful",
                "FNO recipe solved at 421 with solve_gwf.m's splines, subsampled to 85",
            ),
            notes="val = train[900:1000] (NAS-Bench-360 search phase): search on train[:900]",
        ),
        _continuous(
            name="cosmic",
            family="nasbench360",
            module="data_prep.cosmic",
            task="dense",
            data_dim=2,
            input_shape=(128, 128),
            in_channels=1,
            out_channels=1,
            arrays=("inputs", "targets", "ignore", "sky"),
            full_sizes={"train": 4347, "val": 483, "test": 420},
            sources=COSMIC,
            generate_size=18,
            distribution=(
                "format-only",
                "simulated HST-like fields and cosmic rays, not fitted to the deepCR data",
            ),
        ),
    )
}


def get(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(f"unknown dataset '{name}'; valid: {', '.join(DATASETS)}") from None


def artefact_paths(name: str, root: Path | str) -> list[Path]:
    """Every file `python -m data_prep <name> --out root` writes (meta.json first)."""
    spec, root = get(name), Path(root)
    paths = [root / "meta.json"]
    for split in spec.splits:
        paths += [root / split / f"{a}.npy" for a in spec.arrays]
    paths += [root / e for e in spec.extras]
    return paths
