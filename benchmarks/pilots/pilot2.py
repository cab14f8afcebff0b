"""Pilot 2 (validation only): the candidate regime, Table 9 rows a-d + teacher, micro."""

import json
import sys
import time
from pathlib import Path

from regime import pilot_profile  # benchmarks/pilots/regime.py

from dalib import ablation, config, evaluate
from dalib.model import load_checkpoint

root = Path("runs/study/p2")
seeds = [int(s) for s in sys.argv[1].split(",")] if len(sys.argv) > 1 else [0]
init = sys.argv[2] if len(sys.argv) > 2 else "synthetic"
p = pilot_profile(pretrained_encoder=init)
t0 = time.time()
res = ablation.run_ablation(p, seeds=seeds, root=root, split="validation")
sets = ablation.scoring_sets(p, root, "validation")
teacher = evaluate.score_predictor(
    evaluate.model_predictor(
        load_checkpoint(config.run_paths(root, "teacher")["final_path"]), p.image_size
    ),
    sets,
)
base = evaluate.zero_shot({}, sets)
saved = json.loads((root / "ablation" / "validation.json").read_text())
table, verdicts = ablation.summarise(ablation.complete_seeds(saved))
print(evaluate.results_table({**base, "teacher": teacher}))
print(table)
print("\n".join(verdicts))
print("total s", time.time() - t0)
