"""Verified, resumable downloads and safe archive extraction, for data sets and weights.

``download`` writes to ``<dest>.part`` and renames it onto ``dest`` only once the whole file
is there and its checksum matches, so a file under its final name is always complete. An
interrupted download keeps its ``.part`` file: the next call asks the server for the rest
(HTTP ``Range``) and appends, or starts over when the server ignores the range.

``safe_extract`` refuses archives that would write outside the target folder: absolute
member names, ``..`` components, links that could point outside (absolute or with ``..``), device files. It checks every
member before it writes anything.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import stat
import tarfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

CHUNK = 1 << 20  # bytes per read
_HEX = re.compile(r"^[0-9a-f]+$")
_DIGEST_LENGTHS = {"sha256": 64, "md5": 32}


class UnsafeArchiveError(ValueError):
    """An archive member would be written outside the target folder, or is not a plain file."""


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file (``"sha256"`` or ``"md5"``), read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file."""
    return file_digest(path, "sha256")


def parse_checksum(checksum: str) -> tuple[str, str]:
    """``"sha256:<hex>"``, ``"md5:<hex>"`` or a bare 64-digit sha256 -> ``(algorithm, hex)``."""
    algorithm, _, value = checksum.strip().lower().rpartition(":")
    algorithm = algorithm or "sha256"
    if (
        algorithm not in _DIGEST_LENGTHS
        or not _HEX.match(value)
        or (len(value) != _DIGEST_LENGTHS[algorithm])
    ):
        raise ValueError(
            f"checksum {checksum!r} is not 'sha256:<64 hex>', 'md5:<32 hex>' or a bare sha256"
        )
    return algorithm, value


def _matches(path: Path, checksum: str | None) -> bool:
    if checksum is None:
        return True
    algorithm, expected = parse_checksum(checksum)
    return file_digest(path, algorithm) == expected


