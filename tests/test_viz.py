"""dalib.viz: colour maps, palettes, grids and the scene browser (headless)."""

import io
import sys
import types
from types import SimpleNamespace

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from dalib import viz
from dalib.viz import (
    INVALID_COLOR,
    colorize,
    colorize_semantic,
    scene_browser,
    semantic_palette,
    show_grid,
)


def cmap_rgb(name, x):
    return np.rint(np.asarray(matplotlib.colormaps[name](x))[:3] * 255).astype(np.uint8)


def test_colorize_shape_range_and_invalid_pixels():
    values = np.array([[0.0, 1.0, 2.0], [np.nan, np.inf, 1.0]])
    mask = np.array([[True, True, True], [True, True, False]])
    out = colorize(values, mask, cmap="viridis", vmin=0.0, vmax=2.0)
    assert out.shape == (2, 3, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, 0], cmap_rgb("viridis", 0.0))
    np.testing.assert_array_equal(out[0, 1], cmap_rgb("viridis", 0.5))
    np.testing.assert_array_equal(out[0, 2], cmap_rgb("viridis", 1.0))
    for col in range(3):  # NaN, inf and masked-out pixels
        np.testing.assert_array_equal(out[1, col], INVALID_COLOR)


def test_colorize_default_range_ignores_outliers():
    values = np.linspace(0.0, 1.0, 100).reshape(10, 10)
    values[0, 0] = 1e6  # one outlier would squash everything else into one colour
    out = colorize(torch.tensor(values), cmap="viridis")
    top = cmap_rgb("viridis", 1.0)
    assert (out == top).all(axis=-1).sum() <= 3  # only pixels above the 98th percentile saturate
    assert len(np.unique(out.reshape(-1, 3), axis=0)) > 50


def test_colorize_constant_and_empty_maps():
    np.testing.assert_array_equal(
        colorize(np.full((2, 2), 5.0), cmap="viridis")[0, 0], cmap_rgb("viridis", 0.0)
    )
    assert (colorize(np.ones((2, 2)), mask=np.zeros((2, 2), bool)) == 0).all()
    with pytest.raises(ValueError, match="values must have shape"):
        colorize(np.ones((2, 2, 2)))


def test_semantic_palette_and_class_maps():
    palette = semantic_palette(40)
    assert palette.shape == (40, 3) and palette.dtype == np.uint8
    assert len(np.unique(palette, axis=0)) == 40
    np.testing.assert_array_equal(semantic_palette(40), palette)  # deterministic
    labels = torch.tensor([[0, 1], [255, 2]])
    out = colorize_semantic(labels, num_classes=3)
    np.testing.assert_array_equal(out[0, 0], palette[0])
    np.testing.assert_array_equal(out[1, 1], palette[2])
    np.testing.assert_array_equal(out[1, 0], [0, 0, 0])  # outside the classes


def test_show_grid_returns_a_figure_of_mixed_panels():
    rows = [
        [np.zeros((8, 8, 3), np.uint8), torch.rand(3, 8, 8), np.random.rand(8, 8)],
        [np.ones((8, 8, 3), np.uint8) * 255, None],
    ]
    fig = show_grid(rows, titles=["image", "tensor", "map"], row_labels=["a", "b"])
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 6 and len(fig.axes[0].images) == 1 and len(fig.axes[4].images) == 0
    assert fig.axes[1].get_title() == "tensor" and fig.axes[3].get_title() == ""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")  # renders without a display
    assert Image.open(buffer).size[0] > 0
    with pytest.raises(ValueError, match="cannot draw a panel"):
        show_grid([[np.zeros((2, 2, 5))]])


def _fake_synth():
    fake = types.ModuleType("dalib.synth")
    fake.LABELED, fake.UNLABELED, fake.HELD_OUT = ("a",), ("b", "c"), ("d",)
    fake.VALIDATION = ("v",)
    fake.SEMANTIC_CLASSES = ("sky", "ground", "wall")
    fake.calls = []

    def render(domain, seed, size):
        fake.calls.append((domain, seed, size))
        depth = np.full(size, 2.0 + seed, dtype=np.float32)
        depth[0] = np.inf
        semantic = np.ones(size, dtype=np.int64)
        semantic[0] = 0
        image = np.full((*size, 3), 100, dtype=np.uint8)
        return SimpleNamespace(image=image, depth=depth, sky=np.isinf(depth), semantic=semantic)

    fake.render = render
    return fake


