"""The renderer of :mod:`dalib.world.shading` as torch code: a scene traced, textured and lit on one
device (a GPU) in a few hundred batched operations instead of loops over primitives.

:func:`shade` takes what :func:`dalib.world.shading.shade` takes, plus ``device``, and returns the
same three arrays. Hits come from :mod:`dalib.world.raycast_torch`; normals, texture coordinates,
texture lookups (a scene's textures stacked into one tensor), light, shadow rays, fog and sky
are computed for every pixel at once with the formulas of ``geometry``, ``textures`` and
``shading`` term by term, in float64 (texels in float32, as there). Held by the tests against
the NumPy renderer on the CPU: depth within 1e-6 relative, the same primitive at every pixel,
linear colour within 1e-4. One (scene, size, device) always gives the same image; across
devices, and against NumPy, the images agree to that tolerance, not bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from dalib.world.geometry import Box, Camera, Cylinder, Plane, Primitive, Sphere, check_size
from dalib.world.raycast_torch import as_tensor, gather_kind, nearest_hits, pack
from dalib.world.shading import INF, Light, Sky
from dalib.world.textures import Material, pattern

_F64 = torch.float64
# (device, key) -> (texture, texels (S_y, S_x, 3) float32): keyed by id for textures larger
# than one texel (the entry keeps the array alive, so the id stays its own), by value otherwise
_TEXELS: dict[tuple[str, object], tuple[np.ndarray, Tensor]] = {}
_TEXELS_MAX = 512


def _texels(texture: np.ndarray, device: torch.device) -> Tensor:
    """``texture`` (S, S) or (S, S, 3) as RGB texels on ``device``, uploaded once."""
    key = (str(device), (texture.dtype.str, texture.item()) if texture.size == 1 else id(texture))
    entry = _TEXELS.get(key)
    if entry is None:
        if len(_TEXELS) >= _TEXELS_MAX:
            _TEXELS.clear()
        rgb = texture if texture.ndim == 3 else np.repeat(texture[..., None], 3, axis=2)
        entry = _TEXELS[key] = (texture, as_tensor(rgb, device, torch.float32))
    return entry[1]


class _Materials:
    """Materials as tensors: every texture in one zero-padded stack ``atlas`` (T, S, S, 3) with
    its ``sides`` (T, 2) (rows, columns), and per material (M,) its texture ``slot``, ``low`` /
    ``high`` (M, 3) float32, ``scale`` (M,) metres and ``mirror`` (M,) bool."""

    def __init__(self, materials: Sequence[Material], device: torch.device) -> None:
        textures: dict[int, int] = {}
        for m in materials:
            textures.setdefault(id(m.texture), len(textures))
        texels = {id(m.texture): _texels(m.texture, device) for m in materials}
        side = max(max(t.shape[:2]) for t in texels.values())
        self.atlas = torch.stack(
            [
                torch.nn.functional.pad(t, (0, 0, 0, side - t.shape[1], 0, side - t.shape[0]))
                for t in texels.values()
            ]
        )
        self.sides = as_tensor([t.shape[:2] for t in texels.values()], device, torch.int64)
        self.slot = as_tensor([textures[id(m.texture)] for m in materials], device, torch.int64)
        self.low = as_tensor([m.low for m in materials], device, torch.float32)
        self.high = as_tensor([m.high for m in materials], device, torch.float32)
        self.scale = as_tensor([m.scale for m in materials], device)
        self.mirror = as_tensor([m.mirror for m in materials], device, torch.bool)

    def albedo(self, which: Tensor, uv: Tensor) -> Tensor:
        """Bilinearly sampled albedo (N, 3) float64 of materials ``which`` (N,) at surface
        coordinates ``uv`` (N, 2) metres: :meth:`dalib.world.textures.Material.albedo`."""
        coords = uv / self.scale[which, None]
        mirrored = 1 - (torch.remainder(coords, 2) - 1).abs()  # triangle wave over two tiles
        coords = torch.where(self.mirror[which, None], mirrored, coords)
        slot = self.slot[which]
        s_y, s_x = self.sides[slot, 0], self.sides[slot, 1]
        x = torch.remainder(coords[:, 0], 1) * s_x - 0.5
        y = torch.remainder(coords[:, 1], 1) * s_y - 0.5
        x0, y0 = x.floor(), y.floor()
        fx, fy = (x - x0).float()[:, None], (y - y0).float()[:, None]
        x0, y0 = x0.long() % s_x, y0.long() % s_y
        x1, y1 = (x0 + 1) % s_x, (y0 + 1) % s_y
        side = self.atlas.shape[1]
        flat = self.atlas.reshape(-1, 3)
        base = slot * side * side

        def texel(row: Tensor, col: Tensor) -> Tensor:
            return flat[base + row * side + col]

        top = texel(y0, x0) * (1 - fx) + texel(y0, x1) * fx
        bottom = texel(y1, x0) * (1 - fx) + texel(y1, x1) * fx
        value = top * (1 - fy) + bottom * fy
        return (self.low[which] + (self.high[which] - self.low[which]) * value).double()


def _box_local(v: Tensor, rot: Tensor) -> Tensor:
    return torch.einsum("ni,nij->nj", v, rot)  # world -> box frame, rot: box-to-world


def _surface(
    primitives: Sequence[Primitive], index: Tensor, p: Tensor, d: Tensor, p_uv: Tensor
) -> tuple[Tensor, Tensor]:
    """Unit normals (N, 3) at hit points ``p`` of primitives ``index`` (N,) (-1: zero),
    facing against the rays ``d`` and rounded to float32 as ``geometry.raycast`` stores them,
    and texture coordinates (N, 2) metres at ``p_uv`` (the points rebuilt from float32 depth,
    as ``shading.shade`` does): each primitive's ``normal_at`` and ``uv``, every kind at once."""
    device = p.device
    normals = torch.zeros_like(p)
    parts = []
    for kind, fields in (
        (Plane, ("normal", "point", "_axes")),
        (Box, ("centre", "half", "_rot")),
        (Sphere, ("centre", "radius")),
        (Cylinder, ("base", "radius", "height")),
    ):
        rows, values = gather_kind(primitives, kind, fields, device)
        if not rows:
            continue
        lookup = torch.full((len(primitives) + 1,), -1, dtype=torch.int64, device=device)
        lookup[rows] = torch.arange(len(rows), device=device)
        row = lookup[index]  # index -1 reads the extra last entry: -1
        mine = row >= 0
        v = [f[row.clamp(min=0)] for f in values]
        if kind is Plane:
            n = v[0]
        elif kind is Box:
            centre, half, rot = v
            lp = _box_local(p - centre, rot) / half
            axis = lp.abs().argmax(-1, keepdim=True)
            local = torch.zeros_like(lp).scatter(-1, axis, lp.gather(-1, axis).sign())
            n = torch.einsum("nj,nij->ni", local, rot)
        elif kind is Sphere:
            n = (p - v[0]) / v[1][:, None]
        else:
            base, radius, height = v
            q = p - base
            rho = torch.hypot(q[:, 0], q[:, 2])
            cap_gap = torch.minimum(q[:, 1].abs(), (q[:, 1] - height).abs())
            on_side = ((rho - radius).abs() < cap_gap)[:, None]
            side_n = torch.stack([q[:, 0], torch.zeros_like(rho), q[:, 2]], 1)
            side_n = side_n / rho.clamp(min=1e-12)[:, None]
            cap_n = torch.zeros_like(q)
            cap_n[:, 1] = torch.where(q[:, 1] > height / 2, 1.0, -1.0)
            n = torch.where(on_side, side_n, cap_n)
        normals = torch.where(mine[:, None], n, normals)
        parts.append((kind, mine, v))
    flip = (normals * d).sum(-1, keepdim=True) > 0
    normals = torch.where(flip, -normals, normals).float().double()
    uv = torch.zeros_like(p[:, :2])
    for kind, mine, v in parts:
        if kind is Plane:
            _, point, axes = v
            coords = torch.einsum("ni,nji->nj", p_uv - point, axes)
        elif kind is Box:
            centre, half, rot = v
            lp = _box_local(p_uv - centre, rot) + half  # in [0, 2 * half]
            lp = torch.stack([lp[:, 0], 2 * half[:, 1] - lp[:, 1], lp[:, 2]], 1)
            axis = _box_local(normals, rot).abs().argmax(-1)[:, None]  # drop the normal's axis
            coords = torch.where(
                axis == 0, lp[:, [2, 1]], torch.where(axis == 1, lp[:, [0, 2]], lp[:, [0, 1]])
            )
        elif kind is Sphere:
            lon = torch.atan2(normals[:, 2], normals[:, 0])
            lat = torch.asin(normals[:, 1].clamp(-1, 1))
            coords = torch.stack([lon, lat], 1) * v[1][:, None]
        else:
            base, radius, _ = v
            q = p_uv - base
            around = torch.atan2(q[:, 2], q[:, 0]) * radius
            side = (normals[:, 1].abs() < 0.5)[:, None]
            coords = torch.where(side, torch.stack([around, q[:, 1]], 1), q[:, [0, 2]])
        uv = torch.where(mine[:, None], coords, uv)
    return normals, uv


