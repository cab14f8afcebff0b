"""dalib.synth and its renderer modules: exact depth, determinism, domains, shading, textures.

Expected depths are computed here from first principles (hand-derived camera axes, closed-form
plane and sphere intersections), never with the ray caster under test.
"""

import math

import numpy as np
import pytest

from dalib import synth
from dalib.world.geometry import Box, Camera, Cylinder, Plane, Sphere, raycast
from dalib.world.shading import Light, shade
from dalib.world.textures import PATTERNS, PHOTOS, Material, pattern, photo

SIZE = (48, 64)  # H, W: non-square catches swapped axes


def camera_axes(yaw, pitch, roll):
    """World (forward, right, down) unit vectors of a camera, derived by hand: yaw turns left
    about +y from looking along -z, pitch tilts up, roll turns the image plane about forward."""
    y, p, r = map(math.radians, (yaw, pitch, roll))
    forward = np.array([-math.sin(y) * math.cos(p), math.sin(p), -math.cos(y) * math.cos(p)])
    right0 = np.array([math.cos(y), 0.0, -math.sin(y)])
    up0 = np.array([math.sin(p) * math.sin(y), math.cos(p), math.sin(p) * math.cos(y)])
    right = math.cos(r) * right0 + math.sin(r) * up0
    down = math.sin(r) * right0 - math.cos(r) * up0
    return forward, right, down


def pixel_rays(size, fov_deg, yaw, pitch, roll):
    """(H, W, 3) world ray directions through pixel centres with unit forward component."""
    h, w = size
    f = 0.5 * w / math.tan(math.radians(fov_deg) / 2)
    forward, right, down = camera_axes(yaw, pitch, roll)
    v, u = np.mgrid[0:h, 0:w] + 0.5
    return forward + ((u - w / 2) / f)[..., None] * right + ((v - h / 2) / f)[..., None] * down


POSES = [(0.0, -20.0, 0.0), (37.0, -12.0, 6.0), (-120.0, -8.0, -9.0)]


@pytest.mark.parametrize("yaw,pitch,roll", POSES)
def test_ground_plane_depth_is_exact(yaw, pitch, roll):
    eye = np.array([0.3, 1.7, -2.0])
    camera = Camera.from_pose(SIZE, 70.0, eye, yaw, pitch, roll)
    depth, object_id, normals = raycast(camera, [Plane(point=(5, 0, 1), normal=(0, 2, 0))], SIZE)
    d = pixel_rays(SIZE, 70.0, yaw, pitch, roll)
    with np.errstate(divide="ignore"):
        expected = np.where(d[..., 1] < 0, -eye[1] / d[..., 1], np.inf)  # eye_y + t d_y = 0
    assert np.isfinite(expected).any() and np.isinf(expected).any()  # horizon in view
    np.testing.assert_array_equal(np.isinf(depth), np.isinf(expected))
    ground = np.isfinite(expected)
    np.testing.assert_allclose(depth[ground], expected[ground], rtol=1e-4)
    assert (object_id[ground] == 0).all() and (object_id[~ground] == -1).all()
    np.testing.assert_allclose(
        normals[ground], np.broadcast_to([0, 1, 0], normals[ground].shape), atol=1e-6
    )


@pytest.mark.parametrize("yaw,pitch,roll", POSES)
def test_sphere_depth_is_exact(yaw, pitch, roll):
    eye = np.array([1.0, 1.5, 2.0])
    forward, right, down = camera_axes(yaw, pitch, roll)
    centre, radius = eye + 6.0 * forward + 0.8 * right - 0.5 * down, 1.3
    camera = Camera.from_pose(SIZE, 60.0, eye, yaw, pitch, roll)
    depth, object_id, normals = raycast(camera, [Sphere(centre=centre, radius=radius)], SIZE)
    d = pixel_rays(SIZE, 60.0, yaw, pitch, roll)
    unit = d / np.linalg.norm(d, axis=-1, keepdims=True)
    b = unit @ (eye - centre)  # |eye + s*unit - centre|^2 = r^2  ->  s^2 + 2bs + c = 0
    c = np.sum((eye - centre) ** 2) - radius**2
    disc = b * b - c
    hit = disc >= 0
    s = -b[hit] - np.sqrt(disc[hit])
    expected_depth = s * (unit[hit] @ forward)  # distance along the ray -> z-depth
    assert 0.05 < hit.mean() < 0.95
    np.testing.assert_array_equal(np.isfinite(depth), hit)
    np.testing.assert_allclose(depth[hit], expected_depth, rtol=1e-4)
    points = eye + s[:, None] * unit[hit]
    np.testing.assert_allclose(normals[hit], (points - centre) / radius, atol=1e-4)
    assert (object_id[hit] == 0).all()


