"""Pilot 4 (validation only): a stronger teacher (tiny) labels the pool for micro students."""

import json
import shutil
import time
from pathlib import Path

from regime import pilot_profile  # benchmarks/pilots/regime.py

from dalib import ablation, evaluate, pseudo, train
from dalib.model import load_checkpoint

root, troot = Path("runs/study/p4"), Path("runs/study/p4t")
for r in (root, troot):  # pilot 2's cached renders, its micro stand-in and pool
    (r / "checkpoints").mkdir(parents=True, exist_ok=True)
    if not (r / "data").exists():
        (r / "data").symlink_to(Path("runs/study/p2/data").resolve())
shutil.copy("runs/study/p2/checkpoints/semantic_encoder.safetensors", root / "checkpoints")
if not (root / "pool").exists():
    shutil.copytree("runs/study/p2/pool", root / "pool")
p = pilot_profile()
t = time.time()
train.train_teacher(p.replace(encoder="tiny"), root=troot)  # tiny stand-in + tiny teacher
print("tiny teacher s", time.time() - t, flush=True)
teacher = troot / "checkpoints" / "teacher.safetensors"
pseudo.pseudo_label(teacher=teacher, profile=p, root=root)
for name, on in (("student_plain", False), ("student_perturb", True)):
    train.train_student(p, root=root, name=name, perturb=on, cutmix=on)
sets = ablation.scoring_sets(p, root, "validation")
models = {
    "tiny teacher": teacher,
    "labeled_only (micro, p2)": Path("runs/study/p2/checkpoints/labeled_only.safetensors"),
    "student_plain": root / "checkpoints/student_plain.safetensors",
    "student_perturb": root / "checkpoints/student_perturb.safetensors",
}
res = evaluate.zero_shot(
    {k: evaluate.model_predictor(load_checkpoint(v), p.image_size) for k, v in models.items()}, sets
)
print(evaluate.results_table(res))
(root / "pilot4.json").write_text(json.dumps(res, indent=1))
