"""Downloads, safe extraction and the real-data converters, on small local fixtures.

Nothing here touches the network: downloads use ``file://`` URLs or an HTTP server on
127.0.0.1 started by the test, and every converter runs on a tiny data set the test writes
in the original format (an HDF5 .mat with NYU's layout, a KITTI folder tree with 16-bit
PNGs, a DIODE tree with .npy files).
"""

from __future__ import annotations

import hashlib
import http.server
import importlib
import io
import json
import subprocess
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from PIL import Image

from dalib.data import RGBDFolder, read_depth, read_image
from dalib.download import UnsafeArchiveError, download, parse_checksum, safe_extract

SCRIPTS = Path(__file__).resolve().parents[1] / "data_scripts"
sys.path.insert(0, str(SCRIPTS))
nyuv2 = importlib.import_module("nyuv2")
kitti = importlib.import_module("kitti")
diode = importlib.import_module("diode")
pool = importlib.import_module("pool")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


# ---------------------------------------------------------------- download


def test_download_file_url_verifies_and_reuses(tmp_path):
    source = tmp_path / "src.bin"
    data = bytes(range(256)) * 40
    source.write_bytes(data)
    dest = tmp_path / "out" / "file.bin"
    assert download(source.as_uri(), dest, sha(data), progress=False) == dest
    assert dest.read_bytes() == data and not dest.with_name("file.bin.part").exists()
    source.unlink()  # a matching file on disk is reused without any transfer
    assert download(source.as_uri(), dest, f"md5:{hashlib.md5(data).hexdigest()}", False) == dest


def test_download_checksum_mismatch_deletes_and_names_url(tmp_path):
    source = tmp_path / "src.bin"
    source.write_bytes(b"payload")
    dest = tmp_path / "dest.bin"
    with pytest.raises(ValueError, match=r"sha256 mismatch for file://.*src\.bin"):
        download(source.as_uri(), dest, "0" * 64, progress=False)
    assert not dest.exists() and not dest.with_name("dest.bin.part").exists()


def test_download_bad_checksum_and_unreachable_url(tmp_path):
    with pytest.raises(ValueError, match="not 'sha256"):
        download("file:///nowhere", tmp_path / "x", "sha256:abc", progress=False)
    with pytest.raises(ValueError, match="not 'sha256"):
        parse_checksum("sha1:" + "0" * 40)
    missing = (tmp_path / "missing.bin").as_uri()
    with pytest.raises(ConnectionError, match=rf"could not download {missing}.*put it at"):
        download(missing, tmp_path / "x", None, progress=False)