def test_box_and_cylinder_depth_from_above():
    """Looking straight down from 10 m: the top faces lie at known depths."""
    eye = (0.0, 10.0, 0.0)
    camera = Camera.from_pose((64, 64), 90.0, eye, pitch_deg=-90.0)
    prims = [
        Plane(point=(0, 0, 0), normal=(0, 1, 0)),
        Box(centre=(-4, 1.0, 0), half=(1.5, 1.0, 1.5), yaw_deg=30.0),  # top at y = 2
        Cylinder(base=(4, 0, 0), radius=1.5, height=3.0),  # cap at y = 7
    ]
    depth, object_id, _ = raycast(camera, prims, (64, 64))
    # the camera looks down, image right = world +x: a 90 degree fov spans x in [-10, 10] at 10 m
    assert depth[32, 32] == pytest.approx(10.0, rel=1e-6) and object_id[32, 32] == 0
    box_px, cyl_px = (32, round((-4 + 10) / 20 * 64)), (32, round((4 + 10) / 20 * 64))
    assert object_id[box_px] == 1 and depth[box_px] == pytest.approx(8.0, rel=1e-5)
    assert object_id[cyl_px] == 2 and depth[cyl_px] == pytest.approx(7.0, rel=1e-5)
    cap = (object_id == 2) & (np.abs(depth - 7.0) < 1e-4)  # the side shows too, at other depths
    assert cap.sum() == pytest.approx(math.pi * (32 * 1.5 / 7.0) ** 2, rel=0.1)  # f * r / z pixels


def test_shadow_is_darker_than_lit_surface():
    """A sphere under an overhead sun casts a disc of shadow right below it."""
    gray = Material.solid((0.5, 0.5, 0.5))
    ground = Plane(point=(0, 0, 0), normal=(0, 1, 0), material=gray)
    blocker = Sphere(centre=(0, 5, -10), radius=1.0, material=gray)
    light = Light(color=np.full(3, 0.8), ambient=np.full(3, 0.25), direction=np.array([0, 1.0, 0]))
    size = (96, 96)
    camera = Camera.from_pose(size, 60.0, (0, 2, 0), pitch_deg=-10.0)

    def pixel_of(point):
        p_cam = camera.R.T @ (np.asarray(point, float) - camera.position)
        u, v, _ = camera.K @ (p_cam / p_cam[2])
        return int(v), int(u)

    image, _, object_id = shade(camera, [ground, blocker], size, light)
    shadowed, lit = pixel_of((0, 0, -10)), pixel_of((3, 0, -10))
    assert object_id[shadowed] == 0 and object_id[lit] == 0  # both pixels see the ground
    np.testing.assert_allclose(image[shadowed], 0.5 * 0.25, rtol=1e-5)  # albedo * ambient
    np.testing.assert_allclose(image[lit], 0.5 * (0.25 + 0.8), rtol=1e-5)  # + direct, cos = 1
    unshadowed, _, _ = shade(camera, [ground], size, light)
    np.testing.assert_allclose(unshadowed[shadowed], image[lit], rtol=1e-5)


