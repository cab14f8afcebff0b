"""Props for the synthetic world: recipes that stand a few primitives on the floor, and the
semantic classes of every surface.

A recipe ``recipe(rng, x, z, s, top, mat)`` builds one object standing on the floor (y = 0)
at (x, z): it returns the object's primitives and its footprint radius in metres. ``s``
scales its size, ``top`` is the free height above the floor (the ceiling, or inf outdoors)
and ``mat()`` draws a fresh material. A tree is a trunk (cylinder) and a crown (sphere), a
stack is boxes piled up, a column is cylinders piled up, and so on: :data:`RECIPES`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dalib.world.geometry import Box, Cylinder, Primitive, Sphere
from dalib.world.textures import Material

# one class per surface role; index 0 is the sky (no surface)
SEMANTIC_CLASSES = (
    "sky",
    "ground",
    "floor",
    "wall",
    "ceiling",
    "box",
    "sphere",
    "cylinder",
    "building",
)
SKY, GROUND, FLOOR, WALL, CEILING, BOX, SPHERE, CYLINDER, BUILDING = range(len(SEMANTIC_CLASSES))
Recipe = Callable[
    [np.random.Generator, float, float, float, float, Callable[[], Material]],
    tuple[list[Primitive], float],
]


def _crate(rng, x, z, s, top, mat):
    half = rng.uniform(0.2, 0.6, 3) * s
    half[1] = min(half[1], 0.45 * top)
    return [
        Box(
            centre=(x, half[1], z), half=half, yaw_deg=rng.uniform(0, 90), label=BOX, material=mat()
        )
    ], float(np.hypot(half[0], half[2]))


def _ball(rng, x, z, s, top, mat):
    r = min(rng.uniform(0.15, 0.5) * s, 0.45 * top)
    return [Sphere(centre=(x, r, z), radius=r, label=SPHERE, material=mat())], r


def _barrel(rng, x, z, s, top, mat):
    r, h = rng.uniform(0.15, 0.4) * s, min(rng.uniform(0.4, 1.2) * s, 0.9 * top)
    return [Cylinder(base=(x, 0, z), radius=r, height=h, label=CYLINDER, material=mat())], r


def _stack(rng, x, z, s, top, mat):
    half, y, prims = rng.uniform(0.3, 0.6, 3) * s, 0.0, []
    for _ in range(rng.integers(2, 5)):
        if y + 2 * half[1] > 0.95 * top:
            break
        prims.append(
            Box(
                centre=(x, y + half[1], z),
                half=half.copy(),
                yaw_deg=rng.uniform(0, 90),
                label=BOX,
                material=mat(),
            )
        )
        y += 2 * half[1]
        half = half * np.array(
            [rng.uniform(0.6, 0.95), rng.uniform(0.7, 1.1), rng.uniform(0.6, 0.95)]
        )
    return prims, float(np.hypot(prims[0].half[0], prims[0].half[2])) if prims else 0.0


def _column(rng, x, z, s, top, mat):
    r, y, prims, material = rng.uniform(0.25, 0.45) * s, 0.0, [], mat()
    for _ in range(rng.integers(2, 5)):
        h = rng.uniform(0.6, 1.5) * s
        prims.append(
            Cylinder(base=(x, y, z), radius=r, height=h, label=CYLINDER, material=material)
        )
        y, r = y + h, r * rng.uniform(0.85, 1.0)
    return prims, prims[0].radius


def _tree(rng, x, z, s, top, mat):
    r, h, crown = rng.uniform(0.1, 0.25) * s, rng.uniform(1.5, 3.0) * s, rng.uniform(0.8, 1.6) * s
    return [
        Cylinder(base=(x, 0, z), radius=r, height=h, label=CYLINDER, material=mat()),
        Sphere(centre=(x, h + 0.5 * crown, z), radius=crown, label=SPHERE, material=mat()),
    ], r


def _pillar(rng, x, z, s, top, mat):
    r = rng.uniform(0.15, 0.35) * s
    h = top if np.isfinite(top) else rng.uniform(3.0, 6.0) * s
    return [Cylinder(base=(x, 0, z), radius=r, height=h, label=CYLINDER, material=mat())], r


def _plinth(rng, x, z, s, top, mat):
    half = np.array([rng.uniform(0.25, 0.4), rng.uniform(0.3, 0.5), 0]) * s
    half[2] = half[0]
    r = rng.uniform(0.15, 0.3) * s
    return [
        Box(
            centre=(x, half[1], z), half=half, yaw_deg=rng.uniform(0, 90), label=BOX, material=mat()
        ),
        Sphere(centre=(x, 2 * half[1] + r, z), radius=r, label=SPHERE, material=mat()),
    ], float(half[0] * 1.42)


def _wall(rng, x, z, s, top, mat):
    half = np.array([rng.uniform(1.0, 3.0), rng.uniform(0.3, 1.2), rng.uniform(0.15, 0.3)]) * s
    return [
        Box(
            centre=(x, half[1], z),
            half=half,
            yaw_deg=rng.uniform(0, 180),
            label=BOX,
            material=mat(),
        )
    ], float(half[0])


def _pole(rng, x, z, s, top, mat):
    r, h = rng.uniform(0.06, 0.12), rng.uniform(3.0, 6.0)
    return [
        Cylinder(base=(x, 0, z), radius=r, height=h, label=CYLINDER, material=mat()),
        Sphere(centre=(x, h, z), radius=3 * r, label=SPHERE, material=mat()),
    ], 3 * r


def _car(rng, x, z, s, top, mat):
    body = np.array([rng.uniform(0.8, 1.0), rng.uniform(0.4, 0.6), rng.uniform(1.8, 2.4)])
    yaw, material = rng.uniform(-5, 5), mat()
    cabin = body * [0.9, 0.7, rng.uniform(0.4, 0.6)]
    return [
        Box(centre=(x, body[1], z), half=body, yaw_deg=yaw, label=BOX, material=material),
        Box(
            centre=(x, 2 * body[1] + cabin[1], z),
            half=cabin,
            yaw_deg=yaw,
            label=BOX,
            material=mat(),
        ),
    ], float(body[2])


RECIPES: dict[str, Recipe] = {
    f.__name__[1:]: f
    for f in (_crate, _ball, _barrel, _stack, _column, _tree, _pillar, _plinth, _wall, _pole, _car)
}
