"""Pictures: colourised depth / disparity, class maps, comparison grids, a scene browser, and
the series' one figure style.

The style: every model has one colour in every chart (:func:`model_color`); near is warm in
every depth or disparity picture (:data:`DISPARITY_CMAP`, :data:`DEPTH_CMAP`), and a map shown
with :func:`disparity_panel` or :func:`depth_panel` gets a colour bar in :func:`show_grid`.

Everything draws on :class:`matplotlib.figure.Figure` objects created directly (no pyplot
state), so it works headless (no display needed, Agg rendering) and figures are never shown
twice in a notebook: return the figure as a cell's last value to display it.
"""

from __future__ import annotations

import importlib
import io
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np
import torch
from einops import rearrange
from matplotlib.figure import Figure
from PIL import Image

if TYPE_CHECKING:
    import ipywidgets

INVALID_COLOR = (0, 0, 0)  # colour of masked / non-finite pixels in colourised maps
VIEWS = ("image", "depth", "disparity", "semantics")
DISPARITY_CMAP = "Spectral_r"  # high disparity (near) red, low (far) blue
DEPTH_CMAP = "Spectral"  # small depth (near) red, large (far) blue: near is warm in both

MODEL_COLORS = {
    "constant disparity": "#9e9e9e",
    "ground-plane prior": "#525252",
    "teacher": "#1f77b4",
    "labeled_only": "#17becf",
    "student_plain": "#ff7f0e",
    "student_perturb": "#2ca02c",
    "student": "#d62728",
    "student_trim10": "#9467bd",
    "semantic": "#8c564b",
    "random": "#bcbd22",
}
"""The series' colour of each model (checkpoint names; baselines by their table names)."""
_SPARE = matplotlib.colormaps["tab20"](np.arange(20))


def model_color(name: str) -> str | tuple:
    """The fixed colour of model ``name`` in every chart of the series.

    ``name`` may be a checkpoint name (``"student_perturb"``, ``"student_seed2"``), a Table 9
    label (``"(c) student_perturb"``) or a baseline's name; the seed and a leading ``"(x) "``
    are ignored. Names not in :data:`MODEL_COLORS` get a colour from ``tab20`` chosen by a hash
    of the name, the same in every run."""
    key = name.split(") ", 1)[-1] if name.startswith("(") else name
    key = key.split("_seed", 1)[0]
    if key in MODEL_COLORS:
        return MODEL_COLORS[key]
    return tuple(_SPARE[zlib.crc32(key.encode()) % len(_SPARE)])


def _numpy(values) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def _valid_map(values, mask) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) float64 values and where they are drawn: finite and, if given, inside ``mask``."""
    array = _numpy(values).astype(np.float64)
    if array.ndim != 2:
        raise ValueError(f"values must have shape (H, W), got {array.shape}")
    valid = np.isfinite(array)
    if mask is not None:
        mask_np = _numpy(mask).astype(bool)
        if mask_np.shape != array.shape:
            raise ValueError(
                f"mask shape {mask_np.shape} does not match values shape {array.shape}"
            )
        valid &= mask_np
    return array, valid


def _value_range(array, valid, vmin, vmax, percentiles) -> tuple[float, float]:
    """The colour scale's ends: ``vmin`` / ``vmax``, each missing one that percentile of the
    valid values (of 0 when none is valid)."""
    shown = array[valid] if valid.any() else np.zeros(1)
    low = float(np.percentile(shown, percentiles[0])) if vmin is None else float(vmin)
    high = float(np.percentile(shown, percentiles[1])) if vmax is None else float(vmax)
    return low, high


def colorize(
    values: np.ndarray | torch.Tensor,
    mask: np.ndarray | torch.Tensor | None = None,
    cmap: str = DISPARITY_CMAP,
    vmin: float | None = None,
    vmax: float | None = None,
    percentiles: tuple[float, float] = (2.0, 98.0),
) -> np.ndarray:
    """Colour a scalar map (depth, disparity, error) through a matplotlib colormap.

    Args:
        values: (H, W) numbers.
        mask: optional bool (H, W); pixels where it is False, and non-finite pixels, are
            drawn in :data:`INVALID_COLOR` (black).
        cmap: colormap name; the default ``Spectral_r`` shows high values red, low blue
            (for disparity: near = red, far = blue).
        vmin, vmax: value range; each missing end defaults to the given percentile of the
            valid values, so a few outliers do not wash out the map.

    Returns:
        uint8 (H, W, 3). A map with no valid pixel is all black.
    """
    array, valid = _valid_map(values, mask)
    out = np.empty((*array.shape, 3), dtype=np.uint8)
    out[:] = INVALID_COLOR
    if not valid.any():
        return out
    low, high = _value_range(array, valid, vmin, vmax, percentiles)
    span = high - low if high > low else 1.0
    unit = np.clip((array[valid] - low) / span, 0.0, 1.0)
    colours = matplotlib.colormaps[cmap](unit)[:, :3]
    out[valid] = np.rint(colours * 255).astype(np.uint8)
    return out


def semantic_palette(num_classes: int) -> np.ndarray:
    """A fixed palette (num_classes, 3) uint8: ``tab20`` colours, then evenly spaced hues.

    Class 0 (``"sky"`` in :mod:`dalib.synth`) is light sky blue.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    tab20 = matplotlib.colormaps["tab20"](np.arange(20))[:, :3]
    extra = matplotlib.colormaps["hsv"](
        np.linspace(0, 1, max(num_classes - 20, 0), endpoint=False)
    )[:, :3]
    palette = np.rint(np.concatenate([tab20, extra])[:num_classes] * 255).astype(np.uint8)
    palette[0] = (135, 206, 235)
    return palette


