"""Pilot 5 (validation only): does a pool that *covers* more kinds of scene help the student?

One ingredient changes against pilot 2's seed 0: two more unlabeled domains that mix every
object recipe (columns, pillars, plinths, walls included), layout, sky and light at random.
The stand-in and the teacher are pilot 2's (copied), so the labels of the old domains are
the same; the student sees 39,600 pool images (0.8 passes) instead of 32,000.
"""

import json
import shutil
import time
from pathlib import Path

from regime import pilot_profile  # benchmarks/pilots/regime.py

from dalib import ablation, evaluate, pseudo, synth, train
from dalib.model import load_checkpoint
from dalib.world.scenes import DomainSpec
from dalib.world.textures import PHOTOS

ALL = ("crate", "ball", "barrel", "stack", "column", "pillar", "plinth", "wall")
synth.DOMAINS["mixed_rooms"] = DomainSpec(
    group="unlabeled",
    layout="room",
    description="any recipe, any room, any light",
    max_depth=10.0,
    fov_deg=(45, 95),
    height=(0.6, 2.2),
    pitch_deg=(-30, 15),
    roll_deg=8,
    objects=ALL,
    n_objects=(3, 12),
    room=((3.0, 8.0), (2.2, 5.5), (3.0, 8.0)),
    photos=PHOTOS,
    photo_prob=0.5,
    saturation=(0.0, 0.9),
    ambient=(0.1, 0.5),
    light=(0.6, 1.0),
    light_tint=0.6,
    noise=0.02,
)
synth.DOMAINS["mixed_fields"] = DomainSpec(
    group="unlabeled",
    layout="field",
    description="any recipe, any field, any sky",
    max_depth=80.0,
    fov_deg=(40, 95),
    height=(0.5, 6.0),
    pitch_deg=(-30, 8),
    roll_deg=8,
    objects=ALL + ("tree",),
    n_objects=(6, 22),
    object_scale=(1.0, 3.0),
    photos=PHOTOS,
    photo_prob=0.5,
    saturation=(0.0, 0.8),
    sun_elevation_deg=(4, 80),
    skies=("day", "overcast", "dusk"),
    fog_m=(50, 400),
    light_tint=0.6,
)
synth.UNLABELED = synth.UNLABELED + ("mixed_rooms", "mixed_fields")
root = Path("runs/study/p5")
(root / "checkpoints").mkdir(parents=True, exist_ok=True)
if not (root / "data").exists():  # pilot 2's cached renders, stand-in and teacher
    (root / "data").symlink_to(Path("runs/study/p2/data").resolve())
for name in ("semantic_encoder", "teacher"):
    shutil.copy(f"runs/study/p2/checkpoints/{name}.safetensors", root / "checkpoints")
p = pilot_profile()
t = time.time()
pseudo.pseudo_label(profile=p, root=root)
print("pool + labels s", time.time() - t, flush=True)
for name, on, extra in (
    ("student_plain", False, []),
    ("student_perturb", True, []),
    ("student", True, [ablation.feature_alignment(p, root)]),
):
    train.train_student(p, root=root, name=name, perturb=on, cutmix=on, extra_losses=extra)
    print(name, "done", time.time() - t, flush=True)
sets = ablation.scoring_sets(p, root, "validation")
models = {"labeled_only (p2)": "runs/study/p2/checkpoints/labeled_only.safetensors"}
for n in ("student_plain", "student_perturb", "student"):
    models[f"{n} (p2)"] = f"runs/study/p2/checkpoints/{n}.safetensors"
    models[f"{n} (covering pool)"] = root / "checkpoints" / f"{n}.safetensors"
res = evaluate.zero_shot(
    {k: evaluate.model_predictor(load_checkpoint(v), 98) for k, v in models.items()}, sets
)
print(evaluate.results_table(res))
(root / "pilot5.json").write_text(json.dumps(res, indent=1))
