"""`python -m data_prep verify [DIR]`: one line per dataset saying
whether its downloaded raw files and its artefacts are intact, and what to do if not.

Checks, for DIR/<dataset> of every dataset in the registry (and the shared LRA cache DIR/lra):
- raw files (DIR/<dataset>/raw/downloads/<key>, and local files recorded in meta.json): size
  first, then SHA-256 (and the published MD5) against data_prep/checksums.json, and the SHA-256
  against the one meta.json recorded when the artefacts were built;
- artefacts: meta.json present, every array file present with the shape and dtype meta.json
  records, every extra file present.
Nothing is written (no trust on first use here: an unknown checksum is reported, not recorded).
Exit status 1 if any dataset present has a problem.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from data_prep import download as dl
from data_prep import registry
from data_prep.errors import DataError


def check_raw(path: Path, key: str, recorded: str | None = None) -> str | None:
    """None if `path` matches checksums.json (and the SHA-256 meta.json recorded), else why."""
    known = dl.load_checksums().get(key, {})
    try:
        dl.precheck(path, key, known, str(path))
    except DataError as e:
        return str(e).split(". ")[0]
    got = dl.file_digests(path)
    for field in ("sha256", "md5"):
        if known.get(field) and known[field] != got[field]:
            return f"{path.name}: {field} {got[field][:12]}... != {known[field][:12]}... expected"
    if recorded and recorded != got["sha256"]:
        return f"{path.name}: sha256 differs from the one recorded in meta.json (file replaced?)"
    return None


def check_artefacts(root: Path, meta: dict[str, Any]) -> list[str]:
    problems = []
    for split, info in meta.get("splits", {}).items():
        for a in info["arrays"].values():
            f = root / a["file"]
            if not f.is_file():
                problems.append(f"{a['file']} missing")
                continue
            try:
                arr = np.load(f, mmap_mode="r")
            except Exception as e:  # a truncated .npy
                problems.append(f"{a['file']} unreadable ({type(e).__name__})")
                continue
            if list(arr.shape) != a["shape"] or str(arr.dtype) != a["dtype"]:
                problems.append(
                    f"{a['file']} is {list(arr.shape)} {arr.dtype}, meta.json says "
                    f"{a['shape']} {a['dtype']}"
                )
        if not problems and info["size"] != next(iter(info["arrays"].values()))["shape"][0]:
            problems.append(f"split {split}: size {info['size']} disagrees with its arrays")
    problems += [f"{e} missing" for e in meta.get("extras", []) if not (root / e).exists()]
    return problems


def verify_dataset(root: Path, name: str) -> tuple[str, str]:
    """(status, line) with status in ok | problem | absent."""
    spec = registry.get(name)
    meta_path = root / "meta.json"
    if not root.exists():
        return "absent", f"not prepared ({root}); python -m data_prep {name} --out {root} ..."
    problems: list[str] = []
    raw_problems: list[str] = []
    meta: dict[str, Any] = {}
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        problems += check_artefacts(root, meta)
    else:
        problems.append("meta.json missing (preparation incomplete or interrupted)")
    detail = meta.get("source_detail") or {}
    checked = 0
    for src in spec.sources:
        rec = detail.get(src.key, {}) if isinstance(detail.get(src.key), dict) else {}
        candidates = [root / "raw" / "downloads" / src.key]
        if rec.get("local_file"):
            candidates.append(Path(rec["local_file"]))
        for p in candidates:
            if p.is_file():
                checked += 1
                why = check_raw(p, p.name, rec.get("sha256"))
                if why:
                    raw_problems.append(why)
    substitute = " (generated FORMAT SUBSTITUTE)" if meta.get("substitute") else ""
    generated = " (generated)" if meta.get("source") == "generate" else ""
    if raw_problems:
        return "problem", (
            "raw: " + "; ".join(raw_problems) + f". Fix: delete the file(s) and rerun "
            f"python -m data_prep {name} --source download --out {root} (or pass a good copy "
            "with --file)"
        )
    if problems:
        return "problem", (
            "artefacts: " + "; ".join(problems[:4]) + f". Fix: rerun python -m data_prep {name} "
            f"--source {meta.get('source', 'download')} --out {root}"
        )
    raw = f"{checked} raw file(s) verified" if checked else "no raw file kept"
    splits = ", ".join(f"{s} {v['size']}" for s, v in meta["splits"].items())
    return "ok", f"ok: {splits}; {raw}{generated or substitute}"


def verify_lra_cache(root: Path) -> tuple[str, str]:
    if not root.exists():
        return "absent", f"no shared LRA cache ({root})"
    archive = root / "raw" / "downloads" / registry.LRA.key
    if archive.is_file() and (why := check_raw(archive, archive.name)):
        return "problem", f"raw: {why}. Fix: delete it and rerun python -m data_prep lra-extract"
    if not (root / "manifest.json").is_file():
        return "problem", (
            f"manifest.json missing: extraction incomplete. Fix: python -m data_prep "
            f"lra-extract --out {root}"
        )
    m = json.loads((root / "manifest.json").read_text())
    missing = [d for d, rel in m["datasets"].items() if not (Path(m["root"]) / rel).is_dir()]
    if missing:
        return "problem", (
            f"extracted members of {missing} missing. Fix: delete {root} and rerun "
            f"python -m data_prep lra-extract --out {root}"
        )
    return "ok", f"ok: {', '.join(m['datasets'])} extracted"


def verify_all(data_dir: Path) -> tuple[int, list[str]]:
    lines, bad = [], 0
    rows = [("lra (cache)", *verify_lra_cache(data_dir / "lra"))]
    rows += [(name, *verify_dataset(data_dir / name, name)) for name in registry.DATASETS]
    for name, status, line in rows:
        bad += status == "problem"
        lines.append(f"{name:12s} {line}")
    return bad, lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m data_prep verify", description=__doc__)
    p.add_argument("dir", nargs="?", default="data", help="data directory (default: data)")
    a = p.parse_args(argv)
    bad, lines = verify_all(Path(a.dir))
    for line in lines:
        print(line)
    print(f"verify: {bad} dataset(s) with problems" if bad else "verify: all present data ok")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
