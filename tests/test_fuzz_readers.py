"""Property tests of the file readers: whatever bytes a file holds, ``read_image`` and
``read_depth`` return a correct array or raise the documented error naming the file
(``ImageReadError``, a ``ValueError``), never anything else.

Valid images are checked against an independent reference computed from the pixels the
test encoded (for lossless format/mode pairs); random and mutated bytes only need the
documented outcome. Example counts are small enough for a few seconds on 2 CPU cores.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from dalib.io import ImageReadError, read_depth, read_image, write_depth

FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
MODES = ("L", "LA", "RGB", "RGBA", "P", "I;16")
FORMATS = {  # format -> modes it can save, and of those the ones that read back exactly
    "PNG": (MODES, MODES),
    "TIFF": (MODES, MODES),
    "BMP": (("L", "RGB", "RGBA", "P"), ("L", "RGB", "P")),
    "WEBP": (("L", "LA", "RGB", "RGBA", "P"), ("RGB", "RGBA")),
    "JPEG": (("L", "RGB"), ()),
}
MAGIC = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
    b"GIF89a",
    b"RIFF\x00\x00\x00\x00WEBPVP8 ",
)


def _check_outcome(path: Path, read) -> np.ndarray | None:
    """The array ``read(path)`` returns, or None if it raised the documented error naming the
    file; any other exception fails the test."""
    try:
        return read(path)
    except ValueError as err:  # ImageReadError is a ValueError
        assert str(path) in str(err), f"error does not name the file: {err}"
        return None


def _random_image(draw, mode: str) -> tuple[Image.Image, np.ndarray]:
    """A random image of ``mode`` and the uint8 (H, W, 3) array read_image must return."""
    height, width = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        values = rng.integers(0, 65536, (height, width)).astype(np.uint16)
        gray = np.floor(values.astype(np.float64) * 255 / 65535 + 0.5).astype(np.uint8)
        return Image.fromarray(values), np.repeat(gray[..., None], 3, -1)
    if mode == "P":
        index = rng.integers(0, 256, (height, width), dtype=np.uint8)
        palette = rng.integers(0, 256, (256, 3), dtype=np.uint8)
        image = Image.fromarray(index, "L").convert("P")
        image.putpalette(palette.ravel().tolist())
        return image, palette[index]
    pixels = rng.integers(0, 256, (height, width, len(mode)), dtype=np.uint8)
    image = Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode)
    color = np.repeat(pixels[..., :1], 3, -1) if mode in ("L", "LA") else pixels[..., :3]
    if mode in ("LA", "RGBA"):  # composited over black: colour x alpha, rounded
        alpha = pixels[..., -1:].astype(np.float64)
        color = np.floor(color * alpha / 255 + 0.5).astype(np.uint8)
    return image, color


@st.composite
def encoded_images(draw):
    fmt = draw(st.sampled_from(sorted(FORMATS)))
    savable, exact = FORMATS[fmt]
    mode = draw(st.sampled_from(savable))
    image, expected = _random_image(draw, mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"lossless": True, "exact": True} if fmt == "WEBP" else {}))
    return buffer.getvalue(), expected, mode in exact, f"{fmt}-{mode}"


@given(case=encoded_images())
@FUZZ
def test_valid_images_read_correctly(tmp_path, case):
    data, expected, exact, name = case
    path = tmp_path / f"{name}.img"
    path.write_bytes(data)
    image = read_image(path)
    assert image.dtype == np.uint8 and image.shape == expected.shape, name
    if exact:
        np.testing.assert_array_equal(image, expected, err_msg=name)


@given(data=st.binary(max_size=600), magic=st.sampled_from((b"", *MAGIC)))
@FUZZ
def test_random_bytes_read_or_raise_the_documented_error(tmp_path, data, magic):
    path = tmp_path / "random.png"
    path.write_bytes(magic + data)
    image = _check_outcome(path, read_image)
    assert image is None or (image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3)
    depth = _check_outcome(path, lambda p: read_depth(p, scale=256.0))
    assert depth is None or (depth.dtype == np.float32 and depth.ndim == 2 and (depth >= 0).all())


@given(
    case=encoded_images(),
    cut=st.floats(0, 1),
    flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=6),
)
@FUZZ
def test_damaged_images_read_or_raise_the_documented_error(tmp_path, case, cut, flips):
    data = bytearray(case[0])
    for where, value in flips:  # overwrite a few bytes anywhere, headers included
        data[min(int(where * len(data)), len(data) - 1)] = value
    path = tmp_path / "damaged.img"
    path.write_bytes(bytes(data[: max(1, int(cut * len(data)))] if cut < 1 else data))
    image = _check_outcome(path, read_image)
    assert image is None or (image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3)


@given(
    height=st.integers(1, 20),
    width=st.integers(1, 20),
    scale=st.sampled_from((1.0, 100.0, 256.0, 1000.0, 3.5)),
    seed=st.integers(0, 2**32 - 1),
)
@FUZZ
def test_16bit_depth_codes_read_exactly(tmp_path, height, width, scale, seed):
    codes = np.random.default_rng(seed).integers(0, 65536, (height, width)).astype(np.uint16)
    path = tmp_path / "codes.png"
    Image.fromarray(codes).save(path)
    depth = read_depth(path, scale=scale)
    expected = np.where(codes > 0, codes / scale, 0).astype(np.float32)
    np.testing.assert_array_equal(depth, expected)


@given(case=encoded_images())
@FUZZ
def test_8bit_images_are_not_depth(tmp_path, case):
    data, _, _, name = case
    path = tmp_path / f"{name}.img"
    path.write_bytes(data)
    if name.endswith("I;16"):
        assert read_depth(path, scale=1.0).ndim == 2
    else:
        with pytest.raises(ImageReadError, match=rf"{name}\.img.*16-bit"):
            read_depth(path, scale=1.0)


@given(
    values=st.lists(
        st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32), st.floats(0.01, 60.0)),
        min_size=1,
        max_size=64,
    ),
    scale=st.sampled_from((256.0, 1000.0)),
)
@FUZZ
def test_depth_roundtrip_within_half_step_invalid_to_zero(tmp_path, values, scale):
    depth = np.asarray(values, dtype=np.float32)[None, :]
    valid = np.isfinite(depth) & (depth > 0)
    path = tmp_path / "depth.png"
    too_big = valid & (np.rint(depth.astype(np.float64) * scale) > 65535)
    too_small = valid & (np.rint(depth.astype(np.float64) * scale) < 1)
    if too_big.any() or too_small.any():
        with pytest.raises(ValueError, match=r"depth\.png"):
            write_depth(path, depth, scale=scale)
        return
    write_depth(path, depth, scale=scale)
    back = read_depth(path)
    assert (back[~valid] == 0).all()
    np.testing.assert_allclose(back[valid], depth[valid], atol=0.5 / scale + 1e-6, rtol=1e-6)
