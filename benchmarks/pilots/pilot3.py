"""Pilot 3 (validation only): pretext task of the stand-in (semantic / MIM / none), micro."""

import json
import time
from pathlib import Path

from regime import EARLIER, pilot_profile  # benchmarks/pilots/regime.py

from dalib import evaluate, standin, synth, train
from dalib.model import load_checkpoint

root = Path("runs/study/p3")
base = pilot_profile(**EARLIER, encoder="micro", checkpoint_every=0)
sets = evaluate.synthetic_sets(base, root, synth.VALIDATION)
out = {}
for init in ("synthetic", "mim", None):
    t = time.time()
    if init:
        standin.PRETRAINERS[init](base, root=root)
    out[f"standin_{init}_s"] = time.time() - t
    t = time.time()
    train.train_teacher(base.replace(pretrained_encoder=init), root=root, name=f"teacher_{init}")
    out[f"teacher_{init}_s"] = time.time() - t
    print(init, out, flush=True)
names = [f"teacher_{i}" for i in ("synthetic", "mim", None)]
preds = {
    n: evaluate.model_predictor(load_checkpoint(root / "checkpoints" / f"{n}.safetensors"))
    for n in names
}
results = evaluate.zero_shot(preds, sets, baselines=True)
print(evaluate.results_table(results))
(root / "pilot3.json").write_text(json.dumps({"times": out, "results": results}, indent=1))