def _rays(camera: Camera, size: tuple[int, int], device: torch.device) -> Tensor:
    """:meth:`dalib.world.geometry.Camera.rays` computed on ``device``: (H*W, 3) float64."""
    h, w = size
    v, u = torch.meshgrid(
        torch.arange(h, dtype=_F64, device=device) + 0.5,
        torch.arange(w, dtype=_F64, device=device) + 0.5,
        indexing="ij",
    )
    pix = torch.stack([u.reshape(-1), v.reshape(-1), torch.ones(h * w, dtype=_F64, device=device)])
    return (as_tensor(camera.R @ np.linalg.inv(camera.K), device) @ pix).T


def sky_color(sky: Sky, dirs: Tensor) -> Tensor:
    """:meth:`dalib.world.shading.Sky.color` on tensors: RGB (N, 3) float64 along ``dirs`` (N, 3)."""
    device = dirs.device
    up = dirs[:, 1] / dirs.norm(dim=1)
    mix = up.clamp(0, 1).sqrt()[:, None]
    rgb = as_tensor(sky.horizon, device) * (1 - mix) + as_tensor(sky.zenith, device) * mix
    if sky.clouds > 0:
        above = (up > 0.02)[:, None]
        plane = torch.where(above, dirs[:, [0, 2]] / dirs[:, 1:2], 0)  # on a cloud layer
        noise = Material(pattern("noise", sky.cloud_variant), np.zeros(3), np.ones(3), 6.0)
        which = torch.zeros(len(dirs), dtype=torch.int64, device=device)
        cover = ((_Materials([noise], device).albedo(which, plane)[:, :1] - (1 - sky.clouds)) * 3)
        cover = cover.clamp(0, 1) * (up[:, None] * 5).clamp(0, 1)  # thinner near the horizon
        rgb = torch.where(above, rgb * (1 - cover) + 0.95 * cover, rgb)
    return rgb


