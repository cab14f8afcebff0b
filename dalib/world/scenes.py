"""Random scene layouts for ``dalib.synth``: rooms, streets and open fields with objects.

A :class:`DomainSpec` holds a domain's settings; :func:`build_world` draws a :class:`World`
(primitives with semantic labels and materials, a light, a sky, fog and a camera pose) from
a spec and a NumPy generator; objects come from the recipes in ``dalib.world.props``. Every finite
depth stays within the spec's ``max_depth`` by construction: rooms are capped in size, the
ground is a disc, and objects whose bounding sphere reaches further from the camera are left
out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dalib.world.geometry import Box, Camera, Plane, Primitive, Sphere
from dalib.world.props import BUILDING, CEILING, FLOOR, GROUND, RECIPES, WALL
from dalib.world.shading import Light, Sky
from dalib.world.textures import (
    N_VARIANTS,
    PATTERNS,
    PHOTOS,
    Material,
    pattern,
    random_color,
    random_material,
)

GROUPS = ("labeled", "unlabeled", "validation", "held_out")
LAYOUTS = ("room", "street", "field")  # room: indoor; street, field: outdoor
SKIES = ("day", "overcast", "dusk")
INF = float("inf")


@dataclass(frozen=True)
class DomainSpec:
    """Settings of one synthetic domain. Ranges are (low, high) drawn uniformly; lengths in
    metres, angles in degrees. Every finite depth rendered is in (0, max_depth]."""

    group: str  # one of GROUPS
    layout: str  # one of LAYOUTS
    description: str
    max_depth: float  # metres
    fov_deg: tuple[float, float]  # horizontal field of view
    height: tuple[float, float]  # camera height above the ground / floor
    pitch_deg: tuple[float, float]
    roll_deg: float  # |roll| <= roll_deg
    objects: tuple[str, ...]  # recipes placed in the scene (keys of dalib.world.props.RECIPES)
    n_objects: tuple[int, int]
    object_scale: tuple[float, float] = (1.0, 1.0)
    # room width (x), height (y) and depth (z) ranges
    room: tuple[tuple[float, float], ...] = ((3.0, 6.0), (2.4, 3.2), (3.0, 6.0))
    grid: bool = False  # objects on a regular grid instead of scattered
    patterns: tuple[str, ...] = PATTERNS
    photos: tuple[str, ...] = ()
    photo_prob: float = 0.0
    saturation: tuple[float, float] = (0.2, 0.6)
    ambient: tuple[float, float] = (0.3, 0.45)
    light: tuple[float, float] = (0.7, 0.9)  # direct light intensity
    light_tint: float = 0.1  # 0: white light, 1: fully saturated colour
    sun_elevation_deg: tuple[float, float] = (30.0, 70.0)
    skies: tuple[str, ...] = ("day",)  # drawn from SKIES (outdoor)
    fog_m: tuple[float, float] = (INF, INF)  # visibility distance (outdoor)
    noise: float = 0.0  # sensor noise std, fraction of full scale
    vignette: float = 0.0

    def __post_init__(self) -> None:
        choices = {"group": (self.group, GROUPS), "layout": (self.layout, LAYOUTS)}
        for name, (value, allowed) in choices.items():
            if value not in allowed:
                raise ValueError(f"DomainSpec {name} must be one of {allowed}, got {value!r}")
        for name, values, allowed in [
            ("objects", self.objects, tuple(RECIPES)),
            ("patterns", self.patterns, PATTERNS),
            ("photos", self.photos, PHOTOS),
            ("skies", self.skies, SKIES),
        ]:
            if set(values) - set(allowed):
                raise ValueError(
                    f"DomainSpec {name} has unknown {sorted(set(values) - set(allowed))}; "
                    f"allowed: {allowed}"
                )
        if not self.objects or not self.skies or not self.max_depth > 0:
            raise ValueError("DomainSpec needs objects, skies and max_depth > 0")

    @property
    def indoor(self) -> bool:
        return self.layout == "room"


# --- worlds: a layout, objects, a light, a sky and a camera pose -------------------------------
@dataclass(frozen=True, eq=False)
class World:
    """Everything about a scene except the image size. Angles in degrees, lengths in metres."""

    primitives: list[Primitive]
    light: Light
    sky: Sky | None
    fog_m: float
    fov_deg: float
    position: np.ndarray  # camera centre (3,)
    yaw_deg: float
    pitch_deg: float
    roll_deg: float
    exposure: float = 1.0

    def camera(self, size: tuple[int, int]) -> Camera:
        return Camera.from_pose(
            size, self.fov_deg, self.position, self.yaw_deg, self.pitch_deg, self.roll_deg
        )


@dataclass
class _Builder:
    """Scene-in-progress: the spec, the generator, the camera and the primitives so far."""

    spec: DomainSpec
    rng: np.random.Generator
    eye: np.ndarray
    top: float = INF  # free height for objects
    prims: list[Primitive] = field(default_factory=list)
    # (x, z, radius) discs on the floor kept clear: the camera, the lamp, objects placed so far
    spots: list[tuple[float, float, float]] = field(default_factory=list)

    def material(self, scale: tuple[float, float] = (0.5, 2.0)) -> Material:
        s = self.spec
        return random_material(self.rng, s.patterns, s.photos, s.photo_prob, s.saturation, scale)

    def fits(self, prims: list[Primitive]) -> bool:
        """Whole object within max_depth of the camera (so its depth is, too)."""
        return all(
            np.linalg.norm(p.bound[0] - self.eye) + p.bound[1] <= 0.995 * self.spec.max_depth
            for p in prims
        )

    def place(self, recipe: str, x: float, z: float, margin: float = 0.3) -> bool:
        """Add a recipe's object at (x, z) unless it overlaps a kept-clear spot or leaves range."""
        scale = self.rng.uniform(*self.spec.object_scale)
        prims, foot = RECIPES[recipe](self.rng, x, z, scale, self.top, self.material)
        if any(
            np.hypot(x - sx, z - sz) < foot + sf + margin for sx, sz, sf in self.spots
        ) or not self.fits(prims):
            return False
        self.prims += prims
        self.spots.append((x, z, foot))
        return True


