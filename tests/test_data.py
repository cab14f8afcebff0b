"""dalib.data / dalib.io: robust image and depth I/O, datasets, caching, resizing."""

import io
import math
import pickle
import sys
import types
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image, PngImagePlugin

from dalib.data import (
    MOTORCYCLE_CALIBRATION,
    SPLIT_SEEDS,
    ImageFolder,
    ImageReadError,
    RGBDFolder,
    SynthDepthDataset,
    atomic_write,
    fit_sample,
    middlebury_motorcycle,
    read_depth,
    read_image,
    resize_sample,
    write_depth,
)
from dalib.depth import stereo_depth

# ---------------------------------------------------------------- read_image: modes


def save(image: Image.Image, path, **kwargs):
    image.save(path, **kwargs)
    return path


def test_read_rgb_roundtrip(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    out = read_image(save(Image.fromarray(rgb), tmp_path / "a.png"))
    assert out.dtype == np.uint8 and out.shape == (5, 7, 3) and out.flags.writeable
    np.testing.assert_array_equal(out, rgb)


def test_read_grayscale_repeats_channels(tmp_path):
    gray = np.array([[0, 50], [200, 255]], dtype=np.uint8)
    out = read_image(save(Image.fromarray(gray, mode="L"), tmp_path / "g.png"))
    assert out.shape == (2, 2, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray)


def test_read_rgba_composites_over_black(tmp_path):
    rgba = np.array([[[200, 100, 50, 128], [10, 20, 30, 255], [90, 90, 90, 0]]], dtype=np.uint8)
    out = read_image(save(Image.fromarray(rgba, mode="RGBA"), tmp_path / "t.png"))
    # 200*128/255 = 100.4 -> 100, 100*128/255 = 50.2 -> 50, 50*128/255 = 25.1 -> 25
    np.testing.assert_array_equal(out, [[[100, 50, 25], [10, 20, 30], [0, 0, 0]]])


def test_read_la_composites_over_black(tmp_path):
    la = Image.fromarray(np.array([[200, 200]], dtype=np.uint8), mode="L")
    la.putalpha(Image.fromarray(np.array([[255, 0]], dtype=np.uint8), mode="L"))
    assert la.mode == "LA"
    out = read_image(save(la, tmp_path / "la.png"))
    np.testing.assert_array_equal(out, [[[200, 200, 200], [0, 0, 0]]])


def test_read_palette_and_palette_transparency(tmp_path):
    palette = Image.new("P", (3, 1))
    palette.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    palette.putdata([0, 1, 2])
    np.testing.assert_array_equal(
        read_image(save(palette, tmp_path / "p.png")), [[[255, 0, 0], [0, 255, 0], [0, 0, 255]]]
    )
    save(palette, tmp_path / "pt.png", transparency=1)  # index 1 (green) transparent
    np.testing.assert_array_equal(
        read_image(tmp_path / "pt.png"), [[[255, 0, 0], [0, 0, 0], [0, 0, 255]]]
    )


def test_read_16bit_grayscale_scaled_to_8bit(tmp_path):
    values = np.array([[0, 65535], [257 * 100, 32768]], dtype=np.uint16)
    path = save(Image.fromarray(values), tmp_path / "16.png")
    with Image.open(path) as stored:
        assert stored.mode.startswith("I")
    out = read_image(path)
    # 32768 * 255 / 65535 = 127.502 -> 128
    np.testing.assert_array_equal(out[..., 0], [[0, 255], [100, 128]])
    assert out.dtype == np.uint8 and out.shape == (2, 2, 3)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_read_applies_exif_orientation(tmp_path, fmt):
    stored = np.zeros((20, 40, 3), dtype=np.uint8)  # wide: left half red, right half blue
    stored[:, :20] = (255, 0, 0)
    stored[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation 6: the viewer rotates 90 degrees clockwise
    path = save(
        Image.fromarray(stored), tmp_path / f"rot.{fmt.lower()}", format=fmt, exif=exif.tobytes()
    )
    out = read_image(path)
    assert out.shape == (40, 20, 3)  # upright: tall
    expected = np.rot90(stored, k=-1)  # clockwise: the left (red) half ends on top
    error = np.abs(out.astype(int) - expected.astype(int))
    if fmt == "PNG":
        assert error.max() == 0
    else:  # lossy: compare away from the red/blue edge that chroma subsampling blurs
        assert error[:16].max() <= 8 and error[24:].max() <= 8


# ---------------------------------------------------------------- read_image: bad files


def _noise_png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
        buffer, "PNG"
    )
    return buffer.getvalue()


def _noise_jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
        buffer, "JPEG"
    )
    return buffer.getvalue()


