"""Framework-neutral artefacts: `.npy` arrays per split + `meta.json`.

Layout under the dataset directory DIR (the raw inputs live in DIR/raw and are never touched):

    DIR/meta.json                      written last: its presence means "complete"
    DIR/<split>/<array>.npy            e.g. train/inputs.npy, train/targets.npy
    DIR/<extra files>                  e.g. vocab.json, normaliser/x_mean.npy

Everything is first written into a temporary directory inside DIR and moved into place only
when the whole preparation succeeded; on any error the temporary directory is removed, so no
half-written artefact is ever left behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from data_prep.errors import DataError

META_NAME = "meta.json"
FORMAT_VERSION = 1


def _git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and sha else None


def provenance(seed: int | None, started: float) -> dict[str, Any]:
    """What every result file carries: git SHA, package versions, seed, wall time."""
    versions: dict[str, str] = {"numpy": np.__version__, "python": platform.python_version()}
    for mod in ("scipy", "h5py", "PIL"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:  # pragma: no cover - optional
            pass
    return {
        "git_sha": _git_sha(),
        "versions": versions,
        "seed": seed,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_seconds": round(time.time() - started, 3),
        "host": platform.node(),
    }


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def hash_raw_files(paths: Iterable[Path], root: Path, max_listed: int = 32) -> dict[str, Any]:
    """SHA-256 of the raw inputs, relative to `root`.

    Up to `max_listed` files are listed one by one; beyond that (Pathfinder's 200k PNGs) one
    combined digest over the sorted "relpath sha256" lines is recorded with the file count.
    """
    items = sorted((str(Path(p).relative_to(root)), Path(p)) for p in paths)
    digests = {rel: sha256_file(p) for rel, p in items}
    if len(digests) <= max_listed:
        return digests
    combined = hashlib.sha256()
    for rel, d in digests.items():
        combined.update(f"{rel} {d}\n".encode())
    return {"combined_sha256": combined.hexdigest(), "n_files": len(digests)}


class ArtefactWriter:
    """Atomic writer for one dataset directory (use as a context manager).

    >>> with ArtefactWriter(out_dir) as w:          # doctest: +SKIP
    ...     w.save("train", "inputs", x)
    ...     w.commit(meta)
    """

    def __init__(self, out_dir: Path | str) -> None:
        self.out_dir = Path(out_dir)
        self.tmp: Path | None = None
        self.arrays: dict[str, dict[str, dict[str, Any]]] = {}
        self.extras: list[str] = []
        self._committed = False

    def __enter__(self) -> ArtefactWriter:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=".tmp-artefacts-", dir=self.out_dir))
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.tmp is not None and self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)
        if exc_type is None and not self._committed:
            raise DataError(f"artefacts for {self.out_dir} were written but never committed")

    def _path(self, split: str, name: str) -> Path:
        assert self.tmp is not None, "use ArtefactWriter as a context manager"
        d = self.tmp / split
        d.mkdir(exist_ok=True)
        return d / f"{name}.npy"

    def _record(self, split: str, name: str, arr: np.ndarray) -> None:
        self.arrays.setdefault(split, {})[name] = {
            "file": f"{split}/{name}.npy",
            "shape": list(arr.shape),
            "dtype": str(arr.dtype),
        }

    def save(self, split: str, name: str, arr: np.ndarray) -> None:
        arr = np.ascontiguousarray(arr)
        np.save(self._path(split, name), arr, allow_pickle=False)
        self._record(split, name, arr)

    def open(self, split: str, name: str, shape: tuple[int, ...], dtype: Any) -> np.memmap:
        """A writable memory-mapped `.npy` to fill in place (for arrays larger than memory)."""
        mm = np.lib.format.open_memmap(self._path(split, name), mode="w+", dtype=dtype, shape=shape)
        self._record(split, name, mm)
        return mm

    def save_extra(self, relpath: str, data: np.ndarray | dict | list) -> None:
        assert self.tmp is not None
        p = self.tmp / relpath
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, np.ndarray):
            np.save(p, data, allow_pickle=False)
        else:
            p.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
        self.extras.append(relpath)

    def commit(self, meta: dict[str, Any]) -> dict[str, Any]:
        """Validate split sizes, write meta.json and move everything into place atomically."""
        assert self.tmp is not None
        splits: dict[str, Any] = {}
        for split, arrays in self.arrays.items():
            sizes = {a["shape"][0] for a in arrays.values()}
            if len(sizes) != 1:
                raise DataError(
                    f"split '{split}' of {self.out_dir}: arrays disagree on the number of "
                    f"examples {sorted(sizes)}; every array of a split needs the same first axis"
                )
            splits[split] = {"size": sizes.pop(), "arrays": arrays}
        meta = dict(meta)
        meta["format_version"] = FORMAT_VERSION
        meta["splits"] = splits
        meta["extras"] = sorted(self.extras)
        (self.tmp / META_NAME).write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
        # Invalidate the old artefact first (meta.json marks completeness), then swap.
        final_meta = self.out_dir / META_NAME
        if final_meta.exists():
            final_meta.unlink()
        for entry in sorted(self.tmp.iterdir()):
            if entry.name == META_NAME:
                continue
            target = self.out_dir / entry.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            os.replace(entry, target)
        os.replace(self.tmp / META_NAME, final_meta)
        self._committed = True
        return meta


def load_meta(root: Path | str) -> dict[str, Any]:
    p = Path(root) / META_NAME
    if not p.is_file():
        raise DataError(
            f"{p} not found: the artefacts in {root} are missing or incomplete; run "
            f"`python -m data_prep <dataset> --source generate|download --out {root}`"
        )
    return json.loads(p.read_text())


def resolve_split(meta: dict[str, Any], split: str) -> str:
    """Split aliases (IMDB: val is the test set, as in LRA/S4/CCNN)."""
    split = meta.get("split_aliases", {}).get(split, split)
    if split not in meta["splits"]:
        raise DataError(
            f"split '{split}' not in the artefacts of {meta['dataset']}; "
            f"available: {sorted(meta['splits'])} (aliases: {meta.get('split_aliases', {})})"
        )
    return split


def load_split(root: Path | str, split: str, mmap: bool = True) -> dict[str, np.ndarray]:
    """All arrays of one split, memory-mapped read-only by default."""
    root = Path(root)
    meta = load_meta(root)
    split = resolve_split(meta, split)
    out = {}
    for name, info in meta["splits"][split]["arrays"].items():
        out[name] = np.load(root / info["file"], mmap_mode="r" if mmap else None)
    return out


def split_indices(n: int, fractions: tuple[float, ...], seed: int) -> list[np.ndarray]:
    """Seeded random split of range(n) into parts of the given fractions (the last takes the rest).

    Each part is returned sorted, so the artefact keeps the raw order within a split.
    """
    perm = np.random.default_rng(seed).permutation(n)
    parts, start = [], 0
    for i, f in enumerate(fractions):
        stop = n if i == len(fractions) - 1 else start + round(f * n)
        parts.append(np.sort(perm[start:stop]))
        start = stop
    return parts


def random_split_indices(lengths: tuple[int, ...], seed: int) -> list[np.ndarray]:
    """The index sets `torch.utils.data.random_split(range(sum(lengths)), lengths,
    generator=torch.Generator().manual_seed(seed))` gives (S4's and CCNN's LRA splits): the
    same torch.randperm, cut into consecutive parts. Each part is returned sorted (the artefact
    keeps the raw order within a split); the sets are identical to the reference's."""
    import torch

    n = int(sum(lengths))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    parts, start = [], 0
    for length in lengths:
        parts.append(np.sort(perm[start : start + length]))
        start += length
    return parts
