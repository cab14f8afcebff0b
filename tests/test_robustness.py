"""Bad inputs on every path that reads or writes files: each gets a clear error naming the
file (or folder), or a documented, counted handling; never a crash deep inside or a silent
pass."""

from __future__ import annotations

import builtins
import os
import tempfile
import zlib
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from PIL import Image

from dalib.data import ImageFolder, ImageReadError, RGBDFolder, SynthDepthDataset
from dalib.depth import depth_to_disparity
from dalib.io import MAX_PIXELS, read_depth, read_image, write_depth
from dalib.losses import affine_invariant_loss
from dalib.sample import depth_fields, fit_sample, image_to_tensor

RGB = np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)


def _bad_files(folder: Path) -> dict[str, str]:
    """Unreadable files of every kind, name -> the cause the error must mention."""
    good = folder / "good.png"
    Image.fromarray(RGB).save(good)
    Image.fromarray(RGB).save(folder / "good.jpg", quality=90)
    png, jpg = good.read_bytes(), (folder / "good.jpg").read_bytes()
    (folder / "good.jpg").unlink()
    (folder / "a_empty.png").write_bytes(b"")
    (folder / "b_truncated.png").write_bytes(png[: len(png) // 2])
    (folder / "c_truncated.jpg").write_bytes(jpg[: len(jpg) // 2])
    (folder / "d_text.jpg").write_text("<html>not an image</html>")
    (folder / "e_garbage.webp").write_bytes(bytes(range(256)) * 4)
    corrupt = bytearray(png)
    corrupt[60:80] = b"\x00" * 20  # damage inside the compressed pixel data
    (folder / "f_corrupt.png").write_bytes(bytes(corrupt))
    (folder / "g_folder.png").mkdir()
    return {
        "a_empty.png": "empty",
        "b_truncated.png": "",
        "c_truncated.jpg": "",
        "d_text.jpg": "cannot identify",
        "e_garbage.webp": "cannot identify",
        "f_corrupt.png": "",
        "g_folder.png": "not a regular file",
    }


# ---------------------------------------------------------------- unreadable files


def test_every_bad_file_raises_naming_it(tmp_path):
    for name, cause in _bad_files(tmp_path).items():
        with pytest.raises(ImageReadError, match=rf"{name}.*{cause}"):
            read_image(tmp_path / name)


def test_image_folder_raises_on_the_first_bad_file_by_default(tmp_path):
    _bad_files(tmp_path)
    data = ImageFolder(tmp_path)
    assert len(data) == 7  # the folder named g_folder.png is not listed; good.png is last
    with pytest.raises(ImageReadError, match="a_empty.png"):
        data[0]
    with pytest.raises(ValueError, match="on_error must be"):
        ImageFolder(tmp_path, on_error="ignore")


def test_image_folder_skip_counts_warns_and_substitutes(tmp_path, recwarn):
    bad = set(_bad_files(tmp_path)) - {"g_folder.png"}  # a folder is never listed
    data = ImageFolder(tmp_path, on_error="skip", size=14)
    sample = data[0]  # walks past every bad file to good.png, the last one
    assert sample["path"].endswith("good.png") and sample["index"] == len(data) - 1
    assert sample["image"].shape == (3, 14, 14)
    messages = [str(w.message) for w in recwarn]
    assert (
        len(messages) == len(bad) and "(1 so far)" in messages[0] and "(6 so far)" in messages[-1]
    )
    assert all(name in message for name, message in zip(sorted(bad), messages))
    assert sorted(Path(p).name for p in data.skipped) == sorted(bad)
    assert all(Path(path).name in reason for path, reason in data.skipped.items())
    recwarn.clear()
    assert all(data[i]["path"].endswith("good.png") for i in range(len(data)))
    assert len(recwarn) == 0  # known bad files are skipped without rereading or rewarning
    (tmp_path / "good.png").unlink()
    with pytest.raises(ImageReadError, match="no readable image"):
        ImageFolder(tmp_path, on_error="skip")[0]


def test_rgbd_folder_bad_image_and_bad_depth_named(tmp_path):
    images, depths = tmp_path / "images", tmp_path / "depths"
    images.mkdir()
    depths.mkdir()
    (images / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    write_depth(depths / "a.png", np.ones((20, 24)))
    Image.fromarray(RGB).save(images / "b.png")
    Image.fromarray(RGB).save(depths / "b.png")  # an RGB picture where depth belongs
    data = RGBDFolder(images, depths)
    with pytest.raises(ImageReadError, match=r"images/a\.png"):
        data[0]
    with pytest.raises(ImageReadError, match=r"depths/b\.png.*16-bit"):
        data[1]


# ---------------------------------------------------------------- sizes


def test_images_smaller_than_a_patch_are_refused_by_datasets(tmp_path):
    Image.new("RGB", (13, 40)).save(tmp_path / "thin.png")
    assert read_image(tmp_path / "thin.png").shape == (40, 13, 3)  # the reader alone accepts it
    with pytest.raises(ImageReadError, match=r"thin\.png is 13x40, smaller than min_side=14"):
        ImageFolder(tmp_path)[0]
    assert ImageFolder(tmp_path, min_side=13, size=28)[0]["image"].shape == (3, 28, 28)
    write_depth(tmp_path / "depths" / "thin.png", np.ones((40, 13)))
    (tmp_path / "images").mkdir()
    (tmp_path / "thin.png").rename(tmp_path / "images" / "thin.png")
    with pytest.raises(ImageReadError, match="min_side=14"):
        RGBDFolder(tmp_path / "images", tmp_path / "depths")[0]


def _png_claiming(path: Path, width: int, height: int) -> Path:
    """A valid 2x2 PNG whose header claims ``width`` x ``height`` (CRC fixed)."""
    path.write_bytes(b"")
    Image.new("RGB", (2, 2)).save(path)
    data = bytearray(path.read_bytes())
    data[16:20], data[20:24] = width.to_bytes(4, "big"), height.to_bytes(4, "big")
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    path.write_bytes(bytes(data))
    with mock.patch.object(Image, "MAX_IMAGE_PIXELS", None), Image.open(path) as image:
        assert image.size == (width, height)  # the header really claims that size
    return path


@pytest.mark.parametrize(
    "width, height, cause",
    [
        (9000, 9000, r"81\.0 MP exceeds the limit of 50 MP"),  # our cap
        (10000, 10000, "decompression bomb"),  # PIL's warning, raised as an error
        (20000, 20000, "decompression bomb"),  # PIL's error
    ],
)
def test_huge_images_refused_before_decoding(tmp_path, width, height, cause):
    assert MAX_PIXELS == 50_000_000
    path = _png_claiming(tmp_path / "huge.png", width, height)
    with pytest.raises(ImageReadError, match=rf"huge\.png.*{cause}"):
        read_image(path)
    with pytest.raises(ImageReadError, match=rf"huge\.png.*{cause}"):
        read_depth(path, scale=1.0)


def test_pixel_cap_is_configurable(tmp_path):
    Image.fromarray(RGB).save(tmp_path / "a.png")
    with pytest.raises(ImageReadError, match=r"a\.png: 24x20 = 0\.0 MP exceeds"):
        read_image(tmp_path / "a.png", max_pixels=479)
    assert read_image(tmp_path / "a.png", max_pixels=480).shape == (20, 24, 3)


# ---------------------------------------------------------------- modes


@pytest.mark.parametrize(
    "mode, fmt",
    [
        ("L", "PNG"),
        ("LA", "PNG"),
        ("RGBA", "PNG"),
        ("P", "PNG"),
        ("I;16", "PNG"),
        ("I", "TIFF"),
        ("1", "PNG"),
        ("CMYK", "JPEG"),
        ("RGB", "BMP"),
    ],
)
def test_every_image_mode_becomes_a_3_channel_sample(tmp_path, mode, fmt):
    image = (
        Image.fromarray(RGB).convert("L").convert(mode)
        if mode.startswith("I")
        else Image.fromarray(RGB).convert(mode)
    )
    image.save(tmp_path / f"x.{fmt.lower()}", format=fmt)
    sample = ImageFolder(tmp_path)[0]
    assert sample["image"].shape == (3, 20, 24) and sample["image"].dtype == torch.float32
    assert 0 <= sample["image"].min() and sample["image"].max() <= 1


def test_float_images_refused_naming_the_file(tmp_path):
    Image.fromarray(RGB[..., 0].astype(np.float32)).save(tmp_path / "f.tif")
    with pytest.raises(ImageReadError, match=r"f\.tif.*mode F"):
        ImageFolder(tmp_path)[0]


# ---------------------------------------------------------------- bad depth values


def test_nan_inf_zero_negative_depth_are_masked_everywhere(tmp_path):
    depth = np.full((16, 16), 3.0, dtype=np.float32)
    depth[0, :4] = [np.nan, -2.0, 0.0, -np.inf]
    depth[1, 0] = np.inf  # sky
    fields = depth_fields(depth)
    valid = fields["valid"]
    assert valid.sum() == 16 * 16 - 5 and not valid[0, :4].any() and not valid[1, 0]
    assert torch.equal(fields["depth"][0, :4], torch.zeros(4))  # unknown -> 0, never NaN
    assert fields["depth"][1, 0] == float("inf")  # sky stays inf, as the sample contract says
    sample = fit_sample({"image": image_to_tensor(np.zeros((16, 16, 3), np.uint8)), **fields}, 8)
    assert not torch.isnan(sample["depth"]).any()
    # the loss is finite with finite gradients, even where the mask is dropped
    target = depth_to_disparity(fields["depth"])[None]
    pred = torch.rand(1, 16, 16, requires_grad=True)
    for mask in (valid[None], None):
        loss = affine_invariant_loss(pred, target, mask)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(pred.grad).all()
    # written to disk they become 0 = invalid, and read back as such
    write_depth(tmp_path / "d.png", depth, scale=100.0)
    back = read_depth(tmp_path / "d.png")
    assert (back[0, :4] == 0).all() and back[1, 0] == 0 and (back[2:] == 3.0).all()


def test_all_invalid_depth_gives_zero_loss(tmp_path):
    fields = depth_fields(np.full((8, 8), np.nan, dtype=np.float32))
    assert not fields["valid"].any() and (fields["depth"] == 0).all()
    pred = torch.rand(1, 8, 8, requires_grad=True)
    loss = affine_invariant_loss(
        pred, depth_to_disparity(fields["depth"])[None], fields["valid"][None]
    )
    loss.backward()
    assert loss.item() == 0 and torch.equal(pred.grad, torch.zeros_like(pred))


# ---------------------------------------------------------------- checkpoints


def test_checkpoint_of_another_model_size_is_named(tmp_path):
    from dalib.model import DepthAnything, export_official_state_dict, load_official_checkpoint

    torch.save(export_official_state_dict(DepthAnything("tiny")), tmp_path / "tiny.pth")
    with pytest.raises(ValueError) as info:
        load_official_checkpoint(DepthAnything("micro"), tmp_path / "tiny.pth")
    message = str(info.value)
    assert "tiny.pth does not match DepthAnything('micro')" in message
    assert "shape mismatches" in message and "looks like a tiny checkpoint" in message


class _Exploit:
    """Unpickling this runs code: it writes the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return builtins.exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",)


def test_pickle_that_runs_code_is_refused_and_does_not_run(tmp_path):
    from dalib.model import DepthAnything, load_checkpoint, load_official_checkpoint

    marker = tmp_path / "pwned.txt"
    evil = tmp_path / "evil.pth"
    torch.save({"pretrained.cls_token": torch.zeros(1), "payload": _Exploit(marker)}, evil)
    torch.load(evil, weights_only=False)  # proof that the fixture is a real exploit
    assert marker.read_text() == "pwned"
    marker.unlink()
    model = DepthAnything("micro")
    with pytest.raises(ValueError, match=r"could not read .*evil\.pth"):
        load_official_checkpoint(model, evil)
    with pytest.raises(ValueError, match=r"evil\.pth is not a readable safetensors checkpoint"):
        load_checkpoint(evil)
    evil.rename(tmp_path / "evil.safetensors")
    with pytest.raises(ValueError, match=r"evil\.safetensors"):
        load_official_checkpoint(model, tmp_path / "evil.safetensors")
    assert not marker.exists()


# ---------------------------------------------------------------- output folders


@pytest.fixture
def regular_file(tmp_path) -> Path:
    """A plain file: any path under it is a folder that cannot exist (works as root too)."""
    path = tmp_path / "plain_file"
    path.write_text("I am a file")
    return path


def test_write_depth_under_a_file_names_the_folder(regular_file):
    with pytest.raises(NotADirectoryError, match=rf"folder {regular_file}/out cannot be created"):
        write_depth(regular_file / "out" / "d.png", np.ones((2, 2)))


def test_write_depth_to_an_unwritable_folder_names_it(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)  # what a read-only folder does (also as root)
    with pytest.raises(
        PermissionError,
        match=rf"folder {tmp_path} cannot be created or written \(Permission denied\)",
    ):
        write_depth(tmp_path / "d.png", np.ones((2, 2)))


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_write_depth_into_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match=f"folder {folder}"):
            write_depth(folder / "d.png", np.ones((2, 2)))
    finally:
        folder.chmod(0o700)


def test_dataset_cache_under_a_file_names_the_folder(regular_file):
    with pytest.raises(NotADirectoryError, match=rf"{regular_file}/cache cannot be created"):
        SynthDepthDataset("indoor_rooms", 1, 16, root=regular_file / "cache", progress=False)


def test_report_and_checkpoint_under_a_file_name_the_folder(regular_file, monkeypatch):
    from dalib.model import DepthAnything, save_checkpoint
    from dalib.report import write_section

    monkeypatch.setenv("DALIB_HOME", str(regular_file / "runs"))
    with pytest.raises(OSError, match=rf"{regular_file}/runs"):
        write_section("99_test", "Test", "body")
    with pytest.raises(OSError, match=rf"{regular_file}/ckpt"):
        save_checkpoint(DepthAnything("micro"), regular_file / "ckpt" / "m.safetensors")
