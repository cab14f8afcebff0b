"""Inference runtimes side by side: dalib in torch fp32, ONNX Runtime, and the int8 CPU path.

    python benchmarks/bench_runtimes.py [--encoder vits] [--side 518] [--checkpoint runs/full/checkpoints/student.safetensors]

Speed (one image, batch 1, best of --repeats after a warm-up, this process's threads): the
model of --encoder at --side px with random weights (the speed does not depend on them) in
dalib (torch, fp32, inference mode), the same graph exported by dalib.export.to_onnx run by
ONNX Runtime, and dalib.export.quantize_int8 (torchao dynamic int8 linear layers). FLOPs are
counted once (torch.utils.flop_counter, attention included) and shown as achieved GFLOP/s against a measured fp32
2048^2 matmul. Each runtime's output is compared with torch fp32's (max relative difference).
Then the torch forward's time split by stage (attention, MLP, DPT head, the rest), with each
stage's counted FLOPs, to show where it stays below the matmul peak.

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
from bench_model import (  # this folder is on sys.path
    best_time,
    count_flops,
    matmul_peak,
    stage_split,
)

from dalib import evaluate
from dalib.config import set_threads
from dalib.export import onnx_session, quantize_int8, to_onnx
from dalib.model import DepthAnything, DepthNet, load_checkpoint


def ort_matmul_peak(threads: int, side: int = 2048, repeats: int = 5) -> float:
    """fp32 GFLOP/s of ONNX Runtime's own side x side MatMul: its GEMM kernels, not torch's."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [side, side]) for n in "ab"]
    output = helper.make_tensor_value_info("c", TensorProto.FLOAT, [side, side])
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "matmul", inputs, [output])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    rng = np.random.default_rng(0)
    feed = {n: rng.standard_normal((side, side), dtype=np.float32) for n in "ab"}
    with tempfile.TemporaryDirectory() as tmp:
        onnx.save(model, Path(tmp) / "matmul.onnx")
        session = onnx_session(Path(tmp) / "matmul.onnx", threads)
        return 2 * side**3 / best_time(lambda: session.run(None, feed), repeats) / 1e9


def speed(args, peak: float) -> None:
    torch.manual_seed(0)
    model = DepthAnything(args.encoder).eval()
    net = DepthNet(model).eval()
    images = torch.rand(1, 3, args.side, args.side)
    with torch.inference_mode():
        flops = count_flops(lambda: net(images))
        reference = net(images)[0]
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
    ort_peak = ort_matmul_peak(torch.get_num_threads())
    print(f"{args.encoder} at {args.side} px, batch 1: {flops / 1e9:.1f} GFLOP (attention counted); "
          f"fp32 2048^2 matmul: torch {peak:.0f} GFLOP/s, ONNX Runtime {ort_peak:.0f} GFLOP/s; "
          f"{torch.get_num_threads()} threads")
    print("| runtime | s / image | vs torch | GFLOP/s | % of torch's matmul peak | max rel. diff |")
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
    peak = matmul_peak()
    speed(args, peak)
    stage_split(args.encoder, args.side, args.repeats, peak)
    accuracy(args)


if __name__ == "__main__":
    main()
