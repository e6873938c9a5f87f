"""CLI: `python -m data_prep <dataset> --source download|generate --out DIR [--size N] [--seed S]`.
Datasets: listops, text, retrieval, image, pathfinder, pathx, cifar10, cifar100,
darcyflow, cosmic.

    python -m data_prep lra-extract --out CACHE [--file lra_release.gz] [--url MIRROR]
        one pass over the LRA archive for ListOps, Retrieval, Pathfinder and Path-X
    python -m data_prep verify [DIR]
        check downloaded raw files and artefacts under DIR (default data/): one line each
"""

from __future__ import annotations

import argparse
import sys

from data_prep.errors import DataError
from data_prep.pipeline import prepare
from data_prep.registry import DATASETS


def lra_extract_main(argv: list[str]) -> int:
    from data_prep.lra.extract import extract_shared

    p = argparse.ArgumentParser(prog="python -m data_prep lra-extract", description=__doc__)
    p.add_argument("--out", required=True, help="shared cache directory")
    p.add_argument("--file", action="append", default=[], help="lra_release.gz or its directory")
    p.add_argument("--url", action="append", default=[], help="mirror URL of lra_release.gz")
    p.add_argument("--checksums", default=None)
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    try:
        m = extract_shared(
            a.out, files=a.file, urls=a.url, checksums=a.checksums, progress=not a.no_progress
        )
    except DataError as e:
        print(f"data_prep: error: {e}", file=sys.stderr)
        return 1
    print(f"lra-extract: {m['root']} holds {', '.join(m['datasets'])}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["lra-extract"]:
        return lra_extract_main(argv[1:])
    if argv[:1] == ["verify"]:
        from data_prep.verify import main as verify_main

        return verify_main(argv[1:])
    p = argparse.ArgumentParser(prog="python -m data_prep", description=__doc__)
    p.add_argument("dataset", choices=[*DATASETS, "lra-extract", "verify"])
    p.add_argument("--source", choices=("download", "generate"), required=True)
    p.add_argument("--out", required=True, help="dataset directory (raw/ + artefacts)")
    p.add_argument("--size", type=int, default=None, help="generate: training examples")
    p.add_argument("--seed", type=int, default=None, help="generator seed (default 0)")
    p.add_argument("--url", action="append", default=[], help="mirror URL, or KEY=URL")
    p.add_argument("--file", action="append", default=[], help="local raw file/dir, or KEY=PATH")
    p.add_argument(
        "--loader",
        default="auto",
        choices=("auto", "hf", "tfds", "raw"),
        help="IMDB/CIFAR: HF datasets, TFDS or the raw archive (auto: in that order)",
    )
    p.add_argument("--checksums", default=None, help="checksum file (default data_prep/...json)")
    p.add_argument("--cache", default=None, help="where downloaded archives go (shared)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--fast",
        action="store_true",
        help="generate: the quick approximate path where the faithful one is slow (DarcyFlow: "
        "solve at 85 x 85 instead of 421 + splines); meta.json 'distribution' says which",
    )
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="generate: a generator setting (ListOps: min_length=N, max_length=N, LRA's own "
        "generator flags); an unknown key is an error that lists the accepted ones",
    )
    a = p.parse_args(argv)
    try:
        meta = prepare(
            a.dataset,
            a.source,
            a.out,
            size=a.size,
            seed=a.seed,
            urls=a.url,
            files=a.file,
            loader=a.loader,
            checksums=a.checksums,
            cache=a.cache,
            progress=not a.no_progress,
            fast=a.fast,
            options=a.option,
        )
    except DataError as e:
        print(f"data_prep: error: {e}", file=sys.stderr)
        return 1
    sizes = {k: v["size"] for k, v in meta["splits"].items()}
    sub = " (FORMAT SUBSTITUTE, not real data)" if meta.get("substitute") else ""
    print(f"{a.dataset}: wrote {a.out}/meta.json, splits {sizes}{sub}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