def _open(url: str, offset: int, timeout: float):
    """``urlopen`` asking for the bytes from ``offset`` on (a no-op for ``file://``)."""
    headers = {"User-Agent": "dalib-download"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def download(
    url: str,
    dest: str | os.PathLike,
    checksum: str | None,
    progress: bool = True,
    timeout: float = 30.0,
) -> Path:
    """Download ``url`` to ``dest``, resuming a previous ``.part``; verify; return ``dest``.

    Args:
        url: ``http(s)://`` or ``file://`` address.
        dest: final path; its folder is created.
        checksum: ``"sha256:<hex>"``, ``"md5:<hex>"`` or a bare sha256; ``None`` (explicitly)
            skips verification, for files without a published checksum.
        progress: show a tqdm byte counter.
        timeout: seconds to wait for the server to answer / send data.

    An existing ``dest`` that matches is kept without network access. Raises ``ValueError``
    on a checksum mismatch (the ``.part`` file is deleted: a corrupt prefix must not be
    resumed) and ``ConnectionError`` naming the URL, the kept ``.part`` file and where to put
    a manually downloaded copy when the transfer fails.
    """
    dest = Path(dest)
    if checksum is not None:
        parse_checksum(checksum)  # reject a malformed checksum before any transfer
    if dest.is_file() and _matches(dest, checksum):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.is_file() else 0
    try:
        with _open(url, offset, timeout) as response:
            if offset and getattr(response, "status", None) != 206:
                offset = 0  # the server sent the whole file: start over
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length else None
            with (
                open(part, "ab" if offset else "wb") as out,
                tqdm(
                    total=total,
                    initial=offset,
                    unit="B",
                    unit_scale=True,
                    desc=dest.name,
                    disable=not progress,
                ) as bar,
            ):
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as err:
        if not (err.code == 416 and offset):  # 416 on a resume: the .part is already complete
            raise ConnectionError(
                _failure(url, dest, part, f"HTTP {err.code} {err.reason}")
            ) from err
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as err:
        raise ConnectionError(_failure(url, dest, part, str(err))) from err
    if not _matches(part, checksum):
        algorithm, expected = parse_checksum(checksum)  # type: ignore[arg-type]
        actual = file_digest(part, algorithm)
        part.unlink()
        raise ValueError(
            f"{algorithm} mismatch for {url}: expected {expected}, got {actual}; "
            "the download was deleted"
        )
    os.replace(part, dest)
    return dest


def _failure(url: str, dest: Path, part: Path, cause: str) -> str:
    kept = (
        f"; the partial file {part} is kept and the next run resumes it" if part.is_file() else ""
    )
    return (
        f"could not download {url} (offline?) ({cause}){kept}; or download it elsewhere and put it at {dest}"
    )


# ---------------------------------------------------------------- archives


def _inside(root: Path, relative: str) -> bool:
    return (root / relative).resolve().is_relative_to(root)


def _check_name(archive: Path, name: str, root: Path) -> None:
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or re.match(r"^[A-Za-z]:", name):
        raise UnsafeArchiveError(f"archive {archive} has a member with an absolute path: {name!r}")
    if ".." in pure.parts:
        raise UnsafeArchiveError(f"archive {archive} has a member with a '..' component: {name!r}")
    if not _inside(root, name):
        raise UnsafeArchiveError(
            f"archive {archive} member {name!r} would be written outside {root}"
        )


def _check_link(archive: Path, name: str, target: str, hard: bool) -> None:
    # Without absolute targets and '..' every link points down from its folder (a tar hard
    # link: from the archive root), through links that do the same, so it stays inside.
    pure = PurePosixPath(target.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or re.match(r"^[A-Za-z]:", target):
        kind = "hard link" if hard else "symlink"
        raise UnsafeArchiveError(
            f"archive {archive} has a {kind} {name!r} -> {target!r} that may point outside "
            "the target folder (absolute or with '..')"
        )


def _tar_members(archive: Path, tar: tarfile.TarFile, root: Path) -> list[tarfile.TarInfo]:
    members = tar.getmembers()
    for m in members:
        _check_name(archive, m.name, root)
        if m.issym() or m.islnk():
            _check_link(archive, m.name, m.linkname, hard=m.islnk())
        elif not (m.isfile() or m.isdir()):
            raise UnsafeArchiveError(
                f"archive {archive} member {m.name!r} is a device, FIFO or other special file"
            )
    return members


def _zip_members(archive: Path, zf: zipfile.ZipFile, root: Path) -> list[zipfile.ZipInfo]:
    members = zf.infolist()
    for info in members:
        _check_name(archive, info.filename, root)
        if stat.S_ISLNK(info.external_attr >> 16):
            _check_link(archive, info.filename, zf.read(info).decode(errors="replace"), False)
    return members


def safe_extract(
    archive: str | os.PathLike,
    dest: str | os.PathLike,
    members: Callable[[str], bool] | None = None,
) -> list[Path]:
    """Extract a zip or tar (any compression) archive into ``dest``, refusing unsafe members.

    Every member is checked first; an absolute name, a ``..`` component, a symlink or hard
    link whose target is absolute or contains ``..``, or a device / FIFO raises :class:`UnsafeArchiveError`
    naming the archive and the member, and nothing is written. ``members`` selects the
    member names to extract (default: all). Files already present with the member's size
    are skipped, so a rerun after an interruption completes the extraction.

    Returns the paths of the selected regular files (extracted or already present).
    """
    archive, root = Path(archive), Path(dest).resolve()
    if not archive.is_file():
        raise FileNotFoundError(f"archive not found: {archive}")
    keep = members or (lambda name: True)
    written: list[Path] = []
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in _zip_members(archive, zf, root):
                if info.is_dir() or not keep(info.filename):
                    continue
                target = root / info.filename
                if not (target.is_file() and target.stat().st_size == info.file_size):
                    zf.extract(info, root)
                written.append(target)
        return written
    if not tarfile.is_tarfile(archive):
        raise ValueError(f"{archive} is neither a zip nor a tar archive")
    extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    with tarfile.open(archive) as tar:
        for m in _tar_members(archive, tar, root):
            if m.isdir() or not keep(m.name):
                continue
            target = root / m.name
            if not (m.isfile() and target.is_file() and target.stat().st_size == m.size):
                tar.extract(m, root, **extra)
            if m.isfile():
                written.append(target)
    return written


__all__ = [
    "UnsafeArchiveError",
    "download",
    "file_digest",
    "parse_checksum",
    "safe_extract",
    "sha256_of",
]