def test_missing_image_raises_file_not_found_naming_path(tmp_path):
    path = tmp_path / "nope.png"
    with pytest.raises(FileNotFoundError, match="nope.png"):
        read_image(path)


@pytest.mark.parametrize(
    ("name", "content", "cause"),
    [
        ("empty.png", b"", "empty"),
        ("text.png", b"this is not an image\n" * 10, "cannot identify"),
        ("trunc.png", _noise_png_bytes()[:3000], "runcat"),
        ("trunc.jpg", _noise_jpeg_bytes()[:2000], "truncated"),
        ("garbage.jpg", b"\xff\xd8\xff" + bytes(range(256)) * 4, "cannot read image"),
    ],
)
def test_bad_image_files_raise_image_read_error_naming_path(tmp_path, name, content, cause):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match=cause) as info:
        read_image(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_directory_is_not_an_image(tmp_path):
    with pytest.raises(ImageReadError, match="not a regular file"):
        read_image(tmp_path)


# ---------------------------------------------------------------- depth PNGs


def test_depth_roundtrip_within_half_step_and_invalid_zero(tmp_path):
    rng = np.random.default_rng(3)
    depth = rng.uniform(0.01, 250.0, (6, 9)).astype(np.float32)
    depth[0, :4] = [np.nan, np.inf, 0.0, -2.0]
    path = tmp_path / "d.png"
    write_depth(path, depth, scale=256.0)
    back = read_depth(path)  # scale read from the file
    assert back.dtype == np.float32 and back.shape == depth.shape
    np.testing.assert_array_equal(back[0, :4], 0.0)
    valid = np.isfinite(depth) & (depth > 0)
    assert np.abs(back[valid] - depth[valid]).max() <= 0.5 / 256 + 1e-5
    with Image.open(path) as image:
        assert image.mode.startswith("I") and image.info["dalib_depth_scale"] == "256.0"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.png"]  # no temp files left
    # an explicit scale overrides the stored one
    np.testing.assert_allclose(read_depth(path, scale=512.0), back / 2, rtol=1e-6)


def test_depth_accepts_tensor_and_exact_codes(tmp_path):
    path = tmp_path / "t.png"
    write_depth(path, torch.tensor([[1.0, 2.5], [0.001, math.inf]]), scale=1000.0)
    with Image.open(path) as stored:
        np.testing.assert_array_equal(np.asarray(stored), [[1000, 2500], [1, 0]])


def test_depth_overflow_raises_naming_path_and_max(tmp_path):
    path = tmp_path / "far.png"
    write_depth(path, np.ones((2, 2)), scale=256.0)
    before = path.read_bytes()
    with pytest.raises(ValueError, match=r"far\.png.*255\.996"):
        write_depth(path, np.array([[1.0, 300.0]]), scale=256.0)
    assert path.read_bytes() == before  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["far.png"]


def test_depth_too_small_raises_instead_of_becoming_invalid(tmp_path):
    with pytest.raises(ValueError, match=r"near\.png.*round to 0"):
        write_depth(tmp_path / "near.png", np.array([[1e-4, 1.0]]), scale=256.0)


def test_depth_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="shape"):
        write_depth(tmp_path / "x.png", np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="scale"):
        write_depth(tmp_path / "x.png", np.ones((2, 2)), scale=0)


def test_depth_without_stored_scale(tmp_path):
    path = save(Image.fromarray(np.array([[500, 0]], dtype=np.uint16)), tmp_path / "kitti.png")
    with pytest.raises(ValueError, match=r"kitti\.png.*dalib_depth_scale"):
        read_depth(path)
    np.testing.assert_allclose(read_depth(path, scale=250.0), [[2.0, 0.0]])