class _Server:
    """A local HTTP server for one payload; honours ``Range`` unless told not to."""

    def __init__(self, payload: bytes, ranges: bool = True) -> None:
        self.payload, self.ranges, self.requests = payload, ranges, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                asked = self.headers.get("Range")
                outer.requests.append(asked)
                start = int(asked[6:-1]) if asked and outer.ranges else 0
                body = outer.payload[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/data.bin"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("ranges", [True, False])
def test_download_resumes_a_part_file_over_http(tmp_path, ranges):
    payload = np.random.default_rng(0).bytes(50_000)
    server = _Server(payload, ranges=ranges)
    try:
        dest = tmp_path / "data.bin"
        dest.with_name("data.bin.part").write_bytes(payload[:20_000])  # an interrupted run
        download(server.url, dest, sha(payload), progress=False)
    finally:
        server.close()
    assert dest.read_bytes() == payload
    assert server.requests == ["bytes=20000-"]  # asked for the rest; restarted if ignored


def test_download_corrupt_part_is_deleted_not_resumed_forever(tmp_path):
    payload = b"abcdefghij" * 1000
    server = _Server(payload)
    try:
        dest = tmp_path / "data.bin"
        dest.with_name("data.bin.part").write_bytes(b"X" * 5000)
        with pytest.raises(ValueError, match="mismatch"):
            download(server.url, dest, sha(payload), progress=False)
        assert not dest.with_name("data.bin.part").exists()
        download(server.url, dest, sha(payload), progress=False)  # the retry starts over
    finally:
        server.close()
    assert dest.read_bytes() == payload


# ---------------------------------------------------------------- safe extraction


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            info.size = len(data) if data is not None else 0
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _info(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


def test_safe_extract_tar_and_zip_with_member_filter(tmp_path):
    archive = _tar(
        tmp_path / "ok.tar.gz",
        [
            (_info("d/a.png"), b"A"),
            (_info("d/b.txt"), b"B"),
            (_info("d/link.png", tarfile.SYMTYPE, "a.png"), None),
        ],
    )
    out = tmp_path / "out"
    files = safe_extract(archive, out, lambda name: name.endswith("a.png"))
    assert files == [out.resolve() / "d/a.png"] and (out / "d/a.png").read_bytes() == b"A"
    assert not (out / "d/b.txt").exists()
    with zipfile.ZipFile(tmp_path / "ok.zip", "w") as zf:
        zf.writestr("x/y.txt", "hello")
    assert safe_extract(tmp_path / "ok.zip", out) == [out.resolve() / "x/y.txt"]
    assert (out / "x/y.txt").read_text() == "hello"


@pytest.mark.parametrize(
    "member, cause",
    [
        (_info("/tmp/abs_evil.txt"), "absolute path"),
        (_info("d/../../evil.txt"), r"'\.\.' component"),
        (_info("link", tarfile.SYMTYPE, "/etc/passwd"), "symlink 'link' -> '/etc/passwd'"),
        (_info("d/link", tarfile.SYMTYPE, "../../outside"), "symlink"),
        (_info("hard", tarfile.LNKTYPE, "../outside.txt"), "hard link 'hard'"),
        (_info("dev", tarfile.CHRTYPE), "device, FIFO"),
        (_info("fifo", tarfile.FIFOTYPE), "device, FIFO"),
    ],
)
def test_safe_extract_rejects_malicious_tar_before_writing(tmp_path, member, cause):
    data = b"evil" if member.isfile() else None
    archive = _tar(tmp_path / "bad.tar.gz", [(_info("first.txt"), b"ok"), (member, data)])
    out = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError, match=rf"bad\.tar\.gz.*{cause}"):
        safe_extract(archive, out)
    assert not out.exists() or not any(out.iterdir())  # checked before anything was written
    assert not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize(
    "name, cause",
    [("../evil.txt", r"'\.\.'"), ("/abs.txt", "absolute"), ("C:/win.txt", "absolute")],
)
def test_safe_extract_rejects_malicious_zip(tmp_path, name, cause):
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as zf:
        zf.writestr("fine.txt", "ok")
        zf.writestr(zipfile.ZipInfo(name), "evil")
    with pytest.raises(UnsafeArchiveError, match=cause):
        safe_extract(tmp_path / "bad.zip", tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.txt").exists()


def test_safe_extract_rejects_zip_symlink_out_and_non_archives(tmp_path):
    with zipfile.ZipFile(tmp_path / "link.zip", "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = 0o120777 << 16  # a symlink entry, as `zip --symlinks` writes
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match="symlink 'link'"):
        safe_extract(tmp_path / "link.zip", tmp_path / "out")
    (tmp_path / "plain.txt").write_text("not an archive")
    with pytest.raises(ValueError, match=r"plain\.txt is neither a zip nor a tar"):
        safe_extract(tmp_path / "plain.txt", tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="archive not found"):
        safe_extract(tmp_path / "none.zip", tmp_path / "out")


# ---------------------------------------------------------------- NYU Depth v2


def _nyu_fixture(tmp_path, n=5, width=20, height=16):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (n, 3, width, height), dtype=np.uint8)  # h5py's view of MATLAB
    depths = rng.uniform(0.5, 9.5, (n, width, height)).astype(np.float32)
    mat = tmp_path / "nyu_depth_v2_labeled.mat"
    with h5py.File(mat, "w") as f:
        f["images"], f["depths"], f["rawDepths"] = images, depths, np.where(depths > 5, 0, depths)
    splits = tmp_path / "splits.mat"
    scipy.io.savemat(
        splits, {"trainNdxs": np.array([[1], [3], [4]]), "testNdxs": np.array([[2], [5]])}
    )
    return mat, splits, images, depths


def test_nyuv2_converts_layout_splits_and_depth(tmp_path):
    mat, splits, images, depths = _nyu_fixture(tmp_path)
    out = tmp_path / "nyu"
    assert (
        nyuv2.main(["--out", str(out), "--mat", str(mat), "--splits", str(splits), "--quiet"]) == 0
    )
    assert (out / "test.txt").read_text().split() == [
        "images/test/0001.png",
        "depths/test/0001.png",
        "images/test/0004.png",
        "depths/test/0004.png",
    ]
    assert len((out / "train.txt").read_text().splitlines()) == 3
    image = read_image(out / "images/test/0004.png")
    np.testing.assert_array_equal(image, images[4].transpose(2, 1, 0))  # (H, W, 3) = (16, 20, 3)
    depth = read_depth(out / "depths/test/0004.png")  # scale stored in the file
    np.testing.assert_allclose(depth, depths[4].T, atol=0.5e-3)
    info = json.loads((out / "dataset.json").read_text())
    assert info["depth_scale"] == 1000.0 and info["counts"] == {"train": 3, "test": 2}
    sample = RGBDFolder(out / "images/test", out / "depths/test")[1]
    assert sample["image"].shape == (3, 16, 20) and sample["valid"].all()


def test_nyuv2_raw_depth_keeps_holes_invalid(tmp_path):
    mat, splits, _, depths = _nyu_fixture(tmp_path)
    out = tmp_path / "nyu"
    nyuv2.convert(mat, splits, out, depth_key="rawDepths", progress=False)
    raw = read_depth(out / "depths/train/0000.png")
    np.testing.assert_array_equal(raw == 0, depths[0].T > 5)


def test_nyuv2_rejects_wrong_layout_and_bad_splits(tmp_path):
    mat, splits, _, _ = _nyu_fixture(tmp_path)
    bad = tmp_path / "bad.mat"
    with h5py.File(bad, "w") as f:
        f["images"], f["depths"] = (
            np.zeros((2, 16, 20, 3), np.uint8),
            np.zeros((2, 20, 16), np.float32),
        )
    with pytest.raises(ValueError, match=r"bad\.mat does not have the NYU Depth v2 layout"):
        nyuv2.convert(bad, splits, tmp_path / "o", progress=False)
    overlap = tmp_path / "overlap.mat"
    scipy.io.savemat(overlap, {"trainNdxs": np.array([[1], [2]]), "testNdxs": np.array([[2]])})
    with pytest.raises(ValueError, match="share frames"):
        nyuv2.convert(mat, overlap, tmp_path / "o", progress=False)
    scipy.io.savemat(overlap, {"trainNdxs": np.array([[1]]), "testNdxs": np.array([[9]])})
    with pytest.raises(ValueError, match=r"testNdxs must hold frame numbers in 1\.\.5"):
        nyuv2.convert(mat, overlap, tmp_path / "o", progress=False)


# ---------------------------------------------------------------- KITTI


def _kitti_fixture(tmp_path, frames=((5, "l"), (7, "r"))):
    drive, date = "2011_09_26_drive_0002_sync", "2011_09_26"
    rng = np.random.default_rng(2)
    annotated, raw, codes = tmp_path / "annotated", tmp_path / "raw", {}
    for frame, side in frames:
        cam = kitti.CAMERA[side]
        image = raw / date / drive / cam / "data" / f"{frame:010d}.png"
        depth = annotated / "val" / drive / "proj_depth/groundtruth" / cam / f"{frame:010d}.png"
        image.parent.mkdir(parents=True, exist_ok=True)
        depth.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (15, 40, 3), dtype=np.uint8)).save(image)
        code = rng.integers(0, 65536, (15, 40)).astype(np.uint16)
        code[0, :5] = 0  # no lidar point
        Image.fromarray(code).save(depth)
        codes[(frame, side)] = code
    split = tmp_path / "split.txt"
    split.write_text("".join(f"{date}/{drive} {f} {s}\n" for f, s in frames))
    return split, annotated, raw, codes