def colorize_semantic(
    labels: np.ndarray | torch.Tensor, num_classes: int | None = None
) -> np.ndarray:
    """Colour an int class map (H, W) with :func:`semantic_palette`; labels outside
    ``[0, num_classes)`` (e.g. an ignore index) are black. Returns uint8 (H, W, 3)."""
    array = _numpy(labels).astype(np.int64)
    if num_classes is None:
        num_classes = max(int(array.max(initial=0)) + 1, 1)
    palette = np.concatenate([semantic_palette(num_classes), np.zeros((1, 3), np.uint8)])
    index = np.where((array >= 0) & (array < num_classes), array, num_classes)
    return palette[index]


@dataclass(frozen=True)
class ScalarPanel:
    """A (H, W) map that :func:`show_grid` draws with a colour bar (see :func:`disparity_panel`)."""

    values: np.ndarray
    mask: np.ndarray | None
    cmap: str
    vmin: float
    vmax: float
    label: str


def _scalar_panel(values, mask, cmap: str, label: str, vmin, vmax, percentiles) -> ScalarPanel:
    array, valid = _valid_map(values, mask)
    low, high = _value_range(array, valid, vmin, vmax, percentiles)
    return ScalarPanel(
        array, None if mask is None else _numpy(mask), cmap, low, max(high, low), label
    )


def disparity_panel(
    values,
    mask=None,
    label: str = "disparity (near = warm)",
    vmin: float | None = None,
    vmax: float | None = None,
    percentiles: tuple[float, float] = (2.0, 98.0),
) -> ScalarPanel:
    """A disparity map (H, W) for :func:`show_grid` / :func:`draw_panel`: near = warm, with a
    colour bar; each missing end of the range is that percentile of the valid pixels."""
    return _scalar_panel(values, mask, DISPARITY_CMAP, label, vmin, vmax, percentiles)


def depth_panel(
    values,
    mask=None,
    label: str = "depth, m (near = warm)",
    vmin: float | None = None,
    vmax: float | None = None,
    percentiles: tuple[float, float] = (2.0, 98.0),
) -> ScalarPanel:
    """A depth map (H, W) for :func:`show_grid` / :func:`draw_panel`: near = warm, with a
    colour bar."""
    return _scalar_panel(values, mask, DEPTH_CMAP, label, vmin, vmax, percentiles)


def draw_panel(ax, cell) -> None:
    """Draw one panel on matplotlib axes ``ax``: a :class:`ScalarPanel` with its colour bar,
    anything else as :func:`show_grid` takes it (an image, or a map colourised without bar)."""
    if not isinstance(cell, ScalarPanel):
        ax.imshow(_panel(cell), interpolation="nearest")
        return
    image = colorize(cell.values, cell.mask, cell.cmap, cell.vmin, cell.vmax)
    ax.imshow(image, interpolation="nearest")
    scale = matplotlib.cm.ScalarMappable(
        matplotlib.colors.Normalize(cell.vmin, cell.vmax), cell.cmap
    )
    bar = ax.figure.colorbar(scale, ax=ax, fraction=0.046, pad=0.02)
    bar.set_label(cell.label, fontsize=7)
    bar.ax.tick_params(labelsize=6)


def _panel(value) -> np.ndarray:
    """A grid cell as something ``imshow`` draws: uint8 (H, W, 3) as is; a (3, H, W) tensor in
    [0, 1] as an image; a (H, W, 3) float in [0, 1]; a (H, W) map colourised."""
    array = _numpy(value)
    if array.ndim == 3 and array.shape[0] == 3 and array.shape[-1] != 3:
        array = rearrange(array, "c h w -> h w c")
    if array.ndim == 2:
        return colorize(array)
    if array.ndim == 3 and array.shape[-1] == 3:
        return array if array.dtype == np.uint8 else np.clip(array, 0.0, 1.0)
    raise ValueError(
        f"cannot draw a panel of shape {array.shape}: expected (H, W), (H, W, 3) or (3, H, W)"
    )


