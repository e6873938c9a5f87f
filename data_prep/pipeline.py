"""One entry for every dataset: raw layout (download or generator) -> the same preprocessing ->
artefacts. `--source generate` writes the real raw layout into
DIR/raw and then runs exactly the parser the download path runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from data_prep import registry
from data_prep.common import Context
from data_prep.errors import DataError


def prepare(
    name: str,
    source: str,
    out: Path | str,
    *,
    size: int | None = None,
    seed: int | None = None,
    urls: Sequence[str] = (),
    files: Sequence[str] = (),
    loader: str = "auto",
    checksums: Path | str | None = None,
    cache: Path | str | None = None,
    progress: bool = True,
    fast: bool = False,
    options: Sequence[str] = (),
) -> dict[str, Any]:
    """Prepare dataset `name` into `out`; returns the meta.json content. `options` are the
    generator's own KEY=VALUE settings (`GENERATE_OPTIONS` of the dataset module)."""
    spec = registry.get(name)
    if source not in ("download", "generate"):
        raise DataError(f"--source must be 'download' or 'generate', got '{source}'")
    if loader not in ("auto", "hf", "tfds", "raw"):
        raise DataError(f"--loader must be one of auto, hf, tfds, raw; got '{loader}'")
    if size is not None and size < 1:
        raise DataError(f"--size must be a positive number of training examples, got {size}")
    ctx = Context(
        spec=spec,
        out_dir=Path(out),
        source=source,
        size=size,
        seed=spec.generate_seed if seed is None else int(seed),
        urls=tuple(urls),
        files=tuple(files),
        loader=loader,
        checksums=Path(checksums) if checksums else None,
        cache=Path(cache) if cache else None,
        progress=progress,
        fast=fast,
    )
    mod = spec.load_module()
    ctx.options = parse_options(name, source, options, getattr(mod, "GENERATE_OPTIONS", {}))
    if source == "generate":
        mod.generate(ctx)
        raw = ctx.raw_dir
    else:
        raw = mod.fetch(ctx)
    return mod.preprocess(ctx, raw)


def parse_options(
    name: str, source: str, options: Sequence[str], accepted: dict[str, type]
) -> dict[str, Any]:
    """`KEY=VALUE` generator options -> {key: typed value}; one clear error for a bad one."""
    if options and source != "generate":
        raise DataError(f"{name}: --option applies to --source generate only, got {list(options)}")
    out: dict[str, Any] = {}
    for item in options:
        key, sep, value = str(item).partition("=")
        if not sep or key not in accepted:
            known = ", ".join(f"{k}=<{t.__name__}>" for k, t in accepted.items()) or "none"
            raise DataError(
                f"{name}: unknown generator option '{item}'; this generator accepts: {known}"
            )
        try:
            out[key] = accepted[key](value)
        except ValueError:
            raise DataError(
                f"{name}: generator option {key}={value!r} is not a {accepted[key].__name__}"
            ) from None
    return out