def test_read_depth_rejects_rgb_and_unreadable_scale(tmp_path):
    rgb = save(Image.new("RGB", (2, 2)), tmp_path / "rgb.png")
    with pytest.raises(ImageReadError, match=r"rgb\.png.*16-bit"):
        read_depth(rgb, scale=1.0)
    info = PngImagePlugin.PngInfo()
    info.add_text("dalib_depth_scale", "lots")
    bad = save(Image.fromarray(np.ones((2, 2), np.uint16)), tmp_path / "bad.png", pnginfo=info)
    with pytest.raises(ValueError, match=r"bad\.png.*'lots'"):
        read_depth(bad)
    with pytest.raises(FileNotFoundError, match="gone.png"):
        read_depth(tmp_path / "gone.png")


def test_atomic_write_cleans_up_on_error(tmp_path):
    target = tmp_path / "sub" / "f.bin"
    with pytest.raises(RuntimeError), atomic_write(target) as temp:
        temp.write_bytes(b"half")
        raise RuntimeError("boom")
    assert not target.exists() and list(target.parent.iterdir()) == []


# ---------------------------------------------------------------- resizing


def _sample(h, w):
    image = torch.arange(3 * h * w, dtype=torch.float32).reshape(3, h, w) / (3 * h * w)
    depth = torch.arange(h * w, dtype=torch.float32).reshape(h, w) + 1
    depth[0, 0] = math.inf
    return {
        "image": image,
        "depth": depth,
        "valid": torch.isfinite(depth),
        "domain": "x",
        "index": 0,
    }


def test_resize_sample_nearest_labels_and_antialiased_image():
    sample = _sample(4, 4)
    out = resize_sample(sample, 2)
    assert out["image"].shape == (3, 2, 2) and out["depth"].shape == (2, 2)
    # nearest at pixel centres: rows/cols (0.5 + i) * 2 -> 1, 3
    torch.testing.assert_close(out["depth"], sample["depth"][[1, 3]][:, [1, 3]])
    assert out["valid"].dtype == torch.bool and out["domain"] == "x"
    # the image matches PIL's antialiased bilinear resize (an independent implementation)
    image = torch.rand(3, 12, 16, generator=torch.Generator().manual_seed(0))
    resized = resize_sample({"image": image}, (5, 7))["image"]
    reference = np.stack(
        [
            np.asarray(Image.fromarray(c.numpy(), mode="F").resize((7, 5), Image.BILINEAR))
            for c in image
        ]
    )
    np.testing.assert_allclose(resized.numpy(), reference, atol=1e-5)


def test_fit_sample_covers_then_crops_centre():
    sample = _sample(4, 8)
    out = fit_sample(sample, 4)  # already the right height: centre 4 columns (2..5)
    torch.testing.assert_close(out["depth"], sample["depth"][:, 2:6])
    assert fit_sample(sample, (2, 2))["image"].shape == (3, 2, 2)
    assert torch.isinf(fit_sample(_sample(4, 4), 8)["depth"][:2, :2]).all()  # inf kept unmixed


# ---------------------------------------------------------------- SynthDepthDataset (fake renderer)


class FakeSynth(types.ModuleType):
    """Stands in for dalib.synth: counts calls; scenes are simple functions of the seed."""

    def __init__(self):
        super().__init__("dalib.synth")
        self.DOMAINS = {"indoor": object(), "street": object()}
        self.RENDER_VERSION = "fake-1"
        self.calls = []

    def render_version(self, device):
        return self.RENDER_VERSION if device is None else f"{self.RENDER_VERSION}-{device}"

    def render_many(self, domain, seeds, size, device=None):
        self.calls.append((domain, list(seeds), tuple(size)))
        return [self._scene(domain, s, size) for s in seeds]

    @staticmethod
    def _scene(domain, seed, size):
        h, w = size
        depth = np.full((h, w), 1.0 + seed, dtype=np.float32)
        depth[0] = np.inf
        depth[-1, -1] = 0.0
        sky = np.isinf(depth)
        image = np.full((h, w, 3), seed % 256, dtype=np.uint8)
        semantic = np.where(sky, 0, 3 if domain == "indoor" else 4).astype(np.int64)
        return SimpleNamespace(
            image=image,
            depth=depth,
            sky=sky,
            semantic=semantic,
            K=np.eye(3, dtype=np.float32),
            domain=domain,
            seed=seed,
        )