def test_kitti_converts_eigen_benchmark_frames(tmp_path):
    split, annotated, raw, codes = _kitti_fixture(tmp_path)
    out = tmp_path / "kitti"
    args = [
        "--out",
        str(out),
        "--split",
        str(split),
        "--annotated",
        str(annotated),
        "--raw",
        str(raw),
        "--quiet",
    ]
    assert kitti.main(args) == 0
    key = "2011_09_26_drive_0002_sync_0000000007_r"
    assert (out / "test.txt").read_text().splitlines()[
        1
    ] == f"images/test/{key}.png depths/test/{key}.png"
    depth = read_depth(out / f"depths/test/{key}.png")
    np.testing.assert_array_equal(depth, codes[(7, "r")] / np.float32(256))  # value / 256, exact
    image_src = raw / "2011_09_26/2011_09_26_drive_0002_sync/image_03/data/0000000007.png"
    assert (out / f"images/test/{key}.png").read_bytes() == image_src.read_bytes()
    sample = RGBDFolder(out / "images/test", out / "depths/test")[0]
    assert not sample["valid"][0, :5].any() and sample["depth"].shape == (15, 40)


def test_kitti_missing_frame_and_bad_split_named(tmp_path):
    split, annotated, raw, _ = _kitti_fixture(tmp_path)
    split.write_text(split.read_text() + "2011_09_26/2011_09_26_drive_0002_sync 9 l\n")
    with pytest.raises(FileNotFoundError, match=r"0000000009\.png"):
        kitti.convert(kitti.read_split(split), annotated, raw, tmp_path / "o", progress=False)
    split.write_text("2011_09_26/x 5 left\n")
    with pytest.raises(ValueError, match=r"split\.txt line 1"):
        kitti.read_split(split)