def show_grid(
    rows: Sequence[Sequence],
    titles: Sequence[Sequence[str]] | Sequence[str] | None = None,
    row_labels: Sequence[str] | None = None,
    cell_size: float = 2.2,
) -> Figure:
    """A comparison grid: one row per sample, one column per view (image, GT, predictions...).

    Args:
        rows: list of rows, each a list of panels: uint8 (H, W, 3) images, float (3, H, W)
            tensors in [0, 1], (H, W) maps (colourised with :func:`colorize`), or maps from
            :func:`disparity_panel` / :func:`depth_panel` (drawn with a colour bar). ``None``
            leaves a cell empty. Rows may have different lengths.
        titles: column titles (one list for all rows, shown on the first row) or one list per row.
        row_labels: text at the left of each row.
        cell_size: inches per cell.

    Returns:
        The :class:`~matplotlib.figure.Figure` (not shown; display or ``savefig`` it).
    """
    n_rows = len(rows)
    n_cols = max((len(r) for r in rows), default=0)
    if n_rows == 0 or n_cols == 0:
        raise ValueError("rows must hold at least one panel")
    per_row = titles is not None and len(titles) > 0 and not isinstance(titles[0], str)
    figure = Figure(figsize=(cell_size * n_cols, cell_size * n_rows), layout="constrained")
    axes = figure.subplots(n_rows, n_cols, squeeze=False)
    for r, row in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(row) or row[c] is None:
                ax.set_axis_off()
                continue
            draw_panel(ax, row[c])
            row_titles = titles[r] if per_row else (titles if r == 0 else None)
            if row_titles is not None and c < len(row_titles):
                ax.set_title(row_titles[c], fontsize=9)
        if row_labels is not None and r < len(row_labels):
            axes[r, 0].set_ylabel(row_labels[r], fontsize=9)
    return figure


def _png_bytes(image: np.ndarray, scale: int) -> bytes:
    picture = Image.fromarray(image)
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def scene_view(scene: Any, view: str) -> np.ndarray:
    """One view of a :class:`dalib.synth.Scene` as uint8 (H, W, 3): the image, colourised
    depth (near = red; sky black), colourised disparity, or the semantic classes."""
    from dalib.depth import depth_to_disparity

    if view == "image":
        return scene.image
    if view == "depth":
        return colorize(scene.depth, cmap=DEPTH_CMAP)
    if view == "disparity":
        return colorize(depth_to_disparity(scene.depth), mask=~scene.sky)
    if view == "semantics":
        classes = importlib.import_module("dalib.synth").SEMANTIC_CLASSES
        return colorize_semantic(scene.semantic, num_classes=len(classes))
    raise ValueError(f"unknown view {view!r}; choose one of {VIEWS}")


def scene_browser(
    size: int | tuple[int, int] = 96, max_seed: int = 99, zoom: int = 3
) -> ipywidgets.VBox:
    """An ipywidgets browser of the synthetic world: pick a domain, a seed and a view.

    The domain list is grouped as labeled / unlabeled / held-out (``dalib.synth``); scenes are
    rendered on demand at ``size`` and kept while the widget lives. Returns a ``VBox`` whose
    ``.image`` attribute is the picture widget and ``.controls`` the (domain, seed, view)
    widgets, so code can drive it too.
    """
    import ipywidgets as widgets

    synth = importlib.import_module("dalib.synth")

    groups = (
        ("labeled", synth.LABELED),
        ("unlabeled", synth.UNLABELED),
        ("validation", synth.VALIDATION),
        ("held-out", synth.HELD_OUT),
    )
    options = [(f"{group}: {name}", name) for group, names in groups for name in names]
    hw = (size, size) if isinstance(size, int) else tuple(size)
    domain = widgets.Dropdown(options=options, description="domain")
    seed = widgets.IntSlider(
        value=0, min=0, max=max_seed, description="seed", continuous_update=False
    )
    view = widgets.ToggleButtons(options=list(VIEWS), description="view")
    picture = widgets.Image(format="png")
    rendered: dict[tuple[str, int], object] = {}

    def redraw(_change=None) -> None:
        key = (domain.value, seed.value)
        if key not in rendered:
            rendered[key] = synth.render(domain.value, seed=seed.value, size=hw)
        picture.value = _png_bytes(scene_view(rendered[key], view.value), zoom)

    for control in (domain, seed, view):
        control.observe(redraw, names="value")
    redraw()
    browser = widgets.VBox([widgets.HBox([domain, seed]), view, picture])
    browser.image = picture
    browser.controls = (domain, seed, view)
    return browser


def regime_map(curves: dict[str, list[tuple]], title: str = "", metric: str = "AbsRel") -> Figure:
    """The regime map: the full method's gain over the labeled-only model (y, with 2
    standard-error bars) against the unlabeled:labeled ratio (x, log scale), one line per
    curve of :func:`dalib.ablation.regime_gains`; y = 0 (no gain) drawn as a reference."""
    fig = Figure(figsize=(6.0, 3.6))
    ax = fig.add_subplot()
    colors = (model_color("student"), model_color("student_plain"))  # with / without perturbation
    for (name, points), color in zip(curves.items(), colors):
        if not points:
            continue
        ratio, gain, se, _ = (np.array(v, dtype=float) for v in zip(*points))
        bars = np.where(np.isfinite(se), 2 * se, 0.0)
        ax.errorbar(ratio, gain, yerr=bars, marker="o", capsize=4, color=color, label=name)
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("unlabeled : labeled images")
    ax.set_ylabel(f"gain over labeled-only ({metric})")
    ax.set_title(title or "full method vs labeled-only, same schedule (bars: 2 s.e.)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
