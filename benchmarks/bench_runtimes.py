"""Inference runtimes side by side: dalib in torch fp32, ONNX Runtime, and the int8 CPU path.

    python benchmarks/bench_runtimes.py [--encoder vits] [--side 518] [--checkpoint runs/full/checkpoints/student.safetensors]

Speed (one image, batch 1, best of --repeats after a warm-up, this process's threads): the
model of --encoder at --side px with random weights (the speed does not depend on them) in
dalib (torch, fp32, inference mode), the same graph exported by dalib.export.to_onnx run by
ONNX Runtime, and dalib.export.quantize_int8 (torchao dynamic int8 linear layers). FLOPs are
counted once (torch.utils.flop_counter) and shown as achieved GFLOP/s against a measured fp32
2048^2 matmul. Each runtime's output is compared with torch fp32's (max relative difference).

Accuracy cost of int8: a trained checkpoint (--checkpoint; the released weights need the
internet) scored fp32 and int8 with the zero-shot protocol of dalib.evaluate on the held-out
synthetic domains and the Middlebury photograph (AbsRel, mean over images).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import torch
from bench_model import best_time, count_flops, matmul_peak  # this folder is on sys.path

from dalib import evaluate
from dalib.config import set_threads
from dalib.export import onnx_session, quantize_int8, to_onnx
from dalib.model import DepthAnything, DepthNet, load_checkpoint


def speed(args) -> None:
    torch.manual_seed(0)
    model = DepthAnything(args.encoder).eval()
    net = DepthNet(model).eval()
    images = torch.rand(1, 3, args.side, args.side)
    with torch.inference_mode():
        flops = count_flops(lambda: net(images))
        reference = net(images)[0]
    peak = matmul_peak()
    rows = []

    def add(name: str, run, output) -> None:
        seconds = best_time(run, args.repeats)
        diff = float((output - reference).abs().max() / reference.abs().max())
        rows.append((name, seconds, flops / seconds / 1e9, diff))

    with torch.inference_mode():
        add("dalib, torch fp32", lambda: net(images), reference)
    with tempfile.TemporaryDirectory() as tmp:
        session = onnx_session(to_onnx(model, Path(tmp) / "m.onnx", args.side), torch.get_num_threads())
        feed = {"image": images.numpy()}
        add("ONNX Runtime fp32", lambda: session.run(None, feed), torch.from_numpy(session.run(None, feed)[0]))
    quantized = DepthNet(quantize_int8(model)).eval()
    with torch.inference_mode():
        add("dalib, int8 linear (torchao)", lambda: quantized(images), quantized(images)[0])
    print(f"{args.encoder} at {args.side} px, batch 1: {flops / 1e9:.1f} GFLOP; "
          f"fp32 matmul peak {peak:.0f} GFLOP/s; {torch.get_num_threads()} threads")
    print("| runtime | s / image | vs torch | GFLOP/s | % of matmul peak | max rel. diff |")
    print("|---|---|---|---|---|---|")
    base = rows[0][1]
    for name, seconds, rate, diff in rows:
        print(f"| {name} | {seconds:.3f} | x{base / seconds:.2f} | {rate:.0f} | "
              f"{100 * rate / peak:.0f} % | {diff:.1e} |")


def accuracy(args) -> None:
    path = Path(args.checkpoint)
    if not path.is_file():
        print(f"accuracy: {path} not found (train it with make run); skipped")
        return
    model = load_checkpoint(path)
    sets = {**evaluate.synthetic_sets(args.profile), "middlebury": evaluate.middlebury_set()}
    side = args.input_size or model.config.input_size
    scores = {
        name: evaluate.score_predictor(evaluate.model_predictor(m, side), sets)
        for name, m in (("fp32", model), ("int8", quantize_int8(model)))
    }
    print(f"\nint8 accuracy cost, {path.name} ({model.config.encoder} at {side} px), AbsRel:")
    print("| set | fp32 | int8 | change |")
    print("|---|---|---|---|")
    for name in sets:
        a, b = scores["fp32"][name]["abs_rel"], scores["int8"][name]["abs_rel"]
        print(f"| {name} | {a:.4f} | {b:.4f} | {b - a:+.4f} ({100 * (b - a) / a:+.1f} %) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="vits")
    parser.add_argument("--side", type=int, default=518)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--checkpoint", default="runs/full/checkpoints/student.safetensors")
    parser.add_argument("--profile", default="full", help="whose held-out sets to score")
    parser.add_argument("--input-size", type=int, default=None)
    args = parser.parse_args()
    set_threads(args.threads)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    speed(args)
    accuracy(args)


if __name__ == "__main__":
    main()
