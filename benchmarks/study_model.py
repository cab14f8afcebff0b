"""Quality per CPU minute: which model size, patch and image size the `full` profile trains.

For each candidate (encoder size from ``dalib.model.SIZES``, training image side) this
measures the training speed of the stand-in (``dalib.standin``) and of the teacher, then
trains both for the same wall-clock budget (``--minutes`` each, converted to steps from the
measured speed) and scores the teacher on the **validation** domains (never the held-out
ones), on the same 98 px images for every candidate (predictions are made at the
candidate's side and resized back). Prints one table and writes
``benchmarks/results/study_model.json``.

    python benchmarks/study_model.py                # all candidates, 3 + 3 minutes each
    python benchmarks/study_model.py --minutes 1 --candidates tiny:98 micro:98

Run it on a quiet machine: the step counts come from timings.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from dalib import config, evaluate, objectives, optim, standin, synth, train
from dalib.model import DepthAnything, DepthNet, load_checkpoint
from dalib.report import markdown_table
from dalib.segmentation import Segmenter, train_segmenter

CANDIDATES = ("tiny:98", "tiny:126", "tiny_p7:56", "tiny_p7:98", "micro:98", "mini:98")
RESULTS = Path(__file__).parent / "results" / "study_model.json"
STUDY_DATA = {
    "n_labeled": 400,  # x 3 labeled domains
    "n_unlabeled": 300,  # x 8 unlabeled domains: the stand-in's pretraining images
    "n_photo_crops": 400,
    "n_eval": 200,  # x 2 validation domains
    "batch_size": 16,
}


def _speed(run, images_per_step: int, warmup: int = 3, steps: int = 8) -> float:
    """Images per second of ``run(steps)`` after ``warmup`` steps."""
    run(warmup)
    start = time.perf_counter()
    run(steps)
    return steps * images_per_step / (time.perf_counter() - start)


def teacher_speed(profile: config.Profile) -> float:
    model = DepthAnything(profile.encoder)
    settings = optim.settings_for(profile, "teacher", steps=1000, progress=False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    step_fn = objectives.teacher_step(0.5)
    size = profile.image_size
    batch = {
        "image": torch.rand(settings.batch_size, 3, size, size),
        "target": torch.rand(settings.batch_size, size, size),
        "mask": torch.ones(settings.batch_size, size, size, dtype=torch.bool),
    }
    net = DepthNet(model).train()
    generator = torch.Generator().manual_seed(0)

    def run(n: int) -> None:
        for step in range(n):
            loss, _ = step_fn(net, batch, generator, step)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    return _speed(run, settings.batch_size)


def standin_speed(profile: config.Profile) -> float:
    model = Segmenter(profile.encoder, len(synth.SEMANTIC_CLASSES))
    n, size = 2 * profile.batch_size, profile.image_size
    images = torch.randint(0, 255, (n, 3, size, size), dtype=torch.uint8)
    labels = torch.randint(0, len(synth.SEMANTIC_CLASSES), (n, size, size))

    def run(steps: int) -> None:
        train_segmenter(model, images, labels, steps, n, lr_encoder=3e-4, progress=False)

    return _speed(run, n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES))
    parser.add_argument("--minutes", type=float, default=3.0, help="per stage and candidate")
    parser.add_argument("--root", default="runs/study/model", help="artifact folder")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    config.set_threads()
    # the data and batch the committed results were measured with (the full profile of then)
    base = config.get_profile("full").replace(**STUDY_DATA, eval_every=0, checkpoint_every=0)
    root = Path(args.root)
    sets = evaluate.synthetic_sets(base, root / "common", synth.VALIDATION)
    out = json.loads(Path(args.out).read_text()) if Path(args.out).is_file() else {}
    for candidate in args.candidates:
        encoder, side = candidate.split(":")
        profile = base.replace(
            encoder=encoder,
            image_size=int(side),
            render_size=max(112, int(side) + 14),
            pretrained_encoder="synthetic",
        )
        here = root / candidate.replace(":", "_")
        here.mkdir(parents=True, exist_ok=True)
        if not (here / "data").exists():  # renders are cached by their settings: share them
            (here / "data").symlink_to((root / "common" / "data").resolve())
        speeds = {"standin": standin_speed(profile), "teacher": teacher_speed(profile)}
        steps = {
            "standin": int(args.minutes * 60 * speeds["standin"] / (2 * profile.batch_size)),
            "teacher": int(args.minutes * 60 * speeds["teacher"] / profile.batch_size),
        }
        profile = profile.replace(semantic_steps=steps["standin"], teacher_steps=steps["teacher"])
        standin.semantic_training_data(profile, here)  # render (cached) outside the timings
        started = time.perf_counter()
        standin.train_semantic_encoder(profile, root=here)
        standin_s = time.perf_counter() - started
        started = time.perf_counter()
        train.train_teacher(profile, root=here, validate=False)
        teacher_s = time.perf_counter() - started
        model = load_checkpoint(config.run_paths(here, "teacher")["final_path"])
        scores = evaluate.score_predictor(evaluate.model_predictor(model, profile.image_size), sets)
        out[candidate] = {
            "encoder": encoder,
            "image_size": int(side),
            "tokens": (int(side) // model.config.patch_size) ** 2,
            "parameters": sum(p.numel() for p in model.parameters()),
            "img_per_s": speeds,
            "steps": steps,
            "minutes": {"standin": standin_s / 60, "teacher": teacher_s / 60},
            "validation": scores,
        }
        print(candidate, json.dumps(out[candidate]), flush=True)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    baselines = evaluate.zero_shot({}, sets)
    rows = [
        [name, "", "", "", "", "", *(baselines[name][d]["abs_rel"] for d in sets)]
        + [sum(baselines[name][d]["abs_rel"] for d in sets) / len(sets)]
        for name in baselines
    ]
    for candidate, r in out.items():
        v = r["validation"]
        rows.append(
            [candidate, r["tokens"], f"{r['parameters'] / 1e6:.2f}M"]
            + [f"{r['img_per_s']['teacher']:.0f}", r["steps"]["teacher"]]
            + [f"{r['minutes']['standin'] + r['minutes']['teacher']:.1f}"]
            + [v[d]["abs_rel"] for d in sets]
            + [sum(v[d]["abs_rel"] for d in sets) / len(sets)]
        )
    header = ["model:side", "tokens", "params", "teacher img/s", "teacher steps", "CPU min"]
    print(markdown_table(header + [f"{d} AbsRel" for d in sets] + ["mean AbsRel"], rows))


if __name__ == "__main__":
    main()
