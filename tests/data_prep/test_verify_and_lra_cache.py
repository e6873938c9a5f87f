"""The shared LRA extraction (one pass for four datasets) and `python -m data_prep verify`,
both fed by a local HTTP server on 127.0.0.1 (no network)."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from data_prep import download as dl
from data_prep.__main__ import main
from data_prep.lra import extract
from data_prep.pipeline import prepare
from data_prep.verify import verify_all

LRA_DIRS = {
    "listops": "listops-1000",
    "retrieval": "tsv_data",
    "pathfinder": "pathfinder32",
    "pathx": "pathfinder128",
}


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def served(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _line(lines: list[str], prefix: str) -> str:
    return next(ln for ln in lines if ln.startswith(prefix))


def _lra_archive(generated, dest: Path) -> None:
    """A small lra_release.gz in the release's layout (lra_release/lra_release/...)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, sub in LRA_DIRS.items():
            out, _ = generated(name)
            tar.add(out / "raw" / sub, arcname=f"lra_release/lra_release/{sub}")
        info = tarfile.TarInfo("lra_release/lra_release/pathfinder64/unused.txt")
        tar.addfile(info, io.BytesIO(b""))
    dest.write_bytes(buf.getvalue())


def test_one_pass_for_four_datasets_then_verify(generated, served, tmp_path, monkeypatch):
    www, base = served
    _lra_archive(generated, www / "lra_release.gz")
    # the registry's real sizes (8.2 GB + 18.6 GB unpacked) must not depend on this disk
    monkeypatch.setattr(dl.shutil, "disk_usage", lambda p: dl.shutil._ntuple_diskusage(1, 0, 1e15))
    calls = []
    real = dl.extract_tar
    monkeypatch.setattr(dl, "extract_tar", lambda *a, **k: calls.append(a) or real(*a, **k))
    data = tmp_path / "data"
    cache = data / "lra"
    argv = ["lra-extract", "--out", str(cache), "--url", f"{base}/lra_release.gz"]
    with pytest.warns(UserWarning, match="trusting this first copy"):
        assert main([*argv, "--no-progress"]) == 0
    assert len(calls) == 1  # one pass over the archive
    m = json.loads((cache / "manifest.json").read_text())
    assert set(m["datasets"]) == set(LRA_DIRS) and m["provenance"]["git_sha"] is not None
    assert not (extract.extracted_dir(cache) / "lra_release/lra_release/pathfinder64").exists()
    assert main([*argv, "--no-progress"]) == 0 and len(calls) == 1  # complete: no new pass
    for name in LRA_DIRS:
        meta = prepare(
            name, "download", data / name, files=[str(extract.extracted_dir(cache))],
            progress=False,
        )  # fmt: skip
        assert meta["splits"]["train"]["size"] > 0, name
    assert len(calls) == 1  # the four data jobs reused the cache

    # DarcyFlow through --url from the same server, then verify everything
    g, _ = generated("darcyflow")
    urls = []
    for f in sorted((g / "raw").glob("*.mat")):
        shutil.copy(f, www / f.name)
        key = f"piececonst_r421_N1024_smooth{f.name[-5]}.mat"
        urls.append(f"{key}={base}/{f.name}")
    with pytest.warns(UserWarning):
        prepare("darcyflow", "download", data / "darcyflow", urls=urls, progress=False)
    bad, lines = verify_all(data)
    assert bad == 0, lines
    text = "\n".join(lines)
    assert "lra (cache)" in text and "ok: listops, retrieval, pathfinder, pathx" in text
    assert _line(lines, "darcyflow").endswith("2 raw file(s) verified")
    assert _line(lines, "cifar10").split()[1] == "not"

    # a corrupted raw file and a damaged artefact: one line each, with the fix
    raw = data / "darcyflow/raw/downloads/piececonst_r421_N1024_smooth2.mat"
    blob = bytearray(raw.read_bytes())
    blob[-1] ^= 1
    raw.write_bytes(bytes(blob))
    np.save(data / "listops/val/targets.npy", np.zeros(3, np.int64))
    bad, lines = verify_all(data)
    assert bad == 2
    darcy = _line(lines, "darcyflow")
    assert "sha256" in darcy and "Fix: delete the file(s) and rerun" in darcy
    listops = _line(lines, "listops")
    assert "val/targets.npy is [3] int64, meta.json says" in listops and "Fix: rerun" in listops
    assert main(["verify", str(data)]) == 1


def test_cifar_and_imdb_verify_against_published_values(tmp_path, private_checksums):
    shutil.copy(dl.CHECKSUMS_PATH, private_checksums)  # the published values
    for name, key in (("cifar10", "cifar-10-python.tar.gz"), ("text", "aclImdb_v1.tar.gz")):
        d = tmp_path / name / "raw" / "downloads"
        d.mkdir(parents=True)
        (d / key).write_bytes(b"\x1f\x8b not the archive")
    bad, lines = verify_all(tmp_path)
    assert bad == 2
    c10 = _line(lines, "cifar10 ")
    assert "size mismatch for cifar-10-python.tar.gz" in c10 and "170498071" in c10
    imdb = _line(lines, "text ")
    assert "84125825" in imdb
    assert "aclImdb_v1.tar.gz" not in json.loads(private_checksums.read_text())["files"] or (
        json.loads(private_checksums.read_text())["files"]["aclImdb_v1.tar.gz"]["trust"]
        == "published"
    )