def test_render_is_deterministic_and_seed_dependent():
    a, b = synth.render("indoor_rooms", 3, SIZE), synth.render("indoor_rooms", 3, SIZE)
    for name in ("image", "depth", "sky", "semantic", "K"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    noisy = [synth.render("corridors", 1, SIZE) for _ in range(2)]  # sensor noise, too
    np.testing.assert_array_equal(noisy[0].image, noisy[1].image)
    other = synth.render("indoor_rooms", 4, SIZE)
    assert not np.array_equal(a.image, other.image) and not np.array_equal(a.depth, other.depth)
    many = synth.render_many("indoor_rooms", [3, 4], SIZE)
    np.testing.assert_array_equal(many[1].depth, other.depth)


def test_groups_are_disjoint_and_cover_domains():
    groups = [set(g) for g in (synth.LABELED, synth.UNLABELED, synth.VALIDATION, synth.HELD_OUT)]
    assert len(synth.DOMAINS) >= 15
    assert [len(g) >= n for g, n in zip(groups, (3, 8, 2, 2))] == [True] * 4
    assert len(synth.UNLABELED) > 2 * len(synth.LABELED)  # the pool is the diverse part
    assert sum(map(len, groups)) == len(set.union(*groups)) == len(synth.DOMAINS)
    assert set.union(*groups) == set(synth.DOMAINS)
    indoor = {name for name, spec in synth.DOMAINS.items() if spec.indoor}
    assert all(g & indoor and g - indoor for g in groups)  # indoor and outdoor in every group


def test_semantic_classes():
    assert len(synth.SEMANTIC_CLASSES) >= 6 and synth.SEMANTIC_CLASSES[0] == "sky"
    assert len(set(synth.SEMANTIC_CLASSES)) == len(synth.SEMANTIC_CLASSES)


@pytest.mark.parametrize("domain", sorted(synth.DOMAINS))
def test_every_domain_renders_sensible_ranges(domain):
    spec = synth.DOMAINS[domain]
    seen_classes = set()
    for seed in range(4):
        scene = synth.render(domain, seed, (32, 40))
        assert scene.image.dtype == np.uint8 and scene.image.shape == (32, 40, 3)
        assert scene.depth.dtype == np.float32 and scene.depth.shape == (32, 40)
        assert scene.semantic.dtype == np.int64 and scene.sky.dtype == bool
        assert scene.K.dtype == np.float32 and scene.K.shape == (3, 3)
        assert scene.domain == domain and scene.seed == seed
        solid = scene.depth[~scene.sky]
        assert np.isfinite(solid).all() and (solid > 0).all() and (solid <= spec.max_depth).all()
        assert np.isinf(scene.depth[scene.sky]).all()
        assert ((scene.semantic == 0) == scene.sky).all()  # class 0 exactly at sky
        assert scene.semantic.min() >= 0 and scene.semantic.max() < len(synth.SEMANTIC_CLASSES)
        assert scene.image.std() > 3  # not a blank frame
        if spec.indoor:
            assert not scene.sky.any()
        seen_classes |= set(np.unique(scene.semantic).tolist())
    if not spec.indoor:
        assert 0 in seen_classes  # outdoor domains show sky
    assert len(seen_classes) >= 3


def test_depth_ranges_match_the_domain_scale():
    """Indoor scenes reach a few metres, outdoor ones tens of metres."""
    indoor = synth.render("indoor_rooms", 0, (32, 32)).depth
    outdoor = synth.render("street_drive", 0, (32, 32)).depth
    assert 1.0 < indoor.max() <= 10.0
    assert np.nanmax(np.where(np.isfinite(outdoor), outdoor, np.nan)) > 20.0


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown domain 'mars'"):
        synth.render("mars", 0)
    with pytest.raises(ValueError, match="size"):
        synth.render("indoor_rooms", 0, (0, 32))
    with pytest.raises(ValueError, match="objects"):
        synth.DomainSpec(
            group="labeled", layout="room", description="", max_depth=10.0, fov_deg=(50, 60),
            height=(1, 2), pitch_deg=(0, 0), roll_deg=0, objects=("dragon",), n_objects=(1, 2),
        )  # fmt: skip
    with pytest.raises(ValueError, match="exactly one"):
        Light(color=np.ones(3), ambient=np.ones(3))


def test_material_bilinear_sampling_matches_hand_values():
    texture = np.array([[0.0, 1.0], [0.5, 0.25]], dtype=np.float32)  # rows = v, columns = u
    mat = Material(texture, np.zeros(3, np.float32), np.array([1, 2, 4], np.float32), scale=2.0)
    # scale 2 m per tile, 2 texels: texel centres at 0.5 m and 1.5 m
    uv = np.array([[0.5, 0.5], [1.5, 0.5], [0.5, 1.5], [1.0, 0.5], [1.0, 1.0]])
    expected = np.array([0.0, 1.0, 0.5, 0.5, (0 + 1 + 0.5 + 0.25) / 4])
    np.testing.assert_allclose(mat.albedo(uv), expected[:, None] * [1, 2, 4], atol=1e-6)
    np.testing.assert_allclose(mat.albedo(uv + [2.0, -4.0]), mat.albedo(uv), atol=1e-6)  # tiles


def test_patterns_and_bundled_photos():
    for kind in PATTERNS:
        tile = pattern(kind, 3)
        assert (
            tile.dtype == np.float32 and tile.min() >= 0 and tile.max() <= 1 and tile.std() > 0.05
        )
    for name in PHOTOS:  # all ship inside scikit-image: no network
        img = photo(name)
        assert img.dtype == np.float32 and img.ndim in (2, 3) and 0 <= img.min() and img.max() <= 1
    with pytest.raises(ValueError, match="unknown pattern"):
        pattern("plaid", 0)
