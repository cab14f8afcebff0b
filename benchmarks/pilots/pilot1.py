"""Pilot 1 (validation domains only): does the stand-in init make the teacher useful?"""

import json
import time
from pathlib import Path

from regime import EARLIER, pilot_profile  # benchmarks/pilots/regime.py

from dalib import evaluate, standin, synth, train
from dalib.model import load_checkpoint

root = Path("runs/study/p1")
base = pilot_profile(**EARLIER, encoder="tiny", checkpoint_every=500)
out = {}
sets = evaluate.synthetic_sets(base, root, synth.VALIDATION)
t = time.time()
standin.train_semantic_encoder(base, root=root)
out["standin_s"] = time.time() - t
print("standin", out["standin_s"], flush=True)
for init in ("synthetic", None):
    p = base.replace(pretrained_encoder=init)
    t = time.time()
    train.train_teacher(p, root=root, name=f"teacher_{init}")
    out[f"teacher_{init}_s"] = time.time() - t
    print(init, out[f"teacher_{init}_s"], flush=True)
preds = {
    n: evaluate.model_predictor(load_checkpoint(root / "checkpoints" / f"{n}.safetensors"))
    for n in ("teacher_synthetic", "teacher_None")
}
results = evaluate.zero_shot(preds, sets, baselines=True)
print(evaluate.results_table(results))
(root / "pilot1.json").write_text(json.dumps({"times": out, "results": results}, indent=1))
