"""What every result file records: git SHA, package versions, device, seed, config, wall time."""

from __future__ import annotations

import csv
import importlib.metadata
import io
import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path

PACKAGES = ("numpy", "torch", "jax", "jaxlib", "flax", "optax", "snakemake")


def git_sha() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def torch_device() -> str:
    from implementations.torch.train import device_name

    return device_name()


def jax_device() -> str:
    from implementations.jax.train import device_name

    return device_name()


def provenance(**extra) -> dict:
    return {"git_sha": git_sha(), "versions": versions(), "host": platform.node(), **extra}


def write_atomic(path: str | Path, text: str) -> None:
    """Write to a temporary file next to `path`, then rename: never a half-written file."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """`data` to a temporary file in the same directory, flushed to disk, then renamed over
    `path`: never a half-written file (results, checkpoints)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, obj) -> None:
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_csv(path: str | Path, rows: list[dict], columns: list[str] | None = None) -> str:
    """`rows` as a CSV (header `columns`, default the first row's keys) written atomically;
    returns the text (a benchmark prints it)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns or list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    write_atomic(path, buf.getvalue())
    return buf.getvalue()