def test_kitti_downloads_and_extracts_only_needed_members(tmp_path, monkeypatch):
    split, annotated, raw, codes = _kitti_fixture(tmp_path, frames=((5, "l"),))
    server = tmp_path / "server"
    (server / "raw_data/2011_09_26_drive_0002").mkdir(parents=True)
    with zipfile.ZipFile(server / "data_depth_annotated.zip", "w") as zf:
        for path in annotated.rglob("*.png"):
            zf.write(path, path.relative_to(annotated).as_posix())
        zf.writestr("train/other_drive/proj_depth/groundtruth/image_02/0000000001.png", b"unused")
    with zipfile.ZipFile(
        server / "raw_data/2011_09_26_drive_0002/2011_09_26_drive_0002_sync.zip", "w"
    ) as zf:
        for path in raw.rglob("*.png"):
            zf.write(path, path.relative_to(raw).as_posix())
        zf.writestr("2011_09_26/2011_09_26_drive_0002_sync/oxts/data/0000000005.txt", b"unused")
    monkeypatch.setattr(kitti, "AVG", server.as_uri())
    monkeypatch.setattr(kitti, "ANNOTATED_URL", (server / "data_depth_annotated.zip").as_uri())
    monkeypatch.setattr(kitti, "SPLIT_URL", split.as_uri())
    out = tmp_path / "kitti"
    assert kitti.main(["--out", str(out), "--quiet"]) == 0
    extracted = sorted(
        p.relative_to(out / "_downloads").as_posix() for p in (out / "_downloads").rglob("*.png")
    )
    assert extracted == [
        "annotated/val/2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/0000000005.png",
        "raw/2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000005.png",
    ]
    key = "2011_09_26_drive_0002_sync_0000000005_l"
    np.testing.assert_array_equal(
        read_depth(out / f"depths/test/{key}.png"), codes[(5, "l")] / np.float32(256)
    )


