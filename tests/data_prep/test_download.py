"""Downloads without network: a local HTTP server on 127.0.0.1 that honours Range and can
drop the connection mid-file, plus file:// URLs. Checksums, resume, truncated archives."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from data_prep import download as dl
from data_prep.errors import DataError
from data_prep.pipeline import prepare
from tests.data_prep.conftest import assert_no_artefact

PAYLOAD = bytes(range(256)) * 4000  # 1 MB
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    server_version = "test"
    drops_left = 0  # class state, reset per test
    ranges: ClassVar[list[str | None]] = []

    def do_GET(self):
        rng = self.headers.get("Range")
        type(self).ranges.append(rng)
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        body = PAYLOAD[start:]
        self.send_response(206 if rng else 200)
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if type(self).drops_left > 0:
            type(self).drops_left -= 1
            self.wfile.write(body[: len(body) // 3])  # then drop the connection
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _Handler.drops_left = 0
    _Handler.ranges = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/file.bin"
    httpd.shutdown()
    httpd.server_close()


def test_interrupted_download_resumes(server, tmp_path, private_checksums):
    _Handler.drops_left = 2
    dest = tmp_path / "file.bin"
    with pytest.warns(UserWarning, match="trusting this first copy"):
        sha = dl.download([server], dest, "file.bin", progress=False, timeout=5)
    assert sha == SHA and dest.read_bytes() == PAYLOAD
    assert not dest.with_name("file.bin.part").exists()
    assert _Handler.ranges[0] is None and all(r.startswith("bytes=") for r in _Handler.ranges[1:])
    assert len(_Handler.ranges) == 3
    entry = json.loads(private_checksums.read_text())["files"]["file.bin"]
    assert entry["sha256"] == SHA and entry["trust"] == "first use"


def test_resume_from_existing_part(server, tmp_path):
    dest = tmp_path / "file.bin"
    dest.with_name("file.bin.part").write_bytes(PAYLOAD[:1000])
    dl.record_checksum("file.bin", {"sha256": SHA})
    assert dl.download([server], dest, "file.bin", progress=False) == SHA
    assert _Handler.ranges == ["bytes=1000-"]


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    dl.record_checksum("file.bin", {"sha256": "0" * 64})
    dest = tmp_path / "file.bin"
    with pytest.raises(DataError, match=r"checksum mismatch for file\.bin.*expected sha256 0000"):
        dl.download([server], dest, "file.bin", progress=False)
    assert not dest.exists() and not dest.with_name("file.bin.part").exists()


def test_mirrors_and_file_urls(server, tmp_path):
    src = tmp_path / "local.bin"
    src.write_bytes(PAYLOAD)
    dl.record_checksum("x.bin", {"sha256": SHA, "size": len(PAYLOAD)})
    dead = "http://127.0.0.1:9/none.bin"  # connection refused: next mirror
    assert dl.download([dead, src.as_uri()], tmp_path / "x.bin", "x.bin", progress=False) == SHA
    with pytest.raises(DataError, match=r"could not download y\.bin"):
        dl.download([dead], tmp_path / "y.bin", "y.bin", progress=False, retries=0)


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_extract_subset_and_truncated_archive(tmp_path):
    import os

    blob = _tar_gz(
        {"lra_release/listops-1000/a.tsv": os.urandom(200_000), "lra_release/other/b.txt": b"x"}
    )
    good = tmp_path / "good.tar.gz"
    good.write_bytes(blob)
    names = dl.extract_tar(good, tmp_path / "ex", members_with=["listops-1000/"], progress=False)
    assert names == ["lra_release/listops-1000/a.tsv"]
    assert not (tmp_path / "ex" / "lra_release" / "other").exists()
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match=r"archive .*bad\.tar\.gz is truncated or corrupt"):
        dl.extract_tar(bad, tmp_path / "ex2", progress=False)
    assert list((tmp_path / "ex2").iterdir()) == []


def test_truncated_lra_archive_end_to_end(tmp_path):
    """A truncated lra_release.gz given with --file: one clear error, no artefact."""
    prepare("listops", "generate", tmp_path / "g", size=4, progress=False)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(tmp_path / "g" / "raw" / "listops-1000", arcname="lra_release/listops-1000")
    archive = tmp_path / "lra_release.gz"
    archive.write_bytes(buf.getvalue()[:-200])
    out = tmp_path / "o"
    with pytest.warns(UserWarning), pytest.raises(DataError, match=r"lra_release\.gz is truncated"):
        prepare("listops", "download", out, files=[str(archive)], progress=False)
    assert_no_artefact(out)
    # the intact archive works through the same path
    archive.write_bytes(buf.getvalue())
    Path(tmp_path / "checksums.json").write_text('{"files": {}}')
    with pytest.warns(UserWarning):
        meta = prepare("listops", "download", tmp_path / "o2", files=[str(archive)], progress=False)
    assert meta["splits"]["train"]["size"] == 4
    assert meta["source_detail"]["lra_release.gz"]["sha256"]
