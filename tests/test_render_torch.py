"""The torch renderer (dalib.world.raycast_torch, dalib.world.render_torch) against the NumPy one: the same
hits, the same scenes (on the CPU; on CUDA too when there is one)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from dalib import data, synth
from dalib.world import geometry, render_torch, shading
from dalib.world.geometry import Box, Camera, Cylinder, Plane, Sphere
from dalib.world.raycast_torch import trace_tensors
from dalib.world.textures import Material, pattern, photo

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _scene() -> list[geometry.Primitive]:
    return [
        Plane(point=[0, 0, 0], normal=[0, 1, 0]),
        Plane(point=[0, 1, -6], normal=[0, 0, 1], radius=2.0),
        Box(centre=[1, 0.5, -4], half=[0.5, 0.5, 0.3], yaw_deg=30),
        Box(centre=[1, 0.5, -4], half=[0.5, 0.5, 0.3], yaw_deg=30),  # a duplicate: ties
        Sphere(centre=[-1, 1, -3], radius=0.6),
        Cylinder(base=[0, 0, -5], radius=0.4, height=2.0),
    ]


@pytest.mark.parametrize("device", DEVICES)
def test_trace_equals_numpy_for_shared_and_per_ray_origins(device):
    rng = np.random.default_rng(0)
    prims = _scene()
    dirs = rng.normal(size=(4000, 3)) * [1, 0.5, 1] - [0, 0.2, 1]

    def trace(prims, origins, dirs):
        o, d = (torch.as_tensor(a, dtype=torch.float64, device=device) for a in (origins, dirs))
        t, k = trace_tensors(prims, o, d)
        return t.cpu().numpy(), k.cpu().numpy()

    for origins in (np.array([0.0, 1.2, 0.0]), rng.uniform(-1, 1, (4000, 3)) + [0, 1, 0]):
        t_np, k_np = geometry.trace(prims, origins, dirs)
        t_th, k_th = trace(prims, origins, dirs)
        np.testing.assert_array_equal(np.isfinite(t_np), np.isfinite(t_th))
        hit = np.isfinite(t_np)
        np.testing.assert_allclose(t_th[hit], t_np[hit], rtol=1e-12)
        np.testing.assert_array_equal(k_th, k_np)  # ties included: the lower index wins
        assert 2 in k_np and 3 not in k_np and hit.mean() > 0.5


@pytest.mark.parametrize("device", DEVICES)
def test_rendered_scenes_agree_with_the_numpy_renderer(device):
    """Every domain, two seeds: depth within 1e-6 relative (the issue asks 1e-4), images within
    one 8-bit level, the same sky and classes; on the CPU they are in fact identical."""
    for domain in synth.DOMAINS:
        for seed in (0, 1):
            a = synth.render(domain, seed, (40, 56))
            b = synth.render(domain, seed, (40, 56), device=device)
            np.testing.assert_array_equal(a.sky, b.sky)
            np.testing.assert_array_equal(a.semantic, b.semantic)
            finite = np.isfinite(a.depth)
            np.testing.assert_allclose(b.depth[finite], a.depth[finite], rtol=1e-6)
            assert np.abs(a.image.astype(int) - b.image.astype(int)).max() <= 1, (domain, seed)


def test_edge_cases():
    dirs = torch.tensor([[0.0, 0.0, -1.0]], dtype=torch.float64)
    t, k = trace_tensors([], torch.zeros(3, dtype=torch.float64), dirs)
    assert torch.isinf(t).all() and (k == -1).all()
    t, k = trace_tensors(_scene(), torch.zeros(3, dtype=torch.float64), dirs[:0])
    assert t.shape == (0,) and k.shape == (0,)

    class Torus(geometry.Primitive):
        pass

    with pytest.raises(TypeError, match="Torus"):
        trace_tensors([Torus()], torch.zeros(3, dtype=torch.float64), dirs)


def test_chunks_do_not_change_the_result():
    rng = np.random.default_rng(1)
    dirs = torch.as_tensor(rng.normal(size=(1000, 3)) - [0, 0.3, 1])
    origin = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    whole = trace_tensors(_scene(), origin, dirs)
    pieces = trace_tensors(_scene(), origin, dirs, chunk=77)
    assert torch.equal(whole[0], pieces[0]) and torch.equal(whole[1], pieces[1])


@pytest.mark.parametrize("device", DEVICES)
def test_shade_matches_numpy_on_every_kind_of_texture_and_light(device):
    """A hand-made scene with every primitive kind, pattern, photo (grey, colour, mirrored)
    and solid materials, a point light, fog and a cloudy sky: linear colour within 1e-4."""
    mats = [
        Material(pattern("bricks", 3), np.float32([0.1, 0.2, 0.3]), np.float32([0.9, 0.5, 0.2])),
        Material(photo("astronaut"), np.zeros(3, np.float32), np.ones(3, np.float32), 0.7, True),
        Material(photo("grass"), np.float32([0.0, 0.1, 0.0]), np.float32([0.3, 0.9, 0.2]), 1.3),
        Material.solid((0.8, 0.1, 0.1)),
    ]
    prims = [dataclasses.replace(p, material=mats[i % 4]) for i, p in enumerate(_scene())]
    camera = Camera.from_pose((36, 52), 70, [0.2, 1.3, 0.5], pitch_deg=-8)
    sky = shading.Sky(np.float32([0.8, 0.8, 0.9]), np.float32([0.2, 0.4, 0.9]), 0.5, 2)
    for light in (
        shading.Light(np.ones(3), np.full(3, 0.2), direction=np.array([0.3, 1.0, 0.2])),
        shading.Light(np.ones(3), np.full(3, 0.1), position=np.array([0.0, 2.5, -2.0]), reach=4),
    ):
        args = (camera, prims, (36, 52), light, sky, 30.0)
        a, b = shading.shade(*args), render_torch.shade(*args, device=device)
        np.testing.assert_array_equal(a[2], b[2])
        np.testing.assert_allclose(b[1], a[1], rtol=1e-6)
        np.testing.assert_allclose(b[0], a[0], atol=1e-4)
        assert len(np.unique(a[2])) >= 6 and (a[2] < 0).any()  # every primitive and the sky


def test_empty_scene_is_sky_alone():
    camera = Camera.from_pose((8, 8), 60, [0, 1, 0], pitch_deg=20)
    sky = shading.Sky(np.float32([0.8, 0.8, 0.9]), np.float32([0.2, 0.4, 0.9]))
    light = shading.Light(np.ones(3), np.full(3, 0.2), direction=np.array([0.0, 1.0, 0.0]))
    a, b = shading.shade(camera, [], (8, 8), light, sky), render_torch.shade(
        camera, [], (8, 8), light, sky, device="cpu"
    )
    np.testing.assert_allclose(b[0], a[0], atol=1e-6)
    assert np.isinf(b[1]).all() and (b[2] == -1).all()


def test_datasets_rendered_by_torch_are_cached_under_their_own_key(tmp_path):
    cpu = data.SynthDepthDataset("atrium", 2, 28, tmp_path, render_size=32, workers=1, device=None)
    th = data.SynthDepthDataset("atrium", 2, 28, tmp_path, render_size=32, workers=1, device="cpu")
    assert cpu.cache_path("atrium") != th.cache_path("atrium")
    assert synth.render_version("cpu") != synth.RENDER_VERSION == synth.render_version(None)
    for i in range(2):
        torch.testing.assert_close(th[i]["depth"], cpu[i]["depth"], rtol=1e-6, atol=0)
        assert (th[i]["image"] - cpu[i]["image"]).abs().max() <= 1 / 255 + 1e-6
    for device, rendered in ((None, cpu), ("cpu", th)):  # both storage layouts read back
        again = data.SynthDepthDataset(
            "atrium", 2, 28, tmp_path, render_size=32, workers=1, device=device
        )
        for name in ("image", "depth", "sky", "semantic", "seeds"):
            np.testing.assert_array_equal(again._scenes[0][name], rendered._scenes[0][name])
    assert data.render_device("auto") == ("cuda" if torch.cuda.is_available() else None)
    assert data.render_device(None) is None and data.render_device("cpu") == "cpu"


def test_torch_rendering_in_spawned_workers_gives_the_same_scenes():
    """Two spawned worker processes (as on a GPU, where fork cannot be used) = one process."""
    kwargs = {"n_per_domain": 17, "size": 16, "progress": False, "device": "cpu"}  # 2 jobs
    one = data.SynthDepthDataset("cellar", workers=1, **kwargs)
    two = data.SynthDepthDataset("cellar", workers=2, **kwargs)
    for name in ("image", "depth", "sky", "semantic", "seeds"):
        np.testing.assert_array_equal(one._scenes[0][name], two._scenes[0][name])
