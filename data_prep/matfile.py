"""Streaming reader (and writer) for the 3-D numeric variables of MATLAB v5/v7 .mat files
(DarcyFlow's raw files, `data_prep.darcyflow`).

Every public DarcyFlow loader reads the published `piececonst_r421_N1024_smooth{1,2}.mat`
with `scipy.io.loadmat`: the whole 1024 x 421 x 421 float64 variable (1.45 GB) lands in memory
before `[:, ::5, ::5]` keeps 1/25 of it. This reader streams the variable instead: MATLAB
stores an (N, r, r) array column-major, i.e. as r slabs (one per last index j) of r columns
(one per middle index i) of N values; only the slabs and columns the subsampling keeps are
converted, the rest is skipped (seek, or decompressed and dropped for v7's zlib elements).
Peak memory is one slab (r * N values, 3.4 MB at full size) plus the result.

File layout (MathWorks "MAT-File Format", level 5): a 128-byte header (text, subsystem offset,
version 0x0100, endian indicator "IM" little / "MI" big), then data elements, each an 8-byte
tag (type, byte count; or a 4-byte "small element" tag with the data in the next 4 bytes)
padded to 8 bytes. A variable is an miMATRIX element (or an miCOMPRESSED element holding the
zlib stream of one) with sub-elements: array flags (class in the low byte), dimensions, name,
real part (any numeric type: MATLAB stores integer-valued doubles as e.g. miUINT8).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np

from data_prep.errors import DataError

MI_MATRIX, MI_COMPRESSED = 14, 15
MI_DTYPES = {
    1: "i1",
    2: "u1",
    3: "i2",
    4: "u2",
    5: "i4",
    6: "u4",
    7: "f4",
    9: "f8",
    12: "i8",
    13: "u8",
}
MX_DOUBLE = 6
_NUMERIC_CLASSES = set(range(6, 16))  # double, single, int8 ... uint64
_CHUNK = 1 << 20


class MatFormatError(DataError):
    """Not a level-5 MAT file, or a variable this reader does not handle (the caller may fall
    back to scipy.io.loadmat)."""


class _Plain:
    """An uncompressed element body read straight from the file."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f

    def read(self, n: int) -> bytes:
        b = self.f.read(n)
        if len(b) != n:
            raise MatFormatError(f"unexpected end of file (wanted {n} bytes, got {len(b)})")
        return b

    def skip(self, n: int) -> None:
        self.f.seek(n, 1)


