"""The ray caster of :mod:`dalib.world.geometry` as batched torch code, for rendering on a GPU.

:func:`pack` puts the primitives of one scene into tensors by kind, and :func:`nearest_hits`
intersects every ray with every primitive of a kind in one batched expression, instead of one
primitive at a time: a few dozen kernel launches per batch of rays, so that a GPU stays busy.
The formulas are those of ``geometry`` term by term, in float64, including its bounding-sphere
test, so hits agree with the NumPy ray caster to rounding (the tests hold t to 1e-12 relative;
ties between primitives go to the lower index, as there). :mod:`dalib.world.render_torch` shades
with it. On the CPU this code is about 4x slower than NumPy's (it tests every ray against
every primitive instead of culling first); it is meant for a GPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from dalib.world.geometry import T_MIN, Box, Cylinder, Plane, Primitive, Sphere

_F64 = torch.float64


def _first_positive(*ts: Tensor) -> Tensor:
    """Elementwise smallest candidate > T_MIN (inf if none); NaN candidates count as misses."""
    stacked = torch.stack(ts)
    return torch.where(stacked > T_MIN, stacked, torch.inf).amin(0)


def as_tensor(values, device: torch.device, dtype: torch.dtype = _F64) -> Tensor:
    """``values`` (arrays, numbers, nested lists) as a tensor on ``device``; copied first, as
    cached NumPy arrays are read-only."""
    return torch.as_tensor(np.array(values), dtype=dtype, device=device)


def gather_kind(
    primitives: Sequence[Primitive], kind: type, fields: Sequence[str], device: torch.device
) -> tuple[list[int], list[Tensor]]:
    """The indices of the primitives of ``kind`` and their ``fields`` stacked (one (P_kind,
    ...) float64 tensor each)."""
    columns = [k for k, p in enumerate(primitives) if type(p) is kind]
    return columns, [as_tensor([getattr(primitives[k], f) for k in columns], device) for f in fields]


def _planes(o: Tensor, d: Tensor, point: Tensor, normal: Tensor, radius: Tensor) -> Tensor:
    t = ((point - o[:, None]) * normal).sum(-1) / (d @ normal.T)  # (N, P)
    offset = o[:, None] + torch.where(torch.isfinite(t), t, 0)[..., None] * d[:, None] - point
    inside = (offset * offset).sum(-1) <= radius**2
    return _first_positive(torch.where(torch.isinf(radius) | inside, t, torch.inf))


def _boxes(o: Tensor, d: Tensor, centre: Tensor, half: Tensor, rot: Tensor) -> Tensor:
    lo = torch.einsum("npi,pij->npj", o[:, None] - centre, rot)  # rot (P, 3, 3): box-to-world
    ld = torch.einsum("ni,pij->npj", d, rot)
    ld = torch.where(ld == 0, 1e-300, ld)
    t1, t2 = (-half - lo) / ld, (half - lo) / ld
    near = torch.minimum(t1, t2).amax(-1)
    far = torch.maximum(t1, t2).amin(-1)
    return _first_positive(torch.where(near <= far, near, torch.inf))


def _spheres(o: Tensor, d: Tensor, centre: Tensor, radius: Tensor) -> Tensor:
    oc = o[:, None] - centre  # (N, P, 3)
    a, b = (d * d).sum(-1)[:, None], (oc * d[:, None]).sum(-1)
    disc = b * b - a * ((oc * oc).sum(-1) - radius**2)
    root = torch.sqrt(torch.where(disc >= 0, disc, torch.nan))
    return _first_positive((-b - root) / a, (-b + root) / a)


def _cylinders(o: Tensor, d: Tensor, base: Tensor, radius: Tensor, height: Tensor) -> Tensor:
    oc = o[:, None] - base  # (N, P, 3)
    dx, dy, dz = d[:, 0:1], d[:, 1:2], d[:, 2:3]
    a = dx**2 + dz**2
    b = oc[..., 0] * dx + oc[..., 2] * dz
    disc = b * b - a * (oc[..., 0] ** 2 + oc[..., 2] ** 2 - radius**2)
    side = (-b - torch.sqrt(torch.where(disc >= 0, disc, torch.nan))) / a
    y = oc[..., 1] + side * dy
    side = torch.where((y >= 0) & (y <= height), side, torch.inf)
    caps = []
    for level in (torch.zeros_like(height), height):
        t = (level - oc[..., 1]) / dy
        rx, rz = oc[..., 0] + t * dx, oc[..., 2] + t * dz
        caps.append(torch.where(rx**2 + rz**2 <= radius**2, t, torch.inf))
    return _first_positive(side, *caps)


# each kind: the fields packed per primitive (one (P, ...) tensor each) and its batched hit test
_KINDS = (
    (Plane, ("point", "normal", "radius"), _planes),
    (Box, ("centre", "half", "_rot"), _boxes),
    (Sphere, ("centre", "radius"), _spheres),
    (Cylinder, ("base", "radius", "height"), _cylinders),
)


def pack(primitives: Sequence[Primitive], device: torch.device) -> tuple[list, Tensor, Tensor]:
    """A scene's primitives as tensors on ``device``, for :func:`nearest_hits`: [(columns, hit
    test, fields)] by kind, and the bounding spheres' centres (P, 3) and radii (P,) (inf:
    unbounded). TypeError naming any kind this module cannot trace."""
    known = {kind for kind, _, _ in _KINDS}
    unknown = {type(p).__name__ for p in primitives if type(p) not in known}
    if unknown:
        raise TypeError(f"raycast_torch cannot trace primitives of kind {sorted(unknown)}")
    groups = []
    for kind, fields, hits in _KINDS:
        columns, values = gather_kind(primitives, kind, fields, device)
        if columns:
            groups.append((columns, hits, values))
    bounds = [p.bound for p in primitives]
    centre = as_tensor([(0.0, 0.0, 0.0) if b is None else b[0] for b in bounds], device)
    radius = as_tensor([np.inf if b is None else b[1] for b in bounds], device)
    return groups, centre.reshape(-1, 3), radius


def _nearest(packed: tuple[list, Tensor, Tensor], o: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
    groups, centre, radius = packed
    t_all = torch.full((len(d), len(radius)), torch.inf, dtype=_F64, device=d.device)
    for columns, hits, values in groups:
        t_all[:, columns] = hits(o, d, *values)
    # geometry._candidates leaves the rays that miss a bounding sphere untested: inf here too
    oc = centre - o[:, None]  # (N, P, 3)
    along = (d[:, None] * oc).sum(-1)
    miss2 = (oc * oc).sum(-1) - torch.where(along > 0, along, 0) ** 2 / (d * d).sum(-1)[:, None]
    t_all = torch.where(torch.isinf(radius) | (miss2 <= radius**2 * (1 + 1e-9)), t_all, torch.inf)
    if not len(radius):
        return t_all.new_full((len(d),), torch.inf), torch.full((len(d),), -1, device=d.device)
    t, index = t_all.min(1)  # the first minimum: the lower index wins ties, as in geometry
    return t, torch.where(torch.isfinite(t), index, -1)


@torch.no_grad()
def nearest_hits(
    packed: tuple[list, Tensor, Tensor],
    origins: Tensor,
    dirs: Tensor,
    chunk: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Nearest hit of each ray in a :func:`pack`-ed scene, on the rays' device: t (N,) float64
    (inf on a miss) and the primitive index (N,) int64 (-1 on a miss). origins: (3,) shared or
    (N, 3); dirs (N, 3). Rays go ``chunk`` at a time (temporaries of chunk x primitives x 3
    floats; default: as many as keep that near 2**22 x 3, 100 MB, so a 256 px image of a
    dozen primitives is one chunk: fewer, larger kernels)."""
    chunk = chunk or max(1, (1 << 22) // max(len(packed[2]), 1))
    o = origins.expand(len(dirs), 3) if origins.dim() == 1 else origins
    parts = [_nearest(packed, o[i : i + chunk], dirs[i : i + chunk])
             for i in range(0, len(dirs), chunk)]
    if not parts:
        return dirs.new_zeros(0), torch.zeros(0, dtype=torch.int64, device=dirs.device)
    return torch.cat([t for t, _ in parts]), torch.cat([k for _, k in parts])


def trace_tensors(
    primitives: Sequence[Primitive], origins: Tensor, dirs: Tensor, chunk: int | None = None
) -> tuple[Tensor, Tensor]:
    """:func:`dalib.world.geometry.trace` on tensors: :func:`nearest_hits` of ``primitives``."""
    return nearest_hits(pack(primitives, dirs.device), origins, dirs, chunk)


__all__ = ["as_tensor", "gather_kind", "nearest_hits", "pack", "trace_tensors"]
