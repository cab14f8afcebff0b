"""Zero-shot evaluation: the protocol, the baselines, the command line."""

import json

import numpy as np
import pytest
import torch

from dalib import evaluate
from dalib.__main__ import main
from dalib.config import get_profile
from dalib.data import write_depth
from dalib.depth import depth_to_disparity
from dalib.evaluate import held_out_sets, score_domains
from dalib.io import write_png
from dalib.model import DepthAnything, DepthNet, save_checkpoint

PROFILE = get_profile("fast")


def test_truth_scores_perfectly_and_baselines_do_not(tmp_path):
    sets = evaluate.synthetic_sets(PROFILE, tmp_path)
    for name, test in sets.items():
        truth = [depth_to_disparity(torch.from_numpy(d)).numpy() * 3 + 0.5 for d in test.depths]
        scores = evaluate.score_predictor(lambda images, t=truth: t[: len(images)], {name: test})[name]
        assert scores["abs_rel"] < 1e-4 and scores["delta1"] == 1.0 and scores["n"] == len(test)
        for baseline in evaluate.BASELINES.values():
            assert evaluate.score_predictor(baseline, {name: test})[name]["abs_rel"] > 0.05


def test_baselines_shapes_and_values():
    images = [np.zeros((3, 5, 3), np.uint8), np.zeros((4, 2, 3), np.uint8)]
    const = evaluate.constant_disparity(images)
    rows = evaluate.ground_plane_prior(images)
    assert [c.shape for c in const] == [(3, 5), (4, 2)] and all((c == 1).all() for c in const)
    assert rows[1].tolist() == [[1, 1], [2, 2], [3, 3], [4, 4]]


def test_model_scores_match_the_training_evaluation(tmp_path):
    torch.manual_seed(0)
    model = DepthAnything("micro").eval()
    sets = evaluate.synthetic_sets(PROFILE, tmp_path)
    ours = evaluate.score_predictor(evaluate.model_predictor(model, PROFILE.image_size), sets)
    with torch.no_grad():
        reference = score_domains(DepthNet(model).eval(), held_out_sets(PROFILE, tmp_path))
    for domain, scores in reference.items():
        assert ours[domain]["abs_rel"] == pytest.approx(scores["abs_rel"], abs=1e-3)
        assert ours[domain]["delta1"] == pytest.approx(scores["delta1"], abs=5e-3)


def test_eval_set_checks_and_middlebury():
    with pytest.raises(ValueError, match="'bad'.*same number"):
        evaluate.EvalSet("bad", [np.zeros((2, 2, 3), np.uint8)], [])
    with pytest.raises(ValueError, match=r"item 0: image \(2, 2\) vs depth \(3, 3\)"):
        evaluate.EvalSet("bad", [np.zeros((2, 2, 3), np.uint8)], [np.zeros((3, 3))])
    real = evaluate.middlebury_set()
    assert real.images[0].shape == (500, 741, 3)
    valid = real.depths[0] > 0
    assert 0.5 < valid.mean() and 1 < np.median(real.depths[0][valid]) < 5  # metres


def test_command_line_table_with_baselines_and_a_user_folder(tmp_path, capsys):
    torch.manual_seed(0)
    checkpoint = save_checkpoint(DepthAnything("micro"), tmp_path / "tiny_model.safetensors")
    rng = np.random.default_rng(0)
    for key in ("a", "b"):
        write_png(
            tmp_path / "rgb" / f"{key}.png", rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
        )
        write_depth(tmp_path / "d" / f"{key}.png", rng.uniform(1, 5, (40, 50)).astype(np.float32))
    args = ["evaluate", str(checkpoint), "--profile", "fast", "--out", str(tmp_path / "runs")]
    args += ["--images", str(tmp_path / "rgb"), "--depths", str(tmp_path / "d")]
    args += ["--table", str(tmp_path / "table")]
    assert main(args) == 0
    out = capsys.readouterr().out
    for row in ("constant disparity", "ground-plane prior", "tiny_model"):
        assert f"| {row} |" in out
    results = json.loads((tmp_path / "table.json").read_text())
    assert set(results["tiny_model"]) == {"gallery", "ruins", "middlebury", "rgb"}
    assert results["tiny_model"]["rgb"]["n"] == 2
    assert (tmp_path / "table.md").read_text().startswith("| model |")
    with pytest.raises(SystemExit, match="--images and --depths go together"):
        main(["evaluate", str(checkpoint), "--profile", "fast", "--images", str(tmp_path / "rgb")])
