"""One pass over the LRA archive for all four LRA datasets.

`lra_release.gz` (8.2 GB gzipped tar, 18.6 GB unpacked) holds ListOps, Retrieval, Pathfinder
and Path-X: decompressing it once per dataset would take four passes. `extract_shared` reads
it once, keeps the members all four need, and writes them to a shared cache:

    CACHE/raw/downloads/lra_release.gz     the archive (downloaded unless given with --file)
    CACHE/raw/lra_extracted/...            the kept members, in the archive's own layout
    CACHE/manifest.json                    written last: what was kept, archive SHA-256,
                                           provenance; its presence means "complete"

Each data job then reads the extracted directory (`--file CACHE/raw/lra_extracted`):

    python -m data_prep lra-extract --out CACHE [--file lra_release.gz | --url MIRROR]
    python -m data_prep listops --source download --out DIR --file CACHE/raw/lra_extracted

In the workflow this is the `lra_extract` rule (pipelines/rules/data.smk).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from data_prep import download as dl
from data_prep import registry
from data_prep.artefacts import provenance
from data_prep.common import Context, find_dir, resolve_source
from data_prep.errors import DataError

# What each LRA dataset reads from the archive (a path fragment of its members).
MEMBERS = {
    "listops": "listops-1000/",
    "retrieval": "tsv_data/",
    "pathfinder": "pathfinder32/curv_contour_length_14/",
    "pathx": "pathfinder128/curv_contour_length_14/",
}
MANIFEST = "manifest.json"


def extracted_dir(cache: Path | str) -> Path:
    return Path(cache) / "raw" / "lra_extracted"


def extract_shared(
    cache: Path | str,
    *,
    files: Sequence[str] = (),
    urls: Sequence[str] = (),
    checksums: Path | str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Extract the members of all four LRA datasets in one pass; returns the manifest."""
    cache = Path(cache)
    done = cache / MANIFEST
    if done.is_file():
        dl.say(f"lra: {done} exists: the shared extraction is complete, nothing to do")
        return json.loads(done.read_text())
    started = time.time()
    ctx = Context(
        spec=registry.get("listops"),
        out_dir=cache,
        source="download",
        urls=tuple(urls),
        files=tuple(files),
        checksums=Path(checksums) if checksums else None,
        progress=progress,
    )
    archive = resolve_source(ctx, registry.LRA, allow_dir=True)
    root = extracted_dir(cache)
    if archive.is_dir():  # an already extracted release: nothing to decompress
        root = archive
        names: list[str] = []
    else:
        dl.say(f"lra: one pass over {archive} for {', '.join(MEMBERS)}")
        names = dl.extract_tar(
            archive, root, members_with=list(MEMBERS.values()), progress=progress
        )
    found = {}
    for name, frag in MEMBERS.items():
        try:
            found[name] = str(find_dir(root, frag.rstrip("/")).relative_to(root))
        except DataError as e:
            raise DataError(
                f"{archive}: no '{frag}' member for {name} after extraction ({e}); the archive "
                "is not the LRA release or its layout changed"
            ) from e
    manifest = {
        "archive": str(archive),
        "root": str(root),
        "datasets": found,
        "n_members": len(names),
        "source_detail": ctx.source_detail,
        "provenance": provenance(None, started),
    }
    cache.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".manifest-", dir=cache)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(manifest, indent=1) + "\n")
    os.replace(tmp, done)
    return manifest