# ---------------------------------------------------------------- DIODE


def _diode_fixture(tmp_path):
    val = tmp_path / "val"
    rng = np.random.default_rng(3)
    truth = {}
    for kind, far in (("indoors", 40.0), ("outdoors", 340.0)):
        scan = val / kind / "scene_00001" / "scan_00002"
        scan.mkdir(parents=True)
        stem = f"00001_00002_{kind}_000_010"
        Image.fromarray(rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)).save(
            scan / f"{stem}.png"
        )
        depth = rng.uniform(0.6, far, (16, 24, 1)).astype(np.float32)
        mask = np.ones((16, 24), np.float32)
        mask[0, 0] = 0
        depth[1, 1, 0], depth[2, 2, 0], depth[3, 3, 0] = np.nan, -1.0, np.inf
        np.save(scan / f"{stem}_depth.npy", depth)
        np.save(scan / f"{stem}_depth_mask.npy", mask)
        truth[kind] = (f"{kind}/scene_00001/scan_00002/{stem}", depth[..., 0])
    return val, truth


def test_diode_converts_with_masks_and_per_domain_scales(tmp_path):
    val, truth = _diode_fixture(tmp_path)
    out = tmp_path / "diode"
    assert diode.main(["--out", str(out), "--source", str(val), "--quiet"]) == 0
    for kind, step in (("indoors", 1e-3), ("outdoors", 1e-2)):
        key, expected = truth[kind]
        depth = read_depth(out / "depths/val" / f"{key}.png")
        invalid = np.zeros_like(depth, dtype=bool)
        invalid[0, 0] = invalid[1, 1] = invalid[2, 2] = invalid[3, 3] = True
        assert (depth[invalid] == 0).all() and (depth[~invalid] > 0).all()
        np.testing.assert_allclose(depth[~invalid], expected[~invalid], atol=step / 2 + 1e-6)
        assert (
            out / f"val_{kind}.txt"
        ).read_text() == f"images/val/{key}.png depths/val/{key}.png\n"
    assert len((out / "val.txt").read_text().splitlines()) == 2
    sample = RGBDFolder(out / "images/val", out / "depths/val")[
        1
    ]  # outdoors, scale 100 from the file
    assert sample["depth"].max() > 65.535  # beyond what scale 1000 could store


def test_diode_archive_download_verified_by_md5(tmp_path, monkeypatch):
    val, truth = _diode_fixture(tmp_path)
    archive = tmp_path / "val.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(val, arcname="val")
    monkeypatch.setattr(diode, "VAL_URL", archive.as_uri())
    monkeypatch.setattr(diode, "VAL_MD5", "md5:" + hashlib.md5(archive.read_bytes()).hexdigest())
    out = tmp_path / "diode"
    assert diode.main(["--out", str(out), "--quiet"]) == 0
    assert (out / "depths/val" / f"{truth['indoors'][0]}.png").is_file()
    monkeypatch.setattr(diode, "VAL_MD5", "md5:" + "0" * 32)
    (out / "_downloads/val.tar.gz").unlink()
    with pytest.raises(ValueError, match="md5 mismatch"):
        diode.main(["--out", str(out), "--quiet"])


def test_diode_mismatched_mask_named(tmp_path):
    val, _ = _diode_fixture(tmp_path)
    mask = next(val.rglob("*indoors*_depth_mask.npy"))
    np.save(mask, np.ones((3, 3)))
    with pytest.raises(ValueError, match=r"_depth\.npy.*_depth_mask\.npy"):
        diode.convert(val, tmp_path / "o", progress=False)


