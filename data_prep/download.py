"""Downloads that cannot corrupt (issue 4, deliverable 1; spec/data.md "LRA archive").

- streamed with a tqdm progress bar, into `<dest>.part`;
- resumable: an existing `.part` is continued with an HTTP `Range` request (a server that
  ignores the range answers 200 and the file is restarted from zero);
- retried on a dropped connection (each retry resumes), then the next mirror is tried;
- renamed to its final name only after the SHA-256 (and the published MD5/size where known)
  matches `data_prep/checksums.json`;
- trust on first use: where no checksum is published (LRA, DarcyFlow, Cosmic) the SHA-256 of
  the first complete download is recorded in the checksum file and every later download or
  local copy is verified against it. Commit the updated checksum file to share it.
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


class _Interrupted(Exception):
    """The connection ended before the announced number of bytes arrived."""


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
    got = file_digests(path)
    for field in ("sha256", "md5", "size"):
        want = known.get(field)
        if want is not None and want != got[field]:
            raise DataError(
                f"checksum mismatch for {path.name} ({origin or path}): expected {field} "
                f"{want}, got {got[field]}. The file is corrupt, truncated or a different "
                f"version; delete it and download again, or pass a correct copy with --file. "
                f"(Known checksums: {checksums_path(checksums)})"
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


def _fetch_once(url: str, part: Path, timeout: float, progress: bool) -> None:
    """Continue `part` from its current size; raise _Interrupted if the stream ends early."""
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
        length = resp.headers.get("Content-Length")
        total = start + int(length) if length is not None else None
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
) -> str:
    """Download the first working URL of `urls` to `dest`; return its SHA-256.

    `dest` exists only if its checksum matched; partial data lives in `<dest>.part`.
    """
    dest = Path(dest)
    if dest.exists():
        return verify(dest, key, checksums, origin=str(dest))
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    errors: list[str] = []
    for url in urls:
        complete = False
        for _attempt in range(retries + 1):
            try:
                _fetch_once(url, part, timeout, progress)
                complete = True
                break
            except _Interrupted as e:
                errors.append(f"{url}: interrupted ({e}); resuming")
            except (urllib.error.URLError, OSError, ValueError) as e:
                errors.append(f"{url}: {e}")
                break
        if not complete:
            continue  # keep the part (resumed next time), try the next mirror
        try:
            sha = verify(part, key, checksums, origin=url)
        except DataError:
            part.unlink(missing_ok=True)
            raise
        os.replace(part, dest)
        return sha
    raise DataError(
        f"could not download {dest.name} from any of {list(urls)}:\n  "
        + "\n  ".join(errors[-6:])
        + f"\nA partial file, if any, is kept in {part} and is resumed next time. "
        "Pass a mirror with --url or a local copy with --file."
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
