"""A procedural RGB-D world: random scenes rendered by exact ray casting.

Every image comes with exact metric z-depth (``inf`` at sky), a sky mask and a semantic
class per pixel. Scenes are built from planes/rooms, boxes, spheres and vertical cylinders
(``dalib.world.geometry``), textured with procedural patterns and photographs bundled with
scikit-image (``dalib.world.textures``), lit by an ambient term plus one sun or point light with
cast shadows, and seen by a pinhole camera with random pose and field of view.

Domains play the roles of the paper's datasets (:mod:`dalib.world.domains`: the table
there): ``LABELED``, ``UNLABELED``, ``VALIDATION`` (every choice of settings is made on
them) and ``HELD_OUT`` (the final tables only).

Deterministic: ``render(domain, seed, size)`` draws everything from a NumPy generator seeded
by a stable hash of (domain, seed); the world does not depend on ``size``.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dalib.config import stable_seed
from dalib.world import domains, geometry, props, scenes, shading, textures
from dalib.world.domains import DOMAINS, HELD_OUT, LABELED, UNLABELED, VALIDATION
from dalib.world.geometry import (
    Box,
    Camera,
    Cylinder,
    Plane,
    Primitive,
    Sphere,
    check_size,
    raycast,
)
from dalib.world.props import SEMANTIC_CLASSES, SKY
from dalib.world.scenes import DomainSpec, World
from dalib.world.shading import Light, Sky, shade
from dalib.world.textures import Material

__all__ = [
    "DOMAINS",
    "HELD_OUT",
    "LABELED",
    "RENDER_VERSION",
    "SEMANTIC_CLASSES",
    "UNLABELED",
    "VALIDATION",
    "Box",
    "Camera",
    "Cylinder",
    "DomainSpec",
    "Light",
    "Material",
    "Plane",
    "Primitive",
    "Scene",
    "Sky",
    "Sphere",
    "World",
    "build_world",
    "raycast",
    "render",
    "render_many",
    "render_version",
    "shade",
]
# Changes whenever any module of the renderer changes, so that cached datasets are rebuilt.
RENDER_VERSION = hashlib.sha256(
    b"".join(
        Path(m.__file__).read_bytes() for m in (domains, geometry, props, scenes, shading, textures)
    )
    + Path(__file__).read_bytes()
).hexdigest()[:16]


@dataclass(frozen=True, eq=False)
class Scene:
    """One rendered RGB-D sample. image (H, W, 3) uint8; depth (H, W) float32 z-depth in
    metres, inf at sky; sky (H, W) bool; semantic (H, W) int64 ids into SEMANTIC_CLASSES;
    K (3, 3) float32 intrinsics in pixels."""

    image: np.ndarray
    depth: np.ndarray
    sky: np.ndarray
    semantic: np.ndarray
    K: np.ndarray
    domain: str
    seed: int


def _spec(domain: str) -> DomainSpec:
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; choose one of {sorted(DOMAINS)}")
    return DOMAINS[domain]


def build_world(domain: str, seed: int) -> World:
    """The world (primitives, light, sky, camera pose) of scene ``seed`` of ``domain``; it does
    not depend on the image size."""
    return scenes.build_world(
        _spec(domain), np.random.default_rng(stable_seed("synth", domain, int(seed)))
    )


def render(
    domain: str, seed: int, size: tuple[int, int] = (112, 112), device: str | None = None
) -> Scene:
    """Render scene ``seed`` of ``domain`` at ``size`` (H, W); bit-identical for equal inputs.

    Sensor effects (exposure, vignetting, noise) are applied after shading; the noise is drawn
    from its own generator, seeded by (domain, seed, size). ``device`` (e.g. ``"cuda"``)
    shades there with :mod:`dalib.world.render_torch`: the same scene to rounding (tested: depth
    within 1e-6 relative, image within one 8-bit level), not bit for bit."""
    spec, world = _spec(domain), build_world(domain, seed)
    h, w = size = check_size(size)
    camera = world.camera(size)
    scene = (camera, world.primitives, size, world.light, world.sky, world.fog_m)
    if device is None:
        linear, depth, index = shade(*scene)
    else:
        from dalib.world import render_torch  # imported lazily: torch only for this path

        linear, depth, index = render_torch.shade(*scene, device=device)
    rng = np.random.default_rng(stable_seed("sensor", domain, int(seed), h, w))
    linear = linear * world.exposure
    if spec.vignette:
        v, u = np.mgrid[0:h, 0:w]
        r2 = ((u + 0.5) / w - 0.5) ** 2 + ((v + 0.5) / h - 0.5) ** 2
        linear = linear * (1 - spec.vignette * 2 * r2)[:, :, None]
    if spec.noise:
        linear = linear + rng.normal(0, spec.noise, linear.shape)
    image = (np.clip(linear, 0, 1) * 255 + 0.5).astype(np.uint8)
    # semantic id per primitive, and the sky's id last so that index -1 (no hit) maps to it
    labels = np.array([p.label for p in world.primitives] + [SKY], dtype=np.int64)
    return Scene(
        image, depth, index < 0, labels[index], camera.K.astype(np.float32), domain, int(seed)
    )


def render_many(
    domain: str,
    seeds: Iterable[int],
    size: tuple[int, int] = (112, 112),
    device: str | None = None,
) -> list[Scene]:
    """``[render(domain, s, size, device) for s in seeds]``."""
    _spec(domain)
    return [render(domain, int(s), size, device) for s in seeds]


def render_version(device: str | None = None) -> str:
    """Names the renderer in cache keys: :data:`RENDER_VERSION` for NumPy (``device`` None);
    for :mod:`dalib.world.render_torch` on ``device``, a hash that adds its two modules' source and
    the device type (read from disk: torch is not imported)."""
    if device is None:
        return RENDER_VERSION
    sources = b"".join(
        Path(importlib.util.find_spec(f"dalib.world.{m}").origin).read_bytes()
        for m in ("raycast_torch", "render_torch")
    )
    kind = device.split(":")[0]
    return hashlib.sha256(RENDER_VERSION.encode() + sources + kind.encode()).hexdigest()[:16]