def _yaw_towards(dx: float, dz: float) -> float:
    """Yaw (degrees) that points the camera along the horizontal direction (dx, dz)."""
    return float(np.degrees(np.arctan2(-dx, -dz)))


def _room(b: _Builder) -> tuple[float, Light]:
    """A closed room of six inward planes around the origin, objects on the floor, a ceiling
    light. Room sides are capped so that its diagonal (the largest depth) is <= max_depth."""
    s, rng = b.spec, b.rng
    w, h = rng.uniform(*s.room[0]), rng.uniform(*s.room[1])
    d = min(rng.uniform(*s.room[2]), 0.999 * np.sqrt(s.max_depth**2 - w**2 - h**2))
    b.top = h
    walls = b.material() if rng.random() < 0.7 else None
    for label, point, normal in [
        (FLOOR, (0, 0, 0), (0, 1, 0)),
        (CEILING, (0, h, 0), (0, -1, 0)),
        (WALL, (w / 2, 0, 0), (-1, 0, 0)),
        (WALL, (-w / 2, 0, 0), (1, 0, 0)),
        (WALL, (0, 0, d / 2), (0, 0, -1)),
        (WALL, (0, 0, -d / 2), (0, 0, 1)),
    ]:
        b.prims.append(
            Plane(
                point=point,
                normal=normal,
                label=label,
                material=walls if label == WALL and walls is not None else b.material(),
            )
        )
    cam_x, cam_z = rng.uniform(-w / 2 + 0.4, w / 2 - 0.4), rng.uniform(-d / 2 + 0.4, d / 2 - 0.4)
    b.eye[:] = cam_x, min(rng.uniform(*s.height), h - 0.3), cam_z
    lamp = np.array(
        [
            rng.uniform(-w / 2 + 0.5, w / 2 - 0.5),
            h - rng.uniform(0.2, 0.4),
            rng.uniform(-d / 2 + 0.5, d / 2 - 0.5),
        ]
    )
    b.spots += [(cam_x, cam_z, 0.3), (lamp[0], lamp[2], 0.3)]
    n = rng.integers(s.n_objects[0], s.n_objects[1] + 1)
    if s.grid:  # rows of alternating recipes; cells too close to the camera stay empty
        cols = int(np.ceil(np.sqrt(n)))
        for gx, gz in np.ndindex(cols, cols):
            b.place(
                s.objects[(gx + gz) % len(s.objects)],
                (gx + 0.5) / cols * w - w / 2,
                (gz + 0.5) / cols * d - d / 2,
            )
    else:
        for _ in range(8 * n):
            if len(b.spots) - 2 >= n:
                break
            b.place(
                s.objects[rng.integers(len(s.objects))],
                rng.uniform(-w / 2 + 0.3, w / 2 - 0.3),
                rng.uniform(-d / 2 + 0.3, d / 2 - 0.3),
            )
    target = rng.uniform([-w / 2, -d / 2], [w / 2, d / 2])
    while np.hypot(*(target - [cam_x, cam_z])) < 1.5:  # look across the room, not at a nearby point
        target = rng.uniform([-w / 2, -d / 2], [w / 2, d / 2])
    yaw = _yaw_towards(target[0] - cam_x, target[1] - cam_z)
    light = _light(b, position=lamp, reach=0.6 * max(w, d))
    return yaw, light