class _Zlib:
    """The body of an miCOMPRESSED element, decompressed on demand with bounded output."""

    def __init__(self, f: BinaryIO, nbytes: int) -> None:
        self.f, self.left = f, nbytes
        self.d = zlib.decompressobj()
        self.tail = b""

    def read(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            if not self.tail:
                if self.left <= 0:
                    raise MatFormatError("compressed variable ends early (truncated file?)")
                self.tail = self.f.read(min(_CHUNK, self.left))
                self.left -= len(self.tail)
                if not self.tail:
                    raise MatFormatError("unexpected end of file in a compressed variable")
            try:
                out += self.d.decompress(self.tail, n - len(out))
            except zlib.error as e:
                raise MatFormatError(f"corrupt compressed variable ({e})") from e
            self.tail = self.d.unconsumed_tail
        return bytes(out)

    def skip(self, n: int) -> None:
        while n > 0:
            n -= len(self.read(min(n, 4 * _CHUNK)))


def _tag(src, bo: str) -> tuple[int, int, bytes | None]:
    """(type, byte count, inline data of a small element or None)."""
    raw = src.read(8)
    first, second = struct.unpack(bo + "II", raw)
    if first >> 16:  # small data element: 2-byte count, 2-byte type, data in the next 4 bytes
        n = first >> 16
        return first & 0xFFFF, n, raw[4 : 4 + n]
    return first, second, None


def _sub(src, bo: str) -> tuple[int, bytes]:
    typ, n, inline = _tag(src, bo)
    if inline is not None:
        return typ, inline
    data = src.read(n)
    src.read((-n) % 8)
    return typ, data


def _header(f: BinaryIO, path: Path) -> str:
    head = f.read(128)
    if len(head) < 128 or head[126:128] not in (b"IM", b"MI"):
        raise MatFormatError(f"{path}: not a level-5 MAT file (no v5 header)")
    return "<" if head[126:128] == b"IM" else ">"


def list_variables(path: Path | str) -> dict[str, tuple[int, ...]]:
    """Name -> MATLAB dimensions of every variable (reads the headers only)."""
    path = Path(path)
    out: dict[str, tuple[int, ...]] = {}
    with open(path, "rb") as f:
        bo = _header(f, path)
        for name, dims, _c, _s, _skip in _variables(f, bo, path):
            out[name] = dims
    return out


def _variables(f: BinaryIO, bo: str, path: Path):
    """Yield (name, dims, class, body reader positioned at the real part, skip-rest callable)."""
    while True:
        raw = f.read(8)
        if len(raw) < 8:
            return
        typ, nbytes = struct.unpack(bo + "II", raw)
        start = f.tell()
        if typ == MI_COMPRESSED:  # the zlib stream of one element; no padding after it
            src = _Zlib(f, nbytes)
            end = start + nbytes
            typ, _n, _ = _tag(src, bo)
        else:
            src = _Plain(f)
            end = start + nbytes + (-nbytes) % 8
        if typ != MI_MATRIX:
            f.seek(end)
            continue
        _t, flags = _sub(src, bo)
        cls = struct.unpack(bo + "I", flags[:4])[0] & 0xFF
        _t, dims_raw = _sub(src, bo)
        dims = tuple(int(d) for d in np.frombuffer(dims_raw, bo + "i4"))
        _t, name_raw = _sub(src, bo)
        yield name_raw.decode("latin-1"), dims, cls, src, end
        f.seek(end)


def read_subsampled(
    path: Path | str, name: str, n_max: int, step: Callable[[int], int], res: int
) -> np.ndarray:
    """(min(N, n_max), res, res) float64 = variable[:n_max, ::k, ::k][:, :res, :res] of an
    (N, r, r) variable, k = step(r), streamed (see the module docstring)."""
    path = Path(path)
    with open(path, "rb") as f:
        bo = _header(f, path)
        found = []
        for vname, dims, cls, src, _end in _variables(f, bo, path):
            found.append(vname)
            if vname != name:
                continue
            if cls not in _NUMERIC_CLASSES or len(dims) != 3 or dims[1] != dims[2]:
                raise MatFormatError(
                    f"{path}: '{name}' is MATLAB class {cls} with dimensions {dims}; expected "
                    "a numeric (N, r, r) array"
                )
            n_all, r, _ = dims
            k = step(r)
            typ, nbytes, inline = _tag(src, bo)
            if typ not in MI_DTYPES or inline is not None:
                raise MatFormatError(f"{path}: '{name}' has data type {typ}; expected numeric")
            dt = np.dtype(bo + MI_DTYPES[typ])
            if nbytes != n_all * r * r * dt.itemsize:
                raise MatFormatError(
                    f"{path}: '{name}' holds {nbytes} bytes, expected {n_all}*{r}*{r} values of "
                    f"{dt.itemsize} bytes (truncated or complex data)"
                )
            n = min(n_all, n_max)
            out = np.empty((n, res, res), np.float64)  # (N, H, W)
            slab = r * n_all * dt.itemsize  # all values with one last index j, column-major
            for j in range(min(r, (res - 1) * k + 1)):
                if j % k:
                    src.skip(slab)
                    continue
                cols = np.frombuffer(src.read(slab), dt).reshape(r, n_all)  # (i, sample)
                out[:, :, j // k] = cols[: res * k : k, :n].T  # (N, res) for this j
            return out
    raise DataError(
        f"{path}: variable '{name}' missing (found {found}); expected 'coeff' and 'sol' as in "
        "the published DarcyFlow files"
    )


def write_mat5(
    path: Path | str,
    variables: dict[str, np.ndarray | tuple[tuple[int, int, int], Callable[[int], np.ndarray]]],
    compress: bool = False,
) -> None:
    """A level-5 MAT file with (N, r, r) double variables, written slab by slab.

    Each value is an array, or ((N, r, r), fn) with fn(j) -> the (N, r) values [:, :, j]
    (for files larger than memory). `compress`: zlib elements as MATLAB's default -v7 save.
    """
    text = b"MATLAB 5.0 MAT-file, Platform: GLNXA64, Created by: dnarch-repro data_prep"
    with open(path, "wb") as f:
        f.write(text.ljust(116, b" ") + b"\0" * 8 + struct.pack("<H", 0x0100) + b"IM")
        for name, value in variables.items():
            if isinstance(value, np.ndarray):
                arr = value
                shape = arr.shape
                slab_of = lambda j, a=arr: a[:, :, j]
            else:
                shape, slab_of = value
            n, r, r2 = shape
            nm = name.encode()
            data_bytes = n * r * r2 * 8
            body = (
                struct.pack("<II", 6, 8) + struct.pack("<II", MX_DOUBLE, 0)
                + struct.pack("<II", 5, 12) + struct.pack("<3i", n, r, r2) + b"\0" * 4
                + struct.pack("<II", 1, len(nm)) + nm + b"\0" * ((-len(nm)) % 8)
                + struct.pack("<II", 9, data_bytes)
            )  # fmt: skip
            matrix_len = len(body) + data_bytes
            head = struct.pack("<II", MI_MATRIX, matrix_len) + body
            chunks = (
                np.ascontiguousarray(np.asarray(slab_of(j), "<f8").T).tobytes() for j in range(r2)
            )  # (r, N) per j: column-major order
            if not compress:
                f.write(head)
                for c in chunks:
                    f.write(c)
                continue
            tag_at = f.tell()
            f.write(b"\0" * 8)
            z = zlib.compressobj(1)
            f.write(z.compress(head))
            for c in chunks:
                f.write(z.compress(c))
            f.write(z.flush())
            end = f.tell()
            f.seek(tag_at)
            f.write(struct.pack("<II", MI_COMPRESSED, end - tag_at - 8))
            f.seek(end)