@pytest.fixture
def fake_synth(monkeypatch):
    fake = FakeSynth()
    monkeypatch.setitem(sys.modules, "dalib.synth", fake)
    return fake


def test_synth_dataset_samples_follow_contract(fake_synth):
    data = SynthDepthDataset(
        ["indoor", "street"], n_per_domain=3, size=(4, 5), seed=SPLIT_SEEDS["val"]
    )
    assert len(data) == 6
    sample = data[4]  # street, scene 1
    assert sample["domain"] == "street" and sample["index"] == 4 and sample["seed"] == 1_000_001
    assert sample["image"].dtype == torch.float32 and sample["image"].shape == (3, 4, 5)
    torch.testing.assert_close(sample["image"], torch.full((3, 4, 5), (1_000_001 % 256) / 255))
    assert sample["depth"].dtype == torch.float32 and sample["depth"][1, 0].item() == 1_000_002
    assert (
        torch.isinf(sample["depth"][0]).all()
        and sample["sky"][0].all()
        and not sample["sky"][1:].any()
    )
    expected_valid = torch.ones(4, 5, dtype=torch.bool)
    expected_valid[0] = False
    expected_valid[-1, -1] = False
    torch.testing.assert_close(sample["valid"], expected_valid)
    assert sample["semantic"].dtype == torch.int64 and sample["semantic"][2, 2].item() == 4
    assert [c[1] for c in fake_synth.calls] == [[1_000_000, 1_000_001, 1_000_002]] * 2
    with pytest.raises(IndexError):
        data[6]