def _ground(b: _Builder) -> None:
    """A ground disc around the camera, sized so its far edge is within max_depth."""
    radius = 0.995 * np.sqrt(b.spec.max_depth**2 - b.eye[1] ** 2)
    b.prims.append(
        Plane(
            point=(b.eye[0], 0, b.eye[2]),
            normal=(0, 1, 0),
            radius=radius,
            label=GROUND,
            material=b.material((2.0, 8.0)),
        )
    )


def _street(b: _Builder) -> float:
    """A road along -z with buildings on both sides, objects along the kerbs."""
    s, rng = b.spec, b.rng
    road = rng.uniform(7.0, 14.0)
    b.eye[:] = rng.uniform(-road / 4, road / 4), rng.uniform(*s.height), 0.0
    _ground(b)
    asphalt = Material(
        pattern("noise", int(rng.integers(N_VARIANTS))),
        random_color(rng, (0, 0.1), (0.1, 0.2)),
        random_color(rng, (0, 0.1), (0.3, 0.45)),
        scale=3.0,
    )
    b.prims.append(
        Box(centre=(0, 0.01, -30), half=(road / 2, 0.01, 45), label=GROUND, material=asphalt)
    )
    for side in (-1, 1):
        z = rng.uniform(5, 15)
        while z > -75:
            length, depth, height = rng.uniform(6, 20), rng.uniform(6, 14), rng.uniform(4, 25)
            x = side * (road / 2 + rng.uniform(1.5, 4) + depth / 2)
            box = Box(
                centre=(x, height / 2, z - length / 2),
                half=(depth / 2, height / 2, length / 2),
                label=BUILDING,
                material=b.material((2.0, 6.0)),
            )
            if b.fits([box]):
                b.prims.append(box)
            z -= length + rng.choice([0.0, rng.uniform(1, 5)])
    b.spots.append((b.eye[0], 0.0, 1.0))
    n = rng.integers(s.n_objects[0], s.n_objects[1] + 1)
    for _ in range(4 * n):
        if len(b.spots) - 1 >= n:
            break
        b.place(
            s.objects[rng.integers(len(s.objects))],
            rng.choice([-1, 1]) * (road / 2 + rng.uniform(-2.5, 1.5)),
            rng.uniform(-60, -4),
        )
    return rng.uniform(-12, 12) + rng.choice([0.0, 180.0], p=[0.85, 0.15])


