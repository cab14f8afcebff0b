"""An unlabeled image pool from a list of URLs (single images or archives of images).

    python data_scripts/pool.py --list urls.txt --out data/pool [--dry-run]

The list has one entry per line, ``URL [checksum]`` (checksum: ``sha256:<hex>``,
``md5:<hex>`` or a bare sha256); blank lines and ``#`` comments are ignored. ``file://``
URLs work too. An entry ending in .zip / .tar / .tar.gz / .tgz / .tar.bz2 / .tar.xz is an
archive: it is downloaded to ``OUT/_downloads`` and its image files are extracted (safely)
to ``OUT/images/<archive name>/``. Any other entry is one image, saved as
``OUT/images/<hash of the URL>_<file name>`` (an extension is added from the decoded format
when the URL has none).

Every image is decoded with ``dalib.io.read_image``; unreadable ones (HTML error pages,
truncated files, tiny tracking pixels under ``--min-side``, decompression bombs) are deleted.
``OUT/pool.txt`` lists the good images (relative to OUT), ``OUT/failures.txt`` every failed
entry or file with its reason, and the exit status is 1 when anything failed. A rerun skips
finished files and resumes partial downloads, so it retries only what failed.

Example list: ``data_scripts/lists/coco_unlabeled2017.txt`` (COCO 2017 unlabeled, 123k
images in one 19 GB zip). Use ``dalib.data.ImageFolder(OUT / "images")`` to read the pool.
"""

from __future__ import annotations

import hashlib
import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from _common import downloads_dir, fetch, make_parser, run
from PIL import Image
from tqdm.auto import tqdm

from dalib.data import IMAGE_EXTENSIONS
from dalib.download import parse_checksum, safe_extract
from dalib.io import ImageReadError, atomic_write, read_image

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
FORMAT_EXTENSIONS = {
    "JPEG": ".jpg",
    "PNG": ".png",
    "WEBP": ".webp",
    "BMP": ".bmp",
    "TIFF": ".tif",
    "GIF": ".gif",
}


@dataclass(frozen=True)
class Entry:
    url: str
    checksum: str | None

    @property
    def file_name(self) -> str:
        name = Path(urllib.parse.urlsplit(self.url).path).name or "image"
        return re.sub(r"[^A-Za-z0-9._-]", "_", urllib.parse.unquote(name))[-120:]

    @property
    def is_archive(self) -> bool:
        return self.file_name.lower().endswith(ARCHIVE_SUFFIXES)

    @property
    def stem(self) -> str:
        """A file name unique to the URL: 10 hex digits of its sha1, then its own name."""
        return f"{hashlib.sha1(self.url.encode()).hexdigest()[:10]}_{self.file_name}"


def read_list(path: Path) -> list[Entry]:
    """Entries of a URL list; ValueError naming the file and line when one is malformed."""
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split("#", 1)[0].split()
        if not parts:
            continue
        scheme = urllib.parse.urlsplit(parts[0]).scheme
        if len(parts) > 2 or scheme not in ("http", "https", "file"):
            raise ValueError(f"{path} line {number}: expected 'URL [checksum]', got {line!r}")
        if len(parts) == 2:
            try:
                parse_checksum(parts[1])
            except ValueError as err:
                raise ValueError(f"{path} line {number}: {err}") from err
        entries.append(Entry(parts[0], parts[1] if len(parts) == 2 else None))
    if not entries:
        raise ValueError(f"URL list {path} has no entries")
    return entries


def check_image(path: Path, min_side: int) -> Path:
    """Decode ``path`` (ImageReadError if unusable); give it an image extension if it lacks
    one; return its final path."""
    read_image(path, min_side=min_side)
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return path
    with Image.open(path) as image:
        extension = FORMAT_EXTENSIONS.get(image.format or "")
    if extension is None:
        raise ImageReadError(f"{path}: format {image.format} is not one ImageFolder lists")
    return path.rename(path.with_name(path.name + extension))


def fetch_entry(entry: Entry, out: Path, progress: bool) -> list[Path]:
    """Download one entry; return the image files it yields (not yet checked)."""
    images = out / "images"
    if entry.is_archive:
        archive = fetch(entry.url, downloads_dir(out) / entry.stem, entry.checksum, False, progress)
        folder = images / entry.file_name.split(".")[0]
        return safe_extract(
            archive, folder, lambda name: Path(name).suffix.lower() in IMAGE_EXTENSIONS
        )
    done = sorted(p for p in images.glob(f"{entry.stem}*") if not p.name.endswith(".part"))
    if done:  # finished on an earlier run (perhaps renamed with an extension)
        return done[:1]
    return [fetch(entry.url, images / entry.stem, entry.checksum, False, False)]  # no bar per image


def build_pool(
    entries: Sequence[Entry], out: Path, min_side: int = 14, progress: bool = True
) -> tuple[list[Path], list[str]]:
    """Fetch and check every entry; write ``pool.txt`` and ``failures.txt``.

    Returns the good image paths and the failure lines (``<url or file>\\t<reason>``).
    """
    good: list[Path] = []
    failures: list[str] = []
    for entry in tqdm(entries, desc="pool", disable=not progress):
        try:
            files = fetch_entry(entry, out, progress)
        except (ConnectionError, ValueError, OSError) as err:
            failures.append(f"{entry.url}\t{err}")
            continue
        for path in files:
            try:
                good.append(check_image(path, min_side))
            except (ImageReadError, OSError) as err:
                failures.append(f"{path}\t{err}")
                path.unlink(missing_ok=True)
    for name, lines in (
        ("pool.txt", [p.relative_to(out).as_posix() for p in good]),
        ("failures.txt", failures),
    ):
        with atomic_write(out / name) as temp:
            temp.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return good, failures


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__.splitlines()[0])
    parser.add_argument("--list", type=Path, required=True, help="text file of URLs")
    parser.add_argument(
        "--min-side",
        type=int,
        default=14,
        help="drop images with a side below this (default: one ViT patch)",
    )
    args = parser.parse_args(argv)
    entries = read_list(args.list)
    if args.dry_run:
        for entry in entries:
            kind = "archive, images extracted" if entry.is_archive else "image"
            print(
                f"[dry-run] would fetch {entry.url} ({kind}; "
                f"{entry.checksum or 'unverified'}) into {args.out / 'images'}"
            )
        print(f"[dry-run] would write {args.out / 'pool.txt'} and {args.out / 'failures.txt'}")
        return 0
    good, failures = build_pool(entries, args.out, args.min_side, not args.quiet)
    print(
        f"{len(good)} images in {args.out / 'images'}; {len(failures)} failed"
        + (f" (see {args.out / 'failures.txt'})" if failures else "")
    )
    return 1 if failures else 0


if __name__ == "__main__":
    run(main)
