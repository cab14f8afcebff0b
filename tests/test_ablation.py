"""The Table 9 ablation: variants x seeds, reuse of existing runs, the seed-noise verdicts."""

import json

import pytest

from dalib import ablation
from dalib.__main__ import main
from dalib.config import get_profile
from dalib.loop import read_log
from dalib.train import run_paths

PROFILE = get_profile("fast").replace(n_unlabeled=3, n_photo_crops=3, n_labeled=4, batch_size=2)


def _fake(by_variant):
    return {
        "scores": {
            v: {
                str(i): {
                    "gallery": {"abs_rel": x, "delta1": 0.5},
                    "ruins": {"abs_rel": x, "delta1": 0.5},
                }
                for i, x in enumerate(values)
            }
            for v, values in by_variant.items()
        }
    }


def test_verdicts_follow_the_seed_spread():
    table, verdicts = ablation.summarise(
        _fake({"a": [0.30, 0.31, 0.29], "b": [0.20, 0.21, 0.19], "c": [0.205, 0.19, 0.215]})
    )
    assert "0.300 ± 0.010" in table and "| 3 |" in table
    assert "(a) -> (b)" in verdicts[0] and "better; exceeds seed noise" in verdicts[0]
    assert "(b) -> (c)" in verdicts[1] and "within seed noise" in verdicts[1]
    partial = ablation.complete_seeds(_fake({"a": [0.30, 0.31, 0.29], "b": [0.20, 0.21]}))
    assert {v: sorted(x) for v, x in partial["scores"].items()} == {
        "a": ["0", "1"],
        "b": ["0", "1"],
    }
    _, one = ablation.summarise(_fake({"a": [0.3], "b": [0.2]}))
    assert "one seed: cannot tell" in one[0] and "nan" not in one[0]


def test_runs_variants_and_seeds_reusing_existing_checkpoints(tmp_path, capsys):
    results = ablation.run_ablation(PROFILE, seeds=[0, 1], variants=["a", "b"], root=tmp_path)
    assert set(results["scores"]) == {"a", "b"} and set(results["scores"]["b"]) == {"0", "1"}
    assert set(results["scores"]["a"]["1"]) == {"gallery", "ruins", "middlebury"}
    names = ["teacher", "teacher_seed1", "student_clean", "student_clean_seed1"]
    assert all(run_paths(tmp_path, n)["final_path"].is_file() for n in names)
    seeds = {n: read_log(run_paths(tmp_path, n)["log_path"])[0]["loss"] for n in names}
    assert seeds["teacher"] != seeds["teacher_seed1"]  # another seed is another run
    stamp = run_paths(tmp_path, "teacher_seed1")["final_path"].stat().st_mtime_ns
    assert (
        main(
            [
                "ablation",
                "--profile",
                "fast",
                "--out",
                str(tmp_path),
                "--seeds",
                "1",
                "--variants",
                "a",
            ]
        )
        == 0
    )
    assert run_paths(tmp_path, "teacher_seed1")["final_path"].stat().st_mtime_ns == stamp  # reused
    assert "(a) L_l only (teacher)" in capsys.readouterr().out
    saved = json.loads((tmp_path / "ablation" / "results.json").read_text())
    assert set(saved["scores"]["a"]) == {"0", "1"}
    with pytest.raises(ValueError, match="unknown variants"):
        ablation.run_ablation(PROFILE, seeds=[0], variants=["z"], root=tmp_path)
