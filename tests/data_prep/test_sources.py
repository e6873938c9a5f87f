"""Raw sources against a local HTTP server on 127.0.0.1 (no network): mirrors tried in order
with one line per attempt, one error listing every attempt and the override to use, HTML pages
and far-off sizes refused before trust on first use, the size checked before hashing, the
disk-space check before any download, and archives (Darcy_421.zip) accepted by --file/--url."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from data_prep import download as dl
from data_prep import registry
from data_prep.common import Context, resolve_source
from data_prep.errors import DataError
from data_prep.pipeline import prepare

DATA = bytes(range(256)) * 400  # 100 kB
SHA = hashlib.sha256(DATA).hexdigest()
HTML = b"<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></html>"


class _Handler(BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, tuple[int, str, bytes]]] = {}
    hits: ClassVar[list[str]] = []

    def do_GET(self):
        type(self).hits.append(self.path)
        code, ctype, body = self.routes.get(self.path, (404, "text/plain", b"no"))
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _Handler.routes = {
        "/good.bin": (200, "application/octet-stream", DATA),
        "/page.bin": (200, "text/html; charset=utf-8", HTML),
        "/page-as-binary.bin": (200, "application/octet-stream", HTML),
    }
    _Handler.hits = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_mirrors_in_order_one_line_per_attempt(server, tmp_path, capsys, private_checksums):
    urls = [f"{server}/missing.bin", f"{server}/page.bin", f"{server}/good.bin"]
    with pytest.warns(UserWarning, match="trusting this first copy"):
        sha = dl.download(urls, tmp_path / "x.bin", "x.bin", progress=False)
    assert sha == SHA and (tmp_path / "x.bin").read_bytes() == DATA
    err = capsys.readouterr().err
    assert "x.bin: source 1/3: " + urls[0] in err and "source 1/3: failed: HTTP 404" in err
    assert "source 2/3: failed: answered with a web page (Content-Type text/html" in err
    assert "source 3/3: ok" in err
    assert _Handler.hits == ["/missing.bin", "/page.bin", "/good.bin"]


def _offline_spec(name: str, base: str) -> registry.DatasetSpec:
    """The registry entry with every URL pointing at the local server (never the network)."""
    spec = registry.get(name)
    srcs = tuple(
        dataclasses.replace(s, urls=(f"{base}/a/{s.key}",), mirrors=(f"{base}/b/{s.key}",))
        for s in spec.sources
    )
    return dataclasses.replace(spec, sources=srcs)


def test_all_sources_fail_one_error_with_the_override(server, tmp_path, capsys):
    _Handler.routes[f"/b/{registry.DARCY[0].key}"] = (200, "application/octet-stream", HTML)
    ctx = Context(_offline_spec("darcyflow", server), tmp_path / "out", "download", progress=False)
    with pytest.raises(DataError) as e:
        resolve_source(ctx, ctx.spec.sources[0])
    msg = str(e.value)
    key = "piececonst_r421_N1024_smooth1.mat"
    assert f"could not download {key} from any of its 2 source(s)" in msg
    assert f"[1/2] {server}/a/{key}: HTTP 404" in msg
    assert f"[2/2] {server}/b/{key}: {key} (" in msg and "is an HTML/XML page" in msg
    assert "drive.google.com/drive/folders/" in msg and "Darcy_421.zip" in msg
    assert f"--file /path/to/{key} --file /path/to/piececonst_r421_N1024_smooth2.mat" in msg
    assert "--config 'data_files={darcyflow: [/path/to/" in msg
    assert not list((tmp_path / "out").rglob("*.mat*"))
    assert "refusing" not in capsys.readouterr().out


def test_html_never_trusted_on_first_use(server, tmp_path, private_checksums):
    with pytest.raises(DataError, match=r"x\.bin: .*failed|could not download"):
        dl.download([f"{server}/page-as-binary.bin"], tmp_path / "x.bin", "x.bin", progress=False)
    assert "x.bin" not in json.loads(private_checksums.read_text())["files"]
    local = tmp_path / "drive.mat"
    local.write_bytes(HTML)
    with pytest.raises(DataError, match=r"drive\.mat .* is an HTML/XML page of \d+ bytes"):
        dl.verify(local, "drive.mat")
    assert "drive.mat" not in json.loads(private_checksums.read_text())["files"]


def test_far_off_size_refused_on_first_use(server, tmp_path, private_checksums):
    dl.record_checksum("x.bin", {"approx_size": 50_000_000})
    with pytest.raises(DataError, match=r"refusing to trust x\.bin .* on first use: 0\.000 GB"):
        dl.download([f"{server}/good.bin"], tmp_path / "x.bin", "x.bin", progress=False)
    assert "sha256" not in json.loads(private_checksums.read_text())["files"]["x.bin"]
    dl.record_checksum("x.bin", {"approx_size": len(DATA)})  # near: trusted and recorded
    with pytest.warns(UserWarning):
        assert dl.download([f"{server}/good.bin"], tmp_path / "x.bin", "x.bin") == SHA


def test_size_checked_before_hashing(tmp_path, monkeypatch):
    f = tmp_path / "cifar-10-python.tar.gz"
    f.write_bytes(DATA)
    known = json.loads(dl.CHECKSUMS_PATH.read_text())["files"]
    dl.record_checksum(f.name, known[f.name])

    def no_hash(path):
        raise AssertionError("hashed a file of the wrong size")

    monkeypatch.setattr(dl, "file_digests", no_hash)
    with pytest.raises(DataError, match=r"size mismatch .*expected 170498071 bytes, got 102400"):
        dl.verify(f, f.name)


def test_disk_space_checked_before_any_download(server, tmp_path, monkeypatch):
    monkeypatch.setattr(dl.shutil, "disk_usage", lambda p: dl.shutil._ntuple_diskusage(9, 8, 10**9))
    with pytest.raises(DataError, match=r"needs 9\.6 GB at .*, 1\.0 GB free"):
        dl.download(
            [f"{server}/good.bin"],
            tmp_path / "x.bin",
            "x.bin",
            expected_size=int(8.6e9),
            unpacked={tmp_path / "raw": 10**9},
        )
    assert _Handler.hits == []  # nothing was requested
    # an unknown size: the announced Content-Length is checked before the body is written
    monkeypatch.setattr(dl.shutil, "disk_usage", lambda p: dl.shutil._ntuple_diskusage(9, 8, 1000))
    with pytest.raises(DataError, match=r"needs 0\.0 GB at .*0\.0 GB free"):
        dl.download([f"{server}/good.bin"], tmp_path / "y.bin", "y.bin", progress=False)
    assert not (tmp_path / "y.bin.part").exists() or (tmp_path / "y.bin.part").stat().st_size == 0


def _darcy_zip(tmp_path: Path) -> Path:
    prepare("darcyflow", "generate", tmp_path / "g", size=4, progress=False)
    z = tmp_path / "Darcy_421.zip"
    with zipfile.ZipFile(z, "w") as zf:  # the FNO authors' zip: both files in one archive
        for f in sorted((tmp_path / "g" / "raw").glob("*.mat")):
            zf.write(f, f"Darcy_421/{f.name}")
    return z


def test_darcy_zip_accepted_by_file_and_url(server, tmp_path):
    z = _darcy_zip(tmp_path)
    with pytest.warns(UserWarning):
        meta = prepare("darcyflow", "download", tmp_path / "o", files=[str(z)], progress=False)
    assert meta["splits"]["train"]["size"] == 4
    d = meta["source_detail"]["piececonst_r421_N1024_smooth2.mat"]
    (name,) = [n for n in zipfile.ZipFile(z).namelist() if n.endswith("smooth2.mat")]
    assert d["member"] == name and d["archive"] == str(z)  # the generator's own file name
    _Handler.routes["/fno/Darcy_421.zip"] = (200, "application/zip", z.read_bytes())
    meta = prepare(  # the zip and its members were trusted above: verified, no warning
        "darcyflow", "download", tmp_path / "o2", urls=[f"{server}/fno/Darcy_421.zip"],
        progress=False,
    )  # fmt: skip
    assert meta["splits"]["test"]["size"] == 4
    assert _Handler.hits == ["/fno/Darcy_421.zip"]  # downloaded once, used for both files