@torch.no_grad()
def shade(
    camera: Camera,
    primitives: list[Primitive],
    size: tuple[int, int],
    light: Light,
    sky: Sky | None = None,
    fog_m: float = INF,
    device: str | torch.device = "cuda",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`dalib.world.shading.shade` computed on ``device``: image (H, W, 3) float32 linear RGB,
    depth (H, W) float32 z-depth in metres (inf: no hit) and object_id (H, W) int64 (-1: none),
    returned as NumPy arrays."""
    device = torch.device(device)
    h, w = size = check_size(size)
    dirs = _rays(camera, size, device)
    origin = as_tensor(camera.position, device)
    scene = pack(primitives, device)
    t, index = nearest_hits(scene, origin, dirs)
    hit = (index >= 0)[:, None]
    depth = t.float()
    t_shade = torch.where(hit[:, 0], depth.double(), 0)  # shading reads the stored depth
    normals, uv = _surface(
        primitives,
        index,
        origin + torch.where(hit[:, 0], t, 0)[:, None] * dirs,
        dirs,
        origin + t_shade[:, None] * dirs,
    )
    points = origin + t_shade[:, None] * dirs
    which = index.clamp(min=0)
    if primitives:
        albedo = _Materials([p.material for p in primitives], device).albedo(which, uv)
    else:
        albedo = torch.zeros_like(points)
    if light.position is None:
        direction = as_tensor(light.direction / np.linalg.norm(light.direction), device)
        to_light = direction.expand_as(points)
        dist, falloff = torch.full_like(t, INF), torch.ones_like(t)
    else:
        to_light = as_tensor(light.position, device) - points
        dist = to_light.norm(dim=1)
        to_light, falloff = to_light / dist[:, None], 1 / (1 + (dist / light.reach) ** 2)
    cos = (normals * to_light).sum(-1).clamp(min=0)  # 0 on a miss: its normal is 0
    lit = torch.nonzero(cos > 0)[:, 0]
    t_block, _ = nearest_hits(scene, points[lit] + 1e-4 * normals[lit], to_light[lit])
    cos[lit] = torch.where(t_block < dist[lit], 0, cos[lit])
    ambient = as_tensor(light.ambient, device) * (0.8 + 0.2 * normals[:, 1:2])  # sky from above
    rgb = albedo * (ambient + as_tensor(light.color, device) * (cos * falloff)[:, None])
    horizon = as_tensor(sky.horizon if sky is not None else np.zeros(3), device)
    if np.isfinite(fog_m):
        clear = torch.exp(-t_shade * dirs.norm(dim=1) / fog_m)[:, None]
        rgb = rgb * clear + horizon * (1 - clear)
    background = sky_color(sky, dirs) if sky is not None else torch.zeros_like(rgb)
    image = torch.where(hit, rgb, background)
    return (
        image.reshape(h, w, 3).float().cpu().numpy(),
        depth.reshape(h, w).cpu().numpy(),
        index.reshape(h, w).cpu().numpy(),
    )


__all__ = ["shade", "sky_color"]
