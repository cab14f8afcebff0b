"""The ray caster of :mod:`dalib.geometry` as batched torch code, for rendering on a GPU.

:func:`tracer` returns a drop-in replacement of :func:`dalib.geometry.trace` (NumPy arrays in
and out) that packs the primitives of one scene into tensors by kind and intersects every ray
with every primitive of a kind in one batched expression, instead of one primitive at a time:
a few dozen kernel launches per scene, so that a GPU stays busy. The formulas are those of
``geometry`` term by term, in float64, including its bounding-sphere test, so depth agrees
with the NumPy renderer to rounding (the tests hold it to 1e-6 relative; ties between
primitives go to the lower index, as there).

Shading, textures and sensor effects stay in NumPy (:mod:`dalib.shading`); only the primary
and shadow rays move, which are 57 % of a 256 px render on the dev CPU. On the CPU this code
is about 4x slower than NumPy's (it tests every ray against every primitive instead of culling
first); it is meant for a GPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from dalib.geometry import T_MIN, Box, Cylinder, Plane, Primitive, Sphere, Tracer

_F64 = torch.float64


def _first_positive(*ts: Tensor) -> Tensor:
    """Elementwise smallest candidate > T_MIN (inf if none); NaN candidates count as misses."""
    stacked = torch.stack(ts)
    return torch.where(stacked > T_MIN, stacked, torch.inf).amin(0)


def _tensor(values, device: torch.device) -> Tensor:
    return torch.as_tensor(np.asarray(values, dtype=np.float64), dtype=_F64, device=device)


def _planes(prims: list[Plane], o: Tensor, d: Tensor, dev: torch.device) -> Tensor:
    point = _tensor([p.point for p in prims], dev)  # (P, 3)
    normal = _tensor([p.normal for p in prims], dev)
    radius = _tensor([p.radius for p in prims], dev)
    t = ((point - o[:, None]) * normal).sum(-1) / (d @ normal.T)  # (N, P)
    offset = o[:, None] + torch.where(torch.isfinite(t), t, 0)[..., None] * d[:, None] - point
    inside = (offset * offset).sum(-1) <= radius**2
    return _first_positive(torch.where(torch.isinf(radius) | inside, t, torch.inf))


def _boxes(prims: list[Box], o: Tensor, d: Tensor, dev: torch.device) -> Tensor:
    centre = _tensor([b.centre for b in prims], dev)
    half = _tensor([b.half for b in prims], dev)
    rot = _tensor([b._rot for b in prims], dev)  # (P, 3, 3) box-to-world
    lo = torch.einsum("npi,pij->npj", o[:, None] - centre, rot)
    ld = torch.einsum("ni,pij->npj", d, rot)
    ld = torch.where(ld == 0, 1e-300, ld)
    t1, t2 = (-half - lo) / ld, (half - lo) / ld
    near = torch.minimum(t1, t2).amax(-1)
    far = torch.maximum(t1, t2).amin(-1)
    return _first_positive(torch.where(near <= far, near, torch.inf))


def _spheres(prims: list[Sphere], o: Tensor, d: Tensor, dev: torch.device) -> Tensor:
    centre = _tensor([s.centre for s in prims], dev)
    radius = _tensor([s.radius for s in prims], dev)
    oc = o[:, None] - centre  # (N, P, 3)
    a, b = (d * d).sum(-1)[:, None], (oc * d[:, None]).sum(-1)
    disc = b * b - a * ((oc * oc).sum(-1) - radius**2)
    root = torch.sqrt(torch.where(disc >= 0, disc, torch.nan))
    return _first_positive((-b - root) / a, (-b + root) / a)


def _cylinders(prims: list[Cylinder], o: Tensor, d: Tensor, dev: torch.device) -> Tensor:
    base = _tensor([c.base for c in prims], dev)
    radius = _tensor([c.radius for c in prims], dev)
    height = _tensor([c.height for c in prims], dev)
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


_KINDS = ((Plane, _planes), (Box, _boxes), (Sphere, _spheres), (Cylinder, _cylinders))


def _culled(prims: Sequence[Primitive], o: Tensor, d: Tensor, t: Tensor) -> Tensor:
    """``t`` (N, P) with inf where a ray misses the primitive's bounding sphere, as
    ``geometry._candidates`` leaves those rays untested."""
    bounds = [p.bound for p in prims]
    if all(b is None for b in bounds):
        return t
    centre = _tensor([b[0] if b is not None else (0.0, 0.0, 0.0) for b in bounds], t.device)
    radius = _tensor([b[1] if b is not None else np.inf for b in bounds], t.device)
    oc = centre - o[:, None]  # (N, P, 3)
    along = (d[:, None] * oc).sum(-1)
    dd = (d * d).sum(-1)[:, None]
    miss2 = (oc * oc).sum(-1) - torch.where(along > 0, along, 0) ** 2 / dd
    return torch.where(torch.isinf(radius) | (miss2 <= radius**2 * (1 + 1e-9)), t, torch.inf)


@torch.no_grad()
def trace_tensors(
    primitives: Sequence[Primitive], origins: Tensor, dirs: Tensor, chunk: int = 1 << 15
) -> tuple[Tensor, Tensor]:
    """Nearest hit of each ray, on the rays' device: t (N,) float64 (inf on a miss) and the
    primitive index (N,) int64 (-1 on a miss). origins: (3,) shared or (N, 3); dirs (N, 3).
    Rays go ``chunk`` at a time (temporaries of chunk x primitives x 3 floats)."""
    unknown = {type(p).__name__ for p in primitives if type(p) not in dict(_KINDS)}
    if unknown:
        raise TypeError(f"raycast_torch cannot trace primitives of kind {sorted(unknown)}")
    o = origins.expand(len(dirs), 3) if origins.dim() == 1 else origins
    parts = [_nearest(primitives, o[i : i + chunk], dirs[i : i + chunk])
             for i in range(0, len(dirs), chunk)]
    if not parts:
        return dirs.new_zeros(0), torch.zeros(0, dtype=torch.int64, device=dirs.device)
    return torch.cat([t for t, _ in parts]), torch.cat([k for _, k in parts])


def _nearest(primitives: Sequence[Primitive], o: Tensor, dirs: Tensor) -> tuple[Tensor, Tensor]:
    n = len(dirs)
    t_all = torch.full((n, len(primitives)), torch.inf, dtype=_F64, device=dirs.device)
    for kind, hits in _KINDS:
        columns = [k for k, p in enumerate(primitives) if type(p) is kind]
        if columns:
            t_all[:, columns] = hits([primitives[k] for k in columns], o, dirs, dirs.device)
    if not len(primitives):
        return t_all.new_full((n,), torch.inf), torch.full((n,), -1, device=dirs.device)
    t_all = _culled(primitives, o, dirs, t_all)
    t, index = t_all.min(1)  # the first minimum: the lower index wins ties, as in geometry
    return t, torch.where(torch.isfinite(t), index, -1)


def tracer(device: str | torch.device) -> Tracer:
    """A :func:`dalib.geometry.trace` (NumPy in, NumPy out) that traces on ``device``."""
    device = torch.device(device)

    def trace(
        primitives: Sequence[Primitive], origins: np.ndarray, dirs: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        t, index = trace_tensors(
            primitives, _tensor(origins, device), _tensor(dirs, device)
        )
        return t.cpu().numpy(), index.cpu().numpy()

    return trace


__all__ = ["trace_tensors", "tracer"]