def test_synth_dataset_caches_and_reloads_without_rendering(fake_synth, tmp_path):
    first = SynthDepthDataset(
        "indoor", n_per_domain=20, size=4, root=tmp_path, progress=False, workers=1
    )
    assert sum(len(c[1]) for c in fake_synth.calls) == 20  # rendered in chunks, here
    cached = first.cache_path("indoor")
    assert (
        cached.parent == tmp_path and cached.name.startswith("indoor-") and cached.suffix == ".npz"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [cached.name]  # no temp files
    fake_synth.calls.clear()
    fake_synth.render_many = lambda *a, **k: pytest.fail("rendered although the cache exists")
    second = SynthDepthDataset("indoor", n_per_domain=20, size=4, root=tmp_path, progress=False)
    for i in (0, 7, 19):
        for key in ("image", "depth", "valid", "sky", "semantic"):
            torch.testing.assert_close(second[i][key], first[i][key])


def test_synth_cache_key_changes_with_settings(fake_synth, tmp_path):
    base = SynthDepthDataset("indoor", 2, 4, root=tmp_path, progress=False)
    paths = {base.cache_path("indoor")}
    for kwargs in ({"seed": 5}, {"render_size": 6}):
        paths.add(
            SynthDepthDataset("indoor", 2, 4, root=tmp_path, progress=False, **kwargs).cache_path(
                "indoor"
            )
        )
    paths.add(SynthDepthDataset("indoor", 3, 4, root=tmp_path, progress=False).cache_path("indoor"))
    fake_synth.RENDER_VERSION = "fake-2"
    paths.add(SynthDepthDataset("indoor", 2, 4, root=tmp_path, progress=False).cache_path("indoor"))
    assert len(paths) == 5 and len(fake_synth.calls) == 5


def test_synth_corrupt_cache_is_rerendered_with_warning(fake_synth, tmp_path):
    data = SynthDepthDataset("street", 2, 4, root=tmp_path, progress=False)
    data.cache_path("street").write_bytes(b"not a zip")
    fake_synth.calls.clear()
    with pytest.warns(UserWarning, match="unreadable cache"):
        again = SynthDepthDataset("street", 2, 4, root=tmp_path, progress=False)
    assert len(fake_synth.calls) == 1 and again[1]["seed"] == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SynthDepthDataset(
            "street", 2, 4, root=tmp_path, progress=False
        )  # the rewritten cache loads


def test_synth_dataset_pickles_and_batches(fake_synth):
    data = SynthDepthDataset(["indoor", "street"], 2, size=4)
    clone = pickle.loads(pickle.dumps(data))  # DataLoader workers under "spawn" need this
    torch.testing.assert_close(clone[3]["depth"], data[3]["depth"])
    batch = next(iter(torch.utils.data.DataLoader(data, batch_size=4)))
    assert batch["image"].shape == (4, 3, 4, 4) and batch["valid"].dtype == torch.bool
    assert batch["domain"] == ["indoor", "indoor", "street", "street"]
    assert batch["index"].tolist() == [0, 1, 2, 3]


def test_synth_render_size_fitted_down(fake_synth):
    data = SynthDepthDataset("indoor", 1, size=4, render_size=(8, 12))
    assert fake_synth.calls[0][2] == (8, 12)
    sample = data[0]
    assert sample["image"].shape == (3, 4, 4) and sample["depth"].shape == (4, 4)
    assert set(sample["depth"].unique().tolist()) <= {math.inf, 0.0, 1.0}


def test_synth_dataset_bad_arguments(fake_synth):
    with pytest.raises(ValueError, match="unknown domains.*'moon'"):
        SynthDepthDataset(["indoor", "moon"], 2, 4)
    with pytest.raises(ValueError, match="n_per_domain"):
        SynthDepthDataset("indoor", 0, 4)
    with pytest.raises(ValueError, match="size"):
        SynthDepthDataset("indoor", 1, (4, 0))


def test_synth_dataset_with_the_real_renderer(tmp_path):
    synth = pytest.importorskip("dalib.synth")
    domain = synth.LABELED[0]
    data = SynthDepthDataset(domain, 2, size=16, root=tmp_path, progress=False)
    sample = data[1]
    scene = synth.render(domain, seed=1, size=(16, 16))
    torch.testing.assert_close(
        sample["image"], torch.from_numpy(scene.image).permute(2, 0, 1).float() / 255
    )
    torch.testing.assert_close(sample["depth"], torch.from_numpy(scene.depth))
    assert torch.equal(sample["sky"], torch.from_numpy(scene.sky))
    assert torch.equal(sample["valid"], torch.isfinite(sample["depth"]) & (sample["depth"] > 0))


def test_synth_dataset_same_scenes_whatever_the_worker_count(tmp_path):
    synth = pytest.importorskip("dalib.synth")
    kwargs = {"n_per_domain": 20, "size": 16, "progress": False}  # 20 scenes: two chunks of 16
    one = SynthDepthDataset(synth.UNLABELED[:2], workers=1, **kwargs)
    two = SynthDepthDataset(synth.UNLABELED[:2], root=tmp_path, workers=2, **kwargs)
    three = SynthDepthDataset(synth.UNLABELED[:2], workers=3, **kwargs)
    for a, b, c in zip(one._scenes, two._scenes, three._scenes):
        for name in ("image", "depth", "sky", "semantic", "seeds"):
            np.testing.assert_array_equal(a[name], b[name])
            np.testing.assert_array_equal(a[name], c[name])
    with pytest.raises(ValueError, match="workers"):
        SynthDepthDataset(synth.UNLABELED[0], workers=0, **kwargs)


def _blas_threads(_: int) -> int:
    from threadpoolctl import threadpool_info

    return max((pool["num_threads"] for pool in threadpool_info()), default=1)


def test_render_workers_run_one_blas_thread_each():
    """N workers on N cores: each must not start a BLAS thread per core (oversubscribed, two
    workers rendered 256 px scenes slower than one)."""
    from dalib.workers import parallel_map

    assert list(parallel_map(_blas_threads, [0, 1, 2, 3], workers=2)) == [1, 1, 1, 1]


# ---------------------------------------------------------------- folders


def test_image_folder_recursive_sorted_and_sized(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / ".hidden").mkdir()
    for name in ("b/2.jpg", "a.PNG", "b/1.png", ".hidden/x.png"):
        Image.new("RGB", (6, 4), (10, 20, 30)).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("hi")
    data = ImageFolder(tmp_path, size=(2, 2), min_side=1)
    assert [p.relative_to(tmp_path).as_posix() for p in data.files] == [
        "a.PNG",
        "b/1.png",
        "b/2.jpg",
    ]
    sample = data[1]
    assert set(sample) == {"image", "path", "index"} and sample["index"] == 1
    assert sample["path"].endswith("1.png") and sample["image"].shape == (3, 2, 2)
    torch.testing.assert_close(sample["image"][:, 0, 0], torch.tensor([10, 20, 30]) / 255)
    assert ImageFolder(tmp_path, min_side=1)[0]["image"].shape == (3, 4, 6)


def test_image_folder_errors(tmp_path):
    with pytest.raises(ValueError, match=f"no image files.*{tmp_path.name}"):
        ImageFolder(tmp_path)
    with pytest.raises(FileNotFoundError, match="missing"):
        ImageFolder(tmp_path / "missing")
    (tmp_path / "bad.png").write_text("oops")
    with pytest.raises(ImageReadError, match="bad.png"):
        ImageFolder(tmp_path)[0]


def _rgbd_tree(tmp_path, stems=("0001", "0002"), size=(4, 6)):
    images, depths = tmp_path / "images", tmp_path / "depths"
    images.mkdir(exist_ok=True)
    depths.mkdir(exist_ok=True)
    for i, stem in enumerate(stems):
        Image.new("RGB", size[::-1], (i * 50, 0, 0)).save(images / f"{stem}.jpg")
        depth = np.full(size, 2.0 + i, dtype=np.float32)
        depth[0, 0] = np.nan
        write_depth(depths / f"{stem}.png", depth, scale=100.0)
    return images, depths


def test_rgbd_folder_pairs_and_masks(tmp_path):
    images, depths = _rgbd_tree(tmp_path)
    data = RGBDFolder(images, depths, min_side=1)
    assert len(data) == 2
    sample = data[1]
    assert sample["path"].endswith("0002.jpg") and sample["domain"] == "rgbd"
    assert sample["depth"].shape == (4, 6) and sample["depth"][1, 1].item() == pytest.approx(3.0)
    assert (
        sample["depth"][0, 0].item() == 0.0
        and not sample["valid"][0, 0]
        and sample["valid"][1:].all()
    )
    assert not sample["sky"].any()
    assert RGBDFolder(images, depths, depth_scale=200.0, min_side=1)[1]["depth"][1, 1].item() == pytest.approx(
        1.5
    )
    assert RGBDFolder(images, depths, size=2, min_side=1)[0]["depth"].shape == (2, 2)


def test_rgbd_folder_unpaired_files_named(tmp_path):
    images, depths = _rgbd_tree(tmp_path)
    Image.new("RGB", (6, 4)).save(images / "0003.png")
    with pytest.raises(ValueError, match=r"unpaired.*0003\.png"):
        RGBDFolder(images, depths)
    (images / "0003.png").unlink()
    write_depth(depths / "0009.png", np.ones((4, 6)))
    with pytest.raises(ValueError, match=r"unpaired.*0009\.png"):
        RGBDFolder(images, depths)


def test_rgbd_folder_size_mismatch_names_both(tmp_path):
    images, depths = _rgbd_tree(tmp_path, stems=("a",))
    write_depth(depths / "a.png", np.ones((5, 6)), scale=100.0)
    data = RGBDFolder(images, depths, min_side=1)
    with pytest.raises(ValueError, match=r"a\.jpg.*a\.png"):
        data[0]


# ---------------------------------------------------------------- the real stereo pair


def test_middlebury_motorcycle_offline():
    image, disparity, valid = middlebury_motorcycle()
    assert image.shape == (500, 741, 3) and image.dtype == np.uint8
    assert disparity.shape == (500, 741) and disparity.dtype == np.float32
    assert valid.dtype == bool and 0.8 < valid.mean() < 1.0
    assert (disparity[~valid] == 0).all() and (disparity[valid] > 0).all()
    assert 50 < disparity.max() < 70  # 4x down-sampled Middlebury disparities, pixels
    depth = stereo_depth(disparity, **MOTORCYCLE_CALIBRATION, mask=valid)
    # f * B / (d + doffs) = 994.978 * 0.193001 / (d + 31.086): 2.1 m (d = 59.9) to 6.2 m (d = 0)
    assert (depth[~valid] == 0).all() and 2.0 < depth[valid].min() < depth[valid].max() < 6.2
