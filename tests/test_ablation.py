"""The Table 9 ablation: variants x seeds, reuse of existing runs, the seed-noise verdicts."""

import json
import math

import pytest

from dalib import ablation, synth
from dalib.__main__ import main
from dalib.checkpoint import checkpoint_metadata
from dalib.config import get_profile, run_paths
from dalib.runlog import read_log
from dalib.viz import regime_map

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
    assert "(a) -> (b)" in verdicts[0] and "better; exceeds seed noise (paired)" in verdicts[0]
    assert "(b) -> (c)" in verdicts[1] and "within seed noise" in verdicts[1]
    # paired by seed: a shift shared by every seed is no noise; unpaired it would be
    _, paired = ablation.summarise(_fake({"a": [0.30, 0.40, 0.35], "b": [0.29, 0.39, 0.34]}))
    assert "better; exceeds seed noise (paired)" in paired[0] and "-0.0100 ± 0.0000" in paired[0]
    unpaired = _fake({"a": [0.30, 0.40, 0.35], "b": [0.29, 0.39]})
    unpaired["scores"]["b"]["5"] = unpaired["scores"]["b"].pop("1")
    _, verdict = ablation.summarise(unpaired)
    assert "within seed noise" in verdict[0] and "paired" not in verdict[0]
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
    names = ["labeled_only", "labeled_only_seed1", "student_plain", "student_plain_seed1"]
    assert all(run_paths(tmp_path, n)["final_path"].is_file() for n in [*names, "teacher"])
    seeds = {n: read_log(run_paths(tmp_path, n)["log_path"])[0]["loss"] for n in names}
    assert seeds["labeled_only"] != seeds["labeled_only_seed1"]  # another seed is another run
    logs = {
        n: read_log(run_paths(tmp_path, n)["log_path"]) for n in ("labeled_only", "student_plain")
    }
    assert [r["step"] for r in logs["labeled_only"] if "loss" in r][-1] == PROFILE.student_steps
    assert "loss_u" in logs["student_plain"][0] and "loss_u" not in logs["labeled_only"][0]
    stamp = run_paths(tmp_path, "labeled_only_seed1")["final_path"].stat().st_mtime_ns
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
    assert run_paths(tmp_path, "labeled_only_seed1")["final_path"].stat().st_mtime_ns == stamp
    assert "(a) L_l only" in capsys.readouterr().out
    saved = json.loads((tmp_path / "ablation" / "results.json").read_text())
    assert set(saved["scores"]["a"]) == {"0", "1"}
    with pytest.raises(ValueError, match="unknown variants"):
        ablation.run_ablation(PROFILE, seeds=[0], variants=["z"], root=tmp_path)


def test_regime_map_trains_smaller_pools_on_the_same_schedule(tmp_path):
    profile = PROFILE.replace(n_unlabeled=2)  # pool: 8 domains x 2 + 3 photo crops = 19
    runs = ablation.regime_runs(profile, [1, 100])
    labeled = ablation.labeled_count(profile)  # 3 domains x 4
    assert runs == {
        f"student_u{labeled}": {"pool_size": labeled, "perturb": True, "ratio": 1.0},
        f"student_plain_feat_u{labeled}": {"pool_size": labeled, "perturb": False, "ratio": 1.0},
        "student": {"pool_size": 19, "perturb": True, "ratio": 19 / labeled},
        "student_plain_feat": {"pool_size": 19, "perturb": False, "ratio": 19 / labeled},
    }
    assert ablation.regime_runs(profile, [1]) == runs  # the whole pool is always a point
    results = ablation.run_regime_map(profile, [1], seeds=[0], root=tmp_path)
    assert set(results["scores"]) == {"labeled_only", *runs}
    assert set(results["scores"]["labeled_only"]["0"]) == set(synth.VALIDATION)
    log = read_log(run_paths(tmp_path, f"student_u{labeled}")["log_path"])
    assert (
        "loss_feat" in log[0]
        and [r["step"] for r in log if "loss" in r][-1] == profile.student_steps
    )
    meta = checkpoint_metadata(run_paths(tmp_path, f"student_u{labeled}")["final_path"])
    assert meta["pool_size"] == str(labeled) and meta["perturb"] == "True"
    saved = json.loads((tmp_path / "ablation" / "regime_validation.json").read_text())
    assert set(saved["runs"]) == set(results["runs"]) and "labeled_only" in saved["scores"]


def test_regime_gains_are_paired_by_seed_and_plotted():
    def by_set(x):
        return {"atrium": {"abs_rel": x, "delta1": 0.5}, "quarry": {"abs_rel": x, "delta1": 0.5}}

    results = {
        "runs": {
            "student_u10": {"pool_size": 10, "perturb": True, "ratio": 1.0},
            "student": {"pool_size": 40, "perturb": True, "ratio": 4.0},
            "student_plain_feat": {"pool_size": 40, "perturb": False, "ratio": 4.0},
        },
        "scores": {
            "labeled_only": {"0": by_set(0.30), "1": by_set(0.40)},
            "student_u10": {"0": by_set(0.30), "1": by_set(0.40)},
            "student": {"0": by_set(0.27), "1": by_set(0.35), "2": by_set(0.1)},
            "student_plain_feat": {"0": by_set(0.31)},
        },
    }
    curves = ablation.regime_gains(results)
    (r1, g1, s1, n1), (r4, g4, s4, n4) = curves["with strong perturbation"]
    assert (r1, g1, s1, n1) == (1.0, 0.0, 0.0, 2)
    assert r4 == 4.0 and n4 == 2 and g4 == pytest.approx(0.04) and s4 == pytest.approx(0.01)
    ((_, g, s, n),) = curves["without"]
    assert n == 1 and g == pytest.approx(-0.01) and math.isnan(s)  # one seed: no error bar
    fig = regime_map(curves)
    assert fig.axes[0].get_xscale() == "log" and len(fig.axes[0].lines) >= 3
