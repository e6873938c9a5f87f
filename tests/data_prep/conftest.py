"""Shared fixtures: tiny generated datasets (built once per session) and a private checksum
file so tests never write data_prep/checksums.json. Nothing here touches the network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_prep.pipeline import prepare

TINY = {
    "listops": 24,
    "text": 16,
    "retrieval": 16,
    "image": 27,
    "pathfinder": 24,
    "pathx": 8,
    "cifar10": 27,
    "cifar100": 27,
    "darcyflow": 10,
    "cosmic": 9,
}


@pytest.fixture(autouse=True)
def private_checksums(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    p = tmp_path / "checksums.json"
    p.write_text(json.dumps({"files": {}}))
    monkeypatch.setenv("DNARCH_CHECKSUMS", str(p))
    return p


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory):
    """generated(name) -> (directory, meta) of a tiny generated dataset, built once."""
    cache: dict[str, tuple[Path, dict]] = {}

    def get(name: str) -> tuple[Path, dict]:
        if name not in cache:
            out = tmp_path_factory.mktemp(name)
            # DarcyFlow's fast path (85 x 85): its faithful 421 path has its own tests
            fast = name == "darcyflow"
            meta = prepare(
                name, "generate", out, size=TINY[name], seed=3, progress=False, fast=fast
            )
            cache[name] = (out, meta)
        return cache[name]

    return get


def assert_no_artefact(out: Path) -> None:
    """Nothing half-written: no meta.json, no split directory, no temporary directory."""
    assert not (out / "meta.json").exists()
    for split in ("train", "val", "test"):
        assert not (out / split).exists(), split
    assert not list(out.glob(".tmp-*")), list(out.glob(".tmp-*"))
    assert not list(out.glob(".staging-*"))
