"""The torch ray caster against the NumPy one: same hits, same scenes (on the CPU; CUDA when
there is one)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dalib import geometry, synth
from dalib.geometry import Box, Cylinder, Plane, Sphere
from dalib.raycast_torch import trace_tensors, tracer

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
    trace = tracer(device)
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
    one 8-bit level, the same sky and classes; in practice they are identical."""
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