# ---------------------------------------------------------------- unlabeled pool


def test_pool_downloads_checks_and_resumes(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    rgb = np.random.default_rng(4).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    (src / "good.png").write_bytes(png_bytes(rgb))
    (src / "copy").mkdir()
    (src / "copy/good.png").write_bytes(png_bytes(rgb))  # same name, another URL
    Image.fromarray(rgb).save(src / "noext", format="JPEG")
    (src / "error.jpg").write_text("<html>404 not found</html>")
    Image.new("RGB", (1, 1)).save(src / "pixel.gif")
    with zipfile.ZipFile(src / "set.zip", "w") as zf:
        zf.writestr("set/a.png", png_bytes(rgb))
        zf.writestr("set/readme.txt", "not an image, not extracted")
    urls = tmp_path / "urls.txt"
    urls.write_text(
        "# a comment\n\n"
        + "".join(
            f"{(src / n).as_uri()}\n"
            for n in ("good.png", "noext", "error.jpg", "pixel.gif", "set.zip")
        )
        + f"{(src / 'missing.png').as_uri()}\n"
        + f"{(src / 'copy/good.png').as_uri()} sha256:{sha(png_bytes(rgb))}\n"
    )
    out = tmp_path / "pool"
    assert pool.main(["--list", str(urls), "--out", str(out), "--quiet"]) == 1  # some failed
    listed = (out / "pool.txt").read_text().split()
    assert len(listed) == 4 and "images/set/set/a.png" in listed
    assert any(name.endswith("_noext.jpg") for name in listed)  # extension from the format
    for name in listed:
        np.testing.assert_array_equal(read_image(out / name).shape, (20, 30, 3))
    failures = (out / "failures.txt").read_text()
    assert "error.jpg" in failures and "pixel.gif" in failures and "min_side=14" in failures
    assert "missing.png" in failures and len(failures.splitlines()) == 3
    assert not list((out / "images").glob("*error.jpg"))  # bad downloads are deleted
    (src / "good.png").write_bytes(b"changed")  # a rerun reuses finished files
    pool.main(["--list", str(urls), "--out", str(out), "--quiet"])
    assert sorted((out / "pool.txt").read_text().split()) == sorted(listed)


def test_pool_list_errors_named(tmp_path):
    urls = tmp_path / "urls.txt"
    urls.write_text("ftp://example.com/a.png\n")
    with pytest.raises(ValueError, match=r"urls\.txt line 1"):
        pool.read_list(urls)
    urls.write_text("https://example.com/a.png sha256:xyz\n")
    with pytest.raises(ValueError, match=r"line 1: checksum"):
        pool.read_list(urls)


# ---------------------------------------------------------------- dry runs and the CLI


@pytest.mark.parametrize(
    "module, extra",
    [(nyuv2, []), (kitti, []), (diode, []), (pool, ["--list", "LIST"])],
)
def test_dry_run_prints_plan_and_touches_nothing(tmp_path, capsys, module, extra):
    urls = tmp_path / "urls.txt"
    urls.write_text(
        "https://example.com/pool/a.jpg\nhttps://example.com/b.zip md5:" + "a" * 32 + "\n"
    )
    out = tmp_path / "out"
    args = ["--out", str(out), "--dry-run", *[str(urls) if a == "LIST" else a for a in extra]]
    assert module.main(args) == 0
    printed = capsys.readouterr().out
    assert "[dry-run]" in printed and "http" in printed and str(out) in printed
    assert not out.exists()


def test_script_runs_from_the_command_line_and_fails_clearly(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPTS / "nyuv2.py"),
            "--out",
            str(tmp_path / "o"),
            "--mat",
            str(tmp_path / "none.mat"),
            "--splits",
            str(tmp_path / "none.mat"),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error:") and "none.mat" in done.stderr