def _field(b: _Builder) -> float:
    """Open ground around the camera, objects scattered mostly in view, sometimes hills."""
    s, rng = b.spec, b.rng
    b.eye[:] = 0.0, rng.uniform(*s.height), 0.0
    _ground(b)
    yaw = rng.uniform(-180, 180)
    b.spots.append((0.0, 0.0, 0.5))
    for _ in range(rng.integers(0, 4)):  # hills: huge half-buried spheres near the horizon
        r, dist, ang = (
            rng.uniform(8, 20),
            rng.uniform(40, 65),
            np.radians(yaw + rng.uniform(-60, 60)),
        )
        hill = Sphere(
            centre=(-dist * np.sin(ang), -0.5 * r, -dist * np.cos(ang)),
            radius=r,
            label=GROUND,
            material=b.material((3.0, 8.0)),
        )
        if b.fits([hill]):
            b.prims.append(hill)
    n = rng.integers(s.n_objects[0], s.n_objects[1] + 1)
    for _ in range(6 * n):
        if len(b.spots) - 1 >= n:
            break
        dist = 3.0 + 50 * rng.random() ** 2  # denser near the camera
        ang = np.radians(yaw + rng.uniform(-70, 70))
        b.place(s.objects[rng.integers(len(s.objects))], -dist * np.sin(ang), -dist * np.cos(ang))
    return yaw


def _sky(b: _Builder) -> tuple[Sky, float]:
    """A sky of one of the spec's kinds, and the strength of direct sunlight under it."""
    rng, kind = b.rng, b.spec.skies[b.rng.integers(len(b.spec.skies))]
    if kind == "day":
        return Sky(
            rng.uniform([0.7, 0.78, 0.85], [0.85, 0.9, 0.97]),
            rng.uniform([0.15, 0.35, 0.7], [0.35, 0.55, 0.95]),
            rng.uniform(0, 0.6),
            int(rng.integers(N_VARIANTS)),
        ), 1.0
    if kind == "overcast":
        gray = rng.uniform(0.6, 0.85)
        return Sky(np.full(3, gray + 0.08), np.full(3, gray - 0.08)), 0.35
    return Sky(
        rng.uniform([0.9, 0.45, 0.25], [1.0, 0.7, 0.4]),
        rng.uniform([0.08, 0.1, 0.3], [0.2, 0.25, 0.5]),
        rng.uniform(0, 0.4),
        int(rng.integers(N_VARIANTS)),
    ), 1.0


def _light(
    b: _Builder,
    position: np.ndarray | None = None,
    reach: float = INF,
    sky: Sky | None = None,
    direct: float = 1.0,
) -> Light:
    """The domain's light: a point light at ``position``, else a sun at a random azimuth whose
    strength is scaled by ``direct`` (weak under overcast), with ambient tinted by the sky."""
    s, rng = b.spec, b.rng
    tint = random_color(rng, (0.3, 0.8), (1.0, 1.0))
    color = rng.uniform(*s.light) * ((1 - s.light_tint) + s.light_tint * tint)
    ambient = np.full(3, rng.uniform(*s.ambient))
    if position is not None:
        return Light(color * 1.3, ambient, position=position, reach=reach)
    ambient = ambient * (0.75 + 0.25 * sky.zenith / sky.zenith.max()) * (2 - direct)
    color = color * direct
    elev, azim = np.radians(rng.uniform(*s.sun_elevation_deg)), rng.uniform(0, 2 * np.pi)
    return Light(
        color,
        ambient,
        direction=np.array(
            [np.cos(elev) * np.sin(azim), np.sin(elev), np.cos(elev) * np.cos(azim)]
        ),
    )


def build_world(spec: DomainSpec, rng: np.random.Generator) -> World:
    """A random world of ``spec`` drawn from ``rng``."""
    b = _Builder(spec, rng, np.zeros(3))
    if spec.indoor:
        yaw, light = _room(b)
        sky, fog = None, INF
    else:
        yaw = _street(b) if spec.layout == "street" else _field(b)
        sky, direct = _sky(b)
        light = _light(b, sky=sky, direct=direct)
        fog = rng.uniform(*spec.fog_m) if np.isfinite(spec.fog_m[0]) else INF
    return World(
        b.prims,
        light,
        sky,
        fog,
        rng.uniform(*spec.fov_deg),
        b.eye.copy(),
        yaw,
        rng.uniform(*spec.pitch_deg),
        rng.uniform(-spec.roll_deg, spec.roll_deg),
        rng.uniform(0.85, 1.15),
    )
