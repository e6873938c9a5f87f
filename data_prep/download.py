"""Downloads that cannot corrupt.

- streamed with a tqdm progress bar, into `<dest>.part`;
- resumable: an existing `.part` is continued with an HTTP `Range` request (a server that
  ignores the range answers 200 and the file is restarted from zero);
- retried on a dropped connection (each retry resumes), then the next mirror is tried; one
  line per attempt says which source is tried and what happened; when every source fails, one
  error lists them all and the `--file` override to use;
- before any byte is written: a free-disk-space check for the download plus its unpacked size
  ("needs X GB at DIR, Y GB free"); a server answering with an HTML page is refused at once;
- renamed to its final name only after the size (checked first: no hashing of a wrong file),
  the SHA-256 and the published MD5 where known match `data_prep/checksums.json`;
- trust on first use: where no checksum is published (LRA, DarcyFlow, Cosmic) the SHA-256 of
  the first complete download is recorded in the checksum file and every later download or
  local copy is verified against it. A first copy that is an HTML/XML page (a Google Drive
  confirmation page, an S3 error) or far from the expected size is refused, never recorded.
  Commit the updated checksum file to share it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from data_prep.errors import DataError

CHECKSUMS_PATH = Path(__file__).resolve().parent / "checksums.json"
CHUNK = 1 << 20
USER_AGENT = "dnarch-repro-data-prep/0.1"
GB = 1e9
# A first copy is trusted only within [approx_size / FAR_BELOW, approx_size * FAR_ABOVE]: loose
# enough for an estimate (DarcyFlow: compressed or not), tight enough for pages and truncations.
FAR_BELOW, FAR_ABOVE = 3.0, 5.0


class _Interrupted(Exception):
    """The connection ended before the announced number of bytes arrived."""


class _Refused(Exception):
    """The server answered, but not with the file (an HTML page): try the next source."""


def say(msg: str) -> None:
    """One progress line on stderr (the Snakemake log of a data job)."""
    print(f"data_prep: {msg}", file=sys.stderr, flush=True)


def check_disk(needs: dict[Path, int], what: str = "") -> None:
    """Fail before writing when a directory's file system lacks `needs[dir]` bytes (directories
    on the same file system are added up). Message: "needs X GB at DIR, Y GB free"."""
    by_dev: dict[int, tuple[Path, int]] = {}
    for d, n in needs.items():
        if n <= 0:
            continue
        d = Path(d)
        probe = d
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        dev = probe.stat().st_dev
        first, total = by_dev.get(dev, (probe, 0))
        by_dev[dev] = (first, total + n)
    for probe, n in by_dev.values():
        free = shutil.disk_usage(probe).free
        if free < n:
            raise DataError(
                f"not enough disk space{f' for {what}' if what else ''}: needs {n / GB:.1f} GB "
                f"at {probe}, {free / GB:.1f} GB free. Free space there, or point --cache "
                "(downloads) / --out (unpacked data) at a larger disk"
            )


def looks_like_html(path: Path) -> bool:
    """True for a web page (HTML, or the XML of an S3 error) where a data file was expected."""
    with open(path, "rb") as f:
        head = f.read(2048).lstrip().lower()
    return head.startswith((b"<!doctype", b"<html", b"<head", b"<?xml", b"<error")) or (
        b"<html" in head[:512]
    )


def precheck(path: Path, key: str, known: dict[str, Any], origin: str = "") -> int:
    """Cheap checks before hashing; returns the size. Raises DataError saying why."""
    size = path.stat().st_size
    where = origin or str(path)
    name = path.name.removesuffix(".part")
    if known.get("size") is not None and size != known["size"]:
        raise DataError(
            f"size mismatch for {name} ({where}): expected {known['size']} bytes, got "
            f"{size}. The file is truncated, a different version or not the file at all; "
            "delete it and download it again, or pass a correct copy with --file"
        )
    if size < 1 << 20 and looks_like_html(path):
        raise DataError(
            f"{name} ({where}) is an HTML/XML page of {size} bytes, not the data: the "
            "server answered with a web page (a Google Drive confirmation page, a login or an "
            f"error page). Refusing to use or trust it. Fetch {key} in a browser and pass it "
            "with --file"
        )
    approx = known.get("approx_size")
    if (
        known.get("sha256") is None
        and approx
        and not (approx / FAR_BELOW <= size <= approx * FAR_ABOVE)
    ):
        raise DataError(
            f"refusing to trust {name} ({where}) on first use: {size / GB:.3f} GB where "
            f"about {approx / GB:.1f} GB are expected (accepted {approx / FAR_BELOW / GB:.2f}-"
            f"{approx * FAR_ABOVE / GB:.1f} GB); it is probably truncated or another file. "
            f"Check it, or record its checksum by hand in {checksums_path()} if it is right"
        )
    return size


def checksums_path(path: Path | str | None = None) -> Path:
    if path is not None:
        return Path(path)
    env = os.environ.get("DNARCH_CHECKSUMS")
    return Path(env) if env else CHECKSUMS_PATH


def load_checksums(path: Path | str | None = None) -> dict[str, dict[str, Any]]:
    p = checksums_path(path)
    if not p.is_file():
        return {}
    return json.loads(p.read_text()).get("files", {})


def record_checksum(key: str, entry: dict[str, Any], path: Path | str | None = None) -> None:
    """Write one entry into the checksum file (atomically: temp file + rename)."""
    p = checksums_path(path)
    data: dict[str, Any] = json.loads(p.read_text()) if p.is_file() else {"files": {}}
    data.setdefault("files", {}).setdefault(key, {}).update(entry)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".checksums-", dir=p.parent)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(data, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, p)


def file_digests(path: Path) -> dict[str, Any]:
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    size = 0
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            sha.update(block)
            md5.update(block)
            size += len(block)
    return {"sha256": sha.hexdigest(), "md5": md5.hexdigest(), "size": size}


def verify(path: Path, key: str, checksums: Path | str | None = None, origin: str = "") -> str:
    """Check `path` against the checksum file; record it there if unknown (trust on first use).

    Returns the SHA-256. Raises DataError on any mismatch.
    """
    known = load_checksums(checksums).get(key, {})
    precheck(path, key, known, origin)
    got = file_digests(path)
    for field in ("sha256", "md5", "size"):
        want = known.get(field)
        if want is not None and want != got[field]:
            raise DataError(
                f"checksum mismatch for {path.name.removesuffix('.part')} ({origin or path}): "
                f"expected {field} {want}, got {got[field]}. The file is corrupt, truncated or "
                "a different version; delete it and download again, or pass a correct copy "
                f"with --file. (Known checksums: {checksums_path(checksums)})"
            )
    if known.get("sha256") is None:
        warnings.warn(
            f"no published checksum for {key}: trusting this first copy ({origin or path}) and "
            f"recording sha256 {got['sha256']} in {checksums_path(checksums)}; later downloads "
            "are verified against it (commit that file to share it)",
            stacklevel=2,
        )
        record_checksum(
            key,
            {
                "sha256": got["sha256"],
                "size": got["size"],
                "recorded_from": origin or str(path),
                "recorded_utc": datetime.now(UTC).isoformat(timespec="seconds"),
                "trust": "first use",
            },
            checksums,
        )
    return got["sha256"]


def _open(url: str, start: int, timeout: float):
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if start > 0:
        req.add_header("Range", f"bytes={start}-")
    return urllib.request.urlopen(req, timeout=timeout)


def _fetch_once(
    url: str, part: Path, timeout: float, progress: bool, extra: dict[Path, int] | None = None
) -> None:
    """Continue `part` from its current size; raise _Interrupted if the stream ends early,
    _Refused if the server sends a web page. `extra`: bytes unpacking will need, per directory
    (checked with the announced length before anything is written)."""
    start = part.stat().st_size if part.exists() else 0
    try:
        resp = _open(url, start, timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and start > 0:  # range past the end: the part is already complete
            return
        raise
    with resp:
        status = getattr(resp, "status", None) or 200
        if start > 0 and status != 206:
            start = 0  # the server ignored the Range header: restart from zero
        ctype = (resp.headers.get("Content-Type") or "").lower()
        if ctype.startswith(("text/html", "application/xhtml")):
            raise _Refused(f"answered with a web page (Content-Type {ctype}), not the file")
        length = resp.headers.get("Content-Length")
        total = start + int(length) if length is not None else None
        needs = dict(extra or {})
        if length is not None:
            needs[part.parent] = needs.get(part.parent, 0) + int(length)
        check_disk(needs, part.name.removesuffix(".part"))
        mode = "ab" if start > 0 else "wb"
        got = start
        with (
            open(part, mode) as f,
            tqdm(
                total=total,
                initial=start,
                unit="B",
                unit_scale=True,
                desc=part.name.removesuffix(".part"),
                disable=not progress or not sys.stderr.isatty(),
            ) as bar,
        ):
            while True:
                try:
                    block = resp.read(CHUNK)
                except (ConnectionError, TimeoutError, OSError) as e:
                    raise _Interrupted(str(e)) from e
                except Exception as e:  # http.client.IncompleteRead and friends
                    raise _Interrupted(repr(e)) from e
                if not block:
                    break
                f.write(block)
                got += len(block)
                bar.update(len(block))
        if total is not None and got < total:
            raise _Interrupted(f"received {got} of {total} bytes")


def download(
    urls: Sequence[str],
    dest: Path | str,
    key: str,
    *,
    checksums: Path | str | None = None,
    retries: int = 3,
    timeout: float = 60.0,
    progress: bool = True,
    expected_size: int = 0,
    unpacked: dict[Path, int] | None = None,
    hint: str = "",
) -> str:
    """Download the first working URL of `urls` to `dest`; return its SHA-256.

    `dest` exists only if its checks passed; partial data lives in `<dest>.part`.
    `expected_size` (published or approximate bytes) and `unpacked` (bytes per directory that
    extraction will add) feed the disk-space check made before any download; `hint` ends the
    error raised when every source failed (the override to use).
    """
    dest = Path(dest)
    if dest.exists():
        return verify(dest, key, checksums, origin=str(dest))
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    needs = dict(unpacked or {})
    needs[dest.parent] = needs.get(dest.parent, 0) + max(0, expected_size - have)
    check_disk(needs, key)
    tried: list[str] = []
    n = len(urls)
    for i, url in enumerate(urls, start=1):
        say(f"{key}: source {i}/{n}: {url}")
        complete, reason = False, ""
        for _attempt in range(retries + 1):
            try:
                _fetch_once(url, part, timeout, progress, unpacked)
                complete = True
                break
            except _Interrupted as e:
                reason = f"interrupted ({e})"
                say(f"{key}: source {i}/{n}: {reason}; resuming")
            except _Refused as e:
                reason = str(e)
                part.unlink(missing_ok=True)
                break
            except urllib.error.HTTPError as e:
                reason = f"HTTP {e.code} {e.reason}"
                break
            except (urllib.error.URLError, OSError, ValueError) as e:
                reason = f"{type(e).__name__}: {getattr(e, 'reason', None) or e}"
                break
        if complete:
            try:
                sha = verify(part, key, checksums, origin=url)
            except DataError as e:
                part.unlink(missing_ok=True)
                reason = str(e)
            else:
                os.replace(part, dest)
                say(f"{key}: source {i}/{n}: ok ({dest})")
                return sha
        say(f"{key}: source {i}/{n}: failed: {reason}")
        tried.append(f"[{i}/{n}] {url}: {reason}")
        # a partial file is kept (resumed next time); the next mirror starts afresh
        if part.exists() and i < n:
            part.unlink()
    raise DataError(
        f"could not download {dest.name} from any of its {n} source(s):\n  "
        + "\n  ".join(tried or ["(no URL known)"])
        + (f"\nA partial file is kept in {part} and is resumed next time." if part.exists() else "")
        + (f"\n{hint}" if hint else "\nPass a mirror with --url or a local copy with --file.")
    )


def extract_tar(
    archive: Path, dest: Path, members_with: Sequence[str] | None = None, progress: bool = True
) -> list[str]:
    """Extract (a subset of) a tar/tar.gz archive atomically into `dest`.

    `members_with`: keep only members whose path contains one of these strings. The archive is
    read as a stream (8 GB LRA archive), into a temporary directory renamed entry by entry at
    the end. A truncated or corrupt archive raises DataError naming it; nothing is left.
    """
    dest.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
    names: list[str] = []
    try:
        with tarfile.open(archive, mode="r|*") as tar:
            bar = tqdm(unit=" files", desc=f"extract {archive.name}", disable=not progress)
            for m in tar:
                if members_with and not any(s in m.name for s in members_with):
                    continue
                tar.extract(m, tmp, filter="data")
                names.append(m.name)
                bar.update(1)
            bar.close()
        if members_with and not names:
            raise DataError(
                f"{archive} holds no member matching {list(members_with)}: not the expected "
                "archive (or the layout changed); check the file or pass an extracted "
                "directory with --file"
            )
        for entry in tmp.iterdir():
            target = dest / entry.name
            if target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            os.replace(entry, target)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise DataError(
            f"archive {archive} is truncated or corrupt ({type(e).__name__}: {e}); delete it "
            "and download it again (its checksum should have caught this: see "
            f"{checksums_path()})"
        ) from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return names


ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


def is_archive(name: str) -> bool:
    return name.lower().split("?")[0].endswith(ARCHIVE_SUFFIXES)


def archive_members(archive: Path) -> list[tuple[str, int]]:
    """(member path, size) of the regular files in a zip or tar archive."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                return [(i.filename, i.file_size) for i in z.infolist() if not i.is_dir()]
        with tarfile.open(archive, mode="r:*") as tar:
            return [(m.name, m.size) for m in tar.getmembers() if m.isfile()]
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise DataError(
            f"archive {archive} is unreadable ({type(e).__name__}: {e}): truncated or not a "
            "zip/tar archive; download it again"
        ) from e


