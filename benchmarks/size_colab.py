"""How long the notebook series takes in a profile on a Colab T4: measured FLOPs, estimated speed.

Measured here (any CPU): the model's FLOPs per image at the profile's side (forward, and
forward + backward, counted by torch.utils.flop_counter.FlopCounterMode), and the synthetic
world's rendering rate at the profile's render side in two worker processes (a Colab machine
has 2 CPU cores). Estimated: the GPU's sustained throughput, ``--tflops`` (default 12: a T4's
fp16 tensor-core peak is 65 TFLOP/s, and small-ViT training reaches about a fifth of it; the
README uses 10-15).

The workload is the series' training and labelling, read off the profile: the stand-in and
probes (03), the teacher (03), pseudo labels of the pool (04), four students and the
labeled-only model (05-07), eight metric fine-tunings (08) and thirty segmentation heads (09),
each as images x FLOPs per image. Evaluation, I/O and Python overhead are left out (they add
perhaps 10-20 % on a GPU), so read the total as a lower bound.

    python benchmarks/size_colab.py --profile colab
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from bench_model import count_flops as flops  # this folder is on sys.path when run as a script

from dalib import config, data, synth
from dalib.model import DepthAnything


def model_flops(encoder: str, side: int) -> dict[str, float]:
    """FLOPs per image: full forward, forward + backward, and encoder-only forward."""
    model = DepthAnything(encoder)
    x = torch.randn(1, 3, side, side)
    with torch.no_grad():
        fwd = flops(lambda: model(x))
        enc = flops(lambda: model.pretrained.readouts(x, [len(model.pretrained.blocks) - 1]))
    train = flops(lambda: model(x).mean().backward())
    return {"forward": fwd, "train": train, "encoder": enc}


def render_rate(profile: config.Profile, scenes: int = 64) -> float:
    """Measured images/s of the dataset path at the profile's render side, two workers."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        data.SynthDepthDataset(synth.UNLABELED[0], scenes, profile.image_size, Path(tmp),
                               seed=5, render_size=profile.render_size, workers=2, progress=False)
        return scenes / (time.perf_counter() - start)


def workload(p: config.Profile, f: dict[str, float]) -> list[tuple[str, float]]:
    """(part, FLOPs) of the series in profile ``p``."""
    b, tr, fwd, enc = p.batch_size, f["train"], f["forward"], f["encoder"]
    pool = p.n_unlabeled * len(synth.UNLABELED) + p.n_photo_crops
    student = p.student_steps * 3 * b * tr  # b labeled + 2b pseudo-labeled per step
    return [
        ("03 stand-in (semantic ViT)", p.semantic_steps * 2 * b * tr),
        ("03 teacher", p.teacher_steps * b * tr),
        ("04 pseudo labels of the pool", pool * fwd),
        ("05 student_plain + student_perturb", 2 * student),
        ("06 student (+ frozen encoder for L_feat)", student + p.student_steps * 2 * b * enc),
        ("07 labeled_only", p.student_steps * b * tr),
        ("08 eight metric fine-tunings", 8 * p.metric_steps * b * tr),
        ("09 thirty segmentation heads", 30 * p.probe_steps * 2 * b * (tr + enc) / 2),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="colab", choices=sorted(config.PROFILES))
    parser.add_argument("--tflops", type=float, default=12.0,
                        help="assumed sustained TFLOP/s of the GPU (estimate; T4 fp16 ~10-15)")
    parser.add_argument("--render-rate", type=float, default=None,
                        help="images/s rendered in 2 workers, measured earlier (skips measuring it)")
    args = parser.parse_args()
    config.set_threads()
    p = config.get_profile(args.profile)
    f = model_flops(p.encoder, p.image_size)
    rate = args.render_rate or render_rate(p)
    scenes = (p.n_labeled * len(synth.LABELED) + p.n_unlabeled * len(synth.UNLABELED)
              + p.n_eval * (len(synth.VALIDATION) + len(synth.HELD_OUT)))
    print(f"profile {p.name}: {p.encoder} at {p.image_size} px (rendered at {p.render_size})")
    print(f"measured: {f['forward'] / 1e9:.1f} GFLOP forward, {f['train'] / 1e9:.1f} GFLOP "
          f"forward + backward, {f['encoder'] / 1e9:.1f} GFLOP encoder forward, per image")
    print(f"{'given' if args.render_rate else 'measured'}: rendering {rate:.1f} images/s in 2 workers on this CPU -> "
          f"{scenes:,} scenes in {scenes / rate / 60:.1f} min")
    total = scenes / rate / 60
    print(f"\n| part | PFLOP | minutes at {args.tflops:g} TFLOP/s (estimate) |\n|---|---|---|")
    print(f"| 00-04 rendering (measured, CPU) | | {scenes / rate / 60:.1f} |")
    for part, amount in workload(p, f):
        minutes = amount / (args.tflops * 1e12) / 60
        total += minutes
        print(f"| {part} | {amount / 1e15:.2f} | {minutes:.1f} |")
    print(f"| **series, lower bound** | | **{total:.0f}** |")


if __name__ == "__main__":
    main()
