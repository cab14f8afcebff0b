"""Pilot 2 (validation only): the candidate regime, Table 9 rows a-d + teacher, micro."""

import json
import sys
import time
from pathlib import Path

from dalib import ablation, config, evaluate, train
from dalib.model import load_checkpoint

root = Path("runs/study/p2")
seeds = [int(s) for s in sys.argv[1].split(",")] if len(sys.argv) > 1 else [0]
init = sys.argv[2] if len(sys.argv) > 2 else "synthetic"
p = config.get_profile("full").replace(
    encoder="micro",
    n_labeled=400,
    n_unlabeled=3800,
    n_photo_crops=1600,
    n_eval=200,
    batch_size=8,
    teacher_steps=2000,
    student_steps=2000,
    semantic_steps=2000,
    eval_every=500,
    checkpoint_every=500,
    pretrained_encoder=init,
)
t0 = time.time()
res = ablation.run_ablation(p, seeds=seeds, root=root, split="validation")
sets = ablation.scoring_sets(p, root, "validation")
teacher = evaluate.evaluate(
    evaluate.model_predictor(
        load_checkpoint(train.run_paths(root, "teacher")["final_path"]), p.image_size
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
