"""Exact ray casting of a few analytic primitives: the geometry under ``dalib.synth``.

Frames. World: metres, right-handed, y up, the ground at y = 0. Camera: OpenCV (x right,
y down, z forward); with zero yaw/pitch/roll it looks along world -z. The camera ray of
pixel centre (u, v) = (col + 0.5, row + 0.5) has direction d = R @ K^-1 [u, v, 1]; its
camera-frame z component is 1, so the ray parameter t of a hit *is* the z-depth.

Primitives (all exact, closed form): :class:`Plane` (optionally a disc; six inward planes
make a room), :class:`Box` (rotated about the vertical axis), :class:`Sphere` and vertical
:class:`Cylinder` (capped). Each carries a semantic ``label`` and a ``material``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dalib.world.textures import Material

T_MIN = 1e-6  # hits closer than this along the ray are ignored (self-intersection guard)
_GRAY = Material.solid((0.6, 0.6, 0.6))


def _rot_y(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rotation(yaw_deg: float = 0.0, pitch_deg: float = 0.0, roll_deg: float = 0.0) -> np.ndarray:
    """Camera-to-world rotation (3, 3): roll about the optical axis, then pitch (positive looks
    up), then yaw about world +y (positive turns left, counter-clockwise seen from above)."""
    p, r = np.radians([pitch_deg, roll_deg])
    rot_x = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rot_z = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return _rot_y(yaw_deg) @ rot_x @ rot_z @ np.diag([1.0, -1.0, -1.0])


@dataclass(frozen=True, eq=False)
class Camera:
    """Pinhole camera. K: (3, 3) intrinsics in pixels; R: (3, 3) camera-to-world rotation;
    position: (3,) centre in metres."""

    K: np.ndarray
    R: np.ndarray
    position: np.ndarray

    @classmethod
    def from_pose(
        cls,
        size: tuple[int, int],
        fov_deg: float,
        position,
        yaw_deg: float = 0.0,
        pitch_deg: float = 0.0,
        roll_deg: float = 0.0,
    ) -> Camera:
        """A camera for images of ``size`` (H, W) with horizontal field of view ``fov_deg``,
        square pixels and the principal point at the image centre."""
        h, w = check_size(size)
        if not 0 < fov_deg < 180:
            raise ValueError(f"fov_deg must be in (0, 180), got {fov_deg}")
        f = 0.5 * w / np.tan(np.radians(fov_deg) / 2)
        K = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]])
        return cls(K, rotation(yaw_deg, pitch_deg, roll_deg), np.asarray(position, dtype=float))

    def rays(self, size: tuple[int, int]) -> np.ndarray:
        """World directions (H*W, 3), row-major, of the rays through the pixel centres,
        scaled so that their camera-frame z component is 1 (t = z-depth)."""
        h, w = check_size(size)
        v, u = np.mgrid[0:h, 0:w] + 0.5
        pix = np.stack([u.ravel(), v.ravel(), np.ones(h * w)], axis=1)  # (N, 3)
        return pix @ (self.R @ np.linalg.inv(self.K)).T


def check_size(size: tuple[int, int]) -> tuple[int, int]:
    """``size`` as (H, W) ints; ValueError naming ``size`` unless two positive integers."""
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (H, W), got {size!r}") from None
    if h < 1 or w < 1 or (h, w) != tuple(size):
        raise ValueError(f"size must be two positive integers (H, W), got {size!r}")
    return h, w


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("...i,...i->...", a, b)


def _first_positive(*ts: np.ndarray) -> np.ndarray:
    """Elementwise smallest candidate > T_MIN (inf if none); NaN candidates count as misses."""
    stacked = np.stack(ts)
    stacked = np.where(stacked > T_MIN, stacked, np.inf)  # NaN > x is False -> inf
    return stacked.min(axis=0)


@dataclass(frozen=True, eq=False, kw_only=True)
class Primitive:
    """Base of the primitives: semantic ``label`` and ``material``. Subclasses implement
    ``hit(o, d) -> t (N,)`` (inf on a miss), ``normal_at(p) -> (N, 3)`` unit outward normals,
    ``uv(p, n) -> (N, 2)`` surface coordinates in metres and ``bound`` (centre, radius) of
    a bounding sphere, or None if unbounded. o: (3,) or (N, 3); d, p, n: (N, 3)."""

    label: int = 0
    material: Material = field(default=_GRAY)
    bound = None


@dataclass(frozen=True, eq=False, kw_only=True)
class Plane(Primitive):
    """The plane through ``point`` with unit ``normal``; a disc if ``radius`` is finite."""

    point: np.ndarray
    normal: np.ndarray
    radius: float = np.inf

    def __post_init__(self) -> None:
        n = np.asarray(self.normal, dtype=float)
        if n.shape != (3,) or not np.linalg.norm(n) > 0:
            raise ValueError(f"Plane normal must be a non-zero 3-vector, got {self.normal!r}")
        n = n / np.linalg.norm(n)
        # texture axes: u horizontal, v pointing down the plane (photos stay upright on walls)
        u = (
            np.cross([0.0, 1.0, 0.0], n)
            if abs(n[1]) < 0.9
            else np.array([1.0, 0.0, 0.0]) - n[0] * n
        )
        u = u / np.linalg.norm(u)
        object.__setattr__(self, "normal", n)
        object.__setattr__(self, "point", np.asarray(self.point, dtype=float))
        object.__setattr__(self, "_axes", np.stack([u, -np.cross(n, u)]))

    def hit(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            t = _dot(self.point - o, self.normal) / (d @ self.normal)
        if np.isfinite(self.radius):
            offset = o + np.where(np.isfinite(t), t, 0)[:, None] * d - self.point
            t = np.where(_dot(offset, offset) <= self.radius**2, t, np.inf)
        return _first_positive(t)

    def normal_at(self, p: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.normal, p.shape)

    def uv(self, p: np.ndarray, n: np.ndarray) -> np.ndarray:
        return (p - self.point) @ self._axes.T


@dataclass(frozen=True, eq=False, kw_only=True)
class Box(Primitive):
    """Solid box with ``centre``, ``half`` extents (3,) and ``yaw_deg`` about the vertical axis."""

    centre: np.ndarray
    half: np.ndarray
    yaw_deg: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "centre", np.asarray(self.centre, dtype=float))
        object.__setattr__(self, "half", np.asarray(self.half, dtype=float))
        if np.any(self.half <= 0):
            raise ValueError(f"half extents must be > 0, got {self.half}")
        object.__setattr__(self, "_rot", _rot_y(self.yaw_deg))  # box-to-world

    @property
    def bound(self):
        return self.centre, float(np.linalg.norm(self.half))

    def _local(self, v: np.ndarray) -> np.ndarray:
        return v @ self._rot  # world -> box frame (rows are vectors)

    def hit(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        lo, ld = self._local(o - self.centre), self._local(d)
        ld = np.where(ld == 0, 1e-300, ld)
        t1, t2 = (-self.half - lo) / ld, (self.half - lo) / ld
        near = np.minimum(t1, t2).max(axis=-1)
        far = np.maximum(t1, t2).min(axis=-1)
        return _first_positive(np.where(near <= far, near, np.inf))

    def normal_at(self, p: np.ndarray) -> np.ndarray:
        lp = self._local(p - self.centre) / self.half
        axis = np.abs(lp).argmax(axis=-1)
        n = np.zeros_like(lp)
        n[np.arange(len(lp)), axis] = np.sign(lp[np.arange(len(lp)), axis])
        return n @ self._rot.T

    def uv(self, p: np.ndarray, n: np.ndarray) -> np.ndarray:
        lp = self._local(p - self.centre) + self.half  # in [0, 2 * half]
        lp[:, 1] = 2 * self.half[1] - lp[:, 1]  # v runs down the sides (photos upright)
        axis = np.abs(self._local(n)).argmax(axis=-1)  # box mapping: drop the normal's axis
        side_x, top, side_z = lp[:, [2, 1]], lp[:, [0, 2]], lp[:, [0, 1]]
        return np.where((axis == 0)[:, None], side_x, np.where((axis == 1)[:, None], top, side_z))


@dataclass(frozen=True, eq=False, kw_only=True)
class Sphere(Primitive):
    """Sphere with ``centre`` (3,) and ``radius``, metres."""

    centre: np.ndarray
    radius: float

    def __post_init__(self) -> None:
        if not self.radius > 0:
            raise ValueError(f"Sphere radius must be > 0, got {self.radius}")
        object.__setattr__(self, "centre", np.asarray(self.centre, dtype=float))

    @property
    def bound(self):
        return self.centre, self.radius

    def hit(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        oc = o - self.centre
        a, b = _dot(d, d), _dot(oc, d)
        disc = b * b - a * (_dot(oc, oc) - self.radius**2)
        root = np.sqrt(np.where(disc >= 0, disc, np.nan))
        return _first_positive((-b - root) / a, (-b + root) / a)

    def normal_at(self, p: np.ndarray) -> np.ndarray:
        return (p - self.centre) / self.radius

    def uv(self, p: np.ndarray, n: np.ndarray) -> np.ndarray:
        lon = np.arctan2(n[:, 2], n[:, 0])
        lat = np.arcsin(np.clip(n[:, 1], -1, 1))
        return np.stack([lon, lat], axis=1) * self.radius


@dataclass(frozen=True, eq=False, kw_only=True)
class Cylinder(Primitive):
    """Vertical capped cylinder standing on ``base`` (3,) (centre of its bottom disc)."""

    base: np.ndarray
    radius: float
    height: float

    def __post_init__(self) -> None:
        if not (self.radius > 0 and self.height > 0):
            raise ValueError(
                f"Cylinder radius and height must be > 0, got {self.radius}, {self.height}"
            )
        object.__setattr__(self, "base", np.asarray(self.base, dtype=float))

    @property
    def bound(self):
        return self.base + [0, self.height / 2, 0], float(np.hypot(self.radius, self.height / 2))

    def hit(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        oc = np.broadcast_to(o - self.base, d.shape)
        a = d[:, 0] ** 2 + d[:, 2] ** 2
        b = oc[:, 0] * d[:, 0] + oc[:, 2] * d[:, 2]
        disc = b * b - a * (oc[:, 0] ** 2 + oc[:, 2] ** 2 - self.radius**2)
        with np.errstate(divide="ignore", invalid="ignore"):
            side = (-b - np.sqrt(np.where(disc >= 0, disc, np.nan))) / a
            y = oc[:, 1] + side * d[:, 1]
            side = np.where((y >= 0) & (y <= self.height), side, np.inf)
            caps = []
            for level in (0.0, self.height):
                t = (level - oc[:, 1]) / d[:, 1]
                rx, rz = oc[:, 0] + t * d[:, 0], oc[:, 2] + t * d[:, 2]
                caps.append(np.where(rx**2 + rz**2 <= self.radius**2, t, np.inf))
        return _first_positive(side, *caps)

    def normal_at(self, p: np.ndarray) -> np.ndarray:
        q = p - self.base
        rho = np.hypot(q[:, 0], q[:, 2])
        cap_gap = np.minimum(np.abs(q[:, 1]), np.abs(q[:, 1] - self.height))
        on_side = np.abs(rho - self.radius) < cap_gap
        side_n = (
            np.stack([q[:, 0], np.zeros_like(rho), q[:, 2]], axis=1)
            / np.maximum(rho, 1e-12)[:, None]
        )
        cap_n = np.zeros_like(q)
        cap_n[:, 1] = np.where(q[:, 1] > self.height / 2, 1.0, -1.0)
        return np.where(on_side[:, None], side_n, cap_n)

    def uv(self, p: np.ndarray, n: np.ndarray) -> np.ndarray:
        q = p - self.base
        around = np.arctan2(q[:, 2], q[:, 0]) * self.radius
        side = np.abs(n[:, 1]) < 0.5
        return np.where(side[:, None], np.stack([around, q[:, 1]], 1), q[:, [0, 2]])


def _candidates(prim: Primitive, o: np.ndarray, d: np.ndarray, dd: np.ndarray) -> np.ndarray:
    """Indices of the rays that may hit ``prim``: those passing through its bounding sphere."""
    if prim.bound is None:
        return np.arange(len(d))
    centre, radius = prim.bound
    oc = centre - o  # (3,) or (N, 3)
    along = d @ oc if oc.ndim == 1 else _dot(d, oc)
    miss2 = _dot(oc, oc) - np.where(along > 0, along, 0) ** 2 / dd  # squared distance to the ray
    return np.flatnonzero(miss2 <= radius**2 * (1 + 1e-9))


def trace(
    primitives: list[Primitive], origins: np.ndarray, dirs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest hit of each ray: t (N,) (inf on a miss) and primitive index (N,) (-1 on a miss).
    origins: (3,) shared or (N, 3); dirs: (N, 3), need not be unit length."""
    t_best = np.full(len(dirs), np.inf)
    index = np.full(len(dirs), -1, dtype=np.int64)
    dd = _dot(dirs, dirs)
    for k, prim in enumerate(primitives):
        rays = _candidates(prim, origins, dirs, dd)
        if len(rays) == 0:
            continue
        t = prim.hit(origins if origins.ndim == 1 else origins[rays], dirs[rays])
        closer = t < t_best[rays]
        t_best[rays[closer]] = t[closer]
        index[rays[closer]] = k
    return t_best, index