def test_scene_browser_builds_and_reacts(monkeypatch):
    fake = _fake_synth()
    monkeypatch.setitem(sys.modules, "dalib.synth", fake)
    browser = scene_browser(size=6, zoom=2)
    domain, seed, view = browser.controls
    assert [label for label, _ in domain.options] == [
        "labeled: a",
        "unlabeled: b",
        "unlabeled: c",
        "validation: v",
        "held-out: d",
    ]
    assert fake.calls == [("a", 0, (6, 6))]
    shown = Image.open(io.BytesIO(browser.image.value))
    assert shown.size == (12, 12)
    np.testing.assert_array_equal(np.asarray(shown.convert("RGB"))[5, 5], [100, 100, 100])
    pictures = {}
    for name in ("depth", "disparity", "semantics"):
        view.value = name
        pictures[name] = browser.image.value
    assert len(set(pictures.values())) == 3 and len(fake.calls) == 1  # views reuse the scene
    semantics = np.asarray(Image.open(io.BytesIO(pictures["semantics"])).convert("RGB"))
    np.testing.assert_array_equal(semantics[0, 0], semantic_palette(3)[0])
    seed.value = 4
    domain.value = "d"
    assert fake.calls[-2:] == [("a", 4, (6, 6)), ("d", 4, (6, 6))]


def test_scene_browser_with_the_real_renderer():
    pytest.importorskip("dalib.synth")
    browser = scene_browser(size=12, zoom=1)
    assert Image.open(io.BytesIO(browser.image.value)).size == (12, 12)


def test_model_color_is_fixed_per_model_whatever_the_label():
    assert (
        viz.model_color("student")
        == viz.model_color("(d) student")
        == viz.model_color("student_seed2")
    )
    assert viz.model_color("labeled_only") == viz.model_color("(a) labeled_only_seed1")
    known = [viz.model_color(name) for name in viz.MODEL_COLORS]
    assert len(set(known)) == len(known), "two models share a colour"
    assert viz.model_color("my_new_model") == viz.model_color("my_new_model_seed3")  # stable


def test_near_is_warm_for_disparity_and_for_depth():
    ramp = np.linspace(0.0, 1.0, 16).reshape(4, 4)
    disparity = viz.colorize(ramp, cmap=viz.DISPARITY_CMAP).astype(int)
    depth = viz.colorize(ramp, cmap=viz.DEPTH_CMAP).astype(int)
    near_disparity, far_disparity = disparity[-1, -1], disparity[0, 0]  # high disparity = near
    near_depth, far_depth = depth[0, 0], depth[-1, -1]  # small depth = near
    for near, far in ((near_disparity, far_disparity), (near_depth, far_depth)):
        assert near[0] > near[2] and far[2] > far[0]  # near red, far blue


def test_scalar_panels_get_a_colour_bar_in_show_grid():
    values = np.random.default_rng(0).random((8, 8))
    mask = np.ones((8, 8), bool)
    mask[0] = False
    panel = viz.disparity_panel(values, mask)
    assert panel.vmin < panel.vmax and panel.cmap == viz.DISPARITY_CMAP
    fig = viz.show_grid([[values, panel, viz.depth_panel(1.0 / (values + 0.1))]])
    assert len(fig.axes) == 3 + 2  # three cells, two colour bars
    labels = {ax.get_ylabel() for ax in fig.axes[3:]}
    assert labels == {"disparity (near = warm)", "depth, m (near = warm)"}
    with pytest.raises(ValueError, match="shape"):
        viz.disparity_panel(np.zeros((2, 2, 2)))


def test_draw_panel_puts_a_colour_bar_beside_a_map_on_any_axes():
    fig = Figure()
    ax = fig.add_subplot()
    viz.draw_panel(ax, viz.depth_panel(np.arange(16.0).reshape(4, 4), percentiles=(0, 100)))
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "depth, m (near = warm)"
    viz.draw_panel(fig.add_subplot(2, 1, 2), np.zeros((4, 4, 3), np.uint8))  # an image: no bar
    assert len(fig.axes) == 3