def extract_member(archive: Path, member: str, dest: Path, progress: bool = True) -> Path:
    """Extract one member of a zip/tar archive to `dest` (temp name, then rename)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}-", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            if zipfile.is_zipfile(archive):
                with zipfile.ZipFile(archive) as z:
                    info = z.getinfo(member)
                    check_disk({dest.parent: info.file_size}, member)
                    with z.open(info) as src:
                        _copy(src, out, info.file_size, f"unzip {Path(member).name}", progress)
            else:
                with tarfile.open(archive, mode="r:*") as tar:
                    m = tar.getmember(member)
                    check_disk({dest.parent: m.size}, member)
                    src = tar.extractfile(m)
                    assert src is not None, member
                    _copy(src, out, m.size, f"untar {Path(member).name}", progress)
        os.replace(tmp, dest)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, KeyError, OSError) as e:
        raise DataError(
            f"could not extract {member} from {archive} ({type(e).__name__}: {e}); the archive "
            "is truncated or corrupt: download it again"
        ) from e
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _copy(src, out, total: int, desc: str, progress: bool) -> None:
    with tqdm(total=total, unit="B", unit_scale=True, desc=desc, disable=not progress) as bar:
        while block := src.read(CHUNK):
            out.write(block)
            bar.update(len(block))