def occluded(
    primitives: list[Primitive],
    origins: np.ndarray,
    dirs: np.ndarray,
    t_max: np.ndarray | float = np.inf,
) -> np.ndarray:
    """Whether each ray hits anything with T_MIN < t < t_max (shadow rays): bool (N,)."""
    t, _ = trace(primitives, origins, dirs)
    return t < t_max


def surface_normals(
    primitives: list[Primitive], points: np.ndarray, index: np.ndarray, dirs: np.ndarray
) -> np.ndarray:
    """Unit normals (N, 3) at hit ``points`` of primitives ``index`` (-1: zero), flipped to face
    against the incoming ``dirs`` (planes are two-sided)."""
    normals = np.zeros_like(points)
    for k in np.unique(index[index >= 0]):
        rows = index == k
        normals[rows] = primitives[k].normal_at(points[rows])
    flip = _dot(normals, dirs) > 0
    normals[flip] *= -1
    return normals


def raycast(
    camera: Camera, primitives: list[Primitive], size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cast one ray per pixel centre. Returns depth (H, W) float32 z-depth in metres (inf
    where nothing is hit), object_id (H, W) int64 index into ``primitives`` (-1: none), and
    normals (H, W, 3) float32 unit world normals facing the camera (0 where nothing is hit)."""
    h, w = check_size(size)
    dirs = camera.rays((h, w))
    t, index = trace(primitives, camera.position, dirs)
    normals = surface_normals(
        primitives, camera.position + np.where(np.isfinite(t), t, 0)[:, None] * dirs, index, dirs
    )
    return (
        t.reshape(h, w).astype(np.float32),
        index.reshape(h, w),
        normals.reshape(h, w, 3).astype(np.float32),
    )
