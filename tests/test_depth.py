"""dalib.depth: disparity conversion, per-map normalisation, stereo depth (hand-computed)."""

import math

import numpy as np
import pytest
import torch

from dalib.depth import depth_to_disparity, normalize_disparity, stereo_depth

INF, NAN = math.inf, math.nan


def test_disparity_hand_values_numpy():
    depth = np.array([[1.0, 2.0, 4.0], [INF, 0.0, -3.0], [NAN, 0.5, 8.0]], dtype=np.float32)
    expected = np.array([[1.0, 0.5, 0.25], [0.0, 0.0, 0.0], [0.0, 2.0, 0.125]], dtype=np.float32)
    out = depth_to_disparity(depth)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    np.testing.assert_array_equal(out, expected)


def test_disparity_torch_batched_with_mask():
    depth = torch.tensor([[[1.0, 2.0], [4.0, 5.0]], [[10.0, INF], [0.25, 1.0]]])
    mask = torch.tensor([[[True, False], [True, True]], [[True, True], [False, True]]])
    out = depth_to_disparity(depth, mask)
    expected = torch.tensor([[[1.0, 0.0], [0.25, 0.2]], [[0.1, 0.0], [0.0, 1.0]]])
    assert isinstance(out, torch.Tensor)
    torch.testing.assert_close(out, expected)


def test_disparity_eps_caps_tiny_depth_and_ints_become_float():
    out = depth_to_disparity(np.array([[1e-9, 2.0]]), eps=1e-3)
    np.testing.assert_allclose(out, [[1000.0, 0.5]])
    ints = depth_to_disparity(np.array([[1, 2], [0, 4]], dtype=np.int32))
    assert ints.dtype == np.float32
    np.testing.assert_array_equal(ints, [[1.0, 0.5], [0.0, 0.25]])


def test_disparity_gradient_is_finite_at_invalid_pixels():
    depth = torch.tensor([[2.0, INF], [0.0, NAN]], requires_grad=True)
    depth_to_disparity(depth).sum().backward()
    assert torch.isfinite(depth.grad).all()
    assert depth.grad[0, 0].item() == pytest.approx(-1 / 4)  # d(1/x)/dx = -1/x^2
    assert depth.grad[0, 1].item() == 0.0


def test_disparity_rejects_bad_input():
    with pytest.raises(ValueError, match="mask shape"):
        depth_to_disparity(np.ones((2, 2)), mask=np.ones((3, 2), bool))
    with pytest.raises(ValueError, match="depth must have shape"):
        depth_to_disparity(np.ones(4))
    with pytest.raises(TypeError, match="depth"):
        depth_to_disparity([[1.0]])


def test_normalize_hand_values():
    disp = np.array([[2.0, 4.0], [3.0, 6.0]])
    np.testing.assert_allclose(normalize_disparity(disp), [[0.0, 0.5], [0.25, 1.0]])


def test_normalize_uses_only_valid_pixels_and_zeroes_the_rest():
    disp = torch.tensor([[100.0, 4.0], [2.0, NAN]])
    mask = torch.tensor([[False, True], [True, True]])
    torch.testing.assert_close(
        normalize_disparity(disp, mask), torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    )


def test_normalize_without_mask_keeps_sky_zero():
    # sky has disparity 0 from depth_to_disparity; with no mask it is a valid minimum
    disp = depth_to_disparity(np.array([[INF, 2.0], [1.0, 4.0]]))  # [[0, .5], [1, .25]]
    np.testing.assert_allclose(normalize_disparity(disp), [[0.0, 0.5], [1.0, 0.25]])


def test_normalize_is_per_map_and_safe_on_degenerate_maps():
    disp = torch.stack(
        [
            torch.tensor([[1.0, 3.0], [2.0, 5.0]]),  # normal: min 1, max 5
            torch.full((2, 2), 7.0),  # constant
            torch.tensor([[1.0, 2.0], [3.0, 4.0]]),  # fully masked below
        ]
    )
    mask = torch.ones(3, 2, 2, dtype=torch.bool)
    mask[2] = False
    out = normalize_disparity(disp, mask)
    torch.testing.assert_close(out[0], torch.tensor([[0.0, 0.5], [0.25, 1.0]]))
    torch.testing.assert_close(out[1], torch.zeros(2, 2))
    torch.testing.assert_close(out[2], torch.zeros(2, 2))
    assert not torch.isnan(out).any()


def test_stereo_depth_hand_values():
    disparity = np.array([[10.0, 30.0], [INF, 0.0]])
    # f * B / (d + doffs) with f = 100 px, B = 0.5 m, doffs = 10 px: 50/20, 50/40; 0 invalid
    depth = stereo_depth(disparity, focal_px=100.0, baseline_m=0.5, doffs_px=10.0)
    np.testing.assert_allclose(depth, [[2.5, 1.25], [0.0, 5.0]])
    masked = stereo_depth(disparity, 100.0, 0.5, 10.0, mask=np.array([[True, True], [True, False]]))
    np.testing.assert_allclose(masked, [[2.5, 1.25], [0.0, 0.0]])
