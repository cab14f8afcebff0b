"""Lighting of the synthetic world: Lambertian shading, ambient light, cast shadows, sky, fog.

:func:`shade` traces camera rays (``dalib.world.geometry``), looks up each hit's albedo from its
material (``dalib.world.textures``) and lights it with an ambient term that favours upward faces plus
one sun or point light, casting a shadow ray per lit pixel. Colours are linear RGB, about 0..1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dalib.world.geometry import Camera, Primitive, occluded, raycast
from dalib.world.textures import Material, pattern

INF = float("inf")


@dataclass(frozen=True, eq=False)
class Light:
    """One light plus ambient. Exactly one of ``direction`` (a sun: (3,) vector pointing towards
    it) or ``position`` (a point light, (3,) metres, intensity halved at ``reach`` metres).
    color, ambient: (3,) RGB intensities."""

    color: np.ndarray
    ambient: np.ndarray
    direction: np.ndarray | None = None
    position: np.ndarray | None = None
    reach: float = INF

    def __post_init__(self) -> None:
        if (self.direction is None) == (self.position is None):
            raise ValueError("Light needs exactly one of direction (sun) or position (point light)")


@dataclass(frozen=True, eq=False)
class Sky:
    """Sky colour by elevation: ``horizon`` (3,) at and below the horizon, ``zenith`` (3,)
    straight up, with a noise cloud layer covering about ``clouds`` (0..1) of it."""

    horizon: np.ndarray
    zenith: np.ndarray
    clouds: float = 0.0
    cloud_variant: int = 0

    def color(self, dirs: np.ndarray) -> np.ndarray:
        """RGB (N, 3) seen along world directions ``dirs`` (N, 3)."""
        up = dirs[:, 1] / np.linalg.norm(dirs, axis=1)
        mix = np.sqrt(np.clip(up, 0, 1))[:, None]
        rgb = self.horizon * (1 - mix) + self.zenith * mix
        if self.clouds > 0:
            above = np.flatnonzero(up > 0.02)
            plane = dirs[above][:, [0, 2]] / dirs[above, 1:2]  # where the ray meets a cloud layer
            noise = Material(pattern("noise", self.cloud_variant), np.zeros(3), np.ones(3), 6.0)
            cover = np.clip((noise.albedo(plane)[:, :1] - (1 - self.clouds)) * 3, 0, 1)
            cover = cover * np.clip(up[above, None] * 5, 0, 1)  # thin out towards the horizon
            rgb[above] = rgb[above] * (1 - cover) + 0.95 * cover
        return rgb


def shade(
    camera: Camera,
    primitives: list[Primitive],
    size: tuple[int, int],
    light: Light,
    sky: Sky | None = None,
    fog_m: float = INF,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render primitives with Lambertian shading, ambient light and cast shadows.

    Geometry comes from :func:`dalib.world.geometry.raycast`. Returns image (H, W, 3) float32 linear
    RGB (about 0..1), depth (H, W) float32 z-depth in metres (inf where no primitive is hit)
    and object_id (H, W) int64 (-1 where none). Rays that hit nothing see ``sky`` (black if
    None); fog blends towards the horizon colour with ``1 - exp(-distance / fog_m)``."""
    depth, object_id, normal_map = raycast(camera, primitives, size)
    dirs, index = camera.rays(size), object_id.ravel()
    hit = np.flatnonzero(index >= 0)
    t = depth.ravel()[hit].astype(np.float64)  # ray parameter = z-depth
    points = camera.position + t[:, None] * dirs[hit]
    normals = normal_map.reshape(-1, 3)[hit].astype(np.float64)
    albedo = np.empty((len(hit), 3))
    for k in np.unique(index[hit]):
        rows = index[hit] == k
        albedo[rows] = primitives[k].material.albedo(primitives[k].uv(points[rows], normals[rows]))
    if light.position is None:
        to_light = np.broadcast_to(light.direction / np.linalg.norm(light.direction), points.shape)
        dist, falloff = np.full(len(hit), INF), 1.0
    else:
        to_light = light.position - points
        dist = np.linalg.norm(to_light, axis=1)
        to_light, falloff = to_light / dist[:, None], 1 / (1 + (dist / light.reach) ** 2)
    cos = np.clip(np.einsum("ni,ni->n", normals, to_light), 0, None)
    lit = np.flatnonzero(cos > 0)
    blocked = occluded(primitives, points[lit] + 1e-4 * normals[lit], to_light[lit], dist[lit])
    cos[lit[blocked]] = 0
    ambient = light.ambient * (0.8 + 0.2 * normals[:, 1:2])  # upward faces see more sky
    rgb = albedo * (ambient + light.color * (cos * falloff)[:, None])
    horizon = sky.horizon if sky is not None else np.zeros(3)
    if np.isfinite(fog_m):
        clear = np.exp(-t * np.linalg.norm(dirs[hit], axis=1) / fog_m)[:, None]
        rgb = rgb * clear + horizon * (1 - clear)
    image = sky.color(dirs) if sky is not None else np.zeros((len(dirs), 3))
    image[hit] = rgb
    return image.reshape(*depth.shape, 3).astype(np.float32), depth, object_id
