"""Surface textures for the synthetic world: procedural patterns and bundled photographs.

A texture is a small square image that tiles the plane: either a scalar pattern (S, S) in
[0, 1], mapped through two colours, or an RGB photograph (S, S, 3) in [0, 1]. A
:class:`Material` places one on a surface: it maps surface coordinates in metres (from the
ray caster, ``dalib.world.geometry``) to albedo, one linear interpolation for both kinds:
``albedo = low + (high - low) * texel``.

Photographs come only from the images shipped inside scikit-image's wheel (no network):
see :data:`PHOTOS`. Everything here is deterministic: pattern ``variant`` numbers seed their
own generator, and caches only avoid recomputation.
"""

from __future__ import annotations

import colorsys
import functools
from dataclasses import dataclass

import numpy as np
from PIL import Image

from dalib.config import stable_seed

TEXTURE_SIZE = 64  # side of a pattern tile, texels
PHOTO_SIZE = 128  # side a photograph is resized to, texels
N_VARIANTS = 8  # distinct random variants of each pattern kind

PATTERNS = ("checker", "stripes", "noise", "wood", "bricks", "tiles")
# Photographs bundled with scikit-image (checked to load offline). Grayscale ones are
# colourised like patterns; colour ones are tinted.
PHOTOS_GRAY = ("brick", "grass", "gravel", "moon", "camera")
PHOTOS_RGB = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")
PHOTOS = PHOTOS_GRAY + PHOTOS_RGB


def _periodic_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Tileable smooth value noise (size, size) in [0, 1]: a random (cells, cells) lattice,
    interpolated with a smoothstep, wrapping around the borders."""
    lattice = rng.random((cells, cells))
    x = np.arange(size) * cells / size
    i0 = np.floor(x).astype(int)
    i1 = (i0 + 1) % cells
    f = x - i0
    f = f * f * (3 - 2 * f)
    rows = lattice[i0] * (1 - f)[:, None] + lattice[i1] * f[:, None]  # (size, cells)
    return rows[:, i0] * (1 - f)[None, :] + rows[:, i1] * f[None, :]


def _fractal_noise(
    rng: np.random.Generator, size: int, octaves: int = 4, base: int = 4
) -> np.ndarray:
    """Sum of ``octaves`` periodic noises of doubling frequency, rescaled to [0, 1]."""
    total = sum(0.5**o * _periodic_noise(rng, size, base * 2**o) for o in range(octaves))
    return (total - total.min()) / (np.ptp(total) + 1e-12)


@functools.cache
def pattern(kind: str, variant: int) -> np.ndarray:
    """A tileable scalar pattern (TEXTURE_SIZE, TEXTURE_SIZE) float32 in [0, 1].

    ``kind`` is one of :data:`PATTERNS`; ``variant`` (0..N_VARIANTS-1) picks frequency and
    randomness. The result is cached and read-only.
    """
    if kind not in PATTERNS:
        raise ValueError(f"unknown pattern kind {kind!r}; choose one of {PATTERNS}")
    if not 0 <= variant < N_VARIANTS:
        raise ValueError(f"pattern variant must be in [0, {N_VARIANTS}), got {variant}")
    rng = np.random.default_rng(stable_seed("pattern", kind, variant))
    s = TEXTURE_SIZE
    y, x = np.mgrid[0:s, 0:s] / s  # texel coordinates in [0, 1)
    n = 2 + variant % 4  # repetitions per tile
    grain = _fractal_noise(rng, s)
    if kind == "checker":
        out = ((np.floor(x * n) + np.floor(y * n)) % 2).astype(float)
        out = 0.85 * out + 0.15 * grain
    elif kind == "stripes":
        out = 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * n * (x + (y if variant >= 4 else 0))))
        out = 0.85 * out + 0.15 * grain
    elif kind == "noise":
        out = grain
    elif kind == "wood":
        warp = _fractal_noise(rng, s, base=2)
        out = 0.5 + 0.5 * np.sin(2 * np.pi * (3 * n * x + 2.0 * warp))
        out = 0.75 * out**3 + 0.25 * grain
    elif kind == "bricks":
        rows = 2 * n
        row = np.floor(y * rows)
        bx = (x * n + 0.5 * (row % 2)) % 1
        by = (y * rows) % 1
        mortar = (bx < 0.06) | (by < 0.12)
        out = np.where(mortar, 0.1 * grain, 0.55 + 0.45 * grain)
    else:  # tiles
        gx, gy = (x * n) % 1, (y * n) % 1
        out = np.where((gx < 0.05) | (gy < 0.05), 0.05, 0.7 + 0.3 * grain)
    out = np.clip(out, 0, 1).astype(np.float32)
    out.flags.writeable = False
    return out


@functools.cache
def photo(name: str) -> np.ndarray:
    """A bundled scikit-image photograph, centre-cropped square and resized to PHOTO_SIZE.

    Returns float32 in [0, 1]: (S, S) for :data:`PHOTOS_GRAY`, (S, S, 3) for
    :data:`PHOTOS_RGB`. Cached and read-only. Never touches the network.
    """
    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}; choose one of {PHOTOS}")
    import skimage.data  # imported lazily: only photo textures need it

    raw = np.asarray(getattr(skimage.data, name)())
    h, w = raw.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = Image.fromarray(raw[top : top + side, left : left + side])
    out = np.asarray(crop.resize((PHOTO_SIZE, PHOTO_SIZE), Image.BOX), dtype=np.float32) / 255
    out.flags.writeable = False
    return out


@dataclass(frozen=True, eq=False)
class Material:
    """A texture placed on a surface.

    texture: (S, S) scalar or (S, S, 3) RGB texels in [0, 1].
    low, high: (3,) RGB albedo in [0, 1] for texel value 0 and 1 (per channel).
    scale: metres covered by one texture tile.
    mirror: tile by mirroring (hides the seams of non-tileable photographs).
    """

    texture: np.ndarray
    low: np.ndarray
    high: np.ndarray
    scale: float = 1.0
    mirror: bool = False

    def __post_init__(self) -> None:
        if self.texture.ndim not in (2, 3) or (
            self.texture.ndim == 3 and self.texture.shape[2] != 3
        ):
            raise ValueError(f"texture must be (S,S) or (S,S,3), got shape {self.texture.shape}")
        if not self.scale > 0:
            raise ValueError(f"scale must be > 0 metres, got {self.scale}")

    @classmethod
    def solid(cls, rgb: tuple[float, float, float]) -> Material:
        """A uniform colour (albedo ``rgb`` in [0, 1])."""
        colour = np.asarray(rgb, dtype=np.float32)
        return cls(np.ones((1, 1), np.float32), colour, colour)

    def albedo(self, uv: np.ndarray) -> np.ndarray:
        """Bilinearly sampled albedo (N, 3) float32 at surface coordinates ``uv`` (N, 2) metres."""
        tex = self.texture
        s_y, s_x = tex.shape[:2]
        coords = uv / self.scale
        if self.mirror:  # triangle wave: 0 -> 1 -> 0 over two tiles
            coords = 1 - np.abs(np.mod(coords, 2) - 1)
        x = np.mod(coords[:, 0], 1) * s_x - 0.5
        y = np.mod(coords[:, 1], 1) * s_y - 0.5
        x0, y0 = np.floor(x), np.floor(y)
        fx, fy = (x - x0).astype(np.float32), (y - y0).astype(np.float32)
        x0, y0 = x0.astype(int) % s_x, y0.astype(int) % s_y
        x1, y1 = (x0 + 1) % s_x, (y0 + 1) % s_y
        if tex.ndim == 3:
            fx, fy = fx[:, None], fy[:, None]
        top = tex[y0, x0] * (1 - fx) + tex[y0, x1] * fx
        bottom = tex[y1, x0] * (1 - fx) + tex[y1, x1] * fx
        texel = top * (1 - fy) + bottom * fy
        if tex.ndim == 2:
            texel = texel[:, None]
        return self.low + (self.high - self.low) * texel


def random_color(
    rng: np.random.Generator,
    saturation: tuple[float, float],
    value: tuple[float, float] = (0.35, 0.95),
) -> np.ndarray:
    """An RGB colour (3,) float32 with uniform hue and saturation/value in the given ranges."""
    rgb = colorsys.hsv_to_rgb(rng.random(), rng.uniform(*saturation), rng.uniform(*value))
    return np.asarray(rgb, dtype=np.float32)


def random_material(
    rng: np.random.Generator,
    patterns: tuple[str, ...] = PATTERNS,
    photos: tuple[str, ...] = (),
    photo_prob: float = 0.0,
    saturation: tuple[float, float] = (0.2, 0.7),
    scale: tuple[float, float] = (0.5, 2.0),
) -> Material:
    """A random material: a bundled photo (with probability ``photo_prob``, if ``photos``)
    or one of ``patterns``, with random colours and a tile size drawn from ``scale`` metres."""
    tile = float(rng.uniform(*scale))
    if photos and rng.random() < photo_prob:
        name = photos[rng.integers(len(photos))]
        tint = random_color(rng, (0.0, 0.25), (0.8, 1.0))
        if name in PHOTOS_GRAY:  # colourise: dark texels -> a dim colour, bright -> a light one
            low = random_color(rng, saturation, (0.05, 0.3))
            return Material(
                photo(name), low, tint * random_color(rng, saturation, (0.7, 1.0)), tile, True
            )
        return Material(photo(name), np.zeros(3, np.float32), tint, tile, True)
    if not patterns:
        raise ValueError("patterns must name at least one pattern kind when no photo is drawn")
    kind = patterns[rng.integers(len(patterns))]
    texture = pattern(kind, int(rng.integers(N_VARIANTS)))
    base = random_color(rng, saturation)
    other = random_color(rng, saturation) if rng.random() < 0.5 else base * rng.uniform(0.3, 0.7)
    return Material(texture, other.astype(np.float32), base, tile)
